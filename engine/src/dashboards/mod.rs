//! QuickSight-style dashboards: datasets (SPICE snapshots or direct queries, with calculated
//! fields) and dashboards of sheets, visuals and controls, aggregated here so a page can
//! re-filter them with no server.
//!
//! - A dataset is a SELECT (`--sql`) or a catalog table, plus calculated fields (SQL
//!   expressions over its columns). A SPICE dataset is ingested on creation and on every
//!   refresh (asked for, or on its `rate(…)`/`cron(…)` schedule on the engine clock, with the
//!   due work): its rows, calculated fields included, are a Parquet file under
//!   `dashboards/spice/`, named by ingestion so a crash never leaves a state naming half a
//!   file. Its SPICE size is QuickSight's logical size (8 bytes per number or date, 8 bytes
//!   plus the UTF-8 length per text value); an ingestion that would pass the capacity fails
//!   with INSUFFICIENT_SPICE_CAPACITY and keeps the rows already there. A direct dataset
//!   runs its query whenever a dashboard is built.
//! - A dashboard is a TOML spec (`spec.rs`); building it (`build.rs`) runs one aggregate
//!   query per visual with GROUPING SETS, so a control's every value (and "all") gets its own
//!   exact numbers — count distinct and percentiles are never recombined in the browser.
//!
//! Deviations: one control per sheet (a dropdown); the engine has no analyses, themes or
//! permissions; SPICE capacity is one pool for the workspace (`capacity`).

pub mod build;
pub mod model;
pub mod spec;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;

use crate::clock::Clock;
use crate::error::Result;
use crate::schedule::Schedule;
use crate::sql::SqlEngine;
use crate::workspace::{Workspace, atomic_write, read_json};
use crate::{internal_err, service_err};
pub use model::{CalculatedField, Dashboard, Dataset, Ingestion, IngestionStatus, Mode, Snapshot, Source};

/// What `create_dataset` takes (≙ CreateDataSet).
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub name: String,
    pub source: Source,
    pub mode: Mode,
    pub fields: Vec<CalculatedField>,
    pub refresh: Option<String>,
}

/// A dataset with what DescribeDataSet and the SPICE capacity page tell.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    pub dataset: Dataset,
    pub columns: SchemaRef,
    pub spice_used: u64,
    pub spice_capacity: u64,
}

pub struct Dashboards {
    path: PathBuf,
    spice_dir: PathBuf,
    clock: Arc<Clock>,
    sql: Arc<SqlEngine>,
    state: Mutex<State>,
    /// SPICE rows loaded into memory, by file name.
    loaded: Mutex<BTreeMap<String, Arc<dyn TableProvider>>>,
    /// Each dashboard's last build, with the spec version and data version it was built at:
    /// showing or publishing it again with neither changed reuses its numbers.
    built: Mutex<BTreeMap<String, (u32, u64, build::Built)>>,
}

use model::State;

impl std::fmt::Debug for Dashboards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboards").field("path", &self.path).finish_non_exhaustive()
    }
}

/// QuickSight's dataset and dashboard ids: letters, digits, `-` and `_`.
fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 96 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(service_err!(InvalidParameterValueException, "{what} name {name:?}: 1 to 96 letters, digits, - or _"));
    }
    Ok(())
}

