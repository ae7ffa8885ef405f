//! Writes: PutRecord and PutRecords (MD5 routing, per-shard write limits, per-record
//! results), the bulk loader, and the append that makes records durable.

use super::*;

impl Streams {
    /// ≙ PutRecord.
    pub fn put_record(&self, name: &str, partition_key: &str, data: Bytes, explicit_hash_key: Option<&str>) -> Result<PutResult> {
        let entry = PutEntry { partition_key: partition_key.to_string(), data, explicit_hash_key: explicit_hash_key.map(str::to_string) };
        self.put_records(name, vec![entry])?.pop().ok_or_else(|| crate::internal_err!("a put returned no result"))?
    }

    /// Puts any number of records as a client does: PutRecords calls of at most
    /// `MAX_PUT_RECORDS` each, in order. The results are one per record, in order; a call the
    /// service refuses whole (an unknown stream, more than 5 MiB) ends the loop with its error,
    /// the records of earlier calls staying stored.
    pub fn put_records_in_calls(&self, name: &str, mut entries: Vec<PutEntry>) -> Result<Vec<PutRecordsEntry>> {
        let mut results = Vec::with_capacity(entries.len());
        while !entries.is_empty() {
            let rest = entries.split_off(entries.len().min(MAX_PUT_RECORDS));
            results.extend(self.put_records(name, std::mem::replace(&mut entries, rest))?);
        }
        Ok(results)
    }

    /// ≙ PutRecords: at most 500 records and 5 MiB; results in order, one per record (a
    /// throttled record fails alone, with `ProvisionedThroughputExceededException`). Records
    /// are durable (one fsync per shard touched) before this returns.
    pub fn put_records(&self, name: &str, entries: Vec<PutEntry>) -> Result<Vec<PutRecordsEntry>> {
        if entries.is_empty() || entries.len() > MAX_PUT_RECORDS {
            return Err(service_err!(InvalidArgumentException, "PutRecords takes 1 to {MAX_PUT_RECORDS} records, not {}", entries.len()));
        }
        let total: usize = entries.iter().map(|e| e.data.len() + e.partition_key.len()).sum();
        if total > MAX_PUT_RECORDS_BYTES {
            return Err(service_err!(InvalidArgumentException, "the PutRecords request is {total} bytes; the most one call carries is 5 MiB"));
        }
        let placed = self.append(name, entries)?;
        Ok(placed
            .into_iter()
            .map(|p| p.map(|(shard_number, counter)| PutResult { shard_id: format!("shardId-{shard_number:012}"), sequence_number: sequence_string(shard_number, counter) }))
            .collect())
    }

    /// A bulk load: any number of records, stored with one fsync per shard (group commit),
    /// under the same routing and (when on) throughput limits as PutRecords.
    pub fn load(&self, name: &str, entries: Vec<PutEntry>) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        for placed in self.append(name, entries)? {
            match placed {
                Ok(_) => report.stored += 1,
                Err(e) => {
                    report.failed += 1;
                    if e.code() == THROTTLED {
                        report.throttled += 1;
                    }
                    report.first_error.get_or_insert(e);
                }
            }
        }
        Ok(report)
    }

    /// Routes, meters and durably appends records; each gets (shard number, counter) or its
    /// own error.
    pub(super) fn append(&self, name: &str, entries: Vec<PutEntry>) -> Result<Vec<Result<(u64, u64)>>> {
        let now = self.clock.now().timestamp_millis();
        let mut state = self.lock();
        let description = self.active(&mut state, name)?;
        let limits = description.limits;
        let open: Vec<(String, u64, u128, u128)> = description
            .open_shards()
            .map(|s| {
                let (a, b) = s.range();
                (s.shard_id.clone(), s.number(), a, b)
            })
            .collect();
        let mut results: Vec<Result<(u64, u64)>> = Vec::with_capacity(entries.len());
        // Per open shard: the records to append and the result slots they fill.
        let mut batches: Vec<(Vec<StoredRecord>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); open.len()];
        for (i, entry) in entries.into_iter().enumerate() {
            let shard = match route(&entry, &open) {
                Ok(shard) => shard,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let (shard_id, number, _, _) = &open[shard];
            let size = (entry.data.len() + entry.partition_key.len()) as u64;
            if limits && !state.meters.admit_write(name, shard_id, size, now) {
                results.push(Err(service_err!(
                    ProvisionedThroughputExceededException,
                    "Rate exceeded for shard {shard_id} in stream {name} under account 000000000000."
                )
                .with_hint("a shard takes 1,000 records or 1 MiB per second: wait, add shards, or `%stream limits NAME off` for bulk loads")));
                continue;
            }
            results.push(Ok((*number, 0)));
            batches[shard].0.push(StoredRecord { sequence: 0, arrival_ms: now, partition_key: entry.partition_key, data: entry.data });
            batches[shard].1.push(i);
        }
        // Each touched shard's log appends and syncs its batch; with several shards the
        // syncs run in parallel (each is one group commit).
        let mut jobs: Vec<(&mut ShardLog, Vec<StoredRecord>, Vec<usize>)> = Vec::new();
        let mut batches: BTreeMap<&str, (Vec<StoredRecord>, Vec<usize>)> =
            open.iter().zip(batches).filter(|(_, (b, _))| !b.is_empty()).map(|((id, ..), b)| (id.as_str(), b)).collect();
        for ((stream_name, shard_id), log) in state.logs.iter_mut() {
            if stream_name == name
                && let Some((batch, slots)) = batches.remove(shard_id.as_str())
            {
                jobs.push((log, batch, slots));
            }
        }
        let append = |(log, mut batch, slots): (&mut ShardLog, Vec<StoredRecord>, Vec<usize>)| {
            let first = log.next_sequence();
            for (record, sequence) in batch.iter_mut().zip(first..) {
                record.sequence = sequence;
            }
            (slots, first, log.append(batch))
        };
        let outcomes: Vec<(Vec<usize>, u64, Result<()>)> = if jobs.len() > 1 {
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs.into_iter().map(|job| scope.spawn(move || append(job))).collect();
                handles.into_iter().map(|h| h.join().unwrap_or_else(|_| (Vec::new(), 0, Err(crate::internal_err!("a shard append panicked"))))).collect()
            })
        } else {
            jobs.into_iter().map(append).collect()
        };
        for (slots, first, outcome) in outcomes {
            match outcome {
                Ok(()) => {
                    for (slot, sequence) in slots.into_iter().zip(first..) {
                        if let Ok((_, counter)) = &mut results[slot] {
                            *counter = sequence;
                        }
                    }
                }
                Err(e) => {
                    for slot in slots {
                        results[slot] = Err(service_err!(InternalFailure, "the record could not be stored: {e}"));
                    }
                }
            }
        }
        Ok(results)
    }
}
