//! Redshift-style warehouse clusters: managed columnar tables on the cluster's own storage
//! (not in the lake), laid out across node slices by DISTSTYLE and sorted by SORTKEY, loaded
//! with COPY from the lake and written back with UNLOAD, and Spectrum: external schemas over
//! the Data Catalog, joinable with managed tables.
//!
//! A cluster of N nodes has 2·N slices. A table's rows are Parquet files under
//! `<workspace>/redshift/<cluster>/<schema>.<table>/v<version>/slice-<s>.parquet`: DISTSTYLE
//! EVEN deals rows round-robin, KEY(col) by a hash of the key, ALL keeps one full copy (the
//! copy every node holds; sizes count it once per node). Each slice is sorted by the SORTKEY
//! and written in small row groups, so Parquet's min/max statistics act as Redshift's zone
//! maps. Every write (INSERT, COPY, DELETE, UPDATE) builds the table's next version and then
//! commits it by rewriting `clusters.json` (atomic rename); the old version is removed after.
//! Queries run on DataFusion with one partition per slice.
//!
//! Deviations, on purpose: clusters are `available` at once (no creating/resizing delay);
//! DISTSTYLE AUTO lays out as EVEN; DELETE and UPDATE rewrite the table (no tombstones, so
//! no VACUUM); there are no transactions — each statement commits on its own.
//!
//! Snapshots: automated ones every 8 hours on the engine clock (or once 5 GB per node has
//! changed since the last), kept for the cluster's retention period (1 day by default, 0–35;
//! 0 turns them off) and deleted with the cluster; manual ones are kept until deleted,
//! outlive the cluster, and can be taken as a final snapshot on delete. A snapshot is the
//! cluster's metadata plus hard links to its tables' immutable version files under
//! `<workspace>/redshift/snapshots/<id>/`; a restore builds a new cluster from it.
//!
//! COPY reads every object under the prefix, or with MANIFEST the files a manifest lists
//! (Firehose's Redshift destination COPYs each staged batch that way).
//!
//! Known gaps (next steps): COPY with a JSONPaths file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::compute::{CastOptions, SortColumn, cast_with_options, concat_batches, filter_record_batch, lexsort_to_indices, take};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionContext, col};
use datafusion::sql::sqlparser::ast::{
    self, CopyLegacyOption, CopySource, CopyTarget, DataType as SqlType, ExactNumberInfo, FromTable, ObjectType, Statement, TableFactor, TableObject,
};
use datafusion::sql::sqlparser::dialect::RedshiftSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::{Result, closest};
use crate::lake::{Lake, S3Uri};
use crate::sql::GlueCatalogProvider;
use crate::streams::Streams;
use crate::workspace::{Workspace, read_json, write_json};
use crate::{internal_err, service_err};

/// The database every cluster has, as Redshift names its default one.
pub const DATABASE: &str = "dev";
pub const DEFAULT_SCHEMA: &str = "public";
pub const SLICES_PER_NODE: u32 = 2;
/// Rows per Parquet row group: the granularity of the min/max "zone maps".
const ROW_GROUP_ROWS: usize = 16 * 1024;
const LOAD_ERRORS_KEPT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DistStyle {
    Auto,
    Even,
    Key,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The Redshift type as `svv_columns` spells it: `integer`, `character varying(20)` …
    pub data_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    pub diststyle: DistStyle,
    pub distkey: Option<String>,
    pub sortkey: Vec<String>,
    /// The committed version's directory is `v<version>`.
    pub version: u64,
    /// Rows per slice of the committed version.
    pub slice_rows: Vec<u64>,
    pub bytes: u64,
    pub created: DateTime<Utc>,
}

impl TableMeta {
    pub fn rows(&self) -> u64 {
        self.slice_rows.iter().sum()
    }

    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `EVEN`, `KEY(col)`, `ALL`, `AUTO(EVEN)` as `svv_table_info` shows it.
    pub fn diststyle_text(&self) -> String {
        match (self.diststyle, &self.distkey) {
            (DistStyle::Key, Some(k)) => format!("KEY({k})"),
            (DistStyle::Auto, _) => "AUTO(EVEN)".into(),
            (style, _) => crate::serde_name(&style),
        }
    }

    fn arrow_schema(&self) -> Result<SchemaRef> {
        let fields = self.columns.iter().map(|c| Ok(Field::new(&c.name, arrow_type(&c.data_type)?, true))).collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// A schema of external tables: a Data Catalog database seen from the cluster (Spectrum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalSchema {
    pub name: String,
    pub database: String,
}

/// One row of `stl_load_errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadError {
    pub query: u64,
    pub starttime: DateTime<Utc>,
    pub tbl: String,
    pub filename: String,
    pub line_number: u64,
    pub colname: String,
    pub col_type: String,
    pub raw_line: String,
    pub raw_field_value: String,
    pub err_code: u32,
    pub err_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    pub nodes: u32,
    pub created: DateTime<Utc>,
    pub schemas: Vec<String>,
    pub external_schemas: Vec<ExternalSchema>,
    pub tables: Vec<TableMeta>,
    pub load_errors: Vec<LoadError>,
    /// The last query id given out (`pg_last_query_id()`).
    pub last_query: u64,
    /// Days automated snapshots are kept (0 = none taken).
    #[serde(default = "default_retention")]
    pub automated_retention_days: u32,
    /// When the last automated snapshot was due (the schedule counts from creation).
    #[serde(default)]
    pub last_automated: Option<DateTime<Utc>>,
    /// Bytes written since the last automated snapshot.
    #[serde(default)]
    pub changed_bytes: u64,
    /// The files UNLOAD wrote (`stl_unload_log`), the last [`LOAD_ERRORS_KEPT`].
    #[serde(default)]
    pub unload_log: Vec<UnloadLog>,
}

/// One row of `stl_unload_log`: a file an UNLOAD wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnloadLog {
    pub query: u64,
    pub path: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub line_count: u64,
    pub transfer_size: u64,
}

fn default_retention() -> u32 {
    1
}

/// Automated snapshots come every 8 hours…
pub const AUTOMATED_INTERVAL_HOURS: i64 = 8;
/// …or once this much per node has changed.
pub const AUTOMATED_CHANGE_BYTES_PER_NODE: u64 = 5_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotType {
    Automated,
    Manual,
}

/// ≙ a cluster snapshot (DescribeClusterSnapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub cluster: String,
    pub snapshot_type: SnapshotType,
    pub created: DateTime<Utc>,
    /// Automated: deleted after this; manual: kept until deleted.
    pub expires: Option<DateTime<Utc>>,
    pub bytes: u64,
    /// The cluster as it was (tables, schemas, layouts).
    pub state: Cluster,
}

impl Cluster {
    pub fn slices(&self) -> u32 {
        self.nodes * SLICES_PER_NODE
    }

    pub fn status(&self) -> &'static str {
        "available"
    }

    fn table(&self, schema: &str, name: &str) -> Option<&TableMeta> {
        self.tables.iter().find(|t| t.schema == schema && t.name == name)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    clusters: Vec<Cluster>,
    #[serde(default)]
    snapshots: Vec<Snapshot>,
}

/// What one statement did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub query_id: u64,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// For statements without rows (`COPY`, `INSERT` …): what happened, as Redshift says it.
    pub message: Option<String>,
    /// Bytes read from managed tables (after zone-map pruning) and from the lake by Spectrum.
    pub local_bytes: u64,
    pub spectrum_bytes: u64,
    /// For COPY: the rows it loaded.
    pub rows_loaded: Option<u64>,
    pub elapsed: Duration,
}

#[derive(Debug)]
pub struct Redshift {
    dir: PathBuf,
    path: PathBuf,
    clock: Arc<Clock>,
    lake: Arc<Lake>,
    catalog: Arc<Catalog>,
    streams: Arc<Streams>,
    state: Mutex<State>,
}

impl Redshift {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>, lake: Arc<Lake>, catalog: Arc<Catalog>, streams: Arc<Streams>) -> Result<Self> {
        let dir = workspace.dir("redshift")?;
        let path = dir.join("clusters.json");
        let state = read_json(&path)?.unwrap_or_default();
        Ok(Self { dir, path, clock, lake, catalog, streams, state: Mutex::new(state) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to the state and saves it; nothing changes when either fails.
    fn mutate<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        let mut next = State { clusters: state.clusters.clone(), snapshots: state.snapshots.clone() };
        let value = change(&mut next)?;
        write_json(&self.path, &next)?;
        *state = next;
        Ok(value)
    }

    /// ≙ CreateCluster.
    pub fn create_cluster(&self, name: &str, nodes: u32, retention_days: u32) -> Result<Cluster> {
        validate_identifier("cluster", name)?;
        if !(1..=32).contains(&nodes) {
            return Err(service_err!(InvalidParameterValue, "--nodes {nodes}: a cluster has 1 to 32 nodes"));
        }
        if retention_days > 35 {
            return Err(service_err!(InvalidRetentionPeriod, "automated snapshot retention is 0 to 35 days, not {retention_days}"));
        }
        let now = self.clock.now();
        self.mutate(|state| {
            if state.clusters.iter().any(|c| c.name == name) {
                return Err(service_err!(ClusterAlreadyExists, "cluster {name} already exists"));
            }
            let cluster = Cluster {
                name: name.to_string(),
                nodes,
                created: now,
                schemas: vec![DEFAULT_SCHEMA.to_string()],
                external_schemas: Vec::new(),
                tables: Vec::new(),
                load_errors: Vec::new(),
                last_query: 0,
                unload_log: Vec::new(),
                automated_retention_days: retention_days,
                last_automated: Some(now),
                changed_bytes: 0,
            };
            state.clusters.push(cluster.clone());
            Ok(cluster)
        })
    }

    /// ≙ DescribeClusters.
    pub fn clusters(&self) -> Vec<Cluster> {
        self.lock().clusters.clone()
    }

    pub fn describe(&self, name: &str) -> Result<Cluster> {
        let state = self.lock();
        find(&state, name).map(|i| state.clusters[i].clone())
    }

    /// ≙ DeleteCluster: the cluster, its managed storage and its automated snapshots are
    /// gone; a final snapshot (manual) is taken first when asked for.
    pub fn delete_cluster(&self, name: &str, final_snapshot: Option<&str>) -> Result<Cluster> {
        if let Some(id) = final_snapshot {
            self.create_snapshot(name, id)?;
        }
        let (removed, automated) = self.mutate(|state| {
            let i = find(state, name)?;
            let c = state.clusters.remove(i);
            let automated: Vec<Snapshot> = state.snapshots.iter().filter(|s| s.cluster == c.name && s.snapshot_type == SnapshotType::Automated).cloned().collect();
            state.snapshots.retain(|s| !(s.cluster == c.name && s.snapshot_type == SnapshotType::Automated));
            Ok((c, automated))
        })?;
        for s in automated {
            let _ = std::fs::remove_dir_all(self.snapshot_dir(&s.id));
        }
        let dir = self.dir.join(&removed.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        }
        Ok(removed)
    }

    fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.dir.join("snapshots").join(id)
    }