impl Dashboards {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>, sql: Arc<SqlEngine>) -> Result<Self> {
        let dir = workspace.root().join("dashboards");
        let path = dir.join("dashboards.json");
        let state: State = read_json(&path)?.unwrap_or_default();
        let spice_dir = dir.join("spice");
        let service = Self { path, spice_dir, clock, sql, state: Mutex::new(state), loaded: Mutex::default(), built: Mutex::default() };
        service.remove_unnamed_snapshots();
        Ok(service)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to a copy of the state and keeps it only once it is saved.
    fn commit<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        let mut next = state.clone();
        let value = change(&mut next)?;
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| internal_err!("{e}"))?;
        atomic_write(&self.path, &bytes)?;
        *state = next;
        Ok(value)
    }

    /// Snapshot files no dataset names (an ingestion a crash cut short, or replaced ones).
    fn remove_unnamed_snapshots(&self) {
        let named: Vec<String> = self.lock().datasets.values().filter_map(|d| d.snapshot.as_ref().map(|s| s.file.clone())).collect();
        if let Ok(entries) = std::fs::read_dir(&self.spice_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if !named.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    pub fn datasets(&self) -> Vec<Dataset> {
        self.lock().datasets.values().cloned().collect()
    }

    pub fn dataset(&self, name: &str) -> Result<Dataset> {
        let state = self.lock();
        state.datasets.get(name).cloned().ok_or_else(|| {
            not_found("dataset", name, state.datasets.keys(), Some("create it with %dashboard dataset create NAME --sql \"SELECT …\""))
        })
    }

    /// ≙ CreateDataSet (+ its first ingestion for SPICE).
    pub async fn create_dataset(&self, spec: DatasetSpec) -> Result<Dataset> {
        validate_name("dataset", &spec.name)?;
        if self.lock().datasets.contains_key(&spec.name) {
            return Err(service_err!(ResourceExistsException, "dataset {} already exists", spec.name));
        }
        let mut seen = std::collections::BTreeSet::new();
        for field in &spec.fields {
            if spec::Measure::parse(&format!("count({})", field.name)).is_err() || !seen.insert(field.name.to_ascii_lowercase()) {
                return Err(service_err!(InvalidParameterValueException, "calculated field {:?}: a field name is letters, digits and _, once per dataset", field.name));
            }
        }
        let schedule = match (&spec.refresh, spec.mode) {
            (Some(_), Mode::DirectQuery) => {
                return Err(service_err!(InvalidParameterValueException, "dataset {}: a refresh schedule is for SPICE datasets; a direct query dataset reads its source every time", spec.name));
            }
            (Some(text), Mode::Spice) => Some(Schedule::parse(text)?),
            (None, _) => None,
        };
        let now = self.clock.now();
        let dataset = Dataset {
            name: spec.name.clone(),
            source: spec.source,
            mode: spec.mode,
            fields: spec.fields,
            refresh: spec.refresh,
            created: now,
            last_updated: now,
            snapshot: None,
            next_refresh: schedule.as_ref().and_then(|s| next_time(s, now)),
            ingestions: Vec::new(),
        };
        // The query and every calculated field are checked before anything is kept.
        self.sql.query_schema(&dataset_query(&dataset), dataset.source.database(), None).await.map_err(|e| named(e, &dataset.name))?;
        self.commit(|state| {
            state.datasets.insert(dataset.name.clone(), dataset.clone());
            Ok(())
        })?;
        if dataset.mode == Mode::Spice {
            let ingestion = self.ingest(&dataset.name, "FULL_REFRESH").await?;
            if let Some(error) = ingestion.error {
                return Err(service_err!(LimitExceededException, "dataset {} was created, but its first ingestion failed: {error}", dataset.name));
            }
        }
        self.dataset(&dataset.name)
    }

    /// ≙ CreateIngestion: reads the source again into SPICE.
    pub async fn refresh_dataset(&self, name: &str) -> Result<Ingestion> {
        let dataset = self.dataset(name)?;
        if dataset.mode == Mode::DirectQuery {
            return Err(service_err!(InvalidParameterValueException, "dataset {name} is a direct query dataset: it has nothing in SPICE to refresh"));
        }
        self.ingest(name, "FULL_REFRESH").await
    }

    /// One ingestion: the rows go to a new file, the state names it in one write, and the
    /// replaced file goes. A failed ingestion is recorded and keeps the rows already there.
    async fn ingest(&self, name: &str, request_source: &str) -> Result<Ingestion> {
        let dataset = self.dataset(name)?;
        let started = Instant::now();
        let now = self.clock.now();
        let rows = self.sql.collect_over(&dataset_query(&dataset), dataset.source.database(), BTreeMap::new()).await.map_err(|e| named(e, name));
        let id = format!("ingestion-{}", self.lock().ingestions + 1);
        let (outcome, file) = match rows {
            Err(e) => (Err(e.to_string()), None),
            Ok((schema, batches)) => {
                let count: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
                let bytes = spice_bytes(&batches);
                let (capacity, used) = {
                    let state = self.lock();
                    let used: u64 = state.datasets.values().filter(|d| d.name != name).filter_map(|d| d.snapshot.as_ref()).map(|s| s.spice_bytes).sum();
                    (state.spice_capacity, used)
                };
                if used + bytes > capacity {
                    let message = format!(
                        "INSUFFICIENT_SPICE_CAPACITY: the dataset needs {} of SPICE and {} of {} is free",
                        crate::util::human_bytes(bytes),
                        crate::util::human_bytes(capacity.saturating_sub(used)),
                        crate::util::human_bytes(capacity)
                    );
                    (Err(message), None)
                } else {
                    let file = format!("{name}.{id}.parquet");
                    write_parquet(&self.spice_dir.join(&file), schema, &batches)?;
                    (Ok((count, bytes)), Some(file))
                }
            }
        };
        let (rows, bytes) = outcome.as_ref().map(|(r, b)| (*r, *b)).unwrap_or((0, 0));
        let ingestion = Ingestion {
            id: id.clone(),
            status: if outcome.is_ok() { IngestionStatus::Completed } else { IngestionStatus::Failed },
            request_source: request_source.to_string(),
            created: now,
            rows,
            spice_bytes: bytes,
            elapsed_ms: started.elapsed().as_millis() as u64,
            error: outcome.err(),
        };
        let replaced = self.commit(|state| {
            state.ingestions += 1;
            let dataset = state.datasets.get_mut(name).ok_or_else(|| service_err!(ResourceNotFoundException, "dataset {name} was deleted during its ingestion"))?;
            dataset.ingestions.push(ingestion.clone());
            let excess = dataset.ingestions.len().saturating_sub(model::KEPT_INGESTIONS);
            dataset.ingestions.drain(..excess);
            dataset.last_updated = now;
            let mut replaced = None;
            if let Some(file) = &file {
                replaced = dataset.snapshot.replace(Snapshot { file: file.clone(), rows, spice_bytes: bytes, ingested: now }).map(|s| s.file);
            }
            Ok(replaced)
        });
        let replaced = match replaced {
            Ok(replaced) => replaced,
            Err(e) => {
                if let Some(file) = &file {
                    let _ = std::fs::remove_file(self.spice_dir.join(file));
                }
                return Err(e);
            }
        };
        if let Some(old) = replaced {
            self.loaded.lock().unwrap_or_else(|p| p.into_inner()).remove(&old);
            let _ = std::fs::remove_file(self.spice_dir.join(old));
        }
        Ok(ingestion)
    }

    /// ≙ DescribeDataSet: the dataset, its columns and the SPICE pool.
    pub async fn describe_dataset(&self, name: &str) -> Result<DatasetInfo> {
        let dataset = self.dataset(name)?;
        let columns = self.sql.query_schema(&dataset_query(&dataset), dataset.source.database(), None).await.map_err(|e| named(e, name))?;
        let (spice_used, spice_capacity) = self.spice();
        Ok(DatasetInfo { dataset, columns, spice_used, spice_capacity })
    }

    /// SPICE in use and the capacity.
    pub fn spice(&self) -> (u64, u64) {
        let state = self.lock();
        (state.datasets.values().filter_map(|d| d.snapshot.as_ref()).map(|s| s.spice_bytes).sum(), state.spice_capacity)
    }

    /// ≙ UpdateSPICECapacityConfiguration (the workspace's pool).
    pub fn set_spice_capacity(&self, bytes: u64) -> Result<()> {
        let (used, _) = self.spice();
        if bytes < used {
            return Err(service_err!(
                InvalidParameterValueException,
                "the datasets already use {} of SPICE; the capacity cannot go below it",
                crate::util::human_bytes(used)
            ));
        }
        self.commit(|state| {
            state.spice_capacity = bytes;
            Ok(())
        })
    }

    /// ≙ DeleteDataSet (its SPICE rows go too).
    pub fn delete_dataset(&self, name: &str) -> Result<()> {
        self.dataset(name)?;
        let removed = self.commit(|state| Ok(state.datasets.remove(name)))?;
        if let Some(file) = removed.and_then(|d| d.snapshot).map(|s| s.file) {
            self.loaded.lock().unwrap_or_else(|p| p.into_inner()).remove(&file);
            let _ = std::fs::remove_file(self.spice_dir.join(file));
        }
        Ok(())
    }

    /// The scheduled refreshes due at the engine clock's time, each at most once per pass.
    pub async fn run_due(&self) -> Vec<String> {
        let now = self.clock.now();
        let due: Vec<(String, String)> = self
            .lock()
            .datasets
            .values()
            .filter(|d| d.next_refresh.is_some_and(|t| t <= now))
            .filter_map(|d| d.refresh.clone().map(|r| (d.name.clone(), r)))
            .collect();
        let mut reports = Vec::new();
        for (name, schedule) in due {
            let report = match self.ingest(&name, "SCHEDULED").await {
                Ok(i) if i.status == IngestionStatus::Completed => format!("dataset {name} refreshed into SPICE: {} rows", i.rows),
                Ok(i) => format!("dataset {name} refresh failed: {}", i.error.unwrap_or_default()),
                Err(e) => format!("dataset {name} refresh failed: {e}"),
            };
            reports.push(report);
            let next = Schedule::parse(&schedule).ok().and_then(|s| next_time(&s, now));
            let _ = self.commit(|state| {
                if let Some(d) = state.datasets.get_mut(&name) {
                    d.next_refresh = next;
                }
                Ok(())
            });
        }
        reports
    }

    /// The dataset's rows as a table for a dashboard's queries: SPICE rows from memory (read
    /// from their file once), a direct dataset as None (its query is inlined).
    fn spice_table(&self, dataset: &Dataset) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(snapshot) = &dataset.snapshot else {
            return match dataset.mode {
                Mode::DirectQuery => Ok(None),
                Mode::Spice => Err(service_err!(InvalidParameterValueException, "dataset {} has no rows in SPICE: its ingestions failed; refresh it", dataset.name)),
            };
        };
        if dataset.mode == Mode::DirectQuery {
            return Ok(None);
        }
        if let Some(table) = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(&snapshot.file) {
            return Ok(Some(table.clone()));
        }
        let path = self.spice_dir.join(&snapshot.file);
        let bytes = std::fs::read(&path).map_err(|e| crate::error::Error::io(&path, e))?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .map_err(|e| internal_err!("reading SPICE rows {}: {e}", path.display()))?;
        let schema = builder.schema().clone();
        let reader = builder.build().map_err(|e| internal_err!("reading SPICE rows {}: {e}", path.display()))?;
        let batches: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().map_err(|e| internal_err!("reading SPICE rows {}: {e}", path.display()))?;
        let table: Arc<dyn TableProvider> = Arc::new(datafusion::datasource::MemTable::try_new(schema, vec![batches]).map_err(|e| internal_err!("{e}"))?);
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(snapshot.file.clone(), table.clone());
        Ok(Some(table))
    }

    pub fn dashboards(&self) -> Vec<Dashboard> {
        self.lock().dashboards.values().cloned().collect()
    }

    pub fn dashboard(&self, name: &str) -> Result<Dashboard> {
        let state = self.lock();
        state.dashboards.get(name).cloned().ok_or_else(|| not_found("dashboard", name, state.dashboards.keys(), None))
    }

    /// ≙ CreateDashboard (or UpdateDashboard with `replace`): the spec is parsed and built
    /// against its datasets before it is kept, so a bad field fails naming its line.
    pub async fn create_dashboard(&self, name: &str, spec_text: &str, replace: bool) -> Result<(Dashboard, build::Built)> {
        validate_name("dashboard", name)?;
        if !replace && self.lock().dashboards.contains_key(name) {
            return Err(service_err!(ResourceExistsException, "dashboard {name} already exists").with_hint("use --replace to update it"));
        }
        let spec = spec::parse(spec_text)?;
        // The data version before the build: data landing during it shows at the next one.
        let data = self.data_version_of(&spec).await;
        let built = self.build_spec(name, &spec).await?;
        let now = self.clock.now();
        let dashboard = self.commit(|state| {
            let (version, created) = state.dashboards.get(name).map(|d| (d.version + 1, d.created)).unwrap_or((1, now));
            let dashboard = Dashboard { name: name.to_string(), spec: spec_text.to_string(), version, created, last_updated: now };
            state.dashboards.insert(name.to_string(), dashboard.clone());
            Ok(dashboard)
        })?;
        self.keep(name, dashboard.version, data, &built);
        Ok((dashboard, built))
    }

    /// The dashboard's numbers now: direct datasets are queried again and SPICE ones read,
    /// unless neither the spec nor any dataset's data changed since the last build.
    pub async fn build(&self, name: &str) -> Result<build::Built> {
        let dashboard = self.dashboard(name)?;
        let spec = spec::parse(&dashboard.spec)?;
        let data = self.data_version_of(&spec).await;
        if let Some((version, at, built)) = self.built.lock().unwrap_or_else(|p| p.into_inner()).get(name)
            && data.1
            && (*version, *at) == (dashboard.version, data.0)
        {
            return Ok(built.clone());
        }
        let built = self.build_spec(name, &spec).await?;
        self.keep(name, dashboard.version, data, &built);
        Ok(built)
    }

    /// The data version the dashboard's kept build was made at (taken before it ran, so data
    /// that landed during the build still counts as a change).
    pub fn built_data_version(&self, name: &str) -> Option<u64> {
        self.built.lock().unwrap_or_else(|p| p.into_inner()).get(name).map(|(_, data, _)| *data)
    }

    fn keep(&self, name: &str, version: u32, (data, complete): (u64, bool), built: &build::Built) {
        let mut kept = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if complete {
            kept.insert(name.to_string(), (version, data, built.clone()));
        } else {
            kept.remove(name);
        }
    }

    /// ≙ DeleteDashboard.
    pub fn delete_dashboard(&self, name: &str) -> Result<()> {
        self.dashboard(name)?;
        self.commit(|state| {
            state.dashboards.remove(name);
            Ok(())
        })?;
        self.built.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        Ok(())
    }

    /// A number that changes when the data a dashboard shows does: each SPICE dataset's
    /// current ingestion, each direct dataset's source files (see
    /// [`SqlEngine::source_fingerprint`]), and the datasets' definitions; so a view can
    /// redraw only when it would look different.
    pub async fn data_version(&self, name: &str) -> Result<u64> {
        let spec = spec::parse(&self.dashboard(name)?.spec)?;
        Ok(self.data_version_of(&spec).await.0)
    }

    /// The data version, and whether every direct dataset's source could be read (only then
    /// is a build kept for reuse).
    async fn data_version_of(&self, spec: &spec::Spec) -> (u64, bool) {
        use std::hash::{Hash, Hasher};
        let mut names: Vec<&str> = spec.sheets.iter().flat_map(|s| s.controls.iter().map(|c| c.dataset.value.as_str()).chain(s.visuals.iter().map(|v| v.dataset.value.as_str()))).collect();
        names.sort_unstable();
        names.dedup();
        let mut hasher = std::hash::DefaultHasher::new();
        let mut complete = true;
        for name in names {
            let Ok(dataset) = self.dataset(name) else { continue };
            (name, dataset_query(&dataset), dataset.mode.to_string()).hash(&mut hasher);
            match (&dataset.mode, &dataset.snapshot) {
                (Mode::Spice, Some(snapshot)) => (snapshot.file.as_str(), snapshot.ingested).hash(&mut hasher),
                (Mode::Spice, None) => {}
                (Mode::DirectQuery, _) => {
                    // A source that no longer plans shows its error at the next build.
                    match self.sql.source_fingerprint(&dataset_query(&dataset), dataset.source.database()).await {
                        Ok(fingerprint) => fingerprint.hash(&mut hasher),
                        Err(_) => complete = false,
                    }
                }
            }
        }
        (hasher.finish(), complete)
    }
}

