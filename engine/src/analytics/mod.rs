//! Continuous SQL applications over streams (≙ Amazon Managed Service for Apache Flink, the
//! successor of Kinesis Data Analytics): an application's Flink-style SQL (`sql.rs`) reads
//! its source streams as a consumer application with its own leases, assigns records to
//! windows (TUMBLE, HOP, CUMULATE), and fires a window when the source's watermark passes its
//! end, as Flink SQL does: the watermark is the smallest of the shards' largest event times
//! less the declared delay; allowed lateness is 0, so a record whose window (Flink's slice)
//! has fired is late, counted and dropped. The SELECT runs on DataFusion over the records of
//! the windows that fire; results go to the sink once per window, in window order. The work
//! is due work on the engine clock (`run_due`): `%clock advance` drives it on the manual clock.
//!
//! State (open windows' records, watermarks, positions, counters) is saved in
//! `<workspace>/analytics/<app>.json` after every step, atomically; open windows' rows in Arrow
//! IPC segments under `<workspace>/analytics/<app>.windows/` (see `windows.rs`).

mod decode;
pub mod sql;
mod sinks;
mod windows;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use datafusion::catalog::CatalogProvider;

use crate::clock::Clock;
use crate::error::{Result, closest};
use crate::lake::Lake;
use crate::streams::Streams;
use crate::streams::leases::InitialPosition;
use crate::workspace::{Workspace, read_json, write_json};
use crate::{internal_err, service_err};
pub use sinks::Sinks;
use sql::{AppSql, Connector, WindowCall, WindowKind};
use decode::{Decoded, Read, decode, event_times, record_lines};
use windows::{WindowState, fire, in_window_order, partition_keys};

/// Records read from a source per step: a step is the application's checkpoint interval
/// (state saved, positions checkpointed), so it reads in large steps.
const READ_BATCH: usize = 100_000;

/// An application's status, as Managed Service for Apache Flink names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Ready,
    Running,
}

impl Application {
    /// Result rows waiting for a stream or Firehose sink to accept them.
    pub fn waiting(&self) -> usize {
        self.outbox.values().map(Vec::len).sum()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ready => "READY",
            Status::Running => "RUNNING",
        })
    }
}

/// Where a started application begins reading its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    TrimHorizon,
    Latest,
}

/// One application and its running state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Application {
    pub name: String,
    pub sql: String,
    pub created: DateTime<Utc>,
    pub status: Status,
    #[serde(skip)]
    parsed: Option<AppSql>,
    /// Per window call (by placeholder): records of windows not fired yet, and the end of
    /// the last window fired.
    windows: BTreeMap<String, WindowState>,
    /// Per source table: its shards' largest event times and its watermark.
    sources: BTreeMap<String, SourceState>,
    /// Where each new consumer starts (set by `start`).
    start_from_trim_horizon: bool,
    pub records_in: u64,
    pub records_out: u64,
    pub late_records_dropped: u64,
    pub records_unreadable: u64,
    pub last_checkpoint: Option<DateTime<Utc>>,
    /// Files written to filesystem sinks (names them).
    files_written: u64,
    /// Steps run (names the files a step writes, so a step run again after a crash
    /// rewrites the same files instead of adding to them).
    #[serde(default)]
    steps: u64,
    /// Result rows (JSON) not yet accepted by their stream or Firehose sink, per sink table:
    /// kept in the state and sent again at the next step, as Flink's async sinks keep
    /// in-flight records in their checkpoints.
    #[serde(default)]
    outbox: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceState {
    pub stream: String,
    pub shard_max_event: BTreeMap<String, i64>,
    pub watermark: Option<i64>,
    pub millis_behind_latest: i64,
    /// The stream positions the state has consumed to, saved with it: after a crash
    /// between the state's save and the lease table's checkpoint, the lease table is set
    /// back to these before anything is read (so no record counts twice).
    #[serde(default)]
    pub positions: Vec<crate::streams::leases::Lease>,
}