    /// ≙ CreateClusterSnapshot: a manual snapshot, kept until deleted.
    pub fn create_snapshot(&self, cluster: &str, id: &str) -> Result<Snapshot> {
        validate_identifier("snapshot", id)?;
        if self.lock().snapshots.iter().any(|s| s.id == id) {
            return Err(service_err!(ClusterSnapshotAlreadyExists, "snapshot {id} already exists"));
        }
        let c = self.describe(cluster)?;
        self.take_snapshot(&c, id, SnapshotType::Manual, self.clock.now(), None)
    }

    /// Links the cluster's table files into the snapshot's directory and records it.
    fn take_snapshot(&self, c: &Cluster, id: &str, snapshot_type: SnapshotType, at: DateTime<Utc>, expires: Option<DateTime<Utc>>) -> Result<Snapshot> {
        let target = self.snapshot_dir(id);
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| crate::Error::io(&target, e))?;
        }
        for t in &c.tables {
            let version = format!("v{}", t.version);
            link_dir(&self.table_dir(&c.name, t).join(&version), &target.join(format!("{}.{}", t.schema, t.name)).join(&version))?;
        }
        let snapshot = Snapshot {
            id: id.to_string(),
            cluster: c.name.clone(),
            snapshot_type,
            created: at,
            expires,
            bytes: c.tables.iter().map(|t| t.bytes).sum(),
            state: c.clone(),
        };
        let recorded = snapshot.clone();
        self.mutate(|state| {
            state.snapshots.push(recorded);
            Ok(())
        })?;
        Ok(snapshot)
    }

    /// ≙ DescribeClusterSnapshots, oldest first; of one cluster when named.
    pub fn snapshots(&self, cluster: Option<&str>) -> Vec<Snapshot> {
        self.lock().snapshots.iter().filter(|s| cluster.is_none_or(|c| s.cluster == c)).cloned().collect()
    }

    /// ≙ DeleteClusterSnapshot (manual snapshots; automated ones expire).
    pub fn delete_snapshot(&self, id: &str) -> Result<Snapshot> {
        let removed = self.mutate(|state| {
            let i = find_snapshot(state, id)?;
            if state.snapshots[i].snapshot_type == SnapshotType::Automated {
                return Err(service_err!(InvalidClusterSnapshotState, "{id} is an automated snapshot: it is deleted when its retention period ends"));
            }
            Ok(state.snapshots.remove(i))
        })?;
        let _ = std::fs::remove_dir_all(self.snapshot_dir(id));
        Ok(removed)
    }

    /// ≙ RestoreFromClusterSnapshot: a new cluster with the snapshot's tables.
    pub fn restore(&self, id: &str, cluster: &str) -> Result<Cluster> {
        validate_identifier("cluster", cluster)?;
        let snapshot = {
            let state = self.lock();
            if state.clusters.iter().any(|c| c.name == cluster) {
                return Err(service_err!(ClusterAlreadyExists, "cluster {cluster} already exists"));
            }
            state.snapshots[find_snapshot(&state, id)?].clone()
        };
        let now = self.clock.now();
        let mut restored = snapshot.state.clone();
        restored.name = cluster.to_string();
        restored.created = now;
        restored.last_automated = Some(now);
        restored.changed_bytes = 0;
        restored.load_errors.clear();
        for t in &restored.tables {
            let version = format!("v{}", t.version);
            link_dir(&self.snapshot_dir(id).join(format!("{}.{}", t.schema, t.name)).join(&version), &self.table_dir(cluster, t).join(&version))?;
        }
        let created = restored.clone();
        self.mutate(|state| {
            state.clusters.push(restored);
            Ok(())
        })?;
        Ok(created)
    }

    /// Takes the automated snapshots that are due at `now` (each at the moment it was due)
    /// and deletes the expired ones; returns what it did.
    pub fn run_due(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let mut reports = Vec::new();
        let clusters = self.clusters();
        for c in clusters.iter().filter(|c| c.automated_retention_days > 0) {
            let interval = chrono::Duration::hours(AUTOMATED_INTERVAL_HOURS);
            let mut last = c.last_automated.unwrap_or(c.created);
            let by_change = c.changed_bytes >= AUTOMATED_CHANGE_BYTES_PER_NODE * u64::from(c.nodes);
            let mut due = Vec::new();
            while last + interval <= now {
                last += interval;
                due.push(last);
            }
            if due.is_empty() && by_change {
                due.push(now);
            }
            // only the latest snapshot of a run of missed ones matters: the data is the same
            if let Some(at) = due.last().copied() {
                let id = format!("rs:{}-{}", c.name, at.format("%Y-%m-%d-%H-%M-%S"));
                let expires = at + chrono::Duration::days(i64::from(c.automated_retention_days));
                if expires > now {
                    let current = self.describe(&c.name)?;
                    self.take_snapshot(&current, &id, SnapshotType::Automated, at, Some(expires))?;
                    reports.push(format!("Redshift took automated snapshot {id} of {}", c.name));
                }
                self.mutate(|state| {
                    let i = find(state, &c.name)?;
                    state.clusters[i].last_automated = Some(at);
                    state.clusters[i].changed_bytes = 0;
                    Ok(())
                })?;
            }
        }
        let expired: Vec<Snapshot> = self.lock().snapshots.iter().filter(|s| s.expires.is_some_and(|e| e <= now)).cloned().collect();
        if !expired.is_empty() {
            self.mutate(|state| {
                state.snapshots.retain(|s| s.expires.is_none_or(|e| e > now));
                Ok(())
            })?;
            for s in expired {
                let _ = std::fs::remove_dir_all(self.snapshot_dir(&s.id));
                reports.push(format!("Redshift deleted automated snapshot {} (retention ended)", s.id));
            }
        }
        Ok(reports)
    }

    /// Runs each statement of `sql` on the cluster in order; stops at the first failure.
    pub async fn run(&self, cluster: &str, sql: &str) -> Result<Vec<Outcome>> {
        let statements = split_statements(sql)?;
        if statements.is_empty() {
            return Err(service_err!(ValidationException, "there is no SQL statement to run"));
        }
        let mut outcomes = Vec::new();
        for text in statements {
            outcomes.push(self.run_one(cluster, &text).await?);
        }
        Ok(outcomes)
    }

    async fn run_one(&self, cluster: &str, text: &str) -> Result<Outcome> {
        let started = Instant::now();
        let query_id = self.mutate(|state| {
            let i = find(state, cluster)?;
            state.clusters[i].last_query += 1;
            Ok(state.clusters[i].last_query)
        })?;
        let mut outcome = match parse(text)? {
            Parsed::ExternalSchema { name, database, if_not_exists } => self.create_external_schema(cluster, &name, &database, if_not_exists)?,
            Parsed::Statement(statement, maxerror) => self.statement(cluster, *statement, maxerror, query_id).await?,
        };
        outcome.query_id = query_id;
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    async fn statement(&self, cluster: &str, statement: Statement, maxerror: Option<u64>, query_id: u64) -> Result<Outcome> {
        match statement {
            Statement::CreateTable(create) => self.create_table(cluster, create).await,
            Statement::CreateSchema { schema_name, if_not_exists, .. } => {
                let name = lower(&schema_name.to_string());
                self.mutate(|state| {
                    let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
                    if c.schemas.contains(&name) || c.external_schemas.iter().any(|s| s.name == name) {
                        if if_not_exists {
                            return Ok(());
                        }
                        return Err(service_err!(DuplicateSchema, "schema \"{name}\" already exists"));
                    }
                    c.schemas.push(name.clone());
                    Ok(())
                })?;
                Ok(message("CREATE SCHEMA"))
            }
            Statement::Drop { object_type, if_exists, names, .. } if matches!(object_type, ObjectType::Table | ObjectType::Schema) => {
                for name in &names {
                    let (schema, table) = split_name(name);
                    let removed = self.mutate(|state| {
                        let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
                        if object_type == ObjectType::Schema {
                            let name = table.clone();
                            let before = c.schemas.len() + c.external_schemas.len();
                            c.external_schemas.retain(|s| s.name != name);
                            if name != DEFAULT_SCHEMA {
                                if c.tables.iter().any(|t| t.schema == name) {
                                    return Err(service_err!(DependentObjectsStillExist, "cannot drop schema {name} because other objects depend on it"));
                                }
                                c.schemas.retain(|s| *s != name);
                            }
                            if before == c.schemas.len() + c.external_schemas.len() && !if_exists {
                                return Err(service_err!(InvalidSchemaName, "schema \"{name}\" does not exist"));
                            }
                            return Ok(None);
                        }
                        match c.tables.iter().position(|t| t.schema == schema && t.name == table) {
                            Some(i) => Ok(Some(c.tables.remove(i))),
                            None if if_exists => Ok(None),
                            None => Err(missing_table(c, &schema, &table)),
                        }
                    })?;
                    if let Some(t) = removed {
                        let _ = std::fs::remove_dir_all(self.table_dir(cluster, &t));
                    }
                }
                Ok(message(if object_type == ObjectType::Schema { "DROP SCHEMA" } else { "DROP TABLE" }))
            }
            Statement::Insert(insert) => self.insert(cluster, insert).await,
            Statement::Delete(delete) => self.delete(cluster, delete).await,
            Statement::Update(update) => self.update(cluster, update).await,
            Statement::Copy { source, to: false, target, legacy_options, .. } => {
                let CopySource::Table { table_name, columns } = source else {
                    return Err(service_err!(SyntaxError, "COPY loads a table: COPY table FROM 's3://bucket/prefix' …"));
                };
                let CopyTarget::File { filename } = target else {
                    return Err(service_err!(SyntaxError, "COPY … FROM takes an s3:// location in quotes"));
                };
                let columns: Vec<String> = columns.iter().map(|c| lower(&c.value)).collect();
                self.copy(cluster, &table_name, &columns, &filename, &legacy_options, maxerror.unwrap_or(0), query_id).await
            }
            Statement::Copy { to: true, .. } => Err(service_err!(SyntaxError, "COPY … TO is not Redshift: write query results to the lake with UNLOAD ('SELECT …') TO 's3://…'")),
            Statement::Unload { query, query_text, to, options, .. } => {
                let sql = match (query, query_text) {
                    (Some(q), _) => q.to_string(),
                    (None, Some(text)) => text,
                    (None, None) => return Err(service_err!(SyntaxError, "UNLOAD needs a query: UNLOAD ('SELECT …') TO 's3://…'")),
                };
                self.unload(cluster, &sql, &to.value, &options, query_id).await
            }
            Statement::Query(_) | Statement::Explain { .. } | Statement::ShowTables { .. } | Statement::ShowColumns { .. } | Statement::ExplainTable { .. } => {
                let text = statement.to_string();
                self.query(cluster, &text).await
            }
            other => Err(service_err!(FeatureNotSupported, "{} is not supported on a Lakebook Redshift cluster", statement_kind(&other))
                .with_hint("supported: CREATE TABLE [AS], CREATE [EXTERNAL] SCHEMA, INSERT, UPDATE, DELETE, DROP, COPY, UNLOAD, SELECT")),
        }
    }

    /// Runs a query and reports the bytes its scans read, split between managed storage and
    /// the lake (Spectrum).
    async fn query(&self, cluster: &str, sql: &str) -> Result<Outcome> {
        let c = self.describe(cluster)?;
        let ctx = self.context(&c)?;
        let sql = &top_as_limit(sql);
        let df = ctx.sql(sql).await.map_err(|e| self.sql_error(&c, e, sql))?;
        let plan = df.create_physical_plan().await.map_err(|e| self.sql_error(&c, e, sql))?;
        let batches = collect(plan.clone(), ctx.task_ctx()).await.map_err(|e| self.sql_error(&c, e, sql))?;
        let (local_bytes, spectrum_bytes) = scanned(plan.as_ref());
        Ok(Outcome { query_id: 0, schema: plan.schema(), batches, message: None, local_bytes, spectrum_bytes, rows_loaded: None, elapsed: Duration::ZERO })
    }

    fn sql_error(&self, c: &Cluster, e: datafusion::error::DataFusionError, sql: &str) -> crate::Error {
        let err = crate::sql::sql_error(e, sql);
        let text = err.message();
        if let Some(name) = text.split("table '").nth(1).and_then(|r| r.split('\'').next()) {
            let name = name.trim_start_matches(&format!("{DATABASE}.")).to_string();
            let mut known: Vec<String> = c.tables.iter().map(TableMeta::qualified).collect();
            known.extend(c.tables.iter().filter(|t| t.schema == DEFAULT_SCHEMA).map(|t| t.name.clone()));
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let mut err = service_err!(UndefinedTable, "relation \"{name}\" does not exist");
            if let Some(s) = closest(&name, &known) {
                err = err.with_hint(format!("did you mean {s}?"));
            }
            return err;
        }
        err
    }

    /// The cluster as DataFusion sees it: catalog `dev`, a schema per cluster schema with its
    /// managed tables (one partition per slice), Spectrum schemas from the Data Catalog, and
    /// the system tables in `public`.
    fn context(&self, c: &Cluster) -> Result<SessionContext> {
        let config = crate::sql::tuned_config()
            .with_default_catalog_and_schema(DATABASE, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            // One partition per slice, as the cluster's slices each scan their own data.
            .with_target_partitions(c.slices() as usize)
            .with_collect_statistics(true);
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udf(crate::sql::clock_fn::now_udf(self.clock.clone()));
        ctx.register_udf(last_query_udf(c.last_query.saturating_sub(1)));
        let catalog = MemoryCatalogProvider::new();
        let df = |e: datafusion::error::DataFusionError| internal_err!("the cluster's catalog: {e}");
        for schema in &c.schemas {
            let provider = MemorySchemaProvider::new();
            for t in c.tables.iter().filter(|t| &t.schema == schema) {
                provider.register_table(t.name.clone(), self.table_provider(c, t)?).map_err(df)?;
            }
            if schema == DEFAULT_SCHEMA {
                for (name, batch) in system_tables(c)? {
                    if c.table(DEFAULT_SCHEMA, name).is_none() {
                        provider.register_table(name.to_string(), Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(df)?)).map_err(df)?;
                    }
                }
            }
            catalog.register_schema(schema, Arc::new(provider)).map_err(df)?;
        }
        if !c.external_schemas.is_empty() {
            let glue = GlueCatalogProvider { catalog: self.catalog.clone(), lake: self.lake.clone(), temp_views: Arc::default(), streams: self.streams.clone() };
            for e in &c.external_schemas {
                if let Some(schema) = glue.schema(&e.database) {
                    catalog.register_schema(&e.name, schema).map_err(df)?;
                }
            }
        }
        ctx.register_catalog(DATABASE, Arc::new(catalog));
        Ok(ctx)
    }

    fn table_dir(&self, cluster: &str, t: &TableMeta) -> PathBuf {
        self.dir.join(cluster).join(format!("{}.{}", t.schema, t.name))
    }

    fn table_provider(&self, c: &Cluster, t: &TableMeta) -> Result<Arc<dyn datafusion::datasource::TableProvider>> {
        let dir = self.table_dir(&c.name, t).join(format!("v{}", t.version));
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        let url = ListingTableUrl::parse(format!("file://{}/", dir.display())).map_err(|e| internal_err!("{e}"))?;
        let mut options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        if !t.sortkey.is_empty() && t.diststyle != DistStyle::All {
            options = options.with_file_sort_order(vec![t.sortkey.iter().map(|k| col(k).sort(true, false)).collect()]);
        }
        // Strings are scanned as views (cheaper to decode and to group by), as the lake's
        // tables are; `expand_views_at_output` gives results plain strings.
        let schema = t.arrow_schema()?;
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| if f.data_type() == &DataType::Utf8 { f.as_ref().clone().with_data_type(DataType::Utf8View) } else { f.as_ref().clone() })
            .collect();
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(Arc::new(Schema::new(fields)));
        Ok(Arc::new(ListingTable::try_new(config).map_err(|e| internal_err!("{e}"))?))
    }

    fn create_external_schema(&self, cluster: &str, name: &str, database: &str, if_not_exists: bool) -> Result<Outcome> {
        if self.catalog.tables(database).is_err() {
            return Err(service_err!(EntityNotFoundException, "the Data Catalog has no database {database}")
                .with_hint(format!("create it with `%catalog create-database {database}` or run a crawler into it")));
        }
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
            if c.schemas.iter().any(|s| s == name) || c.external_schemas.iter().any(|s| s.name == name) {
                if if_not_exists {
                    return Ok(());
                }
                return Err(service_err!(DuplicateSchema, "schema \"{name}\" already exists"));
            }
            c.external_schemas.push(ExternalSchema { name: name.to_string(), database: database.to_string() });
            Ok(())
        })?;
        Ok(message("CREATE EXTERNAL SCHEMA"))
    }

    async fn create_table(&self, cluster: &str, create: ast::CreateTable) -> Result<Outcome> {
        let (schema, name) = split_name(&create.name);
        let c = self.describe(cluster)?;
        if !c.schemas.contains(&schema) {
            return Err(service_err!(InvalidSchemaName, "schema \"{schema}\" does not exist").with_hint(format!("CREATE SCHEMA {schema}")));
        }
        if c.table(&schema, &name).is_some() {
            if create.if_not_exists {
                return Ok(message("CREATE TABLE"));
            }
            return Err(service_err!(DuplicateTable, "relation \"{name}\" already exists"));
        }
        // CREATE TABLE new (LIKE old): the columns, distribution and sort key of `old`.
        if let Some(ast::CreateTableLikeKind::Parenthesized(like) | ast::CreateTableLikeKind::Plain(like)) = &create.like {
            let (from_schema, from_name) = split_name(&like.name);
            let source = c.table(&from_schema, &from_name).cloned().ok_or_else(|| missing_table(&c, &from_schema, &from_name))?;
            let meta = TableMeta { schema, name, version: 0, slice_rows: vec![0; c.slices() as usize], bytes: 0, created: self.clock.now(), ..source };
            self.commit(&c, meta, None, &[])?;
            return Ok(message("CREATE TABLE"));
        }
        let (columns, rows) = match &create.query {
            Some(query) => {
                let result = self.query(cluster, &query.to_string()).await?;
                let columns = result.schema.fields().iter().map(|f| Ok(Column { name: lower(f.name()), data_type: redshift_type_of(f.data_type())? })).collect::<Result<Vec<_>>>()?;
                (columns, Some(result.batches))
            }
            None => {
                let columns = create.columns.iter().map(|c| Ok(Column { name: lower(&c.name.value), data_type: redshift_type(&c.data_type)? })).collect::<Result<Vec<_>>>()?;
                (columns, None)
            }
        };
        if columns.is_empty() {
            return Err(service_err!(SyntaxError, "CREATE TABLE {name} needs columns"));
        }
        let named = |e: &ast::Expr, what: &str| -> Result<String> {
            let n = lower(&e.to_string());
            if columns.iter().any(|c| c.name == n) { Ok(n) } else { Err(service_err!(UndefinedColumn, "column \"{n}\" named in {what} does not exist")) }
        };
        let distkey = create.distkey.as_ref().map(|k| named(k, "DISTKEY")).transpose()?;
        let diststyle = match (&create.diststyle, &distkey) {
            (Some(ast::DistStyle::Key) | None, Some(_)) => DistStyle::Key,
            (Some(ast::DistStyle::Key), None) => return Err(service_err!(SyntaxError, "DISTSTYLE KEY needs DISTKEY(column)")),
            (Some(_), Some(_)) => return Err(service_err!(SyntaxError, "DISTKEY goes with DISTSTYLE KEY")),
            (Some(ast::DistStyle::Even), None) => DistStyle::Even,
            (Some(ast::DistStyle::All), None) => DistStyle::All,
            (Some(ast::DistStyle::Auto) | None, None) => DistStyle::Auto,
        };
        let sortkey = create.sortkey.iter().flatten().map(|k| named(k, "SORTKEY")).collect::<Result<Vec<_>>>()?;
        let meta = TableMeta {
            schema,
            name,
            columns,
            diststyle,
            distkey,
            sortkey,
            version: 0,
            slice_rows: vec![0; c.slices() as usize],
            bytes: 0,
            created: self.clock.now(),
        };
        let rows_loaded = match rows {
            Some(batches) => {
                let schema = meta.arrow_schema()?;
                let batches = batches.iter().map(|b| conform(b, &schema)).collect::<Result<Vec<_>>>()?;
                let n = batches.iter().map(RecordBatch::num_rows).sum::<usize>();
                self.commit(&c, meta, None, &batches)?;
                Some(n)
            }
            None => {
                self.commit(&c, meta, None, &[])?;
                None
            }
        };
        Ok(message(&match rows_loaded {
            Some(n) => format!("SELECT {n}"),
            None => "CREATE TABLE".to_string(),
        }))
    }

    /// Lays `batches` out as the table's next version and commits it; replaces `previous`.
    fn commit(&self, c: &Cluster, mut meta: TableMeta, previous: Option<&TableMeta>, batches: &[RecordBatch]) -> Result<TableMeta> {
        let schema = meta.arrow_schema()?;
        meta.version = previous.map_or(1, |p| p.version + 1);
        let dir = self.table_dir(&c.name, &meta).join(format!("v{}", meta.version));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        // Query results come with the scan's string types (views come out as LargeUtf8).
        let batches = batches.iter().map(|b| conform(b, &schema)).collect::<Result<Vec<_>>>()?;
        let all = concat_batches(&schema, &batches).map_err(|e| internal_err!("{e}"))?;
        let slices = if meta.diststyle == DistStyle::All { 1 } else { c.slices() as usize };
        let assignment = distribute(&meta, &all, slices)?;
        meta.slice_rows = vec![0; slices];
        meta.bytes = 0;
        for (s, rows) in assignment.iter().enumerate() {
            let indices = UInt64Array::from(rows.clone());
            let columns = all.columns().iter().map(|a| take(a.as_ref(), &indices, None)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| internal_err!("{e}"))?;
            let mut slice = RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?;
            if !meta.sortkey.is_empty() && slice.num_rows() > 1 {
                let keys: Vec<SortColumn> = meta.sortkey.iter().map(|k| SortColumn { values: slice.column_by_name(k).cloned().expect("sort key is a column"), options: None }).collect();
                let order = lexsort_to_indices(&keys, None).map_err(|e| internal_err!("{e}"))?;
                let columns = slice.columns().iter().map(|a| take(a.as_ref(), &order, None)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| internal_err!("{e}"))?;
                slice = RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?;
            }
            meta.slice_rows[s] = slice.num_rows() as u64;
            if slice.num_rows() == 0 {
                continue;
            }
            let bytes = parquet_bytes(&slice, ROW_GROUP_ROWS)?;
            meta.bytes += bytes.len() as u64;
            let path = dir.join(format!("slice-{s:04}.parquet"));
            std::fs::write(&path, &bytes).map_err(|e| crate::Error::io(&path, e))?;
        }
        if meta.diststyle == DistStyle::All {
            // every node holds the copy
            meta.bytes *= u64::from(c.nodes);
        }
        let committed = meta.clone();
        self.mutate(|state| {
            let i = find(state, &c.name)?;
            let cl = &mut state.clusters[i];
            cl.changed_bytes += meta.bytes;
            match cl.tables.iter().position(|t| t.schema == meta.schema && t.name == meta.name) {
                Some(i) => cl.tables[i] = meta,
                None => cl.tables.push(meta),
            }
            Ok(())
        })?;
        if let Some(p) = previous {
            let _ = std::fs::remove_dir_all(self.table_dir(&c.name, p).join(format!("v{}", p.version)));
        }
        Ok(committed)
    }

    fn table_meta(&self, cluster: &str, name: &ast::ObjectName) -> Result<(Cluster, TableMeta)> {
        let c = self.describe(cluster)?;
        let (schema, table) = split_name(name);
        let t = c.table(&schema, &table).cloned().ok_or_else(|| missing_table(&c, &schema, &table))?;
        Ok((c, t))
    }

    async fn rows_of(&self, cluster: &str, select: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.query(cluster, select).await?.batches)
    }

    async fn insert(&self, cluster: &str, insert: ast::Insert) -> Result<Outcome> {
        let TableObject::TableName(name) = &insert.table else {
            return Err(service_err!(SyntaxError, "INSERT INTO takes a table name"));
        };
        let (c, t) = self.table_meta(cluster, name)?;
        let source = insert.source.ok_or_else(|| service_err!(SyntaxError, "INSERT INTO {} needs VALUES (…) or a SELECT", t.qualified()))?;
        let incoming = self.query(cluster, &source.to_string()).await?;
        let targets: Vec<String> = if insert.columns.is_empty() {
            t.columns.iter().map(|c| c.name.clone()).collect()
        } else {
            insert.columns.iter().map(|c| lower(&c.to_string())).collect()
        };
        if let Some(bad) = targets.iter().find(|n| !t.columns.iter().any(|c| &c.name == *n)) {
            return Err(service_err!(UndefinedColumn, "column \"{bad}\" of relation \"{}\" does not exist", t.name));
        }
        if incoming.schema.fields().len() != targets.len() {
            return Err(service_err!(SyntaxError, "INSERT has {} expression(s) for {} target column(s)", incoming.schema.fields().len(), targets.len()));
        }
        let schema = t.arrow_schema()?;
        let mut new = Vec::new();
        for batch in &incoming.batches {
            let columns = schema
                .fields()
                .iter()
                .map(|f| match targets.iter().position(|n| n == f.name()) {
                    Some(i) => cast_column(batch.column(i), f.data_type(), f.name()),
                    None => Ok(new_null_array(f.data_type(), batch.num_rows())),
                })
                .collect::<Result<Vec<_>>>()?;
            new.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?);
        }
        let added: usize = new.iter().map(RecordBatch::num_rows).sum();
        let mut all = self.rows_of(cluster, &format!("SELECT * FROM {}", quoted(&t))).await?;
        all.extend(new);
        self.commit(&c, t.clone(), Some(&t), &all)?;
        Ok(message(&format!("INSERT 0 {added}")))
    }

    async fn delete(&self, cluster: &str, delete: ast::Delete) -> Result<Outcome> {
        let tables = match &delete.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let [only] = tables.as_slice() else {
            return Err(service_err!(FeatureNotSupported, "DELETE from one table at a time"));
        };
        let TableFactor::Table { name, .. } = &only.relation else {
            return Err(service_err!(SyntaxError, "DELETE FROM takes a table name"));
        };
        if delete.using.is_some() {
            return Err(service_err!(FeatureNotSupported, "DELETE … USING is not supported; use WHERE col IN (SELECT …)"));
        }
        let (c, t) = self.table_meta(cluster, name)?;
        let keep = match &delete.selection {
            Some(predicate) => format!("SELECT * FROM {} WHERE NOT coalesce(({predicate}), false)", quoted(&t)),
            None => format!("SELECT * FROM {} WHERE false", quoted(&t)),
        };
        let kept = self.rows_of(cluster, &keep).await?;
        let removed = t.rows() - kept.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        self.commit(&c, t.clone(), Some(&t), &kept)?;
        Ok(message(&format!("DELETE {removed}")))
    }

    async fn update(&self, cluster: &str, update: ast::Update) -> Result<Outcome> {
        let TableFactor::Table { name, .. } = &update.table.relation else {
            return Err(service_err!(SyntaxError, "UPDATE takes a table name"));
        };
        if update.from.is_some() {
            return Err(service_err!(FeatureNotSupported, "UPDATE … FROM is not supported; use a subquery in SET or WHERE"));
        }
        let (c, t) = self.table_meta(cluster, name)?;
        let mut sets: BTreeMap<String, String> = BTreeMap::new();
        for a in &update.assignments {
            let column = lower(&a.target.to_string());
            if !t.columns.iter().any(|c| c.name == column) {
                return Err(service_err!(UndefinedColumn, "column \"{column}\" of relation \"{}\" does not exist", t.name));
            }
            sets.insert(column, a.value.to_string());
        }
        let hit = update.selection.as_ref().map_or("true".to_string(), |p| format!("coalesce(({p}), false)"));
        let schema = t.arrow_schema()?;
        let select: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| match sets.get(f.name()) {
                Some(value) => format!("CASE WHEN {hit} THEN CAST(({value}) AS {}) ELSE \"{}\" END AS \"{}\"", sql_cast_type(f.data_type()), f.name(), f.name()),
                None => format!("\"{}\"", f.name()),
            })
            .collect();
        let rows = self.rows_of(cluster, &format!("SELECT {} FROM {}", select.join(", "), quoted(&t))).await?;
        let rows = rows.iter().map(|b| conform(b, &schema)).collect::<Result<Vec<_>>>()?;
        let counted = self.rows_of(cluster, &format!("SELECT count(*) FROM {} WHERE {hit}", quoted(&t))).await?;
        let changed = counted.first().and_then(|b| b.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().map(|a| a.value(0))).unwrap_or(0);
        self.commit(&c, t.clone(), Some(&t), &rows)?;
        Ok(message(&format!("UPDATE {changed}")))
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy(&self, cluster: &str, name: &ast::ObjectName, columns: &[String], from: &str, options: &[CopyLegacyOption], maxerror: u64, query_id: u64) -> Result<Outcome> {
        let (c, t) = self.table_meta(cluster, name)?;
        let format = CopyFormat::of(options)?;
        let uri = S3Uri::parse(from)?;
        let objects: Vec<S3Uri> = if options.iter().any(|o| matches!(o, CopyLegacyOption::Manifest { .. })) {
            self.manifest_entries(&uri).await?
        } else {
            let listing = self.lake.list(&uri, true).await?;
            let objects: Vec<S3Uri> = listing
                .objects
                .into_iter()
                .filter(|o| o.size > 0 || format.kind == Kind::Parquet)
                .map(|o| S3Uri { bucket: uri.bucket.clone(), key: o.key })
                .collect();
            if objects.is_empty() {
                return Err(service_err!(S3ServiceException, "The specified S3 prefix '{}' does not exist", uri.key).with_hint(format!("`%lake ls {from}` shows what is there")));
            }
            objects
        };
        let targets: Vec<String> = if columns.is_empty() { t.columns.iter().map(|c| c.name.clone()).collect() } else { columns.to_vec() };
        if let Some(bad) = targets.iter().find(|n| !t.columns.iter().any(|c| &c.name == *n)) {
            return Err(service_err!(UndefinedColumn, "column \"{bad}\" of relation \"{}\" does not exist", t.name));
        }
        let schema = t.arrow_schema()?;
        let now = self.clock.now();
        let mut loaded = Vec::new();
        let mut errors = Vec::new();
        for object_uri in &objects {
            let filename = object_uri.to_string();
            let raw = self.lake.get(object_uri).await?;
            let raw = format.decompress(raw, &filename)?;
            let rows = match &format.kind {
                Kind::Parquet => {
                    loaded.extend(parquet_rows(&raw, &schema, &targets, &filename)?);
                    continue;
                }
                Kind::Text { delimiter, csv, ignore_header } => text_rows(&raw, *delimiter, *csv, *ignore_header, targets.len()),
                Kind::Json => json_rows(&raw, &targets),
            };
            let (batch, bad) = rows_to_batch(&rows, &schema, &targets, &t, &format, &filename, query_id, now)?;
            errors.extend(bad);
            loaded.push(batch);
        }
        let loaded_rows: usize = loaded.iter().map(RecordBatch::num_rows).sum();
        let error_count = errors.len() as u64;
        if !errors.is_empty() {
            self.mutate(|state| {
                let i = find(state, cluster)?;
            let cl = &mut state.clusters[i];
                cl.load_errors.extend(errors.clone());
                let excess = cl.load_errors.len().saturating_sub(LOAD_ERRORS_KEPT);
                cl.load_errors.drain(..excess);
                Ok(())
            })?;
        }
        if error_count > maxerror {
            let first = &errors[0];
            return Err(service_err!(LoadError, "Load into table '{}' failed. Check 'stl_load_errors' system table for details.", t.name).with_hint(format!(
                "{error_count} bad row(s), MAXERROR {maxerror}; the first: {} line {}, column {}: {}",
                first.filename, first.line_number, first.colname, first.err_reason
            )));
        }
        let mut all = self.rows_of(cluster, &format!("SELECT * FROM {}", quoted(&t))).await?;
        all.extend(loaded);
        self.commit(&c, t.clone(), Some(&t), &all)?;
        let skipped = if error_count > 0 { format!(" {error_count} record(s) could not be loaded (see stl_load_errors).") } else { String::new() };
        let mut outcome = message(&format!(
            "Load into table '{}' completed, {loaded_rows} record(s) loaded successfully from {} file(s).{skipped}",
            t.name,
            objects.len()
        ));
        outcome.rows_loaded = Some(loaded_rows as u64);
        Ok(outcome)
    }

    /// The files a COPY … MANIFEST loads: the manifest's `entries`, each `{"url": "s3://…",
    /// "mandatory": bool}`. A mandatory file that is missing fails the COPY; an optional one
    /// is skipped.
    async fn manifest_entries(&self, manifest: &S3Uri) -> Result<Vec<S3Uri>> {
        #[derive(Deserialize)]
        struct Manifest {
            entries: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            url: String,
            #[serde(default)]
            mandatory: bool,
        }
        let raw = self.lake.get(manifest).await.map_err(|e| {
            if e.code() == "NoSuchKey" {
                service_err!(S3ServiceException, "the manifest {manifest} does not exist").with_hint("COPY … MANIFEST names the manifest file itself, not a prefix")
            } else {
                e
            }
        })?;
        let parsed: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| service_err!(InvalidParameterValue, "Manifest file is not in correct json format: {manifest}: {e}").with_hint(r#"{"entries": [{"url": "s3://bucket/key", "mandatory": true}]}"#))?;
        let mut files = Vec::new();
        for entry in parsed.entries {
            let uri = S3Uri::parse(&entry.url)?;
            match self.lake.head(&uri).await {
                Ok(_) => files.push(uri),
                Err(e) if e.code() == "NoSuchKey" && !entry.mandatory => {}
                Err(e) if e.code() == "NoSuchKey" => {
                    return Err(service_err!(S3ServiceException, "the manifest {manifest} lists the mandatory file {uri}, which does not exist"));
                }
                Err(e) => return Err(e),
            }
        }
        if files.is_empty() {
            return Err(service_err!(S3ServiceException, "the manifest {manifest} lists no file that exists"));
        }
        Ok(files)
    }

    async fn unload(&self, cluster: &str, sql: &str, to: &str, options: &[CopyLegacyOption], query_id: u64) -> Result<Outcome> {
        let started = self.clock.now();
        let target = S3Uri::parse(to)?;
        let mut parquet = false;
        let mut csv = false;
        let mut header = false;
        let mut delimiter = b'|';
        let mut allow_overwrite = false;
        let mut parallel = true;
        let mut partition: Option<ast::UnloadPartitionBy> = None;
        let mut extension: Option<String> = None;
        let mut json = false;
        let mut gzip = false;
        let mut manifest: Option<bool> = None;
        let mut add_quotes = false;
        let mut null_as = String::new();
        for option in options {
            match option {
                CopyLegacyOption::Parquet => parquet = true,
                CopyLegacyOption::Json(None) => json = true,
                CopyLegacyOption::Gzip => gzip = true,
                CopyLegacyOption::Manifest { verbose } => manifest = Some(*verbose),
                CopyLegacyOption::AddQuotes => add_quotes = true,
                CopyLegacyOption::Null(text) => null_as = text.clone(),
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    delimiter = b',';
                    header |= csv_options.contains(&ast::CopyLegacyCsvOption::Header);
                }
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Delimiter(d) => delimiter = *d as u8,
                CopyLegacyOption::AllowOverwrite => allow_overwrite = true,
                CopyLegacyOption::Parallel(on) => parallel = on.unwrap_or(true),
                CopyLegacyOption::PartitionBy(p) => partition = Some(p.clone()),
                CopyLegacyOption::Extension(e) => extension = Some(e.clone()),
                CopyLegacyOption::IamRole(_) | CopyLegacyOption::Region(_) | CopyLegacyOption::Credentials(_) | CopyLegacyOption::MaxFileSize(_) => {}
                other => return Err(service_err!(FeatureNotSupported, "UNLOAD option {other} is not supported")),
            }
        }
        if parquet && (header || csv) {
            return Err(service_err!(InvalidParameterValue, "PARQUET cannot be used with CSV or HEADER"));
        }
        if (parquet || json) && (csv || add_quotes || gzip && parquet || !null_as.is_empty()) {
            return Err(service_err!(InvalidParameterValue, "{} cannot be used with CSV, ADDQUOTES or NULL AS{}", if parquet { "PARQUET" } else { "JSON" }, if parquet { " or GZIP" } else { "" }));
        }
        if !allow_overwrite && !self.lake.list(&target, true).await?.objects.is_empty() {
            return Err(service_err!(InvalidParameterValue,
                "Specified unload destination on S3 is not empty. Consider using a different bucket / prefix, manually removing the target files in S3, or using the ALLOWOVERWRITE option."));
        }
        let c = self.describe(cluster)?;
        let result = self.query(cluster, sql).await?;
        let all = concat_batches(&result.schema, &result.batches).map_err(|e| internal_err!("{e}"))?;
        let rows = all.num_rows();
        let suffix = extension.map(|e| format!(".{}", e.trim_start_matches('.'))).unwrap_or_else(|| if parquet { ".parquet".into() } else { String::new() })
            + if gzip { ".gz" } else { "" };
        // (folder under the prefix, rows) per partition value
        let groups: Vec<(String, RecordBatch)> = match &partition {
            None => vec![(String::new(), all)],
            Some(p) => partition_rows(&all, p)?,
        };
        let mut files = 0;
        let mut written = Vec::new();
        for (folder, batch) in groups {
            let slices = if parallel { c.slices() as usize } else { 1 };
            let per = batch.num_rows().div_ceil(slices).max(1);
            for s in 0..slices {
                let start = s * per;
                if start >= batch.num_rows() && !(s == 0 && batch.num_rows() == 0) {
                    break;
                }
                let part = batch.slice(start.min(batch.num_rows()), per.min(batch.num_rows().saturating_sub(start)));
                let body = if parquet {
                    parquet_bytes(&part, 1 << 20)?
                } else if json {
                    json_lines(&part)?
                } else if add_quotes || !null_as.is_empty() {
                    quoted_text(&part, delimiter, add_quotes, &null_as, header)?
                } else {
                    delimited(&part, delimiter, csv, header)?
                };
                let body = if gzip { gzipped(&body)? } else { body };
                let name = if parallel { format!("{s:04}_part_00{suffix}") } else { format!("000{suffix}") };
                let key = if folder.is_empty() { format!("{}{name}", target.key) } else { format!("{}{folder}{name}", folder_prefix(&target.key)) };
                let uri = S3Uri { bucket: target.bucket.clone(), key };
                let size = body.len() as u64;
                self.lake.put(&uri, body).await?;
                written.push(UnloadLog { query: query_id, path: uri.to_string(), start_time: started, end_time: self.clock.now(), line_count: part.num_rows() as u64, transfer_size: size });
                files += 1;
            }
        }
        if let Some(verbose) = manifest {
            // <prefix>manifest: the files written, as COPY … MANIFEST reads them (VERBOSE adds sizes).
            let entries: Vec<serde_json::Value> = written
                .iter()
                .map(|w| if verbose { serde_json::json!({ "url": w.path, "meta": { "content_length": w.transfer_size, "record_count": w.line_count } }) } else { serde_json::json!({ "url": w.path }) })
                .collect();
            let body = serde_json::to_vec_pretty(&serde_json::json!({ "entries": entries })).map_err(|e| internal_err!("{e}"))?;
            self.lake.put(&S3Uri { bucket: target.bucket.clone(), key: format!("{}manifest", target.key) }, Bytes::from(body)).await?;
        }
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let log = &mut state.clusters[i].unload_log;
            log.extend(written);
            let excess = log.len().saturating_sub(LOAD_ERRORS_KEPT);
            log.drain(..excess);
            Ok(())
        })?;
        Ok(Outcome {
            message: Some(format!("UNLOAD completed, {rows} record(s) unloaded successfully to {files} file(s) under {to}.")),
            local_bytes: result.local_bytes,
            spectrum_bytes: result.spectrum_bytes,
            ..message("")
        })
    }
}