/// ResourceNotFoundException for `what` `name`, suggesting the closest existing name, or
/// else `otherwise` when given.
fn not_found<'a>(what: &str, name: &str, names: impl Iterator<Item = &'a String>, otherwise: Option<&str>) -> crate::error::Error {
    let names: Vec<&str> = names.map(String::as_str).collect();
    let err = service_err!(ResourceNotFoundException, "{what} {name} does not exist");
    match crate::error::closest(name, &names) {
        Some(c) => err.with_hint(format!("did you mean {c}?")),
        None => match otherwise {
            Some(hint) => err.with_hint(hint),
            None => err,
        },
    }
}

fn next_time(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.next_after(after)
}

/// The dataset's rows with its calculated fields, as one SELECT.
pub fn dataset_query(dataset: &Dataset) -> String {
    let mut columns = vec!["src.*".to_string()];
    for field in &dataset.fields {
        columns.push(format!("({}) AS \"{}\"", field.expression, field.name));
    }
    format!("SELECT {} FROM ({}) AS src", columns.join(", "), dataset.source.query())
}

/// An error from a dataset's query, saying which dataset.
fn named(err: crate::error::Error, dataset: &str) -> crate::error::Error {
    match err {
        crate::error::Error::Service { code, message, hint } => crate::error::Error::Service { code, message: format!("dataset {dataset}: {message}"), hint },
        other => other,
    }
}

