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
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
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
}

/// What `lakebook-cluster query` reads on stdin.
#[derive(Debug, Serialize)]
struct Request {
    options: Vec<(String, String)>,
    setup: Vec<String>,
    sql: String,
}

impl SqlEngine {
    /// Runs one query on a Ballista cluster and records it as an execution.
    pub async fn run_on_cluster(&self, target: &ClusterTarget, sql: &str, database: &str, workgroup: &str) -> Result<QueryResult> {
        let workgroup = self.workgroups.get(workgroup)?;
        let mut execution = self.new_execution(sql, database, &workgroup);
        let started = Instant::now();
        let outcome = self.cluster_query(target, sql, database).await;
        execution.engine_ms = started.elapsed().as_millis() as u64;
        execution.completed = Some(self.clock.now());
        match outcome {
            Ok((schema, batches, scanned)) => {
                execution.bytes_scanned = scanned;
                execution.rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                execution.output_location = self.write_result(&execution, &workgroup, &schema, &batches).await.ok();
                execution.state = QueryState::Succeeded;
                self.record(execution.clone())?;
                Ok(QueryResult { execution, schema, batches, messages: false })
            }
            Err(error) => {
                execution.state = QueryState::Failed;
                execution.error = Some(error.to_string());
                self.record(execution)?;
                Err(error)
            }
        }
    }

    async fn cluster_query(&self, target: &ClusterTarget, sql: &str, database: &str) -> Result<(SchemaRef, Vec<RecordBatch>, u64)> {
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
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let name = &scan.table_name;
                match (name.catalog(), name.schema()) {
                    (Some(c), _) if c != CATALOG_NAME => unsupported = Some(name.to_string()),
                    (_, Some(crate::query::streams::SCHEMA)) => unsupported = Some(name.to_string()),
                    (_, schema) => {
                        tables.insert((schema.unwrap_or(database).to_string(), name.table().to_string()));
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(fail)?;
        if let Some(name) = unsupported {
            return Err(service_err!(NOT_SUPPORTED, "{name} is not a Data Catalog table: a Ballista cluster reads catalog tables only")
                .with_hint("stream tables and temporary views are read by the local engine: `%%sql --engine local`"));
        }
        let df = ctx.execute_logical_plan(plan.clone()).await.map_err(fail)?;
        let physical = df.create_physical_plan().await.map_err(fail)?;
        let scanned = bytes_scanned(physical.as_ref());
        let mut setup = Vec::new();
        for db in tables.iter().map(|(db, _)| db).collect::<BTreeSet<_>>() {
            setup.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote(db)));
        }
        for (db, name) in &tables {
            let table = self.catalog.table(db, name)?;
            setup.push(self.declare(&table)?);
        }
        setup.push(format!("SET datafusion.catalog.default_schema = '{}'", database.replace('\'', "''")));
        let request = Request { options: self.cluster_options(), setup, sql: sql.to_string() };
        let (schema, batches) = run_client(target, &request).await?;
        Ok((schema, batches, scanned))
    }

    /// `CREATE EXTERNAL TABLE` for a catalog table, over where its files really are.
    fn declare(&self, table: &Table) -> Result<String> {
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
        let (stored, options) = match &definition.format {
            Format::Parquet => ("PARQUET", Vec::new()),
            Format::Json => ("JSON", Vec::new()),
            Format::Csv { delimiter, header, .. } => ("CSV", vec![("format.has_header", header.to_string()), ("format.delimiter", delimiter.to_string())]),
            other => {
                return Err(service_err!(NOT_SUPPORTED, "{} is stored as {other:?}, which the cluster does not read", table.qualified_name()));
            }
        };
        let mut text = format!("CREATE EXTERNAL TABLE {}.{} ({}) STORED AS {stored}", quote(&table.database), quote(&table.name), columns.join(", "));
        if let Some(compression) = definition.compression.as_deref().filter(|c| *c == "gzip") {
            text.push_str(&format!(" COMPRESSION TYPE {}", compression.to_uppercase()));
        }
        if !definition.partition_keys.is_empty() {
            let keys: Vec<String> = definition.partition_keys.iter().map(|k| quote(&k.name)).collect();
            text.push_str(&format!(" PARTITIONED BY ({})", keys.join(", ")));
        }
        let location = self.lake.url_for(&S3Uri::parse(&definition.location)?.folder());
        text.push_str(&format!(" LOCATION '{}'", location.replace('\'', "''")));
        if !options.is_empty() {
            let options: Vec<String> = options.iter().map(|(k, v)| format!("'{k}' '{}'", v.replace('\'', "''"))).collect();
            text.push_str(&format!(" OPTIONS ({})", options.join(", ")));
        }
        Ok(text)
    }

    /// How the cluster reaches the lake on S3: ballista-core's `s3.*` session options (the
    /// endpoint and region of `%lake connect`, the credentials of this kernel's environment).
    fn cluster_options(&self) -> Vec<(String, String)> {
        let mut options = Vec::new();
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
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&body)?;
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
            _ => service_err!(ClusterQueryFailed, "the query failed on the Ballista cluster at {}: {message}", target.scheduler),
        });
    }
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(output.stdout), None)
        .map_err(|e| crate::internal_err!("reading the cluster's answer: {e}"))?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| crate::internal_err!("reading the cluster's answer: {e}"))?;
    Ok((schema, batches))
}

/// Kills the client if the query is dropped (an interrupted cell) before it answers.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
        }
    }
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
