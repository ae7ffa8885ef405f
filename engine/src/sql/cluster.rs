//! Queries on an Apache DataFusion Ballista cluster (`%sql engine connect ballista://HOST:PORT`,
//! or `--engine` per query). The query is planned here first, so its errors keep their
//! Athena names and the catalog tables it reads are known; those tables are declared to the
//! cluster as standard DataFusion listing tables over their real locations (`CREATE EXTERNAL
//! TABLE … LOCATION`: the lake's S3 URL, or a `file://` path when the lake is this machine's
//! folder and the cluster runs here too); the query runs there through `lakebook-cluster query`,
//! whose Arrow IPC answer becomes the rows. It is recorded as an execution like a local one;
//! its bytes scanned are the sizes of the files its scans cover after partition pruning (the
//! cluster does not report Parquet's column pruning back).
//!
//! What runs where: the plan uses only DataFusion's standard nodes, so a stock Ballista
//! cluster runs it (with S3 access configured per session, as ballista-core does). The
//! engine clock's `now()`, stream tables (`streams.*`), temporary views and DDL/DML stay
//! on the local engine.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::{CATALOG_NAME, QueryResult, QueryState, SqlEngine};
use crate::catalog::{Format, Table};
use crate::error::Result;
use crate::lake::S3Uri;
use crate::query::{bytes_scanned, sql_error};
use crate::service_err;

/// Where a query goes: the scheduler, and the client program that talks to it.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    /// `HOST:PORT` of the Ballista scheduler.
    pub scheduler: String,
    /// The `lakebook-cluster` binary.
    pub client: PathBuf,
    /// A query running longer fails with `QueryTimeout` and its job is cancelled.
    pub timeout: std::time::Duration,
}

/// How long a cluster query may run unless `%sql engine connect … --timeout` says otherwise:
/// Athena's default DML query timeout.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// What `lakebook-cluster query` reads on stdin.
#[derive(Debug, Serialize)]
struct Request {
    options: Vec<(String, String)>,
    setup: Vec<String>,
    sql: String,
    timeout_secs: u64,
}

impl SqlEngine {
    /// Runs one query on a Ballista cluster and records it as an execution.
    pub async fn run_on_cluster(&self, target: &ClusterTarget, sql: &str, database: &str, workgroup: &str) -> Result<QueryResult> {
        let workgroup = self.workgroups.get(workgroup)?;
        let mut execution = self.new_execution(sql, database, &workgroup);
        execution.engine = Some(format!("ballista://{}", target.scheduler));
        execution.state = QueryState::Running;
        // Dropping this future (an interrupt) records the execution as CANCELLED; the client,
        // stopped then, cancels the job on the scheduler.
        let mut guard = super::Recorder { engine: self, execution: Some(execution.clone()) };
        let started = Instant::now();
        let outcome = self.cluster_query(target, sql, database, &workgroup, &execution.id).await;
        execution.engine_ms = started.elapsed().as_millis() as u64;
        execution.completed = Some(self.clock.now());
        match outcome {
            Ok((schema, batches, scanned)) => {
                execution.bytes_scanned = scanned;
                execution.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                execution.output_location = self.write_result(&execution, &workgroup, &schema, &batches).await.ok();
                execution.state = QueryState::Succeeded;
                guard.finish(execution.clone())?;
                Ok(QueryResult { execution, schema, batches, messages: false })
            }
            Err(error) => {
                execution.state = QueryState::Failed;
                execution.error = Some(error.to_string());
                guard.finish(execution)?;
                Err(error)
            }
        }
    }