fn find(state: &State, name: &str) -> Result<usize> {
    state.clusters.iter().position(|c| c.name == name).ok_or_else(|| {
        let names: Vec<&str> = state.clusters.iter().map(|c| c.name.as_str()).collect();
        let mut err = service_err!(ClusterNotFound, "cluster {name} not found");
        err = match closest(name, &names) {
            Some(n) => err.with_hint(format!("did you mean {n}?")),
            None => err.with_hint("create one with `%redshift create NAME --nodes 2`"),
        };
        err
    })
}

fn find_snapshot(state: &State, id: &str) -> Result<usize> {
    state.snapshots.iter().position(|s| s.id == id).ok_or_else(|| {
        let ids: Vec<&str> = state.snapshots.iter().map(|s| s.id.as_str()).collect();
        let err = service_err!(ClusterSnapshotNotFound, "snapshot {id} not found");
        match closest(id, &ids) {
            Some(s) => err.with_hint(format!("did you mean {s}?")),
            None => err.with_hint("`%redshift snapshots` lists them"),
        }
    })
}

/// Hard-links every file of `from` into `to` (table versions are immutable), copying where
/// links are not possible.
fn link_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| crate::Error::io(to, e))?;
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::Error::io(from, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| crate::Error::io(from, e))?;
        let target = to.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target).map_err(|e| crate::Error::io(&target, e))?;
        }
    }
    Ok(())
}

