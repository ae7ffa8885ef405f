//! Firehose-style delivery streams: records come in (direct put, or read from a data stream
//! as a checkpointed consumer), pass the transform, wait in durable buffers — one per
//! evaluated prefix — and are delivered to the lake when a buffer reaches its size or its
//! interval on the engine clock, as objects named exactly as the service names them
//! ([`keys`]), optionally compressed or converted to Parquet ([`process`]).
//!
//! State: `<workspace>/firehose/delivery.json` (configurations and metrics) and one buffer
//! log per delivery stream, `<workspace>/firehose/<name>.buffer` (the stream log format:
//! CRC-checked frames, fsync before a put is acknowledged). The log holds exactly the
//! records not yet delivered: after a delivery it is rewritten without them. Object names
//! are derived from the records they hold, so a delivery repeated after a crash rewrites
//! the same objects: nothing is lost and nothing is delivered twice.
//!
//! A Redshift destination stages each delivered batch under the S3 prefix (the intermediate
//! bucket), writes a manifest of the batch's objects under `<prefix>manifests/`, and COPYs
//! the manifest into the cluster's table. The pending COPYs are part of the persisted state,
//! in order: a failed COPY is retried on the engine clock until its retry duration (0–7200 s,
//! default 3600) from the first attempt is over, holding back the batches behind it; then
//! the batch is skipped and its manifest written under `<error prefix>manifests/` (or
//! `errors/manifests/`) for a manual backfill with `COPY … MANIFEST`.

pub mod jq;
pub mod keys;
pub mod process;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow_schema::{Field, Schema, SchemaRef};
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::{Result, closest};
use crate::lake::{Lake, S3Uri};
use crate::redshift::Redshift;
use crate::service_err;
use crate::streams::Streams;
use crate::streams::leases::InitialPosition;
use crate::streams::log::{Payloads, ShardLog, StoredRecord};
use crate::workspace::{Workspace, read_json, write_json};
pub use keys::Prefix;
pub use process::{Compression, Outcome, PartitionKey};

// `impl Firehose` continues by concern: records in, buffers out to the lake, COPYs into Redshift.
mod copy;
mod delivery;
mod ingest;

pub const MIN_BUFFER_MB: u64 = 1;
pub const MAX_BUFFER_MB: u64 = 128;
pub const DEFAULT_BUFFER_MB: u64 = 5;
pub const MAX_INTERVAL_S: u64 = 900;
pub const DEFAULT_INTERVAL_S: u64 = 300;
/// With format conversion the service defaults to 128 MB buffers and wants at least 64 MB.
pub const CONVERSION_MIN_BUFFER_MB: u64 = 64;
pub const MAX_RECORD_BYTES: usize = 1000 * 1024;
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How stale the persisted metrics may get while puts come in (see `State::dirty`).
const METRICS_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// The Redshift retry duration's default and maximum (≙ RedshiftRetryOptions).
pub const DEFAULT_RETRY_DURATION_S: u64 = 3600;
pub const MAX_RETRY_DURATION_S: u64 = 7200;
/// How long a failed COPY waits before the next attempt (within the retry duration).
pub const COPY_RETRY_INTERVAL_S: i64 = 300;
/// Delivered objects remembered per delivery stream for `describe`.
const RECENT_OBJECTS: usize = 50;
const MB: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Source {
    DirectPut,
    /// A Kinesis-style data stream read as a checkpointed consumer.
    Stream { stream: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// `parquet`.
    pub format: String,
    /// The catalog table whose columns give the schema: `db.table`.
    pub table: String,
}

/// A Redshift destination (≙ RedshiftDestinationConfiguration): the S3 bucket and prefix of
/// the delivery stream are its intermediate location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedshiftDestination {
    pub cluster: String,
    /// `table` or `schema.table`.
    pub table: String,
    /// What follows `COPY table FROM 'manifest' MANIFEST`: `JSON 'auto'`, `CSV` …
    pub copy_options: String,
    pub retry_duration_s: u64,
}

impl RedshiftDestination {
    pub fn target(&self) -> String {
        format!("{}.{}", self.cluster, self.table)
    }
}