    async fn cluster_query(&self, target: &ClusterTarget, sql: &str, database: &str, workgroup: &super::Workgroup, execution_id: &str) -> Result<(SchemaRef, Vec<RecordBatch>, u64)> {
        let ctx = self.context_for(database, None)?;
        let fail = |e| self.suggest_table(sql_error(e, sql));
        // Planned, not run: `SessionContext::sql` would carry out DDL here at once.
        let plan = ctx.state().create_logical_plan(sql).await.map_err(fail)?;
        if matches!(
            plan,
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) | LogicalPlan::Statement(_) | LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::DescribeTable(_) | LogicalPlan::Extension(_)
        ) {
            return Err(service_err!(NOT_SUPPORTED, "a Ballista cluster runs queries; this statement runs on the local engine")
                .with_hint("run it with `%%sql --engine local`"));
        }
        let mut tables = BTreeSet::new();
        let mut unsupported = None;
        let manual_clock = self.clock.mode() == crate::clock::ClockMode::Manual;
        plan.apply_with_subqueries(|node| {
            // The cluster's now() is its system clock: a manual engine clock's time stays here.
            if manual_clock {
                node.apply_expressions(|e| {
                    e.apply(|e| {
                        if matches!(e, Expr::ScalarFunction(f) if f.name() == "now") {
                            unsupported = Some("now() on the manual engine clock".to_string());
                        }
                        Ok(TreeNodeRecursion::Continue)
                    })
                })?;
            }
            if let LogicalPlan::TableScan(scan) = node {
                let name = &scan.table_name;
                match (name.catalog(), name.schema()) {
                    (Some(c), _) if c != CATALOG_NAME => unsupported = Some(name.to_string()),
                    (_, Some(crate::query::streams::SCHEMA)) => unsupported = Some(name.to_string()),
                    // a temporary view (`--output NAME`) shadows a table of its name; `t$partitions`
                    _ if self.is_temp_view(name.table()) || name.table().contains('$') => unsupported = Some(name.to_string()),
                    (_, schema) => {
                        tables.insert((schema.unwrap_or(database).to_string(), name.table().to_string()));
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(fail)?;
        match unsupported {
            Some(name) if name.starts_with("now()") => {
                return Err(service_err!(NOT_SUPPORTED, "{name}: a Ballista cluster's now() is its own system clock")
                    .with_hint("run it with `%%sql --engine local`, or use `%clock system`"));
            }
            Some(name) => {
                return Err(service_err!(NOT_SUPPORTED, "{name} is not a Data Catalog table: a Ballista cluster reads catalog tables only")
                    .with_hint("stream tables and temporary views are read by the local engine: `%%sql --engine local`"));
            }
            None => {}
        }
        let df = ctx.execute_logical_plan(plan.clone()).await.map_err(fail)?;
        let physical = df.create_physical_plan().await.map_err(fail)?;
        let scanned = bytes_scanned(physical.as_ref());
        // The cluster does not report bytes as it reads: the limit applies to what the scans cover.
        if let Some(limit) = workgroup.bytes_scanned_cutoff.filter(|limit| scanned > *limit) {
            return Err(super::scan_limit_error(workgroup, limit, scanned));
        }
        let mut setup = Vec::new();
        for db in tables.iter().map(|(db, _)| db).collect::<BTreeSet<_>>() {
            setup.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote(db)));
        }
        for (db, name) in &tables {
            let table = self.catalog.table(db, name)?;
            setup.push(self.declare(&ctx, &table).await?);
        }
        setup.push(format!("SET datafusion.catalog.default_schema = '{}'", database.replace('\'', "''")));
        let mut options = self.cluster_options();
        // The scheduler's job list (its REST API and web UI) names the job after the execution.
        options.push(("ballista.job.name".to_string(), format!("lakebook {execution_id}")));
        let request = Request { options, setup, sql: sql.to_string(), timeout_secs: target.timeout.as_secs().max(1) };
        let (schema, batches) = run_client(target, &request).await?;
        Ok((schema, batches, scanned))
    }

    /// `CREATE EXTERNAL TABLE` for a catalog table, over exactly the files this engine reads
    /// for it: the files themselves when it has no partitions; its folder when it has (the
    /// cluster reads partition values from `k=v` folder names), and only if what a listing of
    /// that folder finds is what this engine reads. Anything else would be a different answer,
    /// so it is refused by name.
    async fn declare(&self, ctx: &SessionContext, table: &Table) -> Result<String> {
        let definition = &table.definition;
        if table.locations().len() > 1 {
            return Err(service_err!(NOT_SUPPORTED, "{} has partitions outside its location, which a listing table on the cluster cannot read", table.qualified_name()));
        }
        let mut columns = Vec::new();
        for column in definition.columns.iter().chain(&definition.partition_keys) {
            let data_type = crate::catalog::types::arrow_type(&column.data_type)?;
            let sql_type = sql_type(&data_type).ok_or_else(|| {
                service_err!(NOT_SUPPORTED, "the column {}.{} ({}) has a type a table declared on the cluster cannot have", table.qualified_name(), column.name, column.data_type)
            })?;
            columns.push(format!("{} {sql_type}", quote(&column.name)));
        }
        let mut options = Vec::new();
        let stored = match &definition.format {
            Format::Parquet => "PARQUET",
            Format::Json => "JSON",
            Format::Csv { delimiter, header, .. } => {
                options.push(("format.has_header", header.to_string()));
                options.push(("format.delimiter", delimiter.to_string()));
                "CSV"
            }
            other => {
                return Err(service_err!(NOT_SUPPORTED, "{} is stored as {other:?}, which the cluster does not read", table.qualified_name()));
            }
        };
        // Parquet's compression is inside the file. A compressed text file's is not, and
        // DataFusion 55's plan format (what the scheduler sends executors) drops it: the
        // executors would read gzip bytes as text.
        if let Some(compression) = definition.compression.as_deref().filter(|_| stored != "PARQUET") {
            return Err(service_err!(NOT_SUPPORTED, "{} is {compression}-compressed {stored}, which Ballista's executors cannot be told to decompress", table.qualified_name())
                .with_hint("run it with `%%sql --engine local`, or convert the table to Parquet with a CTAS"));
        }
        let mut text = format!("CREATE EXTERNAL TABLE {}.{} ({}) STORED AS {stored}", quote(&table.database), quote(&table.name), columns.join(", "));
        if !definition.partition_keys.is_empty() {
            // DataFusion's PARTITIONED BY keeps quotes as part of the name: bare names only.
            if let Some(key) = definition.partition_keys.iter().find(|k| !k.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')) {
                return Err(service_err!(NOT_SUPPORTED, "the partition key {:?} of {} is not a plain name, which a table declared on the cluster cannot have", key.name, table.qualified_name()));
            }
            let keys: Vec<String> = definition.partition_keys.iter().map(|k| k.name.clone()).collect();
            text.push_str(&format!(" PARTITIONED BY ({})", keys.join(", ")));
        }
        let folder = S3Uri::parse(&definition.location)?.folder();
        let files = self.files_read(ctx, table).await?;
        let location = if definition.partition_keys.is_empty() && !files.is_empty() {
            let urls: Vec<String> = files.iter().map(|key| sql_string(&self.lake.url_for(&S3Uri { bucket: folder.bucket.clone(), key: key.clone() }))).collect();
            format!("({})", urls.join(", "))
        } else {
            self.same_files_below(&folder, &files, table).await?;
            sql_string(&self.lake.url_for(&folder))
        };
        text.push_str(&format!(" LOCATION {location}"));
        if !options.is_empty() {
            let options: Vec<String> = options.iter().map(|(k, v)| format!("{} {}", sql_string(k), sql_string(v))).collect();
            text.push_str(&format!(" OPTIONS ({})", options.join(", ")));
        }
        Ok(text)
    }

    /// The keys of the files this engine reads for the whole table (its registered partitions,
    /// without the files it skips), from a plan of `SELECT *`. Column names its files spell
    /// in mixed case are refused: the cluster matches names exactly, and would read NULLs.
    async fn files_read(&self, ctx: &SessionContext, table: &Table) -> Result<BTreeSet<String>> {
        let sql = format!("SELECT * FROM {}.{}", quote(&table.database), quote(&table.name));
        let fail = |e| sql_error(e, &sql);
        let physical = ctx.sql(&sql).await.map_err(fail)?.create_physical_plan().await.map_err(fail)?;
        let mut files = BTreeSet::new();
        let mut mixed_case = None;
        scans(physical.as_ref(), &mut |config| {
            files.extend(config.file_groups.iter().flat_map(|g| g.iter()).map(|f| f.object_meta.location.to_string()));
            if let Some(field) = config.file_schema().fields().iter().find(|f| f.name().chars().any(char::is_uppercase)) {
                mixed_case = Some(field.name().clone());
            }
        });
        if let Some(name) = mixed_case {
            return Err(service_err!(NOT_SUPPORTED, "the files of {} spell the column {name:?} in mixed case, which a table declared on the cluster would read as NULL", table.qualified_name())
                .with_hint("run it with `%%sql --engine local`, or rewrite the table with lower-case names (a CTAS)"));
        }
        Ok(files)
    }

    /// Refuses a partitioned (or empty) table when a listing of its folder, as the cluster
    /// lists it (files directly in it or below `k=v` folders only), differs from the files
    /// this engine reads: an unregistered partition, a `_SUCCESS` marker, a folder not named `k=v`.
    async fn same_files_below(&self, folder: &S3Uri, files: &BTreeSet<String>, table: &Table) -> Result<()> {
        let listing = self.lake.list(folder, true).await?;
        let parquet = table.definition.format == Format::Parquet;
        let listed: BTreeSet<String> = listing
            .objects
            .into_iter()
            .filter(|o| !o.key.ends_with('/') && (parquet || o.size > 0))
            .filter(|o| {
                let rest = o.key.strip_prefix(folder.key.as_str()).unwrap_or(&o.key);
                let mut parts: Vec<&str> = rest.split('/').collect();
                parts.pop();
                parts.iter().all(|p| p.contains('='))
            })
            .map(|o| o.key)
            .collect();
        let bucket = &folder.bucket;
        if let Some(extra) = listed.difference(files).next() {
            return Err(service_err!(NOT_SUPPORTED, "the cluster would read s3://{bucket}/{extra} for {}, which this engine does not read (an unregistered partition, or a file such as _SUCCESS)", table.qualified_name())
                .with_hint("register partitions with MSCK REPAIR TABLE, or run it with `%%sql --engine local`"));
        }
        if let Some(missing) = files.difference(&listed).next() {
            return Err(service_err!(NOT_SUPPORTED, "{} reads s3://{bucket}/{missing}, which the cluster would not find (a partition outside k=v folders)", table.qualified_name())
                .with_hint("run it with `%%sql --engine local`"));
        }
        Ok(())
    }

    fn is_temp_view(&self, name: &str) -> bool {
        self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).contains_key(name)
    }

    /// How the cluster reaches the lake on S3: ballista-core's `s3.*` session options (the
    /// endpoint and region of `%lake connect`, the credentials of this kernel's environment).
    fn cluster_options(&self) -> Vec<(String, String)> {
        // Ballista 55's adaptive planner (its default) leaves a job hanging when an executor is
        // lost mid-stage (seen here: the stage is rolled back, then its tasks' updates are
        // refused); the static planner reruns the lost tasks on the executors left.
        let mut options = vec![("ballista.planner.adaptive.enabled".to_string(), "false".to_string())];
        if let Some((setting, _)) = self.lake.remote() {
            let endpoint = setting.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
            if let Some(endpoint) = endpoint {
                options.push(("s3.allow_http".into(), endpoint.starts_with("http://").to_string()));
                options.push(("s3.endpoint".into(), endpoint));
            }
            if let Some(region) = setting.region.clone().or_else(|| std::env::var("AWS_REGION").ok()) {
                options.push(("s3.region".into(), region));
            }
            for (var, key) in [("AWS_ACCESS_KEY_ID", "s3.access_key_id"), ("AWS_SECRET_ACCESS_KEY", "s3.secret_access_key"), ("AWS_SESSION_TOKEN", "s3.session_token")] {
                if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
                    options.push((key.into(), value));
                }
            }
        }
        options
    }
}

