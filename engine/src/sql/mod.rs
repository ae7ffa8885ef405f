//! Athena-style SQL on Apache DataFusion over the Data Catalog. Every statement is a query
//! execution with a UUID and a state (QUEUED → RUNNING → SUCCEEDED / FAILED / CANCELLED),
//! statistics (data scanned after partition and column pruning, engine time, rows, cost at
//! $5 per TB with Athena's 10 MB minimum), and its result written to the workgroup's output
//! location as `<id>.csv` plus `<id>.csv.metadata`. Executions persist in
//! `<workspace>/sql/executions.json`.
//!
//! Deviations, on purpose: `.csv.metadata` is JSON (Athena's is binary); results written to
//! the lake are capped at [`RESULT_FILE_ROW_LIMIT`] rows of CSV per query.
//!
//! The statements: queries, EXPLAIN, and the catalog-changing statements in `ddl/` (CREATE
//! [EXTERNAL] TABLE, CTAS, INSERT INTO, MSCK REPAIR TABLE, ALTER TABLE ADD PARTITION, SHOW,
//! DESCRIBE, DROP); workgroups with scan limits in `workgroup.rs`. What DataFusion needs to see
//! the catalog, the streams and the engine clock is shared with Redshift in [`crate::query`].
//! Not there: Avro and ORC tables, Iceberg DML, prepared statements.

pub(crate) mod ddl;
pub use ddl::{STAGING, StagedWrite, TargetSpec};
pub mod cluster;
mod exchange;
mod workgroup;

pub use exchange::write_arrow_file;
pub(crate) use exchange::read_arrow_file;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};

use ddl::Ddl;
pub use workgroup::{MIN_CUTOFF, PRIMARY as PRIMARY_WORKGROUP, Workgroup};
use workgroup::Workgroups;

use crate::catalog::Catalog;
pub use crate::query::CATALOG_NAME;
use crate::query::{Bookmarks, GlueCatalogProvider, TempViews, Watch, bytes_scanned, clock_fn, collect_watched, sql_error, tuned_config};
use crate::clock::Clock;
use crate::error::{Error, Result, closest};
use crate::lake::{Lake, S3Uri};
use crate::service_err;
use crate::workspace::{Workspace, read_json, write_json};

/// Where the `primary` workgroup writes results.
pub const RESULTS_BUCKET: &str = "lakebook-query-results";
/// At most this many rows of a result are written to the output location.
pub const RESULT_FILE_ROW_LIMIT: usize = 1_000_000;
/// Athena bills at least 10 MB per query.
const MIN_BILLED_BYTES: u64 = 10 * 1_000_000;
const EXECUTIONS_KEPT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl std::fmt::Display for QueryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

/// Athena's StatementType: DDL changes the catalog, DML reads or writes data, UTILITY shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatementType {
    Ddl,
    #[default]
    Dml,
    Utility,
}

impl std::fmt::Display for StatementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

/// The error code of a query the workgroup's scan limit cancelled.
pub const SCAN_LIMIT: &str = "BYTES_SCANNED_LIMIT_EXCEEDED";

/// A statement on its way: the session it plans in, its text, where it runs, and who
/// watches its progress.
struct Running<'a, 'w> {
    ctx: &'a SessionContext,
    text: &'a str,
    database: &'a str,
    workgroup: &'a Workgroup,
    execution_id: &'a str,
    watch: Option<&'a mut Watch<'w>>,
}

/// What a statement produced.
struct Output {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    bytes_scanned: u64,
    /// Rows a CTAS or INSERT wrote to the lake.
    rows_written: u64,
}

/// Why a statement failed, and what it had read by then (a cancelled query is billed).
struct Failure {
    error: Error,
    bytes_scanned: u64,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self { error, bytes_scanned: 0 }
    }
}

