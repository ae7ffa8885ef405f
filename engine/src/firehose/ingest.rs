//! Records in: PutRecord/PutRecordBatch through the transform into the durable buffer, and
//! stream sources read as a consumer.

use super::*;

impl Firehose {
    /// ≙ PutRecordBatch (and PutRecord for one): ≤ 500 records, ≤ 4 MiB, each ≤ 1,000 KiB.
    /// Records pass the transform and are durable in the buffer before this returns; then
    /// every buffer that reached its size is delivered.
    pub async fn put(&self, name: &str, records: Vec<Bytes>) -> Result<PutOutput> {
        {
            let state = self.lock();
            let stream = get(&state, name)?;
            if let Source::Stream { stream: source } = &stream.source {
                return Err(service_err!(InvalidArgumentException, "Firehose stream {name} reads from the data stream {source}; put records there")
                    .with_hint(format!("`%stream put {source} …`")));
            }
        }
        if records.is_empty() || records.len() > MAX_BATCH_RECORDS {
            return Err(service_err!(InvalidArgumentException, "PutRecordBatch takes 1 to {MAX_BATCH_RECORDS} records, not {}", records.len()));
        }
        let total: usize = records.iter().map(Bytes::len).sum();
        if total > MAX_BATCH_BYTES {
            return Err(service_err!(InvalidArgumentException, "the batch is {total} bytes; PutRecordBatch carries at most 4 MiB"));
        }
        let now = self.clock.now().timestamp_millis();
        let mut results: Vec<Option<PutResult>> = Vec::with_capacity(records.len());
        let mut accepted = Vec::new();
        for (i, record) in records.into_iter().enumerate() {
            if record.len() > MAX_RECORD_BYTES {
                results.push(Some(Err(service_err!(InvalidArgumentException, "the record is {} bytes; a Firehose record holds at most 1,000 KiB", record.len()))));
            } else {
                results.push(None);
                accepted.push((i, now, record, Meta::default()));
            }
        }
        let ids = self.ingest(name, accepted).await?;
        for (i, id) in ids {
            results[i] = Some(Ok(id));
        }
        let delivered = self.deliver(name, Trigger::Size).await?;
        let results = results.into_iter().map(|r| r.unwrap_or_else(|| Err(crate::internal_err!("a record got no result")))).collect();
        Ok(PutOutput { results, delivered })
    }

