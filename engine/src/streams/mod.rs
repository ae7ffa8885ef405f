//! Kinesis-style data streams: shards over the 128-bit MD5 hash-key space, per-shard strictly
//! increasing sequence numbers, the five shard-iterator types, resharding with lineage,
//! throughput limits on the engine clock ([`meter`]), retention, consumers and lease tables
//! ([`leases`]), a data generator ([`generator`]) and durable per-shard logs ([`log`]).
//! Stream metadata lives in `<workspace>/streams/streams.json`, records in
//! `<workspace>/streams/<stream>/<shard id>.log`.
//!
//! Sequence numbers are fixed-width decimal strings (so comparing the strings compares the
//! numbers): `49`, the shard's number (12 digits), and the shard-local counter (42 digits).
//! Children of a split or merge get higher shard numbers than their parents, so reading
//! shards in number order is always parent-first.

pub mod generator;
pub mod leases;
pub mod lines;
pub mod log;
pub mod meter;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::{Result, closest};
use crate::service_err;
use crate::workspace::{Workspace, read_json, write_json};
use log::{Entry, Payloads, ShardLog, StoredRecord};

// `impl Streams` continues by concern: writes, reads, resharding.
mod put;
mod read;
pub use read::ShardCut;
mod reshard;

/// Kinesis' defaults and bounds.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
pub const MAX_RETENTION_HOURS: u32 = 8_760;
/// How long CreateStream leaves a stream CREATING (engine time).
pub const CREATING_FOR: Duration = Duration::from_secs(10);
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
pub const MAX_PUT_RECORDS: usize = 500;
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_GET_RECORDS: usize = 10_000;
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;
/// Shards per stream (the default account quota).
pub const MAX_SHARDS: u64 = 500;
/// On-demand streams scale up to this many shards (200 MiB/s, the default quota).
pub const ON_DEMAND_MAX_SHARDS: u64 = 200;
/// Registered fan-out consumers per stream.
pub const MAX_CONSUMERS: usize = 20;
/// The error name of a throttled call or record.
pub const THROTTLED: &str = "ProvisionedThroughputExceededException";
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
    /// Records up to this shard-local counter have expired (retention), so numbering
    /// continues after it even when the log is empty.
    #[serde(default)]
    pub expired_through: u64,
}

impl Shard {
    fn range(&self) -> (u128, u128) {
        (self.starting_hash_key.parse().unwrap_or(0), self.ending_hash_key.parse().unwrap_or(u128::MAX))
    }

    pub fn is_open(&self) -> bool {
        self.ending_sequence_number.is_none()
    }

    pub fn number(&self) -> u64 {
        self.shard_id.trim_start_matches("shardId-").parse().unwrap_or(0)
    }

    /// The shard's hash-key range.
    pub fn hash_range(&self) -> (u128, u128) {
        self.range()
    }

    fn overlaps(&self, other: &Shard) -> bool {
        let (a, b) = self.range();
        let (c, d) = other.range();
        a <= d && c <= b
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
    /// Whether throughput limits are enforced (switched off for bulk loads).
    #[serde(default = "enforced")]
    pub limits: bool,
    /// Registered enhanced fan-out consumers.
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    /// While CREATING: when the stream becomes ACTIVE (engine time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_at: Option<DateTime<Utc>>,
}

fn enforced() -> bool {
    true
}

impl StreamDescription {
    pub fn open_shards(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter().filter(|s| s.is_open())
    }

    /// The closed shards a reader must finish before `shard` to keep per-key order: every
    /// older shard whose hash range overlaps it (its parents, and theirs).
    pub fn ancestors<'a>(&'a self, shard: &'a Shard) -> impl Iterator<Item = &'a Shard> {
        self.shards.iter().filter(move |s| !s.is_open() && s.number() < shard.number() && s.overlaps(shard))
    }