fn missing_table(c: &Cluster, schema: &str, table: &str) -> crate::Error {
    let names: Vec<String> = c.tables.iter().map(TableMeta::qualified).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut err = service_err!(UndefinedTable, "relation \"{schema}.{table}\" does not exist");
    if let Some(n) = closest(&format!("{schema}.{table}"), &names) {
        err = err.with_hint(format!("did you mean {n}?"));
    }
    err
}

fn validate_identifier(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(service_err!(InvalidParameterValue, "{what} identifier {name:?}: 1-63 lowercase letters, digits or hyphens, starting with a letter"))
    }
}

fn message(text: &str) -> Outcome {
    Outcome {
        query_id: 0,
        schema: Arc::new(Schema::empty()),
        batches: Vec::new(),
        message: Some(text.to_string()),
        local_bytes: 0,
        spectrum_bytes: 0,
        rows_loaded: None,
        elapsed: Duration::ZERO,
    }
}

fn lower(s: &str) -> String {
    s.trim_matches('"').to_lowercase()
}

/// `schema.table` or `table` (in `public`), folded to lower case as Redshift does.
fn split_name(name: &ast::ObjectName) -> (String, String) {
    let parts: Vec<String> = name.0.iter().map(|p| lower(&p.to_string())).collect();
    match parts.as_slice() {
        [.., schema, table] => (schema.clone(), table.clone()),
        [table] => (DEFAULT_SCHEMA.to_string(), table.clone()),
        [] => (DEFAULT_SCHEMA.to_string(), String::new()),
    }
}