/// A staged batch waiting for its COPY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCopy {
    pub manifest: String,
    pub records: u64,
    /// The oldest record's arrival (names the error manifest, as it named the objects).
    pub oldest: DateTime<Utc>,
    pub first_attempt: DateTime<Utc>,
    pub next_attempt: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// What became of one COPY attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyResult {
    Loaded { rows: u64 },
    Retrying { next_attempt: DateTime<Utc> },
    /// The retry duration is over: the batch was skipped, its manifest kept here.
    Skipped { error_manifest: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyEvent {
    pub delivery_stream: String,
    /// `cluster.table`.
    pub target: String,
    pub manifest: String,
    pub attempt: u32,
    pub error: Option<String>,
    pub result: CopyResult,
}

impl std::fmt::Display for CopyEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (stream, target, attempt) = (&self.delivery_stream, &self.target, self.attempt);
        let error = self.error.as_deref().unwrap_or_default();
        match &self.result {
            CopyResult::Loaded { rows } => write!(f, "{stream}: COPY into {target} loaded {rows} row(s) from {}", self.manifest),
            CopyResult::Retrying { next_attempt } => {
                write!(f, "{stream}: COPY into {target} failed (attempt {attempt}): {error}; next attempt at {}", next_attempt.format("%Y-%m-%dT%H:%M:%SZ"))
            }
            CopyResult::Skipped { error_manifest } => {
                write!(f, "{stream}: COPY into {target} failed (attempt {attempt}): {error}; the retry duration is over, so the batch is skipped: its manifest is {error_manifest}")
            }
        }
    }
}

/// What one delivery did: the objects written, and for Redshift destinations the COPYs tried.
#[derive(Debug, Default)]
pub struct Delivery {
    pub objects: Vec<DeliveredObject>,
    pub copies: Vec<CopyEvent>,
}

impl Delivery {
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.copies.is_empty()
    }

    pub fn extend(&mut self, other: Delivery) {
        self.objects.extend(other.objects);
        self.copies.extend(other.copies);
    }

    /// One line per object and per COPY, as the kernel and the clock report them.
    pub fn lines(&self) -> Vec<String> {
        let objects = self.objects.iter().map(|o| {
            let what = o.error_output_type.as_ref().map_or(String::new(), |t| format!(" ({t})"));
            format!("delivered {} record(s){what} to {}", o.records, o.uri)
        });
        objects.chain(self.copies.iter().map(ToString::to_string)).collect()
    }
}

/// What `%firehose create` asks for (≙ CreateDeliveryStream's S3 configuration).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Load into a Redshift table, staging in the bucket and prefix.
    pub redshift: Option<RedshiftDestination>,
    pub source: Option<String>,
    pub bucket: String,
    pub prefix: String,
    pub error_prefix: Option<String>,
    pub buffer_mb: Option<u64>,
    pub buffer_interval_s: Option<u64>,
    pub compression: Compression,
    pub conversion: Option<Conversion>,
    pub transform: Option<String>,
    pub partition_keys: Vec<PartitionKey>,
    pub newline: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub incoming_records: u64,
    pub incoming_bytes: u64,
    pub delivered_records: u64,
    pub delivered_bytes: u64,
    pub delivered_objects: u64,
    pub dropped_records: u64,
    /// Records delivered to the error output, by error output type.
    pub failed_records: BTreeMap<String, u64>,
    /// Redshift destinations: rows COPY loaded, and batches skipped after their retries.
    #[serde(default)]
    pub loaded_records: u64,
    #[serde(default)]
    pub skipped_batches: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredObject {
    pub uri: String,
    pub records: u64,
    pub bytes: u64,
    /// `None` for data, else the error output type.
    pub error_output_type: Option<String>,
    pub delivered: DateTime<Utc>,
}

/// A delivery stream (≙ DescribeDeliveryStream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStream {
    pub name: String,
    pub arn: String,
    pub status: String,
    pub version: u32,
    pub created: DateTime<Utc>,
    pub source: Source,
    pub bucket: String,
    pub prefix: String,
    pub error_prefix: Option<String>,
    pub buffer_bytes: u64,
    pub buffer_interval_s: u64,
    pub compression: Compression,
    pub conversion: Option<Conversion>,
    pub transform: Option<String>,
    pub partition_keys: Vec<PartitionKey>,
    pub newline: bool,
    pub metrics: Metrics,
    pub recent_objects: Vec<DeliveredObject>,
    /// Per source shard, the last sequence number delivered (stream sources).
    #[serde(default)]
    pub source_delivered: BTreeMap<String, String>,
    /// The buffer's next record number, kept across deliveries that empty the buffer so
    /// numbers (and the object names derived from them) are never reused.
    #[serde(default)]
    pub buffer_next: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redshift: Option<RedshiftDestination>,
    /// Staged batches not yet loaded, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_copies: Vec<PendingCopy>,
}