/// What `describe` shows.
#[derive(Debug, Clone)]
pub struct Description {
    pub app: Application,
    pub sources: Vec<(String, SourceState)>,
    pub open_windows: usize,
    /// Result rows waiting for a stream or Firehose sink to accept them.
    pub waiting: usize,
}

pub struct Analytics {
    dir: PathBuf,
    clock: Arc<Clock>,
    lake: Arc<Lake>,
    streams: Arc<Streams>,
    /// The Data Catalog's databases, readable by name in an application's queries.
    glue: Arc<dyn CatalogProvider>,
    apps: Mutex<BTreeMap<String, Application>>,
    /// Reference data per application, loaded when it starts (or first runs after a restart).
    references: Mutex<BTreeMap<String, Arc<BTreeMap<String, RecordBatch>>>>,
    /// Applications whose saved positions were written back to their lease tables since
    /// the workspace was opened.
    reconciled: Mutex<std::collections::BTreeSet<String>>,
    /// The latest result rows per application and sink (at most `RECENT_ROWS`), for peek.
    recent: Mutex<BTreeMap<(String, String), std::collections::VecDeque<RecordBatch>>>,
}

/// Result rows kept per sink for `peek`.
pub const RECENT_ROWS: usize = 1_000;

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Analytics {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>, lake: Arc<Lake>, streams: Arc<Streams>, glue: Arc<dyn CatalogProvider>) -> Result<Self> {
        // Made with the first application, so a workspace without any stays as it was.
        let dir = workspace.root().join("analytics");
        let mut apps = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(crate::Error::io(&dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| crate::Error::io(&dir, e))?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(mut app) = read_json::<Application>(&path)?
            {
                app.parsed = Some(sql::parse(&app.sql)?);
                let windows_dir = dir.join(format!("{}.windows", app.name));
                for state in app.windows.values_mut() {
                    state.load_segments(&windows_dir)?;
                }
                apps.insert(app.name.clone(), app);
            }
        }
        Ok(Analytics { dir, clock, lake, streams, glue, apps: Mutex::new(apps), references: Mutex::default(), reconciled: Mutex::default(), recent: Mutex::default() })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The application as its state file last saved it.
    fn load(&self, name: &str) -> Result<Application> {
        let mut app = read_json::<Application>(&self.path(name))?.ok_or_else(|| internal_err!("the state of application {name} is missing"))?;
        app.parsed = Some(sql::parse(&app.sql)?);
        for state in app.windows.values_mut() {
            state.load_segments(&self.windows_dir(name))?;
        }
        Ok(app)
    }

    /// Where an application's open-window segments are kept.
    fn windows_dir(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.windows"))
    }

    /// Saves the state: new window segments first, then the state file naming them (the
    /// atomic step), then the segments it no longer names go.
    fn save(&self, app: &mut Application) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| crate::Error::io(&self.dir, e))?;
        let windows_dir = self.windows_dir(&app.name);
        let mut files = Vec::new();
        for (placeholder, state) in &mut app.windows {
            state.save_segments(&windows_dir, &format!("{placeholder}-{}", app.steps), &mut files)?;
        }
        write_json(&self.path(&app.name), &*app)?;
        let entries = match std::fs::read_dir(&windows_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(crate::Error::io(&windows_dir, e)),
        };
        for entry in entries.flatten() {
            if !files.iter().any(|f| entry.file_name().to_str() == Some(f.as_str())) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// ≙ CreateApplication: parses and checks the SQL (tables, window calls, and each query
    /// planned against its inputs' schemas) and keeps the application READY.
    pub async fn create(&self, name: &str, text: &str, catalog: &crate::catalog::Catalog, firehose: &crate::firehose::Firehose) -> Result<Application> {
        let valid = (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if !valid {
            return Err(service_err!(InvalidArgumentException, "{name:?} is not a valid application name").with_hint("1-128 letters, digits, '_', '-' or '.'"));
        }
        if lock(&self.apps).contains_key(name) {
            return Err(service_err!(ResourceInUseException, "application {name} already exists")
                .with_hint(format!("delete it first with `%analytics delete {name}`")));
        }
        let parsed = sql::parse(text)?;
        for insert in &parsed.inserts {
            let references = parsed.references().map(|t| Ok((t.name.clone(), RecordBatch::new_empty(Arc::new(t.schema()?))))).collect::<Result<BTreeMap<_, _>>>()?;
            let ctx = context(&parsed, &BTreeMap::new(), &references, &self.glue, self.clock.clone())?;
            let plan = ctx.state().create_logical_plan(&insert.query).await.map_err(|e| crate::query::sql_error(e, &insert.query))?;
            if insert.windows.is_empty() && datafusion::common::tree_node::TreeNode::exists(&plan, |p| Ok(matches!(p, datafusion::logical_expr::LogicalPlan::Aggregate(_)))).unwrap_or(false) {
                return Err(service_err!(InvalidApplicationConfigurationException, "INSERT INTO {}: an aggregate over a stream needs a window", insert.target)
                    .with_hint("group by window_start, window_end FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), INTERVAL '1' MINUTE)); results are append-only"));
            }
            let columns = plan.schema().fields().len();
            match parsed.tables.iter().find(|t| t.name == insert.target) {
                Some(t) if t.columns.len() != columns => {
                    return Err(service_err!(
                        InvalidApplicationConfigurationException,
                        "INSERT INTO {} gives {columns} column(s) but the table has {}",
                        t.name,
                        t.columns.len()
                    ));
                }
                Some(_) => {}
                None => {
                    let (db, table) = insert.target.split_once('.').ok_or_else(|| {
                        service_err!(InvalidApplicationConfigurationException, "INSERT INTO {}: no such table in the application", insert.target)
                            .with_hint("declare it with CREATE TABLE … WITH ('connector' = 'filesystem', …) or name a catalog table as db.table")
                    })?;
                    let t = catalog.table(db, table)?;
                    let all = t.definition.columns.len() + t.definition.partition_keys.len();
                    if all != columns {
                        return Err(service_err!(InvalidApplicationConfigurationException, "INSERT INTO {}: the query gives {columns} column(s), the table has {all}", insert.target));
                    }
                }
            }
        }
        for table in &parsed.tables {
            match &table.connector {
                Connector::Kinesis { stream, .. } => {
                    self.streams.describe(stream).map_err(|e| e.with_hint(format!("{}: create the stream first with `%stream create {stream}`", table.name)))?;
                }
                Connector::Firehose { delivery_stream } => {
                    firehose.describe(delivery_stream).map_err(|e| e.with_hint(format!("{}: create the Firehose stream first with `%firehose create {delivery_stream} …`", table.name)))?;
                }
                Connector::Filesystem { .. } => {}
            }
        }
        let mut app = Application {
            name: name.to_string(),
            sql: text.to_string(),
            created: self.clock.now(),
            status: Status::Ready,
            parsed: Some(parsed),
            windows: BTreeMap::new(),
            sources: BTreeMap::new(),
            start_from_trim_horizon: true,
            records_in: 0,
            records_out: 0,
            late_records_dropped: 0,
            records_unreadable: 0,
            last_checkpoint: None,
            files_written: 0,
            steps: 0,
            outbox: BTreeMap::new(),
        };
        self.save(&mut app)?;
        lock(&self.apps).insert(name.to_string(), app.clone());
        Ok(app)
    }

    pub fn list(&self) -> Vec<Application> {
        lock(&self.apps).values().cloned().collect()
    }

    fn get(&self, name: &str) -> Result<Application> {
        let apps = lock(&self.apps);
        apps.get(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = apps.keys().map(String::as_str).collect();
            let err = service_err!(ResourceNotFoundException, "application {name} does not exist");
            match closest(name, &names) {
                Some(c) => err.with_hint(format!("did you mean {c}?")),
                None => err.with_hint("create one with `%%analytics create NAME`"),
            }
        })
    }

    pub fn describe(&self, name: &str) -> Result<Description> {
        let app = self.get(name)?;
        let sources = app.sources.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let open_windows = app.windows.values().map(WindowState::open_records).sum();
        let waiting = app.waiting();
        Ok(Description { app, sources, open_windows, waiting })
    }

    /// ≙ StartApplication: reference data is read now (a start after a change to it sees
    /// the change, as UpdateApplication does in KDA).
    pub async fn start(&self, name: &str, from: Option<StartFrom>) -> Result<Application> {
        let mut app = self.get(name)?;
        if app.status == Status::Running {
            return Err(service_err!(ResourceInUseException, "application {name} is already RUNNING"));
        }
        let parsed = app.parsed.clone().ok_or_else(|| internal_err!("application {name} was not parsed"))?;
        let references = self.load_references(&parsed).await?;
        lock(&self.references).insert(name.to_string(), Arc::new(references));
        // A position given: start afresh from it, without the saved state (KDA's
        // SKIP_RESTORE_FROM_SNAPSHOT): open windows, watermarks and positions go. Without one,
        // resume from the saved state (RESTORE_FROM_LATEST_SNAPSHOT); a first start reads from
        // the oldest record.
        if let Some(from) = from {
            for table in parsed.sources() {
                if let Connector::Kinesis { stream, .. } = &table.connector {
                    self.streams.delete_leases(stream, &consumer_name(name))?;
                }
            }
            app.sources.clear();
            app.windows.clear();
            app.start_from_trim_horizon = from == StartFrom::TrimHorizon;
            // The position is taken now (LATEST is the tip at the start, not at the first read).
            let initial = if app.start_from_trim_horizon { InitialPosition::TrimHorizon } else { InitialPosition::Latest };
            for table in parsed.sources() {
                if let Connector::Kinesis { stream, .. } = &table.connector {
                    let pinned = self.streams.lease_read(stream, &consumer_name(name), initial, 0)?;
                    self.streams.checkpoint(stream, &consumer_name(name), &pinned.leases)?;
                    let source = app.sources.entry(table.name.clone()).or_insert_with(|| SourceState { stream: stream.clone(), ..SourceState::default() });
                    source.positions = pinned.leases;
                }
            }
        }
        app.status = Status::Running;
        self.save(&mut app)?;
        lock(&self.apps).insert(name.to_string(), app.clone());
        Ok(app)
    }

    /// ≙ StopApplication. With `drain`, every open window fires first (as Flink's
    /// `stop --drain` advances the watermark to the end of time).
    pub async fn stop(&self, name: &str, drain: bool, sinks: Sinks<'_>) -> Result<Application> {
        let mut app = self.get(name)?;
        if app.status != Status::Running {
            return Err(service_err!(ResourceInUseException, "application {name} is {}, not RUNNING", app.status));
        }
        if let Err(e) = self.step(&mut app, sinks, drain).await {
            // Back to what was last saved: nothing half-done stays in memory.
            lock(&self.apps).insert(name.to_string(), self.load(name)?);
            return Err(e);
        }
        lock(&self.references).remove(name);
        app.status = Status::Ready;
        self.save(&mut app)?;
        lock(&self.apps).insert(name.to_string(), app.clone());
        Ok(app)
    }

    /// The latest result rows an application sent to `sink` (its first INSERT's when None),
    /// oldest first, since the workspace was opened: what Flink Studio's live view shows.
    pub fn peek(&self, name: &str, sink: Option<&str>) -> Result<(String, Option<RecordBatch>)> {
        let app = self.get(name)?;
        let parsed = app.parsed.as_ref().ok_or_else(|| internal_err!("application {name} was not parsed"))?;
        let targets: Vec<&str> = parsed.inserts.iter().map(|i| i.target.as_str()).collect();
        let target = match sink {
            Some(s) => targets.iter().find(|t| t.eq_ignore_ascii_case(s)).ok_or_else(|| {
                service_err!(InvalidArgumentException, "application {name} writes no sink {s}").with_hint(format!("its sinks: {}", targets.join(", ")))
            })?,
            None => targets.first().ok_or_else(|| internal_err!("application {name} has no INSERT"))?,
        };
        let recent = lock(&self.recent);
        let batches = recent.get(&(name.to_string(), target.to_string()));
        let batch = match batches {
            Some(b) if !b.is_empty() => {
                let all: Vec<RecordBatch> = b.iter().cloned().collect();
                Some(datafusion::arrow::compute::concat_batches(&all[0].schema(), &all).map_err(|e| internal_err!("{e}"))?)
            }
            _ => None,
        };
        Ok((target.to_string(), batch))
    }

    /// Keeps a sink's latest rows for [`peek`](Self::peek).
    fn remember(&self, app: &str, target: &str, batch: &RecordBatch) {
        let mut recent = lock(&self.recent);
        let kept = recent.entry((app.to_string(), target.to_string())).or_default();
        kept.push_back(batch.slice(batch.num_rows().saturating_sub(RECENT_ROWS), batch.num_rows().min(RECENT_ROWS)));
        let mut rows: usize = kept.iter().map(RecordBatch::num_rows).sum();
        while rows > RECENT_ROWS {
            let Some(front) = kept.pop_front() else { break };
            rows -= front.num_rows();
            if rows < RECENT_ROWS {
                let keep = RECENT_ROWS - rows;
                kept.push_front(front.slice(front.num_rows() - keep, keep));
                rows = RECENT_ROWS;
            }
        }
    }

    /// ≙ DeleteApplication: its state and its consumer positions go.
    pub fn delete(&self, name: &str) -> Result<()> {
        let app = self.get(name)?;
        let path = self.path(name);
        std::fs::remove_file(&path).map_err(|e| crate::Error::io(&path, e))?;
        let windows_dir = self.windows_dir(name);
        if windows_dir.exists() {
            std::fs::remove_dir_all(&windows_dir).map_err(|e| crate::Error::io(&windows_dir, e))?;
        }
        lock(&self.references).remove(name);
        lock(&self.recent).retain(|(a, _), _| a != name);
        lock(&self.reconciled).remove(name);
        for source in app.sources.values() {
            let _ = self.streams.delete_leases(&source.stream, &consumer_name(name));
        }
        lock(&self.apps).remove(name);
        Ok(())
    }

    /// Runs every RUNNING application until it has read its streams to their ends; reports
    /// what each emitted.
    pub async fn run_due(&self, sinks: Sinks<'_>) -> Vec<String> {
        let running: Vec<Application> = lock(&self.apps).values().filter(|a| a.status == Status::Running).cloned().collect();
        let mut reports = Vec::new();
        for mut app in running {
            let before = app.records_out;
            match self.step(&mut app, sinks, false).await {
                Ok(()) => {
                    if app.records_out > before {
                        reports.push(format!("analytics {} emitted {} row(s)", app.name, app.records_out - before));
                    }
                    let waiting = app.waiting();
                    if waiting > 0 {
                        reports.push(format!("analytics {}: {waiting} row(s) wait for their sink to accept them (sent again at the next step)", app.name));
                    }
                    lock(&self.apps).insert(app.name.clone(), app);
                }
                Err(e) => {
                    reports.push(format!("analytics {} failed: {e}", app.name));
                    // Back to what was last saved, so the step runs again from there.
                    match self.load(&app.name) {
                        Ok(saved) => {
                            lock(&self.apps).insert(app.name.clone(), saved);
                        }
                        Err(e) => reports.push(format!("analytics {}: its state could not be read again: {e}", app.name)),
                    }
                }
            }
        }
        reports
    }

    /// Reads what the sources hold, fires the windows the watermarks passed (all of them
    /// when `drain`), writes the results, then saves the state and the read positions.
    async fn step(&self, app: &mut Application, sinks: Sinks<'_>, drain: bool) -> Result<()> {
        let parsed = app.parsed.clone().ok_or_else(|| internal_err!("application {} was not parsed", app.name))?;
        let now = self.clock.now().timestamp_millis();
        let references = self.references_of(app, &parsed).await?;
        if !lock(&self.reconciled).contains(&app.name) {
            for source in app.sources.values().filter(|s| !s.positions.is_empty()) {
                self.streams.checkpoint(&source.stream, &consumer_name(&app.name), &source.positions)?;
            }
            lock(&self.reconciled).insert(app.name.clone());
        }
        // Rows a stream or Firehose sink did not take last time go first.
        if self.flush(app, &parsed, sinks).await {
            self.save(app)?;
        }
        loop {
            let mut read_any = false;
            let mut pending_leases = Vec::new();
            // New rows per source table (only sources some query reads).
            let mut fresh: BTreeMap<String, RecordBatch> = BTreeMap::new();
            for table in parsed.sources() {
                let Connector::Kinesis { stream, .. } = &table.connector else { continue };
                let initial = if app.start_from_trim_horizon { InitialPosition::TrimHorizon } else { InitialPosition::Latest };
                // The shards read, by their place in the read (records carry the place).
                let mut read_shards: Vec<String> = Vec::new();
                let batch = self.streams.lease_read_with(stream, &consumer_name(&app.name), initial, READ_BATCH, |shard, r| {
                    if read_shards.last() != Some(&shard.shard_id) {
                        read_shards.push(shard.shard_id.clone());
                    }
                    Read { shard: read_shards.len() - 1, arrival_ms: r.arrival_ms, data: r.data.clone() }
                })?;
                let source = app.sources.entry(table.name.clone()).or_insert_with(|| SourceState { stream: stream.clone(), ..SourceState::default() });
                source.millis_behind_latest = match batch.records.last() {
                    Some(r) if batch.records.len() >= READ_BATCH => now - r.arrival_ms,
                    _ => 0,
                };
                pending_leases.push((stream.clone(), batch.leases.clone()));
                source.positions = batch.leases.clone();
                // Every shard still being read holds the watermark back until it has given a
                // record, as each of Flink's source splits does (no idle timeout).
                if table.watermark.is_some() {
                    for lease in batch.leases.iter().filter(|l| l.checkpoint != crate::streams::leases::SHARD_END) {
                        source.shard_max_event.entry(lease.shard_id.clone()).or_insert(i64::MIN);
                    }
                }
                if batch.records.is_empty() {
                    continue;
                }
                read_any = true;
                app.records_in += batch.records.len() as u64;
                let Decoded { rows, index, unreadable } = decode(table, &batch.records)?;
                app.records_unreadable += unreadable;
                let times = event_times(table, &rows, now)?;
                let calls: Vec<&WindowCall> = parsed.inserts.iter().flat_map(|i| &i.windows).filter(|w| w.table == table.name).collect();
                let sessions = calls.iter().any(|c| matches!(c.kind, WindowKind::Session { .. }));
                let lines = if sessions { record_lines(&batch.records, &index) } else { Vec::new() };
                let keys = calls.iter().map(|c| partition_keys(&rows, &c.partition_by)).collect::<Result<Vec<_>>>()?;
                let mut states: Vec<WindowState> = calls.iter().map(|c| app.windows.remove(&c.placeholder).unwrap_or_default()).collect();
                // Per slicing window call: each row's arrival watermark and whether it is kept.
                let mut arrivals: Vec<Vec<i64>> = calls.iter().map(|_| Vec::with_capacity(rows.num_rows())).collect();
                let mut kept: Vec<Vec<bool>> = calls.iter().map(|_| Vec::with_capacity(rows.num_rows())).collect();
                let delay = table.watermark.as_ref().map(|w| w.delay_ms);
                // The shards' largest event times, by the shard's place in this read (the
                // shards not in it only bound the minimum).
                let mut maxes: Vec<i64> = read_shards.iter().map(|s| source.shard_max_event.get(s).copied().unwrap_or(i64::MIN)).collect();
                let others = source.shard_max_event.iter().filter(|(s, _)| !read_shards.contains(s)).map(|(_, m)| *m).min().unwrap_or(i64::MAX);
                let mut watermark = source.watermark;
                // Record by record, as Flink's watermark assigner with a zero interval: a record is
                // judged by the watermark the records before it made, whatever the read's size.
                for (row, ts) in times.iter().enumerate() {
                    let Some(ts) = *ts else {
                        app.records_unreadable += u64::from(!calls.is_empty());
                        for (arrivals, kept) in arrivals.iter_mut().zip(&mut kept) {
                            arrivals.push(i64::MIN);
                            kept.push(false);
                        }
                        continue;
                    };
                    for (c, ((call, keys), state)) in calls.iter().zip(&keys).zip(&mut states).enumerate() {
                        let keep = match call.kind {
                            WindowKind::Session { gap_ms } => state.join_session(keys.as_ref().map_or("", |k| k[row].as_str()), ts, lines[row].clone(), gap_ms, watermark),
                            kind => {
                                // As Flink's slicing windows: a record counts in the windows the
                                // watermark has not passed yet, and is late when it has passed them all.
                                let last_end = kind.last_end(ts);
                                let (passed, mark) = match table.proctime.as_deref() == Some(call.time_column.as_str()) {
                                    true => (state.fired_until.is_some_and(|f| last_end <= f), i64::MIN),
                                    false => (watermark.is_some_and(|w| last_end - 1 <= w), watermark.unwrap_or(i64::MIN)),
                                };
                                arrivals[c].push(mark);
                                kept[c].push(!passed);
                                !passed
                            }
                        };
                        app.late_records_dropped += u64::from(!keep);
                    }
                    if let Some(delay) = delay {
                        let max = &mut maxes[batch.records[index[row]].shard];
                        if ts > *max {
                            *max = ts;
                            let min = maxes.iter().copied().min().unwrap_or(i64::MIN).min(others);
                            watermark = Some(watermark.unwrap_or(i64::MIN).max(min.saturating_sub(delay)));
                        }
                    }
                }
                source.watermark = watermark;
                for (shard, max) in read_shards.iter().zip(maxes) {
                    source.shard_max_event.insert(shard.clone(), max);
                }
                let times: Vec<i64> = times.iter().map(|t| t.unwrap_or(i64::MIN)).collect();
                for (c, (call, mut state)) in calls.iter().zip(states).enumerate() {
                    if !matches!(call.kind, WindowKind::Session { .. }) {
                        state.buffer(&rows, &times, &arrivals[c], &kept[c])?;
                    }
                    app.windows.insert(call.placeholder.clone(), state);
                }
                fresh.insert(table.name.clone(), rows);
            }
            // Processing-time sources: their watermark is the engine clock.
            for table in parsed.tables.iter().filter(|t| t.proctime.is_some()) {
                if let Some(source) = app.sources.get_mut(&table.name) {
                    source.watermark = Some(now);
                }
            }
            app.steps += 1;
            for (index, insert) in parsed.inserts.iter().enumerate() {
                let output = if insert.windows.is_empty() {
                    // A continuous filter / projection: this step's new rows go through.
                    if fresh.is_empty() {
                        continue;
                    }
                    run_query(&parsed, &insert.query, &fresh, &references, &BTreeMap::new(), &self.glue, self.clock.clone()).await?
                } else {
                    let mut assigned = BTreeMap::new();
                    for call in &insert.windows {
                        let source = parsed.tables.iter().find(|t| t.name == call.table).ok_or_else(|| internal_err!("checked at create"))?;
                        let watermark = if drain { Some(i64::MAX) } else { app.sources.get(&call.table).and_then(|s| s.watermark) };
                        let state = app.windows.entry(call.placeholder.clone()).or_default();
                        if let Some(batch) = fire(source, call, state, watermark)? {
                            assigned.insert(call.placeholder.clone(), batch);
                        }
                    }
                    if assigned.is_empty() {
                        continue;
                    }
                    run_query(&parsed, &insert.query, &BTreeMap::new(), &references, &assigned, &self.glue, self.clock.clone()).await?
                };
                let rows: usize = output.iter().map(RecordBatch::num_rows).sum();
                if rows == 0 {
                    continue;
                }
                let batch = in_window_order(output)?;
                self.remember(&app.name, &insert.target, &batch);
                self.write_sink(app, &parsed, index, &insert.target, batch, sinks.sql).await?;
                app.records_out += rows as u64;
            }
            // The files are written; the state (open windows, the outbox) is saved; then the
            // streams' positions. A crash before the save runs the step again from the last
            // state and positions, and the step writes the same files again (same names).
            app.last_checkpoint = Some(self.clock.now());
            self.save(app)?;
            for (stream, leases) in pending_leases {
                self.streams.checkpoint(&stream, &consumer_name(&app.name), &leases)?;
            }
            if self.flush(app, &parsed, sinks).await {
                self.save(app)?;
            }
            if !read_any {
                return Ok(());
            }
        }
    }
}