/// QuickSight's logical size of rows in SPICE.
pub fn spice_bytes(batches: &[RecordBatch]) -> u64 {
    use arrow_array::Array;
    let mut total = 0u64;
    for batch in batches {
        for column in batch.columns() {
            let rows = column.len() as u64;
            let text = match column.data_type() {
                dt if dt.is_numeric() || dt.is_temporal() || matches!(dt, arrow_schema::DataType::Boolean | arrow_schema::DataType::Null) => None,
                _ => datafusion::arrow::compute::cast(column, &arrow_schema::DataType::LargeUtf8).ok(),
            };
            total += 8 * rows;
            if let Some(text) = text
                && let Some(strings) = text.as_any().downcast_ref::<arrow_array::LargeStringArray>()
            {
                total += strings.iter().map(|s| s.map_or(0, str::len) as u64).sum::<u64>();
            }
        }
    }
    total
}

fn write_parquet(path: &std::path::Path, schema: SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, None).map_err(|e| internal_err!("writing SPICE rows: {e}"))?;
    for batch in batches {
        writer.write(batch).map_err(|e| internal_err!("writing SPICE rows: {e}"))?;
    }
    writer.close().map_err(|e| internal_err!("writing SPICE rows: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
    }
    atomic_write(path, &bytes)
}
