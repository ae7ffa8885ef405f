//! Kinesis-style data streams: shards over the 128-bit MD5 hash-key space, per-shard strictly
//! increasing sequence numbers, the five shard-iterator types, and durable per-shard logs
//! ([`log`]). Stream metadata lives in `<workspace>/streams/streams.json`, records in
//! `<workspace>/streams/<stream>/<shard id>.log`.
//!
//! Sequence numbers are fixed-width decimal strings (so comparing the strings compares the
//! numbers): `49`, the shard's number (12 digits), and the shard-local counter (42 digits).
//!
//! Not yet here (issue 5 continues): throughput limits, resharding, consumers, the data
//! generator, SQL over streams, and the `%stream` magic.

pub mod log;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::{Result, closest};
use crate::service_err;
use crate::workspace::{Workspace, read_json, write_json};
use log::{ShardLog, StoredRecord};

/// Kinesis' defaults and bounds.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
pub const MAX_RETENTION_HOURS: u32 = 8_760;
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
pub const MAX_PUT_RECORDS: usize = 500;
pub const MAX_GET_RECORDS: usize = 10_000;
/// Shard iterators expire five minutes after they are issued.
pub const ITERATOR_TTL_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Capacity {
    Provisioned,
    OnDemand,
}

/// One shard's description (≙ the Shard structure of ListShards / DescribeStream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub shard_id: String,
    /// Decimal strings: the 128-bit range does not fit JSON numbers.
    pub starting_hash_key: String,
    pub ending_hash_key: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub starting_sequence_number: String,
    /// Set once the shard is closed by a split or merge.
    pub ending_sequence_number: Option<String>,
}

impl Shard {
    fn range(&self) -> (u128, u128) {
        (self.starting_hash_key.parse().unwrap_or(0), self.ending_hash_key.parse().unwrap_or(u128::MAX))
    }

    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    fn number(&self) -> u64 {
        self.shard_id.trim_start_matches("shardId-").parse().unwrap_or(0)
    }
}

/// A stream's description (≙ DescribeStreamSummary + its shards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDescription {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub capacity: Capacity,
    pub retention_hours: u32,
    pub created: DateTime<Utc>,
    pub shards: Vec<Shard>,
    /// Next shard number to hand out (numbering continues across resharding).
    pub next_shard: u64,
}

/// The answer to a put (≙ PutRecord's output, or one entry of PutRecords').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    pub shard_id: String,
    pub sequence_number: String,
}

/// One record of a PutRecords call.
#[derive(Debug, Clone)]
pub struct PutEntry {
    pub partition_key: String,
    pub data: Bytes,
    pub explicit_hash_key: Option<String>,
}

/// One entry of PutRecords' per-record results: a sequence number or an error.
pub type PutRecordsEntry = std::result::Result<PutResult, crate::Error>;

/// A record as GetRecords returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sequence_number: String,
    pub approximate_arrival: DateTime<Utc>,
    pub partition_key: String,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecordsOutput {
    pub records: Vec<Record>,
    /// None once a closed shard has been read to its end.
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: i64,
}

/// Where a shard iterator starts (≙ ShardIteratorType and its argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    TrimHorizon,
    Latest,
    AtSequenceNumber(String),
    AfterSequenceNumber(String),
    AtTimestamp(DateTime<Utc>),
}

#[derive(Debug)]
pub struct Streams {
    dir: PathBuf,
    clock: Arc<Clock>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    streams: BTreeMap<String, StreamDescription>,
    logs: BTreeMap<(String, String), ShardLog>,
}

/// The hash key a partition key routes by: MD5 as a big-endian 128-bit unsigned integer.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// `n` shards splitting the hash space evenly: shard i starts at ⌊2¹²⁸/n⌋·i, the last one
/// ends at 2¹²⁸−1.
pub fn even_ranges(n: u64) -> Vec<(u128, u128)> {
    if n <= 1 {
        return vec![(0, u128::MAX)];
    }
    // ⌊2^128 / n⌋ without overflowing: (2^128 − 1) / n, plus one when n divides 2^128.
    let step = u128::MAX / n as u128 + u128::from(u128::MAX % n as u128 == n as u128 - 1);
    (0..n).map(|i| (step * i as u128, if i + 1 == n { u128::MAX } else { step * (i as u128 + 1) - 1 })).collect()
}