/// Calls `visit` with the file scan of every data source in a physical plan.
fn scans(plan: &dyn datafusion::physical_plan::ExecutionPlan, visit: &mut dyn FnMut(&datafusion::datasource::physical_plan::FileScanConfig)) {
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    if let Some(config) = plan.downcast_ref::<DataSourceExec>().and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>()) {
        visit(config);
    }
    for child in plan.children() {
        scans(child.as_ref(), visit);
    }
}

/// A SQL string literal.
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQL type DataFusion's `CREATE EXTERNAL TABLE` takes for a column's Arrow type.
fn sql_type(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary | DataType::LargeBinary => "BYTEA".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        _ => return None,
    })
}

/// Sends the request to `lakebook-cluster query` and reads its Arrow IPC answer. The client
/// is a process of its own: whatever happens on the cluster, the kernel goes on; an
/// interrupted cell kills it.
async fn run_client(target: &ClusterTarget, request: &Request) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(&target.client)
        .args(["query", "--scheduler", &format!("df://{}", target.scheduler)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| service_err!(ClusterUnavailable, "cannot start the Ballista client {}: {e}", target.client.display()))?;
    let body = serde_json::to_vec(request).map_err(|e| crate::internal_err!("encoding a cluster request: {e}"))?;
    let mut guard = KillOnDrop(Some(child.id()));
    let output = tokio::task::spawn_blocking(move || {
        // The client reads the whole request before it answers: no deadlock on the pipes.
        // A client that ended before reading it (a bad request) says why on stderr: still wait.
        if let Some(mut stdin) = child.stdin.take()
            && let Err(e) = stdin.write_all(&body)
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        child.wait_with_output()
    })
    .await
    .map_err(|e| crate::internal_err!("waiting for the Ballista client: {e}"))?
    .map_err(|e| service_err!(ClusterUnavailable, "the Ballista client failed: {e}"))?;
    guard.0 = None;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reported = stderr.lines().rev().find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok());
        let (kind, message) = match &reported {
            Some(v) => (v["kind"].as_str().unwrap_or("Execution").to_string(), v["error"].as_str().unwrap_or_default().to_string()),
            None => ("Execution".to_string(), format!("the Ballista client ended with {}: {}", output.status, stderr.lines().last().unwrap_or_default())),
        };
        return Err(match kind.as_str() {
            "SchedulerUnavailable" => service_err!(ClusterUnavailable, "no Ballista scheduler answers at {}: {message}", target.scheduler)
                .with_hint("start one with `lakebook cluster start`, or connect to another with `%sql engine connect ballista://HOST:PORT`"),
            "Timeout" => service_err!(QueryTimeout, "the query ran longer than its timeout on the Ballista cluster at {}; its job was cancelled", target.scheduler)
                .with_hint("give queries more time with `%sql engine connect ballista://HOST:PORT --timeout 2h`"),
            "ExecutorLost" => service_err!(ClusterQueryFailed, "the Ballista cluster at {} lost an executor during the query: {message}", target.scheduler)
                .with_hint("run the query again: it runs on the executors the cluster has now"),
            _ => service_err!(ClusterQueryFailed, "the query failed on the Ballista cluster at {}: {message}", target.scheduler),
        });
    }
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(output.stdout), None)
        .map_err(|e| crate::internal_err!("reading the cluster's answer: {e}"))?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| crate::internal_err!("reading the cluster's answer: {e}"))?;
    Ok((schema, batches))
}