fn quoted(t: &TableMeta) -> String {
    format!("\"{}\".\"{}\"", t.schema, t.name)
}

fn statement_kind(statement: &Statement) -> String {
    statement.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase()
}

enum Parsed {
    ExternalSchema { name: String, database: String, if_not_exists: bool },
    Statement(Box<Statement>, Option<u64>),
}

fn words(tokens: &[Token]) -> Vec<&Token> {
    tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect()
}

fn is_word(token: Option<&&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word(Word { value, quote_style: None, .. })) if value.eq_ignore_ascii_case(keyword))
}

/// The statements of `sql`, split at top-level semicolons by sqlparser's tokenizer.
fn split_statements(sql: &str) -> Result<Vec<String>> {
    let dialect = RedshiftSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().map_err(|e| service_err!(SyntaxError, "{e}"))?;
    let mut statements = Vec::new();
    let mut current = String::new();
    for token in tokens {
        if token == Token::SemiColon {
            statements.push(std::mem::take(&mut current));
        } else {
            current.push_str(&sql_text(&token));
        }
    }
    statements.push(current);
    Ok(statements.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// A token as SQL text that tokenizes back to the same token. sqlparser's `Display` writes a
/// string literal's (unescaped) value between quotes as it is, so `'a''b'` or `'\'OH\''`
/// would come back broken: quotes inside are doubled again here.
fn sql_text(token: &Token) -> String {
    match token {
        Token::SingleQuotedString(s) => format!("'{}'", s.replace('\'', "''")),
        other => other.to_string(),
    }
}

/// `pg_last_query_id()`: the query before the one running (each statement takes the next id
/// before it runs).
fn last_query_udf(id: u64) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    create_udf(
        "pg_last_query_id",
        vec![],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(datafusion::scalar::ScalarValue::Int64(Some(id as i64))))),
    )
}