fn sequence_string(shard_number: u64, counter: u64) -> String {
    format!("49{shard_number:012}{counter:042}")
}

/// The shard-local counter of a sequence number of shard `shard_number`.
fn parse_sequence(sequence: &str, shard_number: u64) -> Result<u64> {
    let bad = || {
        service_err!(InvalidArgumentException, "{sequence} is not a sequence number of shardId-{shard_number:012}")
            .with_hint("use a SequenceNumber this shard returned")
    };
    if sequence.len() != 56 || !sequence.starts_with("49") || !sequence.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if sequence[2..14].parse::<u64>().ok() != Some(shard_number) {
        return Err(bad());
    }
    sequence[14..].parse().map_err(|_| bad())
}

/// An opaque iterator: stream, shard, the next counter to read, and when it was issued.
fn encode_iterator(stream: &str, shard: &str, next: u64, issued_ms: i64) -> String {
    let text = format!("{stream}\u{1f}{shard}\u{1f}{next}\u{1f}{issued_ms}");
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_iterator(iterator: &str) -> Result<(String, String, u64, i64)> {
    let invalid = || service_err!(InvalidArgumentException, "the shard iterator is not one this service issued");
    if !iterator.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes: Option<Vec<u8>> = (0..iterator.len()).step_by(2).map(|i| u8::from_str_radix(iterator.get(i..i + 2)?, 16).ok()).collect();
    let text = String::from_utf8(bytes.ok_or_else(invalid)?).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.split('\u{1f}').collect();
    let [stream, shard, next, issued] = parts.as_slice() else { return Err(invalid()) };
    Ok((stream.to_string(), shard.to_string(), next.parse().map_err(|_| invalid())?, issued.parse().map_err(|_| invalid())?))
}

fn validate_stream_name(name: &str) -> Result<()> {
    let valid = !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(service_err!(ValidationException, "{name:?} is not a valid stream name").with_hint("1–128 characters: letters, digits, '_', '.' and '-'"))
    }
}