/// One buffer's state for `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferFill {
    /// The partition key values (dynamic partitioning) or the error output type.
    pub buffer: String,
    pub records: u64,
    pub bytes: u64,
    pub oldest: DateTime<Utc>,
}

/// A record's bookkeeping in the buffer log (stored in the frame's key field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    /// `shardId-…/sequence` for records read from a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    /// The error output type when the record failed before buffering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    err: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    msg: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    keys: BTreeMap<String, String>,
}

/// The answer to a put: a record id, or the record's own error.
pub type PutResult = std::result::Result<String, crate::Error>;

/// ≙ PutRecordBatch's response, plus what the put's size trigger delivered.
#[derive(Debug)]
pub struct PutOutput {
    pub results: Vec<PutResult>,
    pub delivered: Delivery,
}

#[derive(Debug)]
pub struct Firehose {
    dir: PathBuf,
    clock: Arc<Clock>,
    lake: Arc<Lake>,
    catalog: Arc<Catalog>,
    streams: Arc<Streams>,
    redshift: Arc<Redshift>,
    state: Mutex<State>,
    /// One delivery at a time (the background loop and `%firehose flush` may race).
    delivering: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    streams: BTreeMap<String, DeliveryStream>,
    buffers: BTreeMap<String, ShardLog>,
    /// Per delivery stream, each buffer's fill, kept as records come and go so a put checks
    /// its size trigger without walking the buffer.
    fills: BTreeMap<String, BTreeMap<GroupKey, Fill>>,
    /// Metrics changed since `delivery.json` was last written. Counters are saved at most
    /// once a second while puts come in (and with every delivery, clock tick, [`Firehose::persist`] — which the kernel
    /// calls after each cell — and close), not
    /// on every put: the records themselves are durable in the buffer log before a put
    /// returns, so a crash can only lose the last second's counters, never a record.
    dirty: bool,
    saved_at: std::time::Instant,
}

/// A buffer: the error output type (failed records) and the partition key values.
type GroupKey = (Option<String>, BTreeMap<String, String>);

#[derive(Debug, Clone, Copy)]
struct Fill {
    records: u64,
    bytes: u64,
    oldest_ms: i64,
}

impl Fill {
    fn add(&mut self, record: &StoredRecord) {
        self.records += 1;
        self.bytes += record.data.len() as u64;
        self.oldest_ms = self.oldest_ms.min(record.arrival_ms);
    }
}

fn group_key(record: &StoredRecord) -> GroupKey {
    let meta = meta_of(record);
    (meta.err, meta.keys)
}

fn fills_of(records: &[StoredRecord]) -> BTreeMap<GroupKey, Fill> {
    let mut fills: BTreeMap<GroupKey, Fill> = BTreeMap::new();
    for record in records {
        fills.entry(group_key(record)).or_insert(Fill { records: 0, bytes: 0, oldest_ms: i64::MAX }).add(record);
    }
    fills
}

