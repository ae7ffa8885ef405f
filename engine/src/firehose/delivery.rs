//! Buffers out: the due buffers' objects written to the lake (prefixes evaluated, dynamic
//! partitions, compression, Parquet conversion, failures under the error prefix) and their
//! removal from the buffer committed.

use super::*;

impl Firehose {
    /// Delivers every buffer of `name` that is due: full, past its interval, or every buffer
    /// when forced; then, for a Redshift destination, runs the COPYs that are due.
    pub async fn deliver(&self, name: &str, trigger: Trigger) -> Result<Delivery> {
        let _one_at_a_time = self.delivering.lock().await;
        let now = self.clock.now();
        let objects = self.stage(name, trigger, now).await?;
        let copies = self.copy_due(name, now).await?;
        Ok(Delivery { objects, copies })
    }

    /// Writes the due buffers' objects and commits their removal from the buffer (queueing
    /// the batch's COPY for a Redshift destination in the same commit).
    pub(super) async fn stage(&self, name: &str, trigger: Trigger, now: DateTime<Utc>) -> Result<Vec<DeliveredObject>> {
        let (stream, groups) = {
            let state = self.lock();
            let stream = get(&state, name)?.clone();
            let due: Vec<&GroupKey> = state.fills[name]
                .iter()
                .filter(|(_, fill)| match trigger {
                    Trigger::Force => true,
                    Trigger::Size => fill.bytes >= stream.buffer_bytes,
                    Trigger::Due => fill.bytes >= stream.buffer_bytes || now.timestamp_millis() - fill.oldest_ms >= stream.buffer_interval_s as i64 * 1000,
                })
                .map(|(key, _)| key)
                .collect();
            if due.is_empty() {
                return Ok(Vec::new());
            }
            // One buffer in all, and due: it holds every record, shared as they are (not
            // copied record by record: 400,000 records took 25-55 ms to copy).
            let single = due.len() == 1 && state.fills[name].len() == 1;
            let records = state.buffers[name].snapshot()?;
            let groups: BTreeMap<GroupKey, Arc<Vec<StoredRecord>>> = if single {
                due.into_iter().map(|k| (k.clone(), Arc::clone(&records))).collect()
            } else {
                let mut groups: BTreeMap<GroupKey, Vec<StoredRecord>> = due.into_iter().map(|k| (k.clone(), Vec::new())).collect();
                for record in records.iter() {
                    if let Some(group) = groups.get_mut(&group_key(record)) {
                        group.push(record.clone());
                    }
                }
                groups.into_iter().map(|(k, g)| (k, Arc::new(g))).collect()
            };
            (stream, groups)
        };
        let mut delivered = Vec::new();
        let mut done: Vec<u64> = Vec::new();
        let mut failed: BTreeMap<String, u64> = BTreeMap::new();
        let mut source_done: BTreeMap<String, String> = BTreeMap::new();
        let mut oldest_ms = i64::MAX;
        let mut spent = Vec::new();
        for ((error_type, partition), records) in groups {
            if error_type.is_none() {
                oldest_ms = records.iter().map(|r| r.arrival_ms).fold(oldest_ms, i64::min);
            }
            let objects = self.write_group(&stream, error_type.as_deref(), &partition, &records, now).await?;
            for object in &objects {
                if let Some(kind) = &object.error_output_type {
                    *failed.entry(kind.clone()).or_default() += object.records;
                }
            }
            delivered.extend(objects);
            done.extend(records.iter().map(|r| r.sequence));
            // where each source shard's delivered records end
            for record in records.iter().filter(|_| matches!(stream.source, Source::Stream { .. })) {
                if let Some((shard, sequence)) = meta_of(record).src.as_deref().and_then(|s| s.split_once('/')) {
                    let entry = source_done.entry(shard.to_string()).or_default();
                    if sequence > entry.as_str() {
                        *entry = sequence.to_string();
                    }
                }
            }
            spent.push(records);
        }
        if delivered.is_empty() {
            return Ok(delivered);
        }
        let pending = match &stream.redshift {
            Some(_) => self.write_manifest(&stream, &delivered, oldest_ms, now).await?,
            None => None,
        };
        let mut state = self.lock();
        let Some(s) = state.streams.get_mut(name) else { return Ok(delivered) };
        s.pending_copies.extend(pending);
        for object in &delivered {
            if object.error_output_type.is_none() {
                s.metrics.delivered_records += object.records;
                s.metrics.delivered_bytes += object.bytes;
            }
            s.metrics.delivered_objects += 1;
        }
        for (kind, n) in failed {
            *s.metrics.failed_records.entry(kind).or_default() += n;
        }
        for (shard, sequence) in source_done {
            let entry = s.source_delivered.entry(shard).or_default();
            if sequence > *entry {
                *entry = sequence;
            }
        }
        s.recent_objects.extend(delivered.iter().cloned());
        let excess = s.recent_objects.len().saturating_sub(RECENT_OBJECTS);
        s.recent_objects.drain(..excess);
        let next = state.buffers.get(name).map_or(1, ShardLog::next_sequence);
        if let Some(s) = state.streams.get_mut(name) {
            s.buffer_next = next;
        }
        self.save(&mut state)?;
        if let Some(log) = state.buffers.get_mut(name) {
            log.remove(&done)?;
            let fills = fills_of(&log.records()?);
            state.fills.insert(name.to_string(), fills);
        }
        // Freeing a large buffer's records takes a while: off the delivery's path, once the
        // log has let go of them too (`remove` leaves them to this last holder).
        std::thread::spawn(move || drop(spent));
        Ok(delivered)
    }