    /// Write capacity as the console states it (enforced only while `limits` is on).
    pub fn write_capacity(&self) -> String {
        let n = self.open_shards().count() as u64;
        format!("{} MiB/s, {} records/s", n * meter::WRITE_BYTES_PER_SECOND / (1024 * 1024), n * meter::WRITE_RECORDS_PER_SECOND)
    }
}

/// A registered enhanced fan-out consumer (≙ RegisterStreamConsumer's Consumer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub created: DateTime<Utc>,
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
    meters: meter::Meters,
}

/// The result of a bulk load: how many records were stored and the first failure, if any.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub stored: u64,
    pub failed: u64,
    pub throttled: u64,
    pub first_error: Option<crate::Error>,
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
    let valid = !name.is_empty() && name != "." && name != ".." && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(service_err!(ValidationException, "{name:?} is not a valid stream name").with_hint("1–128 characters: letters, digits, '_', '.' and '-'"))
    }
}

/// Where a parent-first read of a whole stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFrom {
    TrimHorizon,
    Latest,
    AtTimestamp(DateTime<Utc>),
}

impl Streams {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>) -> Result<Self> {
        let dir = workspace.dir("streams")?;
        let streams: BTreeMap<String, StreamDescription> = read_json(&dir.join("streams.json"))?.unwrap_or_default();
        let mut logs = BTreeMap::new();
        for stream in streams.values() {
            std::fs::create_dir_all(dir.join(&stream.name)).map_err(|source| crate::Error::Io { path: dir.join(&stream.name), source })?;
            for shard in &stream.shards {
                let log = ShardLog::open(&shard_path(&dir, &stream.name, &shard.shard_id), shard.expired_through + 1, Payloads::OnDisk)?;
                logs.insert((stream.name.clone(), shard.shard_id.clone()), log);
            }
        }
        Ok(Self { dir, clock, state: Mutex::new(State { streams, logs, meters: meter::Meters::default() }) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, state: &State) -> Result<()> {
        write_json(&self.dir.join("streams.json"), &state.streams)
    }

    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// ≙ CreateStream followed by its waiter (`aws kinesis wait stream-exists`): the stream
    /// is ACTIVE when this returns. `shards` for provisioned capacity, None for on-demand (4
    /// shards).
    pub fn create(&self, name: &str, shards: Option<u64>, retention_hours: Option<u32>) -> Result<StreamDescription> {
        self.create_in(name, shards, retention_hours, Duration::ZERO)
    }

    /// ≙ CreateStream as the API answers it: the stream is CREATING for [`CREATING_FOR`] of
    /// engine time, and takes no records until it is ACTIVE.
    pub fn create_async(&self, name: &str, shards: Option<u64>, retention_hours: Option<u32>) -> Result<StreamDescription> {
        self.create_in(name, shards, retention_hours, CREATING_FOR)
    }

    fn create_in(&self, name: &str, shards: Option<u64>, retention_hours: Option<u32>, creating: Duration) -> Result<StreamDescription> {
        validate_stream_name(name)?;
        let capacity = if shards.is_some() { Capacity::Provisioned } else { Capacity::OnDemand };
        let count = shards.unwrap_or(4);
        if !(1..=MAX_SHARDS).contains(&count) {
            return Err(service_err!(InvalidArgumentException, "ShardCount {count} is out of range: 1 to {MAX_SHARDS}"));
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
        let mut description = StreamDescription {
            name: name.to_string(),
            arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
            status: if creating.is_zero() { "ACTIVE" } else { "CREATING" }.into(),
            capacity,
            retention_hours,
            created: self.clock.now(),
            shards: Vec::new(),
            next_shard: 0,
            limits: true,
            consumers: Vec::new(),
            active_at: (!creating.is_zero()).then(|| self.clock.now() + chrono::Duration::from_std(creating).unwrap_or_default()),
        };
        for (start, end) in even_ranges(count) {
            self.add_shard(&mut state, &mut description, (start, end), (None, None))?;
        }
        state.streams.insert(name.to_string(), description.clone());
        self.save(&state)?;
        Ok(description)
    }

    /// Creates a shard's (empty) log and adds it to the description.
    fn add_shard(&self, state: &mut State, stream: &mut StreamDescription, range: (u128, u128), parents: (Option<String>, Option<String>)) -> Result<()> {
        let number = stream.next_shard;
        let shard_id = format!("shardId-{number:012}");
        let log = ShardLog::open(&shard_path(&self.dir, &stream.name, &shard_id), 1, Payloads::OnDisk)?;
        state.logs.insert((stream.name.clone(), shard_id.clone()), log);
        stream.shards.push(Shard {
            shard_id,
            starting_hash_key: range.0.to_string(),
            ending_hash_key: range.1.to_string(),
            parent_shard_id: parents.0,
            adjacent_parent_shard_id: parents.1,
            starting_sequence_number: sequence_string(number, 1),
            ending_sequence_number: None,
            expired_through: 0,
        });
        stream.next_shard += 1;
        Ok(())
    }

    /// ≙ ListStreams.
    pub fn list(&self) -> Vec<StreamDescription> {
        let mut state = self.lock();
        self.activate_due(&mut state);
        state.streams.values().cloned().collect()
    }

    /// ≙ DescribeStream.
    pub fn describe(&self, name: &str) -> Result<StreamDescription> {
        let mut state = self.lock();
        self.activate_due(&mut state);
        self.expire_stream(&mut state, name)?;
        stream(&state, name).cloned()
    }

    /// Streams whose creation time has passed become ACTIVE (saved when any did).
    fn activate_due(&self, state: &mut State) {
        let now = self.clock.now();
        let mut changed = false;
        for s in state.streams.values_mut() {
            if s.active_at.is_some_and(|t| t <= now) {
                s.status = "ACTIVE".into();
                s.active_at = None;
                changed = true;
            }
        }
        if changed && let Err(e) = self.save(state) {
            tracing::warn!("could not save stream states: {e}");
        }
    }

    /// The stream, refusing one that is not ACTIVE yet (≙ ResourceInUseException).
    fn active<'a>(&self, state: &'a mut State, name: &str) -> Result<&'a StreamDescription> {
        self.activate_due(state);
        let description = stream(state, name)?;
        if description.status != "ACTIVE" {
            return Err(service_err!(ResourceInUseException, "Stream {name} under account 000000000000 is {}; it takes records once it is ACTIVE.", description.status)
                .with_hint("a new stream is CREATING for a few seconds: describe it until StreamStatus is ACTIVE (`%clock advance 10s` on the manual clock)"));
        }
        Ok(description)
    }