/// A query cancelled for reading more than its workgroup's per-query limit.
fn scan_limit_error(workgroup: &Workgroup, limit: u64, scanned: u64) -> Error {
    Error::Service {
        code: SCAN_LIMIT,
        message: format!(
            "Query cancelled! : Bytes scanned limit was exceeded (workgroup {} allows {} per query; this one read {})",
            workgroup.name,
            crate::human_bytes(limit),
            crate::human_bytes(scanned)
        ),
        hint: Some("filter on partition keys or select fewer columns to scan less, or use another --workgroup".into()),
    }
}

/// One query execution (≙ GetQueryExecution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryExecution {
    pub id: String,
    pub query: String,
    pub database: String,
    pub workgroup: String,
    #[serde(default)]
    pub statement_type: StatementType,
    pub state: QueryState,
    pub submitted: DateTime<Utc>,
    pub completed: Option<DateTime<Utc>>,
    pub bytes_scanned: u64,
    pub engine_ms: u64,
    pub rows: u64,
    /// Rows a CTAS or INSERT INTO wrote to the lake.
    #[serde(default)]
    pub rows_written: u64,
    pub output_location: Option<String>,
    pub error: Option<String>,
    /// Where it ran: None = this engine, `ballista://HOST:PORT` = a Ballista cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

impl QueryExecution {
    /// Athena's price: $5 per TB scanned, at least 10 MB per query (DDL and failed queries
    /// that scanned nothing are free).
    pub fn cost_usd(&self) -> f64 {
        if self.bytes_scanned == 0 {
            return 0.0;
        }
        self.bytes_scanned.max(MIN_BILLED_BYTES) as f64 * 5.0 / 1e12
    }
}

/// A finished statement: its execution record and its rows.
#[derive(Debug)]
pub struct QueryResult {
    pub execution: QueryExecution,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// The rows are sentences about what a DDL/DML statement did (one `result` column), not data.
    pub messages: bool,
}

pub struct SqlEngine {
    ctx: SessionContext,
    catalog: Arc<Catalog>,
    lake: Arc<Lake>,
    clock: Arc<Clock>,
    temp_views: TempViews,
    streams: Arc<crate::streams::Streams>,
    path: PathBuf,
    executions: Mutex<Vec<QueryExecution>>,
    workgroups: Workgroups,
    /// The Ballista cluster EMR SQL steps run on (`%sql engine connect`); None = here.
    cluster: Mutex<Option<cluster::ClusterTarget>>,
}

impl SqlEngine {
    pub fn open(workspace: &Workspace, catalog: Arc<Catalog>, lake: Arc<Lake>, clock: Arc<Clock>, streams: Arc<crate::streams::Streams>) -> Result<Self> {
        let path = workspace.dir("sql")?.join("executions.json");
        let executions = read_json(&path)?.unwrap_or_default();
        let config = tuned_config()
            .with_default_catalog_and_schema(CATALOG_NAME, crate::catalog::DEFAULT_DATABASE)
            // The Glue catalog is registered below; a default in-memory one would shadow it.
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        let ctx = crate::query::context(config);
        ctx.register_udf(clock_fn::now_udf(clock.clone()));
        // Athena (Trino) writes DATE('1992-02-01') as well as DATE '1992-02-01'.
        ctx.register_udf(datafusion::functions::datetime::to_date().as_ref().clone().with_aliases(["date"]));
        let temp_views: TempViews = Arc::default();
        ctx.register_catalog(
            CATALOG_NAME,
            Arc::new(GlueCatalogProvider { catalog: catalog.clone(), lake: lake.clone(), temp_views: temp_views.clone(), streams: streams.clone(), bookmarks: None }),
        );
        let workgroups = Workgroups::open(workspace)?;
        let engine = Self { ctx, catalog, lake, clock, temp_views, streams, path, executions: Mutex::new(executions), workgroups, cluster: Mutex::default() };
        engine.recover_writes()?;
        Ok(engine)
    }

    /// The Data Catalog as DataFusion sees it (databases as schemas, `streams` too), for
    /// other engines' sessions (continuous applications) to read catalog tables by name.
    pub fn glue_catalog(&self) -> Result<Arc<dyn datafusion::catalog::CatalogProvider>> {
        self.ctx.catalog(CATALOG_NAME).ok_or_else(|| crate::internal_err!("the Data Catalog is not registered"))
    }