    /// Writes one buffer's records: data objects under the prefix, failures under the error
    /// prefix.
    pub(super) async fn write_group(
        &self,
        stream: &DeliveryStream,
        error_type: Option<&str>,
        partition: &BTreeMap<String, String>,
        records: &[StoredRecord],
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveredObject>> {
        let mut objects = Vec::new();
        let mut errors: Vec<(&StoredRecord, String, String)> = Vec::new();
        match error_type {
            Some(kind) => errors.extend(records.iter().map(|r| (r, kind.to_string(), meta_of(r).msg.unwrap_or_default()))),
            None => {
                let (body, ext, count) = match &stream.conversion {
                    Some(conversion) => {
                        let schema = self.conversion_schema(&conversion.table)?;
                        let (file, failures) = process::to_parquet(&schema, records)?;
                        let failed: Vec<usize> = failures.iter().map(|(i, _)| *i).collect();
                        for (i, why) in failures {
                            errors.push((&records[i], "format-conversion-failed".into(), why));
                        }
                        (file, ".parquet", records.len() - failed.len())
                    }
                    None => {
                        let mut body = Vec::with_capacity(records.iter().map(|r| r.data.len() + 1).sum());
                        for r in records {
                            body.extend_from_slice(&r.data);
                            if stream.newline {
                                body.push(b'\n');
                            }
                        }
                        (Some(Bytes::from(body)), stream.compression.extension(), records.len())
                    }
                };
                if let Some(body) = body {
                    let (key, entry) = object_key(stream, &stream.prefix, None, partition, records, ext)?;
                    let data = if stream.conversion.is_some() { body } else { Bytes::from(stream.compression.compress(&body, &entry)?) };
                    let uri = S3Uri { bucket: stream.bucket.clone(), key };
                    let bytes = data.len() as u64;
                    self.lake.put(&uri, data).await?;
                    objects.push(DeliveredObject { uri: uri.to_string(), records: count as u64, bytes, error_output_type: None, delivered: now });
                }
            }
        }
        // Error records, grouped by error output type, as the service writes them: one JSON
        // document per record with the raw data in base64.
        let mut by_kind: BTreeMap<String, Vec<(&StoredRecord, String)>> = BTreeMap::new();
        for (record, kind, msg) in errors {
            by_kind.entry(kind).or_default().push((record, msg));
        }
        for (kind, failed) in by_kind {
            let mut body = Vec::new();
            for (record, msg) in &failed {
                let code = match kind.as_str() {
                    "processing-failed" => "Lambda.ProcessingFailed",
                    "format-conversion-failed" => "DataFormatConversion.MalformedData",
                    _ => "DynamicPartitioning.MetadataExtractionFailed",
                };
                let doc = serde_json::json!({
                    "attemptsMade": 1,
                    "arrivalTimestamp": record.arrival_ms,
                    "errorCode": code,
                    "errorMessage": msg,
                    "attemptEndingTimestamp": now.timestamp_millis(),
                    "rawData": base64::engine::general_purpose::STANDARD.encode(&record.data),
                });
                body.extend_from_slice(doc.to_string().as_bytes());
                body.push(b'\n');
            }
            let records: Vec<StoredRecord> = failed.iter().map(|(r, _)| (*r).clone()).collect();
            let error_prefix = stream.error_prefix.clone().unwrap_or_default();
            let (key, _) = object_key(stream, &error_prefix, Some(&kind), &BTreeMap::new(), &records, "")?;
            let uri = S3Uri { bucket: stream.bucket.clone(), key };
            self.lake.put(&uri, Bytes::from(body.clone())).await?;
            objects.push(DeliveredObject { uri: uri.to_string(), records: failed.len() as u64, bytes: body.len() as u64, error_output_type: Some(kind), delivered: now });
        }
        Ok(objects)
    }
}