/// `SELECT TOP n …` (Redshift's spelling, which DataFusion does not plan) as `SELECT … LIMIT n`.
fn top_as_limit(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&RedshiftSqlDialect {}, sql).tokenize() else { return sql.to_string() };
    let significant: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i], Token::Whitespace(_))).collect();
    let word = |i: usize, k: &str| matches!(&tokens[i], Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    match significant.as_slice() {
        [select, top, n, ..] if word(*select, "SELECT") && word(*top, "TOP") && matches!(tokens[*n], Token::Number(..)) => {
            let limit = tokens[*n].to_string();
            let mut text: String = tokens.iter().enumerate().filter(|(i, _)| i != top && i != n).map(|(_, t)| sql_text(t)).collect();
            text = text.trim_end().trim_end_matches(';').to_string();
            format!("{text} LIMIT {limit}")
        }
        _ => sql.to_string(),
    }
}

/// Redshift's column attributes that sqlparser does not parse — `DISTKEY`, `SORTKEY`,
/// `ENCODE codec`, `COMPOUND` / `INTERLEAVED` before a table's SORTKEY — are taken out of a
/// CREATE TABLE's tokens; a column's DISTKEY / SORTKEY become the table's `DISTKEY(col)` /
/// `SORTKEY(col, …)` at the end. (Compression encodings do not apply to Parquet slices, and
/// an interleaved sort key is laid out as a compound one.)
fn column_attributes(tokens: Vec<Token>) -> Vec<Token> {
    let w = words(&tokens);
    if !(is_word(w.first(), "CREATE") && (is_word(w.get(1), "TABLE") || is_word(w.get(2), "TABLE"))) {
        return tokens;
    }
    let keyword = |t: &Token, k: &str| matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(k));
    let mut out = Vec::with_capacity(tokens.len());
    let (mut depth, mut column, mut distkey, mut sortkey) = (0usize, None::<String>, None::<String>, Vec::<String>::new());
    let mut at_column_start = false;
    let mut has_table_distkey = false;
    let mut has_table_sortkey = false;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        match t {
            Token::LParen => {
                depth += 1;
                at_column_start = depth == 1;
            }
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 1 => at_column_start = true,
            Token::Word(word) if depth == 1 && at_column_start => {
                column = Some(word.value.to_lowercase());
                at_column_start = false;
            }
            _ => {}
        }
        if depth == 1 && column.is_some() && (keyword(t, "DISTKEY") || keyword(t, "SORTKEY")) && !matches!(tokens.get(i + 1), Some(Token::LParen)) {
            let name = column.clone().unwrap_or_default();
            if keyword(t, "DISTKEY") { distkey = Some(name) } else { sortkey.push(name) }
            i += 1;
            continue;
        }
        if depth == 1 && keyword(t, "ENCODE") {
            // ENCODE <whitespace> codec
            i += 1;
            while matches!(tokens.get(i), Some(Token::Whitespace(_))) {
                i += 1;
            }
            i += 1;
            continue;
        }
        if depth == 0 && (keyword(t, "COMPOUND") || keyword(t, "INTERLEAVED")) {
            i += 1;
            continue;
        }
        if depth == 0 && keyword(t, "DISTKEY") {
            has_table_distkey = true;
        }
        if depth == 0 && keyword(t, "SORTKEY") {
            has_table_sortkey = true;
        }
        out.push(t.clone());
        i += 1;
    }
    let word = |s: &str| Token::make_word(s, None);
    if let Some(k) = distkey.filter(|_| !has_table_distkey) {
        out.extend([Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space), word("DISTKEY"), Token::LParen, word(&k), Token::RParen]);
    }
    if !sortkey.is_empty() && !has_table_sortkey {
        out.extend([Token::Whitespace(datafusion::sql::sqlparser::tokenizer::Whitespace::Space), word("SORTKEY"), Token::LParen]);
        for (n, k) in sortkey.iter().enumerate() {
            if n > 0 {
                out.push(Token::Comma);
            }
            out.push(word(k));
        }
        out.push(Token::RParen);
    }
    out
}

/// Parses one statement. `CREATE EXTERNAL SCHEMA … FROM DATA CATALOG` and COPY's `MAXERROR`
/// are read from the tokens (sqlparser does not know them); the rest is sqlparser's Redshift
/// dialect.
fn parse(text: &str) -> Result<Parsed> {
    let dialect = RedshiftSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text).tokenize().map_err(|e| service_err!(SyntaxError, "{e}"))?;
    let w = words(&tokens);
    if is_word(w.first(), "CREATE") && is_word(w.get(1), "EXTERNAL") && is_word(w.get(2), "SCHEMA") {
        let mut i = 3;
        let if_not_exists = is_word(w.get(3), "IF") && is_word(w.get(4), "NOT") && is_word(w.get(5), "EXISTS");
        if if_not_exists {
            i = 6;
        }
        let name = match w.get(i) {
            Some(Token::Word(word)) => word.value.to_lowercase(),
            _ => return Err(service_err!(SyntaxError, "CREATE EXTERNAL SCHEMA needs a name")),
        };
        if !(is_word(w.get(i + 1), "FROM") && is_word(w.get(i + 2), "DATA") && is_word(w.get(i + 3), "CATALOG") && is_word(w.get(i + 4), "DATABASE")) {
            return Err(service_err!(SyntaxError, "write CREATE EXTERNAL SCHEMA {name} FROM DATA CATALOG DATABASE 'db' [IAM_ROLE …]"));
        }
        let database = match w.get(i + 5) {
            Some(Token::SingleQuotedString(db)) => db.clone(),
            _ => return Err(service_err!(SyntaxError, "the Data Catalog database goes in quotes: DATABASE 'web'")),
        };
        return Ok(Parsed::ExternalSchema { name, database, if_not_exists });
    }
    let mut maxerror = None;
    let mut kept: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut rest = tokens.into_iter().peekable();
    while let Some(token) = rest.next() {
        if matches!(&token, Token::Word(word) if word.value.eq_ignore_ascii_case("MAXERROR") && word.quote_style.is_none()) {
            let mut skipped = Vec::new();
            while let Some(next) = rest.next_if(|t| matches!(t, Token::Whitespace(_)) || matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("AS"))) {
                skipped.push(next);
            }
            match rest.next() {
                Some(Token::Number(n, _)) => maxerror = Some(n.parse().map_err(|_| service_err!(SyntaxError, "MAXERROR takes a whole number"))?),
                _ => return Err(service_err!(SyntaxError, "MAXERROR takes a whole number")),
            }
            continue;
        }
        kept.push(token);
    }
    let text: String = column_attributes(kept).iter().map(sql_text).collect();
    let mut statements = Parser::new(&dialect).try_with_sql(&text).and_then(|mut p| p.parse_statements()).map_err(|e| {
        crate::sql::sql_error(datafusion::error::DataFusionError::SQL(Box::new(e), None), &text)
    })?;
    match statements.len() {
        1 => Ok(Parsed::Statement(Box::new(statements.remove(0)), maxerror)),
        _ => Err(service_err!(SyntaxError, "one statement at a time")),
    }
}

/// A column type as Redshift names it, from the DDL.
fn redshift_type(t: &SqlType) -> Result<String> {
    let length = |n: &Option<ast::CharacterLength>, default: u64| match n {
        Some(ast::CharacterLength::IntegerLength { length, .. }) => *length,
        Some(ast::CharacterLength::Max) => 65535,
        None => default,
    };
    let text = match t {
        SqlType::SmallInt(_) | SqlType::Int2(_) => "smallint".to_string(),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => "integer".to_string(),
        SqlType::BigInt(_) | SqlType::Int8(_) => "bigint".to_string(),
        SqlType::Real | SqlType::Float4 => "real".to_string(),
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 | SqlType::Float(_) => "double precision".to_string(),
        SqlType::Boolean | SqlType::Bool => "boolean".to_string(),
        SqlType::Varchar(n) | SqlType::CharacterVarying(n) | SqlType::Nvarchar(n) => format!("character varying({})", length(n, 256)),
        SqlType::Char(n) | SqlType::Character(n) => format!("character({})", length(n, 1)),
        SqlType::Text | SqlType::String(_) => "character varying(256)".to_string(),
        SqlType::Date => "date".to_string(),
        SqlType::Timestamp(_, tz) => {
            if matches!(tz, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) { "timestamp with time zone".to_string() } else { "timestamp without time zone".to_string() }
        }
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => match info {
            ExactNumberInfo::PrecisionAndScale(p, s) => format!("numeric({p},{s})"),
            ExactNumberInfo::Precision(p) => format!("numeric({p},0)"),
            ExactNumberInfo::None => "numeric(18,0)".to_string(),
        },
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("timestamptz") => "timestamp with time zone".to_string(),
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("float4") => "real".to_string(),
        other => return Err(service_err!(FeatureNotSupported, "column type {other} is not supported").with_hint("use smallint, integer, bigint, real, double precision, numeric(p,s), boolean, varchar(n), char(n), date, timestamp or timestamptz")),
    };
    Ok(text)
}

/// The Redshift type of a query result column (CREATE TABLE AS).
fn redshift_type_of(t: &DataType) -> Result<String> {
    Ok(match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "character varying(65535)".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({},{s})", (*p).min(38)),
        other => return Err(service_err!(FeatureNotSupported, "a column of type {other} cannot be stored in a Redshift table")),
    })
}

/// The Arrow type a Redshift column is stored as.
pub fn arrow_type(redshift: &str) -> Result<DataType> {
    let t = redshift.to_ascii_lowercase();
    Ok(match t.as_str() {
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "double precision" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp without time zone" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp with time zone" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ if t.starts_with("character") => DataType::Utf8,
        _ if t.starts_with("numeric(") => {
            let inner = t.trim_start_matches("numeric(").trim_end_matches(')');
            let (p, s) = inner.split_once(',').ok_or_else(|| internal_err!("bad numeric type {t}"))?;
            DataType::Decimal128(p.trim().parse().map_err(|_| internal_err!("bad numeric type {t}"))?, s.trim().parse().map_err(|_| internal_err!("bad numeric type {t}"))?)
        }
        _ => return Err(internal_err!("unknown Redshift type {t}")),
    })
}

/// The declared length of a `character varying(n)` / `character(n)` column.
fn char_length(redshift: &str) -> Option<usize> {
    redshift.strip_prefix("character")?.split('(').nth(1)?.trim_end_matches(')').parse().ok()
}

fn sql_cast_type(t: &DataType) -> String {
    match t {
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        _ => "VARCHAR".into(),
    }
}

fn cast_column(array: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    cast_with_options(array.as_ref(), to, &CastOptions { safe: false, ..CastOptions::default() })
        .map_err(|e| service_err!(InvalidParameterValue, "column \"{name}\" is of type {to} but the value does not convert: {e}"))
}

/// A batch with exactly `schema`'s columns and types (by position).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema.fields().iter().enumerate().map(|(i, f)| cast_column(batch.column(i), f.data_type(), f.name())).collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))
}