    /// ≙ IncreaseStreamRetentionPeriod (`increase`) / DecreaseStreamRetentionPeriod.
    pub fn set_retention(&self, name: &str, hours: u32, increase: bool) -> Result<()> {
        let mut state = self.lock();
        let current = self.active(&mut state, name)?.retention_hours;
        if !(DEFAULT_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
            return Err(service_err!(InvalidArgumentException, "Minimum allowed retention period is {DEFAULT_RETENTION_HOURS} hours. Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is out of range."));
        }
        if increase && hours < current {
            return Err(service_err!(InvalidArgumentException, "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."));
        }
        if !increase && hours > current {
            return Err(service_err!(InvalidArgumentException, "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."));
        }
        stream_mut(&mut state, name)?.retention_hours = hours;
        self.save(&state)?;
        drop(state);
        self.expire().map(|_| ())
    }

    /// Each shard's retained records: how many, their bytes, first and last sequence number.
    pub fn shard_stats(&self, name: &str) -> Result<Vec<ShardStats>> {
        let state = self.lock();
        let stream = stream(&state, name)?;
        Ok(stream
            .shards
            .iter()
            .map(|shard| {
                let log = &state.logs[&(name.to_string(), shard.shard_id.clone())];
                let bytes = log.bytes();
                let seq = |e: Option<Entry>| e.map(|e| sequence_string(shard.number(), e.sequence));
                ShardStats {
                    shard_id: shard.shard_id.clone(),
                    records: log.len() as u64,
                    bytes,
                    first_sequence: seq(log.first()),
                    last_sequence: seq(log.last()),
                }
            })
            .collect())
    }