impl Streams {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>) -> Result<Self> {
        let dir = workspace.dir("streams")?;
        let streams: BTreeMap<String, StreamDescription> = read_json(&dir.join("streams.json"))?.unwrap_or_default();
        let mut logs = BTreeMap::new();
        for stream in streams.values() {
            std::fs::create_dir_all(dir.join(&stream.name)).map_err(|source| crate::Error::Io { path: dir.join(&stream.name), source })?;
            for shard in &stream.shards {
                let log = ShardLog::open(&dir.join(&stream.name).join(format!("{}.log", shard.shard_id)))?;
                logs.insert((stream.name.clone(), shard.shard_id.clone()), log);
            }
        }
        Ok(Self { dir, clock, state: Mutex::new(State { streams, logs }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, state: &State) -> Result<()> {
        write_json(&self.dir.join("streams.json"), &state.streams)
    }

    /// ≙ CreateStream: `shards` for provisioned capacity, None for on-demand (4 shards).
    pub fn create(&self, name: &str, shards: Option<u64>, retention_hours: Option<u32>) -> Result<StreamDescription> {
        validate_stream_name(name)?;
        let capacity = if shards.is_some() { Capacity::Provisioned } else { Capacity::OnDemand };
        let count = shards.unwrap_or(4);
        if !(1..=500).contains(&count) {
            return Err(service_err!(InvalidArgumentException, "ShardCount {count} is out of range: 1 to 500"));
        }
        let retention_hours = retention_hours.unwrap_or(DEFAULT_RETENTION_HOURS);
        if !(DEFAULT_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&retention_hours) {
            return Err(service_err!(InvalidArgumentException, "retention of {retention_hours} h is out of range: 24 to 8,760 hours"));
        }
        let mut state = self.lock();
        if state.streams.contains_key(name) {
            return Err(service_err!(ResourceInUseException, "Stream {name} under account 000000000000 already exists."));
        }
        let stream_dir = self.dir.join(name);
        std::fs::create_dir_all(&stream_dir).map_err(|source| crate::Error::Io { path: stream_dir.clone(), source })?;
        let shards: Vec<Shard> = even_ranges(count)
            .into_iter()
            .enumerate()
            .map(|(i, (start, end))| Shard {
                shard_id: format!("shardId-{i:012}"),
                starting_hash_key: start.to_string(),
                ending_hash_key: end.to_string(),
                parent_shard_id: None,
                adjacent_parent_shard_id: None,
                starting_sequence_number: sequence_string(i as u64, 1),
                ending_sequence_number: None,
            })
            .collect();
        for shard in &shards {
            let log = ShardLog::open(&stream_dir.join(format!("{}.log", shard.shard_id)))?;
            state.logs.insert((name.to_string(), shard.shard_id.clone()), log);
        }
        let description = StreamDescription {
            name: name.to_string(),
            arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
            status: "ACTIVE".into(),
            capacity,
            retention_hours,
            created: self.clock.now(),
            shards,
            next_shard: count,
        };
        state.streams.insert(name.to_string(), description.clone());
        self.save(&state)?;
        Ok(description)
    }

    /// ≙ ListStreams.
    pub fn list(&self) -> Vec<StreamDescription> {
        self.lock().streams.values().cloned().collect()
    }

    /// ≙ DescribeStream.
    pub fn describe(&self, name: &str) -> Result<StreamDescription> {
        let state = self.lock();
        stream(&state, name).cloned()
    }

    /// ≙ DeleteStream: the stream and its records are gone.
    pub fn delete(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        stream(&state, name)?;
        state.streams.remove(name);
        state.logs.retain(|(s, _), _| s != name);
        self.save(&state)?;
        let dir = self.dir.join(name);
        std::fs::remove_dir_all(&dir).map_err(|source| crate::Error::Io { path: dir, source })
    }

    /// ≙ PutRecord.
    pub fn put_record(&self, name: &str, partition_key: &str, data: Bytes, explicit_hash_key: Option<&str>) -> Result<PutResult> {
        let entry = PutEntry { partition_key: partition_key.to_string(), data, explicit_hash_key: explicit_hash_key.map(str::to_string) };
        self.put_records(name, vec![entry])?.pop().ok_or_else(|| crate::internal_err!("a put returned no result"))?
    }

    /// ≙ PutRecords: at most 500 records; results in order, one per record. Records are
    /// durable (one fsync per shard touched) before this returns.
    pub fn put_records(&self, name: &str, entries: Vec<PutEntry>) -> Result<Vec<PutRecordsEntry>> {
        if entries.is_empty() || entries.len() > MAX_PUT_RECORDS {
            return Err(service_err!(InvalidArgumentException, "PutRecords takes 1 to {MAX_PUT_RECORDS} records, not {}", entries.len()));
        }
        let now = self.clock.now().timestamp_millis();
        let mut state = self.lock();
        let open: Vec<(String, u64, u128, u128)> = stream(&state, name)?
            .shards
            .iter()
            .filter(|s| s.is_open())
            .map(|s| {
                let (a, b) = s.range();
                (s.shard_id.clone(), s.number(), a, b)
            })
            .collect();
        let mut results: Vec<Option<PutRecordsEntry>> = Vec::with_capacity(entries.len());
        let mut batches: BTreeMap<String, (u64, Vec<(usize, StoredRecord)>)> = BTreeMap::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let routed = route(&entry, &open);
            let (shard_id, number) = match routed {
                Ok(shard) => shard,
                Err(e) => {
                    results.push(Some(Err(e)));
                    continue;
                }
            };
            let batch = batches.entry(shard_id.clone()).or_insert_with(|| (number, Vec::new()));
            let record = StoredRecord { sequence: 0, arrival_ms: now, partition_key: entry.partition_key, data: entry.data };
            batch.1.push((i, record));
            results.push(None);
        }
        for (shard_id, (number, batch)) in batches {
            let log = state.logs.get_mut(&(name.to_string(), shard_id.clone())).ok_or_else(|| crate::internal_err!("no log for {shard_id}"))?;
            let mut stored = Vec::with_capacity(batch.len());
            let mut slots = Vec::with_capacity(batch.len());
            for (next, (i, mut record)) in (log.next_sequence()..).zip(batch) {
                record.sequence = next;
                slots.push((i, sequence_string(number, next)));
                stored.push(record);
            }
            match log.append(stored) {
                Ok(()) => {
                    for (i, sequence_number) in slots {
                        results[i] = Some(Ok(PutResult { shard_id: shard_id.clone(), sequence_number }));
                    }
                }
                Err(e) => {
                    for (i, _) in slots {
                        results[i] = Some(Err(service_err!(InternalFailure, "the record could not be stored: {e}")));
                    }
                }
            }
        }
        Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err(crate::internal_err!("a record got no result")))).collect())
    }

    /// ≙ GetShardIterator.
    pub fn shard_iterator(&self, name: &str, shard_id: &str, start: IteratorStart) -> Result<String> {
        let state = self.lock();
        let shard = shard(&state, name, shard_id)?;
        let log = &state.logs[&(name.to_string(), shard_id.to_string())];
        let next = match start {
            IteratorStart::TrimHorizon => log.records.first().map_or(log.next_sequence(), |r| r.sequence),
            IteratorStart::Latest => log.next_sequence(),
            IteratorStart::AtSequenceNumber(s) => parse_sequence(&s, shard.number())?,
            IteratorStart::AfterSequenceNumber(s) => parse_sequence(&s, shard.number())? + 1,
            IteratorStart::AtTimestamp(t) => {
                let ms = t.timestamp_millis();
                log.records.iter().find(|r| r.arrival_ms >= ms).map_or(log.next_sequence(), |r| r.sequence)
            }
        };
        Ok(encode_iterator(name, shard_id, next, self.clock.now().timestamp_millis()))
    }

    /// ≙ GetRecords: up to `limit` (≤ 10,000) records from the iterator's position.
    pub fn get_records(&self, iterator: &str, limit: Option<usize>) -> Result<GetRecordsOutput> {
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
                issued,
                now
            ));
        }
        let state = self.lock();
        let shard = shard(&state, &name, &shard_id)?;
        let log = &state.logs[&(name.clone(), shard_id.clone())];
        let start = log.records.partition_point(|r| r.sequence < next);
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut last = next.saturating_sub(1);
        for record in log.records[start..].iter().take(limit) {
            bytes += record.data.len() + record.partition_key.len();
            if bytes > 10 * 1024 * 1024 && !records.is_empty() {
                break;
            }
            last = record.sequence;
            records.push(Record {
                sequence_number: sequence_string(shard.number(), record.sequence),
                approximate_arrival: DateTime::from_timestamp_millis(record.arrival_ms).unwrap_or_default(),
                partition_key: record.partition_key.clone(),
                data: record.data.clone(),
            });
        }
        let next = last + 1;
        let drained = next >= log.next_sequence();
        let millis_behind_latest = match log.records.get(start + records.len()) {
            Some(unread) if !drained => (now - unread.arrival_ms).max(0),
            _ => 0,
        };
        let next_shard_iterator = if drained && !shard.is_open() { None } else { Some(encode_iterator(&name, &shard_id, next, now)) };
        Ok(GetRecordsOutput { records, next_shard_iterator, millis_behind_latest })
    }
}