/// The consumer application name an analytics application reads its streams as.
fn consumer_name(app: &str) -> String {
    format!("analytics-{app}")
}

/// A DataFusion session with the application's tables: sources (this step's rows, or none),
/// reference data, window placeholders (the rows of the windows firing), the Data Catalog's
/// databases (`db.table`), with `now()` on the engine clock.
fn context(
    app: &AppSql,
    sources: &BTreeMap<String, RecordBatch>,
    references: &BTreeMap<String, RecordBatch>,
    glue: &Arc<dyn CatalogProvider>,
    clock: Arc<Clock>,
) -> Result<SessionContext> {
    let ctx = crate::query::context(crate::query::tuned_config().with_target_partitions(1));
    ctx.register_udf(crate::query::clock_fn::now_udf(clock));
    let df = |e: datafusion::error::DataFusionError| internal_err!("{e}");
    let default_catalog = ctx.copied_config().options().catalog.default_catalog.clone();
    if let Some(catalog) = ctx.catalog(&default_catalog) {
        for database in glue.schema_names() {
            if let Some(schema) = glue.schema(&database).filter(|_| catalog.schema(&database).is_none()) {
                catalog.register_schema(&database, schema).map_err(df)?;
            }
        }
    }
    let mem = |batch: RecordBatch| -> Result<Arc<MemTable>> { Ok(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(df)?)) };
    for (name, batch) in references {
        ctx.register_table(name.as_str(), mem(batch.clone())?).map_err(df)?;
    }
    for table in app.sources() {
        let schema = Arc::new(table.schema()?);
        let batch = sources.get(&table.name).cloned().unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
        ctx.register_table(table.name.as_str(), mem(batch)?).map_err(df)?;
        for insert in &app.inserts {
            for call in insert.windows.iter().filter(|w| w.table == table.name) {
                let mut fields: Vec<Field> = table.schema()?.fields().iter().map(|f| f.as_ref().clone()).collect();
                let ts = |name: &str| Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, None), false);
                fields.extend([ts("window_start"), ts("window_end"), ts("window_time")]);
                ctx.register_table(call.placeholder.as_str(), mem(RecordBatch::new_empty(Arc::new(Schema::new(fields))))?).map_err(df)?;
            }
        }
    }
    Ok(ctx)
}

async fn run_query(
    app: &AppSql,
    query: &str,
    sources: &BTreeMap<String, RecordBatch>,
    references: &BTreeMap<String, RecordBatch>,
    windows: &BTreeMap<String, RecordBatch>,
    glue: &Arc<dyn CatalogProvider>,
    clock: Arc<Clock>,
) -> Result<Vec<RecordBatch>> {
    let ctx = context(app, sources, references, glue, clock)?;
    let df = |e: datafusion::error::DataFusionError| internal_err!("{e}");
    for (name, batch) in windows {
        ctx.deregister_table(name.as_str()).map_err(df)?;
        ctx.register_table(name.as_str(), Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).map_err(df)?)).map_err(df)?;
    }
    let frame = ctx.sql(query).await.map_err(|e| crate::query::sql_error(e, query))?;
    frame.collect().await.map_err(|e| crate::query::sql_error(e, query))
}