/// Which rows go to which slice.
fn distribute(meta: &TableMeta, all: &RecordBatch, slices: usize) -> Result<Vec<Vec<u64>>> {
    let mut out = vec![Vec::new(); slices];
    match (meta.diststyle, &meta.distkey) {
        (DistStyle::Key, Some(key)) => {
            let column = all.column_by_name(key).cloned().ok_or_else(|| internal_err!("DISTKEY {key} is not a column"))?;
            let converter = RowConverter::new(vec![SortField::new(column.data_type().clone())]).map_err(|e| internal_err!("{e}"))?;
            let rows = converter.convert_columns(&[column]).map_err(|e| internal_err!("{e}"))?;
            for (i, row) in rows.iter().enumerate() {
                let slice = crc32fast::hash(row.as_ref()) as usize % slices;
                out[slice].push(i as u64);
            }
        }
        (DistStyle::All, _) => out[0] = (0..all.num_rows() as u64).collect(),
        _ => {
            for i in 0..all.num_rows() {
                out[i % slices].push(i as u64);
            }
        }
    }
    Ok(out)
}

fn parquet_bytes(batch: &RecordBatch, row_group: usize) -> Result<Bytes> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).map_err(|e| internal_err!("parquet: {e}"))?;
    writer.write(batch).map_err(|e| internal_err!("parquet: {e}"))?;
    writer.close().map_err(|e| internal_err!("parquet: {e}"))?;
    Ok(Bytes::from(out))
}

/// Bytes read by the plan's scans: (managed storage, lake).
fn scanned(plan: &dyn ExecutionPlan) -> (u64, u64) {
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    let (mut local, mut lake) = (0, 0);
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        let bytes = crate::sql::bytes_scanned(plan);
        let is_lake = exec.data_source().downcast_ref::<FileScanConfig>().is_some_and(|c| c.object_store_url.as_str().starts_with("s3://"));
        if is_lake {
            lake += bytes;
        } else {
            local += bytes;
        }
        return (local, lake);
    }
    for child in plan.children() {
        let (l, s) = scanned(child.as_ref());
        local += l;
        lake += s;
    }
    (local, lake)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Text { delimiter: u8, csv: bool, ignore_header: u64 },
    Json,
    Parquet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CopyFormat {
    kind: Kind,
    gzip: bool,
    bzip2: bool,
    zstd: bool,
    null_as: Option<String>,
    empty_as_null: bool,
    blanks_as_null: bool,
    truncate: bool,
}

impl CopyFormat {
    fn of(options: &[CopyLegacyOption]) -> Result<Self> {
        let mut delimiter = None;
        let mut csv = false;
        let mut json = false;
        let mut parquet = false;
        let mut ignore_header = 0;
        let mut f = CopyFormat { kind: Kind::Json, gzip: false, bzip2: false, zstd: false, null_as: None, empty_as_null: false, blanks_as_null: false, truncate: false };
        for option in options {
            match option {
                CopyLegacyOption::Csv(_) => csv = true,
                CopyLegacyOption::Json(path) => {
                    if let Some(p) = path.as_deref().filter(|p| !p.eq_ignore_ascii_case("auto")) {
                        return Err(service_err!(FeatureNotSupported, "JSON '{p}': JSONPaths files are not supported; use JSON 'auto'"));
                    }
                    json = true;
                }
                CopyLegacyOption::Parquet => parquet = true,
                CopyLegacyOption::Delimiter(d) => delimiter = Some(*d as u8),
                CopyLegacyOption::IgnoreHeader(n) => ignore_header = *n,
                CopyLegacyOption::Gzip => f.gzip = true,
                CopyLegacyOption::Bzip2 => f.bzip2 = true,
                CopyLegacyOption::Zstd => f.zstd = true,
                CopyLegacyOption::Null(s) => f.null_as = Some(s.clone()),
                CopyLegacyOption::EmptyAsNull => f.empty_as_null = true,
                CopyLegacyOption::BlankAsNull => f.blanks_as_null = true,
                CopyLegacyOption::TruncateColumns => f.truncate = true,
                CopyLegacyOption::IamRole(_)
                | CopyLegacyOption::Region(_)
                | CopyLegacyOption::Credentials(_)
                | CopyLegacyOption::DateFormat(_)
                | CopyLegacyOption::TimeFormat(_)
                | CopyLegacyOption::AcceptAnyDate
                | CopyLegacyOption::CompUpdate { .. }
                | CopyLegacyOption::StatUpdate(_)
                | CopyLegacyOption::Manifest { .. } => {}
                other => return Err(service_err!(FeatureNotSupported, "COPY option {other} is not supported")),
            }
        }
        if [csv, json, parquet].iter().filter(|x| **x).count() > 1 {
            return Err(service_err!(InvalidParameterValue, "COPY takes one of CSV, JSON or PARQUET"));
        }
        f.kind = if parquet {
            if delimiter.is_some() || ignore_header > 0 {
                return Err(service_err!(InvalidParameterValue, "DELIMITER and IGNOREHEADER are not valid with FORMAT PARQUET"));
            }
            Kind::Parquet
        } else if json {
            Kind::Json
        } else {
            Kind::Text { delimiter: delimiter.unwrap_or(if csv { b',' } else { b'|' }), csv, ignore_header }
        };
        Ok(f)
    }

    fn decompress(&self, raw: Bytes, filename: &str) -> Result<Bytes> {
        let failed = |e: std::io::Error| service_err!(LoadError, "{filename}: could not decompress: {e}");
        let mut out = Vec::new();
        if self.gzip {
            flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(failed)?;
        } else if self.bzip2 {
            bzip2::read::MultiBzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(failed)?;
        } else if self.zstd {
            zstd::stream::read::Decoder::new(&raw[..]).map_err(failed)?.read_to_end(&mut out).map_err(failed)?;
        } else {
            return Ok(raw);
        }
        Ok(Bytes::from(out))
    }
}

/// One input record: its line, raw text and fields (None = no value), or why it has none.
struct RawRow {
    line: u64,
    raw: String,
    fields: std::result::Result<Vec<Option<String>>, (u32, String)>,
}

fn text_rows(raw: &[u8], delimiter: u8, csv: bool, ignore_header: u64, width: usize) -> Vec<RawRow> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).quoting(csv).from_reader(raw);
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                rows.push(RawRow { line, raw: String::new(), fields: Err((1214, format!("Bad record: {e}"))) });
                continue;
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        if line <= ignore_header {
            continue;
        }
        let text: Vec<String> = record.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
        let raw_line = text.join(&(delimiter as char).to_string());
        let fields = if text.len() < width {
            Err((1214, "Delimiter not found".to_string()))
        } else if text.len() > width {
            Err((1202, "Extra column(s) found".to_string()))
        } else {
            Ok(text.into_iter().map(Some).collect())
        };
        rows.push(RawRow { line, raw: raw_line, fields });
    }
    rows
}

fn json_rows(raw: &[u8], targets: &[String]) -> Vec<RawRow> {
    let mut rows = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(raw).into_iter::<serde_json::Value>();
    loop {
        let start = stream.byte_offset();
        let Some(next) = stream.next() else { break };
        let line = raw[..start.min(raw.len())].iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let end = stream.byte_offset();
        let raw_text = String::from_utf8_lossy(&raw[start..end]).trim().to_string();
        let fields = match next {
            Ok(serde_json::Value::Object(map)) => Ok(targets
                .iter()
                .map(|t| match map.get(t) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                })
                .collect()),
            Ok(_) => Err((1224, "Invalid JSON: a record must be an object".to_string())),
            Err(e) => {
                rows.push(RawRow { line, raw: raw_text, fields: Err((1224, format!("Invalid JSON: {e}"))) });
                break;
            }
        };
        rows.push(RawRow { line, raw: raw_text, fields });
    }
    rows
}