impl Firehose {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>, lake: Arc<Lake>, catalog: Arc<Catalog>, streams: Arc<Streams>, redshift: Arc<Redshift>) -> Result<Self> {
        let dir = workspace.dir("firehose")?;
        let all: BTreeMap<String, DeliveryStream> = read_json(&dir.join("delivery.json"))?.unwrap_or_default();
        let (mut buffers, mut fills) = (BTreeMap::new(), BTreeMap::new());
        for (name, stream) in &all {
            let log = ShardLog::open(&dir.join(format!("{name}.buffer")), stream.buffer_next.max(1), Payloads::InMemory)?;
            fills.insert(name.clone(), fills_of(&log.records()?));
            buffers.insert(name.clone(), log);
        }
        let state = State { streams: all, buffers, fills, dirty: false, saved_at: std::time::Instant::now() };
        Ok(Self { dir, clock, lake, catalog, streams, redshift, state: Mutex::new(state), delivering: tokio::sync::Mutex::new(()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, state: &mut State) -> Result<()> {
        write_json(&self.dir.join("delivery.json"), &state.streams)?;
        state.dirty = false;
        state.saved_at = std::time::Instant::now();
        Ok(())
    }

    /// ≙ CreateDeliveryStream with an S3 destination.
    pub fn create(&self, name: &str, config: Config) -> Result<DeliveryStream> {
        let valid = !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) && name != "." && name != "..";
        if !valid {
            return Err(service_err!(InvalidArgumentException, "{name:?} is not a valid delivery stream name").with_hint("1–64 characters: letters, digits, '_', '.' and '-'"));
        }
        let source = match config.source.as_deref() {
            None | Some("direct-put") => Source::DirectPut,
            Some(s) => match s.strip_prefix("stream:") {
                Some(stream) => {
                    self.streams.describe(stream)?;
                    Source::Stream { stream: stream.to_string() }
                }
                None => return Err(service_err!(InvalidArgumentException, "source {s:?} is not direct-put or stream:NAME")),
            },
        };
        self.lake.list_buckets()?.iter().find(|b| b.name == config.bucket).ok_or_else(|| {
            service_err!(InvalidArgumentException, "the destination bucket {} does not exist", config.bucket).with_hint(format!("create it with `%lake mb s3://{}`", config.bucket))
        })?;
        let prefix = Prefix::parse(&config.prefix, false)?;
        if let Some(error_prefix) = &config.error_prefix {
            Prefix::parse(error_prefix, true)?;
        } else if Prefix::has_expressions(&config.prefix) {
            return Err(service_err!(InvalidArgumentException, "the prefix has expressions, so an error output prefix is required")
                .with_hint("add --error-prefix, e.g. error/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"));
        }
        let used: Vec<&str> = prefix.partition_keys();
        let declared: Vec<&str> = config.partition_keys.iter().map(|k| k.name.as_str()).collect();
        if let Some(missing) = used.iter().find(|k| !declared.contains(k)) {
            return Err(service_err!(InvalidArgumentException, "the prefix uses !{{partitionKeyFromQuery:{missing}}} but no --partition-key {missing}=… is defined"));
        }
        if !config.partition_keys.is_empty() && used.is_empty() {
            return Err(service_err!(InvalidArgumentException, "dynamic partitioning needs the prefix to use its keys: !{{partitionKeyFromQuery:NAME}}"));
        }
        let interval = config.buffer_interval_s.unwrap_or(DEFAULT_INTERVAL_S);
        if interval > MAX_INTERVAL_S {
            return Err(service_err!(InvalidArgumentException, "buffer interval {interval} s is out of range: 0 to {MAX_INTERVAL_S} seconds"));
        }
        let default_mb = if config.conversion.is_some() { 128 } else { DEFAULT_BUFFER_MB };
        let mb = config.buffer_mb.unwrap_or(default_mb);
        if !(MIN_BUFFER_MB..=MAX_BUFFER_MB).contains(&mb) {
            return Err(service_err!(InvalidArgumentException, "buffer size {mb} MB is out of range: 1 to 128 MB"));
        }
        if let Some(conversion) = &config.conversion {
            if mb < CONVERSION_MIN_BUFFER_MB {
                return Err(service_err!(InvalidArgumentException, "format conversion needs a buffer of at least {CONVERSION_MIN_BUFFER_MB} MB, not {mb} MB"));
            }
            if conversion.format != "parquet" {
                return Err(service_err!(InvalidArgumentException, "output format {:?} is not supported: parquet", conversion.format)
                    .with_hint("ORC output needs an ORC writer; Lakebook's ORC crate reads only"));
            }
            if config.compression != Compression::Uncompressed {
                return Err(service_err!(InvalidArgumentException, "with format conversion the files are compressed inside (Snappy); drop --compression"));
            }
            self.conversion_schema(&conversion.table)?;
        }
        let mut redshift = config.redshift;
        if let Some(r) = &mut redshift {
            self.redshift.describe(&r.cluster)?;
            if r.table.is_empty() || r.table.split('.').count() > 2 {
                return Err(service_err!(InvalidArgumentException, "the Redshift table {:?} is not TABLE or SCHEMA.TABLE", r.table));
            }
            if r.retry_duration_s > MAX_RETRY_DURATION_S {
                return Err(service_err!(InvalidArgumentException, "retry duration {} s is out of range: 0 to {MAX_RETRY_DURATION_S} seconds", r.retry_duration_s));
            }
            if config.conversion.is_some() || !config.partition_keys.is_empty() {
                return Err(service_err!(InvalidArgumentException, "format conversion and dynamic partitioning are for S3 destinations; a Redshift destination stages records as they are"));
            }
            match config.compression {
                Compression::Uncompressed => {}
                // COPY must be told the staged files are gzip'd.
                Compression::Gzip if !r.copy_options.to_ascii_uppercase().split_whitespace().any(|w| w == "GZIP") => r.copy_options = format!("{} GZIP", r.copy_options).trim().to_string(),
                Compression::Gzip => {}
                other => return Err(service_err!(InvalidArgumentException, "a Redshift destination stages uncompressed or gzip files, not {other:?}")),
            }
        }
        let mut state = self.lock();
        if state.streams.contains_key(name) {
            return Err(service_err!(ResourceInUseException, "Firehose stream {name} under account 000000000000 already exists."));
        }
        let stream = DeliveryStream {
            name: name.to_string(),
            arn: format!("arn:aws:firehose:us-east-1:000000000000:deliverystream/{name}"),
            status: "ACTIVE".into(),
            version: 1,
            created: self.clock.now(),
            source,
            bucket: config.bucket,
            prefix: config.prefix,
            error_prefix: config.error_prefix,
            buffer_bytes: mb * MB,
            buffer_interval_s: interval,
            compression: config.compression,
            conversion: config.conversion,
            transform: config.transform,
            partition_keys: config.partition_keys,
            newline: config.newline,
            metrics: Metrics::default(),
            recent_objects: Vec::new(),
            source_delivered: BTreeMap::new(),
            buffer_next: 1,
            redshift,
            pending_copies: Vec::new(),
        };
        let log = ShardLog::open(&self.dir.join(format!("{name}.buffer")), 1, Payloads::InMemory)?;
        state.buffers.insert(name.to_string(), log);
        state.fills.insert(name.to_string(), BTreeMap::new());
        state.streams.insert(name.to_string(), stream.clone());
        self.save(&mut state)?;
        drop(state);
        if let Source::Stream { stream: source } = &stream.source {
            // Reading starts at the tip of the stream (as the service does), from now on.
            self.streams.lease_read(source, &app_name(name), InitialPosition::Latest, 0).and_then(|b| self.streams.checkpoint(source, &app_name(name), &b.leases))?;
        }
        Ok(stream)
    }

    /// The Arrow schema of a conversion's catalog table (its columns, not its partition keys).
    fn conversion_schema(&self, table: &str) -> Result<SchemaRef> {
        let (db, name) = crate::catalog::split_table_name(table, None)?;
        let table = self.catalog.table(db, name)?;
        let fields: Result<Vec<Field>> = table
            .definition
            .columns
            .iter()
            .map(|c| Ok(Field::new(&c.name, crate::catalog::types::arrow_type(&c.data_type)?, true)))
            .collect();
        Ok(Arc::new(Schema::new(fields?)))
    }

    /// ≙ ListDeliveryStreams.
    pub fn list(&self) -> Vec<DeliveryStream> {
        self.lock().streams.values().cloned().collect()
    }

    /// ≙ DescribeDeliveryStream, plus the buffers' fill.
    pub fn describe(&self, name: &str) -> Result<(DeliveryStream, Vec<BufferFill>)> {
        let state = self.lock();
        let stream = get(&state, name)?.clone();
        let fills = state.fills[name]
            .iter()
            .map(|((err, keys), fill)| BufferFill {
                buffer: buffer_label(err.as_deref(), keys),
                records: fill.records,
                bytes: fill.bytes,
                oldest: DateTime::from_timestamp_millis(fill.oldest_ms).unwrap_or_default(),
            })
            .collect();
        Ok((stream, fills))
    }

    /// ≙ DeleteDeliveryStream: buffered records are discarded (as the service does).
    pub fn delete(&self, name: &str) -> Result<u64> {
        let mut state = self.lock();
        get(&state, name)?;
        let dropped = state.buffers.remove(name).map_or(0, |b| b.len() as u64);
        state.fills.remove(name);
        state.streams.remove(name);
        self.save(&mut state)?;
        let path = self.dir.join(format!("{name}.buffer"));
        std::fs::remove_file(&path).map_err(|e| crate::Error::io(path, e))?;
        Ok(dropped)
    }





    /// Time-driven work: pull stream sources, then deliver buffers past their interval and
    /// retry the COPYs that are due.
    pub async fn run_due(&self) -> Result<Delivery> {
        self.pull_sources().await?;
        let names: Vec<String> = self.lock().streams.keys().cloned().collect();
        let mut delivered = Delivery::default();
        for name in names {
            delivered.extend(self.deliver(&name, Trigger::Due).await?);
        }
        self.persist()?;
        Ok(delivered)
    }

    /// Saves the metrics if puts changed them since the last save.
    pub fn persist(&self) -> Result<()> {
        let mut state = self.lock();
        if state.dirty {
            self.save(&mut state)?;
        }
        Ok(())
    }
}

impl Drop for Firehose {
    /// Counters changed since the last delivery are saved when the engine closes.
    fn drop(&mut self) {
        let _ = self.persist();
    }
}

/// Why a delivery is attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Only buffers that reached their size (after a put).
    Size,
    /// Size or interval (the clock moved).
    Due,
    /// Every non-empty buffer (`%firehose flush`).
    Force,
}