    /// Transforms, partitions and durably buffers records; returns (slot, record id).
    pub(super) async fn ingest(&self, name: &str, records: Vec<(usize, i64, Bytes, Meta)>) -> Result<Vec<(usize, String)>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (transform, partition_keys) = {
            let state = self.lock();
            let s = get(&state, name)?;
            (s.transform.clone(), s.partition_keys.clone())
        };
        let outcomes = match &transform {
            Some(sql) => {
                let batch: Vec<(i64, Bytes)> = records.iter().map(|(_, at, data, _)| (*at, data.clone())).collect();
                process::transform(sql, &batch).await
            }
            None => records.iter().map(|(_, _, data, _)| Outcome::Ok(data.clone())).collect(),
        };
        let queries = partition_keys.iter().map(|k| k.query().map(|q| (k, q))).collect::<Result<Vec<_>>>()?;
        let mut stored = Vec::new();
        let mut slots = Vec::new();
        let (mut incoming, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        for ((slot, at, raw, mut meta), outcome) in records.into_iter().zip(outcomes) {
            incoming += 1;
            bytes += raw.len() as u64;
            let data = match outcome {
                Outcome::Ok(data) => {
                    if !queries.is_empty() {
                        let parsed: Option<serde_json::Value> = serde_json::from_slice(&data).ok();
                        for (key, query) in &queries {
                            let value = match &parsed {
                                Some(record) => query.first_value(record),
                                None => Err("the record is not JSON".to_string()),
                            };
                            match value {
                                Ok(Some(value)) => {
                                    meta.keys.insert(key.name.clone(), value);
                                }
                                failed => {
                                    let why = failed.err().unwrap_or_else(|| "the record has no value for it".to_string());
                                    meta.err = Some("partitioning-failed".into());
                                    meta.msg = Some(format!("partition key {} ({}): {why}", key.name, key.path));
                                    meta.keys.clear();
                                    break;
                                }
                            }
                        }
                    }
                    if meta.err.is_some() { raw } else { data }
                }
                Outcome::Dropped => {
                    dropped += 1;
                    slots.push((slot, None));
                    continue;
                }
                Outcome::ProcessingFailed(msg) => {
                    meta.err = Some("processing-failed".into());
                    meta.msg = Some(msg);
                    raw
                }
            };
            let key = serde_json::to_string(&meta).map_err(|e| crate::internal_err!("{e}"))?;
            slots.push((slot, Some(stored.len())));
            stored.push(StoredRecord { sequence: 0, arrival_ms: at, partition_key: key, data });
        }
        let mut state = self.lock();
        let log = state.buffers.get_mut(name).ok_or_else(|| crate::internal_err!("no buffer for {name}"))?;
        let first = log.next_sequence();
        for (record, sequence) in stored.iter_mut().zip(first..) {
            record.sequence = sequence;
        }
        let fresh = fills_of(&stored);
        if !stored.is_empty() {
            log.append(stored)?;
        }
        let fills = state.fills.entry(name.to_string()).or_default();
        for (key, add) in fresh {
            let fill = fills.entry(key).or_insert(Fill { records: 0, bytes: 0, oldest_ms: i64::MAX });
            fill.records += add.records;
            fill.bytes += add.bytes;
            fill.oldest_ms = fill.oldest_ms.min(add.oldest_ms);
        }
        let metrics = &mut state.streams.get_mut(name).ok_or_else(|| crate::internal_err!("{name} vanished"))?.metrics;
        metrics.incoming_records += incoming;
        metrics.incoming_bytes += bytes;
        metrics.dropped_records += dropped;
        state.dirty = true;
        if state.saved_at.elapsed() >= METRICS_SAVE_INTERVAL {
            self.save(&mut state)?;
        }
        Ok(slots
            .into_iter()
            .map(|(slot, index)| {
                let id = match index {
                    Some(i) => record_id(name, first + i as u64),
                    None => record_id(name, 0) + "-dropped",
                };
                (slot, id)
            })
            .collect())
    }

    /// Reads what arrived on stream sources since the last checkpoint into the buffers.
    pub async fn pull_sources(&self) -> Result<u64> {
        let sources: Vec<(String, String, BTreeMap<String, String>)> = {
            let state = self.lock();
            state
                .streams
                .values()
                .filter_map(|s| match &s.source {
                    Source::Stream { stream } => Some(source_positions(s, state.buffers.get(&s.name)).map(|p| (s.name.clone(), stream.clone(), p))),
                    Source::DirectPut => None,
                })
                .collect::<Result<_>>()?
        };
        let mut pulled = 0;
        for (name, source, positions) in sources {
            let app = app_name(&name);
            let batch = match self.streams.lease_read(&source, &app, InitialPosition::Latest, 10_000) {
                Ok(batch) => batch,
                Err(e) if e.code() == "ResourceNotFoundException" => continue,
                Err(e) => return Err(e),
            };
            // Skip what is already buffered or delivered: a crash between buffering and
            // checkpointing must not deliver a record twice.
            let fresh: Vec<(usize, i64, Bytes, Meta)> = batch
                .records
                .into_iter()
                .filter(|(shard, r)| positions.get(shard).is_none_or(|done| r.sequence_number > *done))
                .enumerate()
                .map(|(i, (shard, r))| {
                    let meta = Meta { src: Some(format!("{shard}/{}", r.sequence_number)), ..Meta::default() };
                    (i, r.approximate_arrival.timestamp_millis(), r.data, meta)
                })
                .collect();
            pulled += fresh.len() as u64;
            self.ingest(&name, fresh).await?;
            self.streams.checkpoint(&source, &app, &batch.leases)?;
        }
        Ok(pulled)
    }
}