/// Stops the client if the query is dropped (an interrupted cell) before it answers: SIGTERM,
/// on which it cancels its job on the scheduler, then SIGKILL if it has not ended 5 s later.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let pid = pid.to_string();
            let signal = |name: &str| std::process::Command::new("kill").args([name, &pid]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
            if signal("-TERM") {
                std::thread::spawn(move || {
                    let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists() && !zombie(&pid);
                    let deadline = Instant::now() + std::time::Duration::from_secs(5);
                    while alive() && Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    if alive() {
                        let _ = std::process::Command::new("kill").args(["-KILL", &pid]).stderr(Stdio::null()).status();
                    }
                });
            }
        }
    }
}

/// Whether a process has ended but not been reaped (state Z in /proc/PID/stat).
fn zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_map_to_create_external_table_types() {
        assert_eq!(sql_type(&DataType::Decimal128(12, 2)).as_deref(), Some("DECIMAL(12,2)"));
        assert_eq!(sql_type(&DataType::Utf8).as_deref(), Some("VARCHAR"));
        assert!(sql_type(&DataType::List(std::sync::Arc::new(datafusion::arrow::datatypes::Field::new("item", DataType::Int32, true)))).is_none());
        assert_eq!(quote("odd\"name"), "\"odd\"\"name\"");
    }
}