    /// ≙ DeleteStream: the stream and its records are gone.
    pub fn delete(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        stream(&state, name)?;
        state.streams.remove(name);
        state.logs.retain(|(s, _), _| s != name);
        state.meters.forget(name);
        self.save(&state)?;
        let dir = self.dir.join(name);
        std::fs::remove_dir_all(&dir).map_err(|source| crate::Error::Io { path: dir, source })
    }

    /// Switches the stream's throughput limits on or off (off for bulk loads).
    pub fn set_limits(&self, name: &str, on: bool) -> Result<()> {
        let mut state = self.lock();
        stream_mut(&mut state, name)?.limits = on;
        self.save(&state)
    }




    /// ≙ RegisterStreamConsumer: a fan-out consumer with its own read budget.
    pub fn register_consumer(&self, name: &str, consumer: &str) -> Result<Consumer> {
        validate_stream_name(consumer)?;
        let now = self.clock.now();
        let mut state = self.lock();
        let description = stream_mut(&mut state, name)?;
        if description.consumers.iter().any(|c| c.name == consumer) {
            return Err(service_err!(ResourceInUseException, "Consumer {consumer} under stream {name} already exists."));
        }
        if description.consumers.len() >= MAX_CONSUMERS {
            return Err(service_err!(LimitExceededException, "a stream has at most {MAX_CONSUMERS} registered consumers"));
        }
        let registered = Consumer {
            name: consumer.to_string(),
            arn: format!("{}/consumer/{consumer}:{}", description.arn, now.timestamp()),
            status: "ACTIVE".into(),
            created: now,
        };
        description.consumers.push(registered.clone());
        self.save(&state)?;
        Ok(registered)
    }

    /// ≙ DeregisterStreamConsumer.
    pub fn deregister_consumer(&self, name: &str, consumer: &str) -> Result<()> {
        let mut state = self.lock();
        let description = stream_mut(&mut state, name)?;
        let before = description.consumers.len();
        description.consumers.retain(|c| c.name != consumer);
        if description.consumers.len() == before {
            return Err(service_err!(ResourceNotFoundException, "Consumer {consumer} under stream {name} not found."));
        }
        self.save(&state)
    }


    /// Drops records older than each stream's retention on the engine clock; returns how
    /// many expired.
    pub fn expire(&self) -> Result<u64> {
        let mut state = self.lock();
        let names: Vec<String> = state.streams.keys().cloned().collect();
        let mut expired = 0;
        for name in names {
            expired += self.expire_stream(&mut state, &name)?;
        }
        Ok(expired)
    }

    fn expire_stream(&self, state: &mut State, name: &str) -> Result<u64> {
        let Some(description) = state.streams.get_mut(name) else { return Ok(0) };
        let cutoff = self.clock.now().timestamp_millis() - i64::from(description.retention_hours) * 3_600_000;
        let mut expired = 0;
        let mut changed = false;
        for shard in &mut description.shards {
            let Some(log) = state.logs.get_mut(&(name.to_string(), shard.shard_id.clone())) else { continue };
            if log.first().is_none_or(|r| r.arrival_ms >= cutoff) {
                continue;
            }
            let next = log.next_sequence();
            let dropped = log.trim_before(cutoff)?;
            expired += dropped as u64;
            if log.is_empty() {
                shard.expired_through = next - 1;
                changed = true;
            }
        }
        if changed {
            write_json(&self.dir.join("streams.json"), &state.streams)?;
        }
        Ok(expired)
    }
}