fn stream<'a>(state: &'a State, name: &str) -> Result<&'a StreamDescription> {
    state.streams.get(name).ok_or_else(|| {
        let names: Vec<&str> = state.streams.keys().map(String::as_str).collect();
        let err = service_err!(ResourceNotFoundException, "Stream {name} under account 000000000000 not found.");
        match closest(name, &names) {
            Some(c) => err.with_hint(format!("did you mean {c}?")),
            None => err.with_hint("`%stream list` shows the streams; `%stream create NAME --shards N` makes one"),
        }
    })
}

fn shard<'a>(state: &'a State, name: &str, shard_id: &str) -> Result<&'a Shard> {
    let stream = stream(state, name)?;
    stream.shards.iter().find(|s| s.shard_id == shard_id).ok_or_else(|| {
        let ids: Vec<&str> = stream.shards.iter().map(|s| s.shard_id.as_str()).collect();
        service_err!(ResourceNotFoundException, "Shard {shard_id} in stream {name} under account 000000000000 does not exist")
            .with_hint(format!("its shards: {}", ids.join(", ")))
    })
}

/// The open shard whose hash-key range holds the record's hash key.
fn route(entry: &PutEntry, open: &[(String, u64, u128, u128)]) -> Result<(String, u64)> {
    if entry.partition_key.is_empty() || entry.partition_key.chars().count() > 256 {
        return Err(service_err!(InvalidArgumentException, "a partition key is 1 to 256 characters"));
    }
    if entry.data.len() + entry.partition_key.len() > MAX_RECORD_BYTES {
        return Err(service_err!(
            InvalidArgumentException,
            "the record is {} bytes with its partition key; the most a record holds is 1 MiB",
            entry.data.len() + entry.partition_key.len()
        ));
    }
    let hash = match &entry.explicit_hash_key {
        Some(key) => key.parse::<u128>().map_err(|_| {
            service_err!(InvalidArgumentException, "ExplicitHashKey {key} is not a decimal number in 0 to 2^128-1")
        })?,
        None => hash_key(&entry.partition_key),
    };
    open.iter()
        .find(|(_, _, start, end)| (*start..=*end).contains(&hash))
        .map(|(id, number, _, _)| (id.clone(), *number))
        .ok_or_else(|| crate::internal_err!("no open shard covers hash key {hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ranges_split_the_hash_space_as_kinesis_does() {
        assert_eq!(even_ranges(1), vec![(0, u128::MAX)]);
        let two = even_ranges(2);
        assert_eq!(two[0], (0, (1u128 << 127) - 1));
        assert_eq!(two[1], (1u128 << 127, u128::MAX));
        let three = even_ranges(3);
        assert_eq!(three[1].0.to_string(), "113427455640312821154458202477256070485");
        assert_eq!(three[2].0.to_string(), "226854911280625642308916404954512140970");
        for n in [1u64, 2, 3, 4, 8] {
            let ranges = even_ranges(n);
            assert_eq!(ranges.len() as u64, n);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, u128::MAX);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0, "contiguous");
            }
        }
    }

    #[test]
    fn md5_routing_of_known_keys() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        // MD5("z") = fbade9e36a3f36d3d676c1b808451dd7: the top of the space.
        assert_eq!(hash_key("z"), 0xfbade9e36a3f36d3d676c1b808451dd7);
    }

    #[test]
    fn sequence_numbers_are_fixed_width_and_parse_back() {
        let s = sequence_string(3, 42);
        assert_eq!(s.len(), 56);
        assert_eq!(parse_sequence(&s, 3).unwrap(), 42);
        assert!(parse_sequence(&s, 4).is_err());
        assert!(sequence_string(3, 9) < sequence_string(3, 10));
    }

    #[test]
    fn iterators_round_trip_and_reject_forgeries() {
        let it = encode_iterator("s", "shardId-000000000001", 7, 1_000);
        assert_eq!(decode_iterator(&it).unwrap(), ("s".into(), "shardId-000000000001".into(), 7, 1_000));
        assert_eq!(decode_iterator("zz").unwrap_err().code(), "InvalidArgumentException");
    }
}