fn get<'a>(state: &'a State, name: &str) -> Result<&'a DeliveryStream> {
    state.streams.get(name).ok_or_else(|| {
        let names: Vec<&str> = state.streams.keys().map(String::as_str).collect();
        let err = service_err!(ResourceNotFoundException, "Firehose stream {name} under account 000000000000 not found.");
        match closest(name, &names) {
            Some(c) => err.with_hint(format!("did you mean {c}?")),
            None => err.with_hint("`%firehose list` shows the delivery streams"),
        }
    })
}

/// Per source shard, the newest sequence number delivered or buffered.
fn source_positions(stream: &DeliveryStream, buffer: Option<&ShardLog>) -> Result<BTreeMap<String, String>> {
    let mut positions = stream.source_delivered.clone();
    let records = buffer.map(ShardLog::records).transpose()?;
    for record in records.iter().flat_map(|r| r.iter()) {
        if let Some((shard, sequence)) = meta_of(record).src.as_deref().and_then(|s| s.split_once('/')) {
            let entry = positions.entry(shard.to_string()).or_default();
            if sequence > entry.as_str() {
                *entry = sequence.to_string();
            }
        }
    }
    Ok(positions)
}

/// `<base>manifests/yyyy/MM/dd/HH/<file>`, the hour of the batch's oldest record.
fn manifest_key(base: &str, oldest: DateTime<Utc>, file: &str) -> String {
    format!("{base}manifests/{}/{file}", oldest.format("%Y/%m/%d/%H"))
}

