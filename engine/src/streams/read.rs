//! Reads: shard iterators (every type, expiring after five minutes), GetRecords with its
//! limits, per reader, and whole-stream reads for SQL.

use super::*;

impl Streams {
    /// ≙ GetShardIterator.
    pub fn shard_iterator(&self, name: &str, shard_id: &str, start: IteratorStart) -> Result<String> {
        let mut state = self.lock();
        self.active(&mut state, name)?;
        self.expire_stream(&mut state, name)?;
        let shard = shard(&state, name, shard_id)?;
        let log = &state.logs[&(name.to_string(), shard_id.to_string())];
        let next = match start {
            IteratorStart::TrimHorizon => log.first().map_or(log.next_sequence(), |r| r.sequence),
            IteratorStart::Latest => log.next_sequence(),
            IteratorStart::AtSequenceNumber(s) => parse_sequence(&s, shard.number())?,
            IteratorStart::AfterSequenceNumber(s) => parse_sequence(&s, shard.number())? + 1,
            IteratorStart::AtTimestamp(t) => {
                let ms = t.timestamp_millis();
                let at = log.position_at(ms);
                if at < log.len() { log.entry(at).sequence } else { log.next_sequence() }
            }
        };
        Ok(encode_iterator(name, shard_id, next, self.clock.now().timestamp_millis()))
    }

    /// ≙ GetRecords: up to `limit` (≤ 10,000) records from the iterator's position, charged
    /// to the shard's shared read budget.
    pub fn get_records(&self, iterator: &str, limit: Option<usize>) -> Result<GetRecordsOutput> {
        self.get_records_as(iterator, limit, &meter::Reader::Shared)
    }

    /// GetRecords charged to `reader`: the shared budget, or a registered fan-out consumer's
    /// own (≙ SubscribeToShard's events).
    pub fn get_records_as(&self, iterator: &str, limit: Option<usize>, reader: &meter::Reader) -> Result<GetRecordsOutput> {
        let limit = limit.unwrap_or(MAX_GET_RECORDS);
        if !(1..=MAX_GET_RECORDS).contains(&limit) {
            return Err(service_err!(InvalidArgumentException, "Limit {limit} is out of range: 1 to {MAX_GET_RECORDS}"));
        }
        let (name, shard_id, next, issued) = decode_iterator(iterator)?;
        let now = self.clock.now().timestamp_millis();
        if now - issued > ITERATOR_TTL_MS {
            return Err(service_err!(
                ExpiredIteratorException,
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ITERATOR_TTL_MS} milliseconds.",
                format_ms(issued),
                format_ms(now)
            )
            .with_hint("get a new iterator (GetShardIterator); iterators live 5 minutes"));
        }
        let mut state = self.lock();
        self.expire_stream(&mut state, &name)?;
        let description = stream(&state, &name)?;
        if let meter::Reader::Consumer(consumer) = reader
            && !description.consumers.iter().any(|c| &c.name == consumer)
        {
            return Err(service_err!(ResourceNotFoundException, "Consumer {consumer} under stream {name} not found.")
                .with_hint(format!("register it first: `%stream consumer register {name} {consumer}`")));
        }
        let limits = description.limits;
        if limits && !state.meters.admit_read(&name, &shard_id, reader, now) {
            return Err(service_err!(
                ProvisionedThroughputExceededException,
                "Rate exceeded for shard {shard_id} in stream {name} under account 000000000000."
            )
            .with_hint("a shard serves 5 GetRecords calls and 2 MiB per second to shared readers: wait (`%clock advance 1s`) or use a fan-out consumer"));
        }
        let state = &mut *state;
        let shard = shard(state, &name, &shard_id)?;
        let log = &state.logs[&(name.clone(), shard_id.clone())];
        let output = read_shard(shard, log, next, limit, now);
        let records = log.read(output.range)?.iter().map(|r| record_of(shard, r)).collect();
        let next_shard_iterator = output.next.map(|next| encode_iterator(&name, &shard_id, next, now));
        if limits {
            state.meters.charge_read(&name, &shard_id, reader, output.bytes, now);
        }
        Ok(GetRecordsOutput { records, next_shard_iterator, millis_behind_latest: output.millis_behind_latest })
    }

    /// Every retained record of the stream, shard by shard in parent-before-child order (a
    /// snapshot, not metered: the console's data viewer, and what SQL over streams sees).
    pub fn read(&self, name: &str, from: &ReadFrom) -> Result<Vec<(String, Record)>> {
        let mut state = self.lock();
        self.expire_stream(&mut state, name)?;
        let description = stream(&state, name)?;
        let mut shards: Vec<&Shard> = description.shards.iter().collect();
        shards.sort_by_key(|s| s.number());
        let mut out = Vec::new();
        for shard in shards {
            let log = &state.logs[&(name.to_string(), shard.shard_id.clone())];
            let start = match from {
                ReadFrom::TrimHorizon => 0,
                ReadFrom::Latest => log.len(),
                ReadFrom::AtTimestamp(t) => log.position_at(t.timestamp_millis()),
            };
            out.extend(log.read(start..log.len())?.iter().map(|r| (shard.shard_id.clone(), record_of(shard, r))));
        }
        Ok(out)
    }

    /// Where each shard's retained records start and end (first and last sequence counter),
    /// in parent-before-child order: a snapshot to read with [`Streams::read_between`]
    /// chunk by chunk (what SQL over a stream scans).
    pub fn cuts(&self, name: &str) -> Result<Vec<ShardCut>> {
        let mut state = self.lock();
        self.expire_stream(&mut state, name)?;
        let description = stream(&state, name)?;
        let mut shards: Vec<&Shard> = description.shards.iter().collect();
        shards.sort_by_key(|s| s.number());
        Ok(shards
            .into_iter()
            .filter_map(|shard| {
                let log = &state.logs[&(name.to_string(), shard.shard_id.clone())];
                let (first, last) = (log.first()?, log.last()?);
                Some(ShardCut { shard_id: shard.shard_id.clone(), first: first.sequence, last: last.sequence })
            })
            .collect())
    }

    /// Up to `limit` records of a cut's shard with counters from `from` through the cut's
    /// last (records expired since the cut was taken are skipped), and the counter to read
    /// from next (past the cut's last when it is all read).
    pub fn read_between(&self, name: &str, cut: &ShardCut, from: u64, limit: usize) -> Result<(Vec<Record>, u64)> {
        let state = self.lock();
        let shard = shard(&state, name, &cut.shard_id)?;
        let log = &state.logs[&(name.to_string(), cut.shard_id.clone())];
        let start = log.position(from);
        let end = log.position(cut.last + 1).min(start + limit).max(start);
        let next = match end > start {
            true => log.entry(end - 1).sequence + 1,
            false => cut.last + 1,
        };
        Ok((log.read(start..end)?.iter().map(|r| record_of(shard, r)).collect(), next))
    }
}

/// One shard's retained records at a moment: counters `first` through `last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCut {
    pub shard_id: String,
    pub first: u64,
    pub last: u64,
}