fn parquet_rows(raw: &Bytes, schema: &SchemaRef, targets: &[String], filename: &str) -> Result<Vec<RecordBatch>> {
    let failed = |e: &dyn std::fmt::Display| service_err!(LoadError, "{filename}: not a Parquet file the table can load: {e}");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(raw.clone()).map_err(|e| failed(&e))?.build().map_err(|e| failed(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| failed(&e))?;
        if batch.num_columns() != targets.len() {
            return Err(service_err!(LoadError, "{filename}: the file has {} column(s), the COPY loads {}; Parquet columns are matched by position", batch.num_columns(), targets.len()));
        }
        let columns = schema
            .fields()
            .iter()
            .map(|f| match targets.iter().position(|n| n == f.name()) {
                Some(i) => cast_column(batch.column(i), f.data_type(), f.name()).map_err(|e| service_err!(LoadError, "{filename}: {}", e.message())),
                None => Ok(new_null_array(f.data_type(), batch.num_rows())),
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?);
    }
    Ok(out)
}

/// Converts text rows to the table's types; rows that do not convert become load errors.
#[allow(clippy::too_many_arguments)]
fn rows_to_batch(
    rows: &[RawRow],
    schema: &SchemaRef,
    targets: &[String],
    t: &TableMeta,
    format: &CopyFormat,
    filename: &str,
    query: u64,
    now: DateTime<Utc>,
) -> Result<(RecordBatch, Vec<LoadError>)> {
    let mut bad: Vec<Option<LoadError>> = vec![None; rows.len()];
    let error = |row: &RawRow, colname: &str, col_type: &str, value: &str, code: u32, reason: String| LoadError {
        query,
        starttime: now,
        tbl: t.qualified(),
        filename: filename.to_string(),
        line_number: row.line,
        colname: colname.to_string(),
        col_type: col_type.to_string(),
        raw_line: row.raw.chars().take(1024).collect(),
        raw_field_value: value.chars().take(1024).collect(),
        err_code: code,
        err_reason: reason,
    };
    for (i, row) in rows.iter().enumerate() {
        if let Err((code, reason)) = &row.fields {
            bad[i] = Some(error(row, "", "", "", *code, reason.clone()));
        }
    }
    let mut columns = Vec::new();
    for field in schema.fields() {
        let column = t.columns.iter().find(|c| &c.name == field.name()).expect("schema from the table");
        let Some(pos) = targets.iter().position(|n| n == field.name()) else {
            columns.push(new_null_array(field.data_type(), rows.len()));
            continue;
        };
        let is_text = field.data_type() == &DataType::Utf8;
        let values: Vec<Option<String>> = rows
            .iter()
            .map(|r| {
                let v = r.fields.as_ref().ok().and_then(|f| f[pos].clone())?;
                if format.null_as.as_deref() == Some(v.as_str()) {
                    return None;
                }
                if v.is_empty() && (!is_text || format.empty_as_null) {
                    return None;
                }
                if v.trim().is_empty() && format.blanks_as_null {
                    return None;
                }
                Some(if is_text { v } else { v.trim().to_string() })
            })
            .collect();
        let mut values = values;
        if let Some(limit) = char_length(&column.data_type) {
            for (i, v) in values.iter_mut().enumerate() {
                if let Some(text) = v
                    && text.len() > limit
                {
                    if format.truncate {
                        let mut end = limit;
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.truncate(end);
                    } else if bad[i].is_none() {
                        bad[i] = Some(error(&rows[i], &column.name, &column.data_type, text, 1204, format!("String length exceeds DDL length ({} > {limit})", text.len())));
                    }
                }
            }
        }
        let strings: ArrayRef = Arc::new(StringArray::from(values.clone()));
        let converted = cast_with_options(strings.as_ref(), field.data_type(), &CastOptions { safe: true, ..CastOptions::default() }).map_err(|e| internal_err!("{e}"))?;
        for (i, v) in values.iter().enumerate() {
            if let Some(text) = v
                && converted.is_null(i)
                && bad[i].is_none()
            {
                let (code, kind) = match field.data_type() {
                    DataType::Date32 => (1205, "Invalid Date Format - length must be 10 or more"),
                    DataType::Timestamp(_, _) => (1206, "Invalid timestamp format or value"),
                    DataType::Boolean => (1218, "Invalid boolean value"),
                    _ => (1207, "Invalid digit"),
                };
                bad[i] = Some(error(&rows[i], &column.name, &column.data_type, text, code, format!("{kind}, Value '{text}', Type: {}", column.data_type)));
            }
        }
        columns.push(converted);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?;
    let keep = BooleanArray::from(bad.iter().map(Option::is_none).collect::<Vec<_>>());
    let batch = filter_record_batch(&batch, &keep).map_err(|e| internal_err!("{e}"))?;
    Ok((batch, bad.into_iter().flatten().collect()))
}

fn folder_prefix(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') { key.to_string() } else { format!("{key}/") }
}

/// Rows grouped by the PARTITION BY columns' values, as `col=value/` folders (Hive style);
/// the partition columns leave the files unless INCLUDE.
fn partition_rows(all: &RecordBatch, p: &ast::UnloadPartitionBy) -> Result<Vec<(String, RecordBatch)>> {
    let names: Vec<String> = p.columns.iter().map(|c| lower(&c.value)).collect();
    let mut indices = Vec::new();
    for n in &names {
        indices.push(all.schema().index_of(n).map_err(|_| service_err!(UndefinedColumn, "PARTITION BY column \"{n}\" is not in the query's result"))?);
    }
    let text: Vec<ArrayRef> = indices.iter().map(|i| datafusion::arrow::compute::cast(all.column(*i), &DataType::Utf8).map_err(|e| internal_err!("{e}"))).collect::<Result<_>>()?;
    let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in 0..all.num_rows() {
        let folder: String = names
            .iter()
            .zip(&text)
            .map(|(n, a)| {
                let s = a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
                let v = if s.is_null(row) { "__HIVE_DEFAULT_PARTITION__".to_string() } else { s.value(row).to_string() };
                format!("{n}={v}/")
            })
            .collect();
        groups.entry(folder).or_default().push(row as u64);
    }
    let keep: Vec<usize> = (0..all.num_columns()).filter(|i| p.include || !indices.contains(i)).collect();
    let schema = Arc::new(all.schema().project(&keep).map_err(|e| internal_err!("{e}"))?);
    groups
        .into_iter()
        .map(|(folder, rows)| {
            let idx = UInt64Array::from(rows);
            let columns = keep.iter().map(|i| take(all.column(*i).as_ref(), &idx, None)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| internal_err!("{e}"))?;
            Ok((folder, RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?))
        })
        .collect()
}

/// Text or CSV, as UNLOAD writes it (`|` by default; nulls as empty fields).
/// UNLOAD … JSON: one object per row, keys the column names, NULLs left out.
fn json_lines(batch: &RecordBatch) -> Result<Bytes> {
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    writer.write(batch).map_err(|e| internal_err!("{e}"))?;
    writer.finish().map_err(|e| internal_err!("{e}"))?;
    Ok(Bytes::from(writer.into_inner()))
}

/// UNLOAD … GZIP.
fn gzipped(body: &[u8]) -> Result<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).and_then(|_| encoder.finish()).map(Bytes::from).map_err(|e| internal_err!("gzip: {e}"))
}

/// Delimited text with ADDQUOTES (every field in double quotes) and/or NULL AS 'text'.
fn quoted_text(batch: &RecordBatch, delimiter: u8, add_quotes: bool, null_as: &str, header: bool) -> Result<Bytes> {
    let options = datafusion::arrow::util::display::FormatOptions::new().with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    let formatters = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| internal_err!("{e}"))?;
    let field = |text: String| if add_quotes { format!("\"{}\"", text.replace('"', "\"\"")) } else { text };
    let separator = (delimiter as char).to_string();
    let mut out = String::new();
    if header {
        out.push_str(&batch.schema().fields().iter().map(|f| field(f.name().clone())).collect::<Vec<_>>().join(&separator));
        out.push('\n');
    }
    for row in 0..batch.num_rows() {
        let values: Vec<String> = batch
            .columns()
            .iter()
            .zip(&formatters)
            .map(|(column, f)| if column.is_null(row) { null_as.to_string() } else { field(f.value(row).to_string()) })
            .collect();
        out.push_str(&values.join(&separator));
        out.push('\n');
    }
    Ok(Bytes::from(out))
}

fn delimited(batch: &RecordBatch, delimiter: u8, csv: bool, header: bool) -> Result<Bytes> {
    let mut out = Vec::new();
    {
        let mut writer = arrow_csv::WriterBuilder::new()
            .with_header(header)
            .with_delimiter(delimiter)
            .with_quote_style(if csv { arrow_csv::QuoteStyle::Necessary } else { arrow_csv::QuoteStyle::Never })
            .with_timestamp_format("%Y-%m-%d %H:%M:%S%.f".to_string())
            .build(&mut out);
        writer.write(batch).map_err(|e| internal_err!("{e}"))?;
    }
    Ok(Bytes::from(out))
}

/// `stl_load_errors` and `svv_table_info`, built from the cluster's state.
fn system_tables(c: &Cluster) -> Result<Vec<(&'static str, RecordBatch)>> {
    let strings = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
    let e = &c.load_errors;
    let utc: Arc<str> = "UTC".into();
    let errors = RecordBatch::try_from_iter(vec![
        ("query", Arc::new(arrow_array::Int64Array::from_iter_values(e.iter().map(|l| l.query as i64))) as ArrayRef),
        ("starttime", Arc::new(arrow_array::TimestampMicrosecondArray::from_iter_values(e.iter().map(|l| l.starttime.timestamp_micros())).with_timezone(utc))),
        ("tbl", strings(e.iter().map(|l| l.tbl.clone()).collect())),
        ("filename", strings(e.iter().map(|l| l.filename.clone()).collect())),
        ("line_number", Arc::new(arrow_array::Int64Array::from_iter_values(e.iter().map(|l| l.line_number as i64)))),
        ("colname", strings(e.iter().map(|l| l.colname.clone()).collect())),
        ("type", strings(e.iter().map(|l| l.col_type.clone()).collect())),
        ("raw_line", strings(e.iter().map(|l| l.raw_line.clone()).collect())),
        ("raw_field_value", strings(e.iter().map(|l| l.raw_field_value.clone()).collect())),
        ("err_code", Arc::new(arrow_array::Int32Array::from_iter_values(e.iter().map(|l| l.err_code as i32)))),
        ("err_reason", strings(e.iter().map(|l| l.err_reason.clone()).collect())),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let t = &c.tables;
    let skew = |t: &TableMeta| -> Option<f64> {
        if t.diststyle == DistStyle::All || t.rows() == 0 {
            return None;
        }
        let max = *t.slice_rows.iter().max()? as f64;
        let min = (*t.slice_rows.iter().min()?).max(1) as f64;
        Some(((max / min) * 100.0).round() / 100.0)
    };
    let info = RecordBatch::try_from_iter(vec![
        ("schema", strings(t.iter().map(|t| t.schema.clone()).collect())),
        ("table", strings(t.iter().map(|t| t.name.clone()).collect())),
        ("diststyle", strings(t.iter().map(TableMeta::diststyle_text).collect())),
        ("sortkey1", Arc::new(StringArray::from(t.iter().map(|t| t.sortkey.first().cloned()).collect::<Vec<_>>())) as ArrayRef),
        ("size_bytes", Arc::new(arrow_array::Int64Array::from_iter_values(t.iter().map(|t| t.bytes as i64)))),
        ("tbl_rows", Arc::new(arrow_array::Int64Array::from_iter_values(t.iter().map(|t| t.rows() as i64)))),
        ("skew_rows", Arc::new(arrow_array::Float64Array::from(t.iter().map(skew).collect::<Vec<_>>()))),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let u = &c.unload_log;
    let unloads = RecordBatch::try_from_iter(vec![
        ("query", Arc::new(arrow_array::Int64Array::from_iter_values(u.iter().map(|l| l.query as i64))) as ArrayRef),
        ("path", strings(u.iter().map(|l| l.path.clone()).collect())),
        ("start_time", Arc::new(arrow_array::TimestampMicrosecondArray::from_iter_values(u.iter().map(|l| l.start_time.timestamp_micros())))),
        ("end_time", Arc::new(arrow_array::TimestampMicrosecondArray::from_iter_values(u.iter().map(|l| l.end_time.timestamp_micros())))),
        ("line_count", Arc::new(arrow_array::Int64Array::from_iter_values(u.iter().map(|l| l.line_count as i64)))),
        ("transfer_size", Arc::new(arrow_array::Int64Array::from_iter_values(u.iter().map(|l| l.transfer_size as i64)))),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    // pg_table_def: a row per column of every table, with its type as Redshift names it and
    // its place in the distribution and sort keys.
    let columns: Vec<(&TableMeta, &Column)> = t.iter().flat_map(|t| t.columns.iter().map(move |c| (t, c))).collect();
    let table_def = RecordBatch::try_from_iter(vec![
        ("schemaname", strings(columns.iter().map(|(t, _)| t.schema.clone()).collect())),
        ("tablename", strings(columns.iter().map(|(t, _)| t.name.clone()).collect())),
        ("column", strings(columns.iter().map(|(_, c)| c.name.clone()).collect())),
        ("type", strings(columns.iter().map(|(_, c)| c.data_type.clone()).collect())),
        ("distkey", Arc::new(BooleanArray::from(columns.iter().map(|(t, c)| t.distkey.as_ref() == Some(&c.name)).collect::<Vec<_>>())) as ArrayRef),
        ("sortkey", Arc::new(arrow_array::Int32Array::from_iter_values(columns.iter().map(|(t, c)| t.sortkey.iter().position(|k| k == &c.name).map_or(0, |p| p as i32 + 1))))),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    Ok(vec![("stl_load_errors", errors), ("svv_table_info", info), ("stl_unload_log", unloads), ("pg_table_def", table_def)])
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn literals_survive_splitting_and_column_keys_become_table_keys() {
        let split = split_statements("unload ('select * from venue where venuestate=''NV''') to 's3://b/x'; select 1").unwrap();
        assert_eq!(split[0], "unload ('select * from venue where venuestate=''NV''') to 's3://b/x'");
        let tokens = Tokenizer::new(&RedshiftSqlDialect {}, "create table venue(venueid smallint not null distkey sortkey, venuename varchar(100) encode lzo) diststyle key").tokenize().unwrap();
        let text: String = column_attributes(tokens).iter().map(sql_text).collect();
        assert_eq!(text, "create table venue(venueid smallint not null  , venuename varchar(100) ) diststyle key DISTKEY(venueid) SORTKEY(venueid)");
        assert_eq!(top_as_limit("select top 10 a from t order by a;"), "select   a from t order by a LIMIT 10");
    }
}