/// What one shard read returns, before the next position is made an iterator.
struct ShardRead {
    /// The records read, as positions in the shard's log.
    range: std::ops::Range<usize>,
    /// Their size as metered (data and partition keys).
    bytes: u64,
    /// The next counter to read; None once a closed shard is drained.
    next: Option<u64>,
    millis_behind_latest: i64,
}

/// Up to `limit` records (and ≤ 10 MiB) of `log` from counter `next`.
fn read_shard(shard: &Shard, log: &ShardLog, next: u64, limit: usize, now: i64) -> ShardRead {
    let start = log.position(next);
    let mut end = start;
    let mut bytes = 0usize;
    for i in (start..log.len()).take(limit) {
        let size = log.entry(i).size as usize;
        if bytes + size > MAX_GET_RECORDS_BYTES && end > start {
            break;
        }
        bytes += size;
        end += 1;
    }
    let last = match end > start {
        true => log.entry(end - 1).sequence,
        false => next.saturating_sub(1).max((start < log.len()).then(|| log.entry(start).sequence.saturating_sub(1)).unwrap_or(0)),
    };
    let next = last + 1;
    let drained = next >= log.next_sequence();
    let millis_behind_latest = match (end < log.len()).then(|| log.entry(end)) {
        Some(unread) if !drained => (now - unread.arrival_ms).max(0),
        _ => 0,
    };
    ShardRead { range: start..end, bytes: bytes as u64, next: if drained && !shard.is_open() { None } else { Some(next) }, millis_behind_latest }
}

fn record_of(shard: &Shard, record: &StoredRecord) -> Record {
    Record {
        sequence_number: sequence_string(shard.number(), record.sequence),
        approximate_arrival: DateTime::from_timestamp_millis(record.arrival_ms).unwrap_or_default(),
        partition_key: record.partition_key.clone(),
        data: record.data.clone(),
    }
}

fn format_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), crate::clock::format_time)
}

fn shard_path(dir: &std::path::Path, stream: &str, shard_id: &str) -> PathBuf {
    dir.join(stream).join(format!("{shard_id}.log"))
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

fn stream_mut<'a>(state: &'a mut State, name: &str) -> Result<&'a mut StreamDescription> {
    stream(state, name)?;
    state.streams.get_mut(name).ok_or_else(|| crate::internal_err!("stream {name} vanished"))
}

fn open_shard<'a>(state: &'a State, name: &str, shard_id: &str) -> Result<&'a Shard> {
    let shard = shard(state, name, shard_id)?;
    if !shard.is_open() {
        return Err(service_err!(ResourceInUseException, "Shard {shard_id} in stream {name} under account 000000000000 is closed")
            .with_hint("a closed shard (a parent of a split or merge) cannot be resharded; `%stream describe` shows the open ones"));
    }
    Ok(shard)
}

fn shard<'a>(state: &'a State, name: &str, shard_id: &str) -> Result<&'a Shard> {
    let stream = stream(state, name)?;
    stream.shards.iter().find(|s| s.shard_id == shard_id).ok_or_else(|| {
        let ids: Vec<&str> = stream.shards.iter().map(|s| s.shard_id.as_str()).collect();
        service_err!(ResourceNotFoundException, "Shard {shard_id} in stream {name} under account 000000000000 does not exist")
            .with_hint(format!("its shards: {}", ids.join(", ")))
    })
}

/// The index (in `open`) of the open shard whose hash-key range holds the record's hash key.
fn route(entry: &PutEntry, open: &[(String, u64, u128, u128)]) -> Result<usize> {
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
        .position(|(_, _, start, end)| (*start..=*end).contains(&hash))
        .ok_or_else(|| crate::internal_err!("no open shard covers hash key {hash}"))
}

/// One shard's retained records, as `Streams::shard_stats` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStats {
    pub shard_id: String,
    pub records: u64,
    pub bytes: u64,
    pub first_sequence: Option<String>,
    pub last_sequence: Option<String>,
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