    /// The session configuration every query starts from (benchmarks run bare DataFusion
    /// with it to measure the engine's own overhead).
    pub fn session_config(&self) -> SessionConfig {
        self.ctx.copied_config()
    }

    /// Makes `target` the cluster that SQL steps (EMR) run their queries on; None = here.
    pub fn use_cluster(&self, target: Option<cluster::ClusterTarget>) {
        *self.cluster.lock().unwrap_or_else(|p| p.into_inner()) = target;
    }

    /// The cluster SQL steps run on, if one is connected.
    pub fn cluster(&self) -> Option<cluster::ClusterTarget> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs every statement of `sql` in order against `database` in the `primary` workgroup;
    /// stops at the first failure.
    pub async fn run(&self, sql: &str, database: &str) -> Result<Vec<QueryResult>> {
        self.run_in(sql, database, workgroup::PRIMARY).await
    }

    /// [`run`](Self::run) in a workgroup: its output location and per-query scan limit apply.
    pub async fn run_in(&self, sql: &str, database: &str, workgroup: &str) -> Result<Vec<QueryResult>> {
        self.run_watched(sql, database, workgroup, None).await
    }

    /// [`run_in`](Self::run_in), reporting each query's progress to `watch` while it runs
    /// longer than `watch.after`.
    pub async fn run_watched(&self, sql: &str, database: &str, workgroup: &str, watch: Option<&mut Watch<'_>>) -> Result<Vec<QueryResult>> {
        self.run_with(sql, database, workgroup, watch, None).await
    }

    /// [`run_watched`](Self::run_watched) for a Glue job run with a bookmark: catalog tables
    /// skip the files in `bookmarks.done` and note the files they read.
    pub async fn run_bookmarked(&self, sql: &str, database: &str, watch: Option<&mut Watch<'_>>, bookmarks: Arc<Bookmarks>) -> Result<Vec<QueryResult>> {
        self.run_with(sql, database, workgroup::PRIMARY, watch, Some(bookmarks)).await
    }

    /// The columns a query returns, planned but not run (a Glue job checks each node of its
    /// graph this way before anything is read).
    pub async fn query_schema(&self, sql: &str, database: &str, bookmarks: Option<Arc<Bookmarks>>) -> Result<SchemaRef> {
        let ctx = self.context_for(database, bookmarks)?;
        let fail = |e: DataFusionError| self.suggest_table(sql_error(e, sql));
        let df = ctx.sql(sql).await.map_err(fail)?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }

    /// Runs one query for a Glue job's target: its rows, with the job's bookmark applied to
    /// catalog tables; not recorded as a query execution and no result file is written.
    pub async fn collect_bookmarked(&self, sql: &str, database: &str, watch: Option<&mut Watch<'_>>, bookmarks: Arc<Bookmarks>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let ctx = self.context_for(database, Some(bookmarks))?;
        self.collect_in(&ctx, sql, watch).await
    }

    async fn collect_in(&self, ctx: &SessionContext, sql: &str, watch: Option<&mut Watch<'_>>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let fail = |e: DataFusionError| self.suggest_table(sql_error(e, sql));
        let df = ctx.sql(sql).await.map_err(fail)?;
        let plan = df.create_physical_plan().await.map_err(fail)?;
        let batches = collect_watched(&plan, ctx.task_ctx(), Instant::now(), watch, fail, |_| Ok(())).await?;
        Ok((plan.schema(), batches))
    }

    /// Runs one query with `tables` visible as `lakebook_run.frames."<name>"` (a dashboard's
    /// SPICE rows, its cubes) and the engine's own aggregates ([`crate::query::distinct_set`]); not
    /// recorded as a query execution and no result file is written.
    pub async fn collect_over(&self, sql: &str, database: &str, tables: BTreeMap<String, Arc<dyn TableProvider>>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let ctx = self.context_for(database, Some(Arc::new(Bookmarks::with_frames(tables))))?;
        crate::query::distinct_set::register(&ctx);
        self.collect_in(&ctx, sql, None).await
    }