/// A Redshift COPY manifest listing `urls`, each mandatory.
fn manifest_body<'a>(urls: impl Iterator<Item = &'a str>) -> Bytes {
    let entries: Vec<serde_json::Value> = urls.map(|url| serde_json::json!({"url": url, "mandatory": true})).collect();
    Bytes::from(serde_json::json!({ "entries": entries }).to_string())
}

fn meta_of(record: &StoredRecord) -> Meta {
    serde_json::from_str(&record.partition_key).unwrap_or_default()
}

fn buffer_label(err: Option<&str>, keys: &BTreeMap<String, String>) -> String {
    match err {
        Some(kind) => format!("error: {kind}"),
        None if keys.is_empty() => "data".into(),
        None => keys.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
    }
}

fn app_name(delivery_stream: &str) -> String {
    format!("firehose-{delivery_stream}")
}

fn record_id(name: &str, sequence: u64) -> String {
    format!("{:x}", u128::from_be_bytes(Md5::digest(format!("{name}/{sequence}").as_bytes()).into()))
}

/// The object key for a buffer's records, and the file name inside (for zip). The uuid and
/// random string derive from the records, so redelivering the same records after a crash
/// writes the same key.
fn object_key(
    stream: &DeliveryStream,
    prefix: &str,
    error_output_type: Option<&str>,
    partition: &BTreeMap<String, String>,
    records: &[StoredRecord],
    ext: &str,
) -> Result<(String, String)> {
    let oldest = records.iter().map(|r| r.arrival_ms).min().unwrap_or_default();
    let oldest = DateTime::from_timestamp_millis(oldest).unwrap_or_default();
    let mut hasher = Md5::new();
    hasher.update(stream.name.as_bytes());
    hasher.update(error_output_type.unwrap_or("").as_bytes());
    for r in records {
        hasher.update(r.sequence.to_le_bytes());
    }
    let digest: [u8; 16] = hasher.finalize().into();
    let uuid = uuid::Builder::from_md5_bytes(digest).into_uuid().to_string();
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let random: String = digest.iter().take(11).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
    let parsed = Prefix::parse(prefix, error_output_type.is_some())?;
    let ctx = keys::Context { oldest_arrival: oldest, random: &random, error_output_type, partition_keys: partition };
    let mut evaluated = parsed.evaluate(&ctx)?;
    if error_output_type.is_some() && !prefix.contains("!{firehose:error-output-type}") && stream.error_prefix.is_none() {
        // Without an error prefix the service writes failures under `<error type>/…`.
        evaluated = format!("{}/{evaluated}", error_output_type.unwrap_or_default());
    }
    let name = keys::object_name(&stream.name, stream.version, oldest, &uuid);
    Ok((format!("{evaluated}{name}{ext}"), name))
}