    /// The columns [`collect_over`](Self::collect_over) would return, planned but not run.
    pub async fn query_schema_over(&self, sql: &str, database: &str, tables: BTreeMap<String, Arc<dyn TableProvider>>) -> Result<SchemaRef> {
        self.query_schema(sql, database, Some(Arc::new(Bookmarks::with_frames(tables)))).await
    }

    /// What the data a query reads looks like now, as one number: every catalog table it
    /// names (its definition's update time, and each object under its location and its
    /// partitions' — key, size, modification time) and every stream (each shard's record
    /// count and first and last sequence number), hashed. A dashboard over a direct
    /// dataset redraws when the number changes (an application appending to its sink, new
    /// files, a crawl).
    pub async fn source_fingerprint(&self, sql: &str, database: &str) -> Result<u64> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        use std::hash::{Hash, Hasher};
        let ctx = self.context_for(database, None)?;
        let fail = |e: DataFusionError| self.suggest_table(sql_error(e, sql));
        let df = ctx.sql(sql).await.map_err(fail)?;
        let mut tables = std::collections::BTreeSet::new();
        df.logical_plan()
            .apply_with_subqueries(|node| {
                if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
                    let name = &scan.table_name;
                    if name.catalog().is_none_or(|c| c == CATALOG_NAME) {
                        tables.insert((name.schema().unwrap_or(database).to_string(), name.table().to_string()));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .map_err(fail)?;
        let mut hasher = std::hash::DefaultHasher::new();
        for (db, name) in tables {
            if db == crate::query::streams::SCHEMA {
                // A stream's table is its records: each shard's count and first and last.
                if let Ok(shards) = self.streams.shard_stats(&name) {
                    (&db, &name).hash(&mut hasher);
                    for s in &shards {
                        (&s.shard_id, s.records, &s.first_sequence, &s.last_sequence).hash(&mut hasher);
                    }
                }
                continue;
            }
            let Ok(table) = self.catalog.table(&db, &name) else { continue };
            (&db, &name, table.updated).hash(&mut hasher);
            for location in table.locations() {
                let Ok(uri) = S3Uri::parse(&location) else { continue };
                if let Ok(listing) = self.lake.list(&uri, true).await {
                    for object in listing.objects {
                        (object.key, object.size, object.last_modified).hash(&mut hasher);
                    }
                }
            }
        }
        Ok(hasher.finish())
    }

    async fn run_with(&self, sql: &str, database: &str, workgroup: &str, mut watch: Option<&mut Watch<'_>>, bookmarks: Option<Arc<Bookmarks>>) -> Result<Vec<QueryResult>> {
        let workgroup = self.workgroups.get(workgroup)?;
        // sqlparser directly rather than DataFusion's DFParser: Athena's DDL (ROW FORMAT,
        // TBLPROPERTIES, CTAS WITH (…), MSCK) is Hive syntax that DFParser does not accept.
        let own = match (ddl::AddPartitions::parse(sql), Ddl::create_database(sql)) {
            (Some(add), _) => Some(Ddl::AddPartitions(add?)),
            (None, Some(create)) => Some(create?),
            (None, None) => Ddl::show_partitions(sql),
        };
        if let Some(ddl) = own {
            let ctx = self.context_for(database, bookmarks)?;
            return Ok(vec![self.run_classified(&ctx, Ok(ddl), sql.trim(), database, &workgroup, None).await?]);
        }
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        // CTAS … WITH NO DATA (Athena's empty copy of a query's columns): sqlparser does not
        // take the clause, so it is cut from the text and the query gets LIMIT 0.
        let (sql, no_data) = match ddl::without_no_data(sql) {
            Some(cut) => (cut, true),
            None => (sql.to_string(), false),
        };
        let sql = sql.as_str();
        let parsed = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
            .with_recursion_limit(64)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements())
            .map(|mut statements| {
                if no_data {
                    for statement in &mut statements {
                        if let Statement::CreateTable(ct) = statement
                            && let Some(query) = ct.query.as_mut()
                        {
                            query.limit_clause = Some(datafusion::sql::sqlparser::ast::LimitClause::LimitOffset {
                                limit: Some(datafusion::sql::sqlparser::ast::Expr::value(datafusion::sql::sqlparser::ast::Value::Number("0".into(), false))),
                                offset: None,
                                limit_by: Vec::new(),
                            });
                        }
                    }
                }
                statements
            });
        let statements = match parsed {
            Ok(statements) => statements,
            Err(e) => {
                // Athena records a query that does not parse as a FAILED execution too.
                let error = sql_error(DataFusionError::SQL(Box::new(e), None), sql);
                let mut execution = self.new_execution(sql, database, &workgroup);
                execution.state = QueryState::Failed;
                execution.completed = Some(execution.submitted);
                execution.error = Some(error.to_string());
                self.record(execution)?;
                return Err(error);
            }
        };
        if statements.is_empty() {
            return Err(service_err!(InvalidRequestException, "there is no SQL statement to run"));
        }
        let ctx = self.context_for(database, bookmarks)?;
        let mut results = Vec::new();
        for statement in statements {
            let text = statement.to_string();
            results.push(self.run_statement(&ctx, statement, &text, database, &workgroup, watch.as_deref_mut()).await?);
        }
        Ok(results)
    }

    /// ≙ CreateWorkGroup with a per-query data usage control.
    pub fn create_workgroup(&self, name: &str, output_location: Option<&str>, cutoff: Option<u64>, description: &str) -> Result<Workgroup> {
        self.workgroups.create(&self.lake, name, output_location, cutoff, description, self.clock.now())
    }

    /// ≙ ListWorkGroups, `primary` first.
    pub fn workgroups(&self) -> Vec<Workgroup> {
        self.workgroups.list()
    }

    /// ≙ DeleteWorkGroup.
    pub fn delete_workgroup(&self, name: &str) -> Result<()> {
        self.workgroups.delete(name)
    }


    fn context_for(&self, database: &str, bookmarks: Option<Arc<Bookmarks>>) -> Result<SessionContext> {
        if self.catalog.tables(database).is_err() {
            let names: Vec<String> = self.catalog.databases().into_iter().map(|d| d.name).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut err = service_err!(InvalidRequestException, "SCHEMA_NOT_FOUND: the database {database} does not exist");
            if let Some(c) = closest(database, &names) {
                err = err.with_hint(format!("did you mean {c}?"));
            }
            return Err(err);
        }
        let mut config = self.ctx.copied_config();
        config.options_mut().catalog.default_schema = database.to_string();
        let mut state = SessionStateBuilder::new_from_existing(self.ctx.state()).with_config(config);
        if let Some(bookmarks) = bookmarks {
            let frames = bookmarks.frames.lock().unwrap_or_else(|p| p.into_inner()).clone();
            // The session's own catalog list: the shared one keeps the plain Data Catalog.
            let catalogs = datafusion::catalog::MemoryCatalogProviderList::new();
            let glue = GlueCatalogProvider {
                catalog: self.catalog.clone(),
                lake: self.lake.clone(),
                temp_views: self.temp_views.clone(),
                streams: self.streams.clone(),
                bookmarks: Some(bookmarks),
            };
            datafusion::catalog::CatalogProviderList::register_catalog(&catalogs, CATALOG_NAME.to_string(), Arc::new(glue));
            if !frames.is_empty() {
                let schema = datafusion::catalog::MemorySchemaProvider::new();
                for (name, table) in frames {
                    datafusion::catalog::SchemaProvider::register_table(&schema, name, table).map_err(|e| crate::internal_err!("{e}"))?;
                }
                let run = datafusion::catalog::MemoryCatalogProvider::new();
                datafusion::catalog::CatalogProvider::register_schema(&run, crate::query::RUN_SCHEMA, Arc::new(schema)).map_err(|e| crate::internal_err!("{e}"))?;
                datafusion::catalog::CatalogProviderList::register_catalog(&catalogs, crate::query::RUN_CATALOG.to_string(), Arc::new(run));
            }
            state = state.with_catalog_list(Arc::new(catalogs));
        }
        Ok(SessionContext::new_with_state(state.build()))
    }

    async fn run_statement(
        &self,
        ctx: &SessionContext,
        statement: Statement,
        text: &str,
        database: &str,
        workgroup: &Workgroup,
        watch: Option<&mut Watch<'_>>,
    ) -> Result<QueryResult> {
        self.run_classified(ctx, Ddl::classify(statement), text, database, workgroup, watch).await
    }

    /// Runs a statement that is either one of ours ([`Ddl`]) or DataFusion's.
    async fn run_classified(
        &self,
        ctx: &SessionContext,
        classified: std::result::Result<Ddl, Statement>,
        text: &str,
        database: &str,
        workgroup: &Workgroup,
        watch: Option<&mut Watch<'_>>,
    ) -> Result<QueryResult> {
        let mut execution = self.new_execution(text, database, workgroup);
        execution.state = QueryState::Running;
        // Dropping this future (an interrupt) records the execution as CANCELLED.
        let mut guard = Recorder { engine: self, execution: Some(execution.clone()) };
        let started = Instant::now();
        let mut messages = false;
        let outcome = match classified {
            Ok(ddl) => {
                messages = !matches!(ddl, Ddl::ShowDatabases | Ddl::ShowTables(..) | Ddl::ShowPartitions(_) | Ddl::Describe { .. });
                execution.statement_type = ddl.statement_type();
                self.run_ddl(ddl, Running { ctx, text, database, workgroup, execution_id: &execution.id, watch }).await
            }
            Err(statement) => self.query_watched(ctx, statement, text, workgroup, watch).await,
        };
        execution.engine_ms = started.elapsed().as_millis() as u64;
        execution.completed = Some(self.clock.now());
        match outcome {
            Ok(output) => {
                execution.bytes_scanned = output.bytes_scanned;
                execution.rows = output.batches.iter().map(|b| b.num_rows() as u64).sum();
                execution.rows_written = output.rows_written;
                execution.output_location = self.write_result(&execution, workgroup, &output.schema, &output.batches).await.ok();
                execution.state = QueryState::Succeeded;
                guard.finish(execution.clone())?;
                Ok(QueryResult { execution, schema: output.schema, batches: output.batches, messages })
            }
            Err(Failure { error, bytes_scanned }) => {
                execution.bytes_scanned = bytes_scanned;
                execution.state = if error.code() == SCAN_LIMIT { QueryState::Cancelled } else { QueryState::Failed };
                execution.error = Some(error.to_string());
                guard.finish(execution)?;
                Err(error)
            }
        }
    }

    /// Plans and runs a query on DataFusion, cancelling it once it has read more than the
    /// workgroup allows; reports its progress to `watch` from `watch.after` on.
    async fn query_watched(
        &self,
        ctx: &SessionContext,
        statement: Statement,
        text: &str,
        workgroup: &Workgroup,
        watch: Option<&mut Watch<'_>>,
    ) -> std::result::Result<Output, Failure> {
        let started = Instant::now();
        let fail = |e: DataFusionError| Failure::from(self.suggest_table(sql_error(e, text)));
        let state = ctx.state();
        let plan = state.statement_to_plan(DFStatement::Statement(Box::new(statement))).await.map_err(fail)?;
        let df = ctx.execute_logical_plan(plan).await.map_err(fail)?;
        let physical = df.create_physical_plan().await.map_err(fail)?;
        let over_limit = |physical: &dyn ExecutionPlan| -> std::result::Result<(), Failure> {
            let scanned = bytes_scanned(physical);
            match workgroup.bytes_scanned_cutoff {
                Some(limit) if scanned > limit => Err(Failure { error: scan_limit_error(workgroup, limit, scanned), bytes_scanned: scanned }),
                _ => Ok(()),
            }
        };
        let batches = collect_watched(&physical, ctx.task_ctx(), started, watch, fail, over_limit).await?;
        Ok(Output { schema: physical.schema(), batches, bytes_scanned: bytes_scanned(physical.as_ref()), rows_written: 0 })
    }

    /// A new execution's id: a UUID (as Athena's are) derived from the previous execution's
    /// id, the engine time and a per-process count, so a notebook rerun on the manual clock
    /// from a fresh workspace prints the same ids, and CTAS file names derived from them.
    fn execution_id(&self) -> String {
        use md5::Digest as _;
        static MINTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MINTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let previous = self.executions.lock().unwrap_or_else(|p| p.into_inner()).last().map(|e| e.id.clone()).unwrap_or_default();
        let seed = format!("{previous}/{}/{n}", self.clock.now().timestamp_nanos_opt().unwrap_or_default());
        let digest: [u8; 16] = md5::Md5::digest(seed.as_bytes()).into();
        uuid::Builder::from_random_bytes(digest).into_uuid().to_string()
    }

    fn new_execution(&self, query: &str, database: &str, workgroup: &Workgroup) -> QueryExecution {
        QueryExecution {
            id: self.execution_id(),
            query: query.to_string(),
            database: database.to_string(),
            workgroup: workgroup.name.clone(),
            statement_type: StatementType::Dml,
            state: QueryState::Queued,
            submitted: self.clock.now(),
            completed: None,
            bytes_scanned: 0,
            engine_ms: 0,
            rows: 0,
            rows_written: 0,
            output_location: None,
            error: None,
            engine: None,
        }
    }

    /// Writes `<id>.csv` and `<id>.csv.metadata` to the workgroup's output location.
    async fn write_result(&self, execution: &QueryExecution, workgroup: &Workgroup, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
        let location = S3Uri::parse(&workgroup.output_location)?;
        if location.bucket == RESULTS_BUCKET {
            let _ = self.lake.create_bucket(RESULTS_BUCKET)?;
        }
        let mut csv = Vec::new();
        if batches.is_empty() {
            let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            csv.extend_from_slice(format!("{}\n", header.join(",")).as_bytes());
        } else {
            let mut writer = arrow_csv::WriterBuilder::new().with_header(true).build(&mut csv);
            let mut written = 0;
            for batch in batches {
                let take = batch.num_rows().min(RESULT_FILE_ROW_LIMIT - written);
                writer.write(&batch.slice(0, take)).map_err(|e| crate::internal_err!("writing result CSV: {e}"))?;
                written += take;
                if written == RESULT_FILE_ROW_LIMIT {
                    break;
                }
            }
        }
        let uri = S3Uri { bucket: location.bucket.clone(), key: format!("{}{}.csv", location.key, execution.id) };
        self.lake.put(&uri, Bytes::from(csv)).await?;
        let metadata = serde_json::json!({
            "columns": schema.fields().iter().map(|f| serde_json::json!({
                "name": f.name(), "type": crate::catalog::types::glue_type(f.data_type()), "nullable": f.is_nullable(),
            })).collect::<Vec<_>>(),
            "rows": execution.rows,
            "dataScannedInBytes": execution.bytes_scanned,
            "engineExecutionTimeInMillis": execution.engine_ms,
        });
        let meta_uri = S3Uri { bucket: location.bucket.clone(), key: format!("{}{}.csv.metadata", location.key, execution.id) };
        self.lake.put(&meta_uri, Bytes::from(serde_json::to_vec_pretty(&metadata).unwrap_or_default())).await?;
        Ok(uri.to_string())
    }

    /// Keeps a result as a temporary view usable by later queries from any database.
    pub fn keep_as_view(&self, name: &str, result: &QueryResult) -> Result<()> {
        crate::catalog::validate_name("view", name)?;
        let table = MemTable::try_new(result.schema.clone(), vec![result.batches.clone()])
            .map_err(|e| crate::internal_err!("keeping the result as {name}: {e}"))?;
        self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), Arc::new(table));
        Ok(())
    }

    /// Past executions, oldest first (≙ ListQueryExecutions + GetQueryExecution).
    pub fn history(&self) -> Vec<QueryExecution> {
        self.executions.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Names of the temporary views kept with `keep_as_view`.
    pub fn views(&self) -> Vec<String> {
        self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// The functions a query can call (scalar, aggregate and window, aliases included),
    /// sorted: what completion offers.
    pub fn function_names(&self) -> Vec<String> {
        let state = self.ctx.state();
        let mut names: Vec<String> = state
            .scalar_functions()
            .keys()
            .chain(state.aggregate_functions().keys())
            .chain(state.window_functions().keys())
            .cloned()
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// A function's signature and what it does, from DataFusion's own documentation
    /// (`approx_distinct(expression)` and a sentence); None for a name that is no function.
    pub fn function_doc(&self, name: &str) -> Option<String> {
        let state = self.ctx.state();
        let name = name.to_lowercase();
        let (doc, known) = match (state.scalar_functions().get(&name), state.aggregate_functions().get(&name), state.window_functions().get(&name)) {
            (Some(f), _, _) => (f.documentation().cloned(), f.name().to_string()),
            (None, Some(f), _) => (f.documentation().cloned(), f.name().to_string()),
            (None, None, Some(f)) => (f.documentation().cloned(), f.name().to_string()),
            (None, None, None) => return None,
        };
        Some(match doc {
            Some(doc) => {
                let mut text = format!("{}\n\n{}", doc.syntax_example, doc.description);
                for (argument, what) in doc.arguments.iter().flatten() {
                    text.push_str(&format!("\n  {argument}: {what}"));
                }
                text
            }
            None => format!("{known}(…)"),
        })
    }

    fn record(&self, execution: QueryExecution) -> Result<()> {
        let mut executions = self.executions.lock().unwrap_or_else(|p| p.into_inner());
        match executions.iter_mut().find(|e| e.id == execution.id) {
            Some(existing) => *existing = execution,
            None => executions.push(execution),
        }
        let excess = executions.len().saturating_sub(EXECUTIONS_KEPT);
        executions.drain(..excess);
        write_json(&self.path, &*executions)
    }

    /// Adds "did you mean db.table?" to a TABLE_NOT_FOUND error.
    fn suggest_table(&self, error: Error) -> Error {
        let message = error.message();
        let Some(rest) = message.split("table '").nth(1) else { return error };
        let Some(name) = rest.split('\'').next() else { return error };
        let table = name.rsplit('.').next().unwrap_or(name);
        let mut candidates = Vec::new();
        for db in self.catalog.databases() {
            for t in db.tables.keys() {
                candidates.push((t.clone(), format!("{}.{t}", db.name)));
            }
        }
        let names: Vec<&str> = candidates.iter().map(|(t, _)| t.as_str()).collect();
        match closest(table, &names).and_then(|c| candidates.iter().find(|(t, _)| t == c)) {
            Some((_, full)) => error.with_hint(format!("did you mean {full}?")),
            None => error.with_hint("`%catalog tables DB` lists a database's tables"),
        }
    }
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine").field("executions", &self.executions).finish_non_exhaustive()
    }
}

/// Records an execution when it finishes, or as CANCELLED when the query is dropped.
struct Recorder<'a> {
    engine: &'a SqlEngine,
    execution: Option<QueryExecution>,
}

impl Recorder<'_> {
    fn finish(&mut self, execution: QueryExecution) -> Result<()> {
        self.execution = None;
        self.engine.record(execution)
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        if let Some(mut execution) = self.execution.take() {
            execution.state = QueryState::Cancelled;
            execution.completed = Some(self.engine.clock.now());
            execution.error = Some("cancelled by an interrupt".into());
            if let Err(e) = self.engine.record(execution) {
                tracing::warn!("could not record a cancelled query: {e}");
            }
        }
    }
}
