//! The DataFusion toolkit Athena-style SQL (`sql/`) and Redshift clusters (`redshift/`) both
//! build on: the tuned session configuration, the Glue catalog as DataFusion catalogs and
//! tables (`provider.rs`), streams as tables (`streams.rs`), `now()` on the engine clock
//! (`clock_fn.rs`), the Hive DDL Athena and Spectrum share (`hive.rs`), bytes-scanned metrics, and DataFusion's errors named as Athena names them.

pub mod clock_fn;
mod json;
pub(crate) mod hive;
mod physical;
mod provider;
mod semi_joins;
mod spelling;
pub mod distinct_set;
pub mod memory;
pub mod streams;

use datafusion::error::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use provider::{Bookmarks, CatalogTable, GlueCatalogProvider, RUN_CATALOG, RUN_SCHEMA, TempViews};

use crate::error::Error;

/// What a running query has done so far, read from its plan's live metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryProgress {
    pub elapsed: std::time::Duration,
    /// Rows the scans have produced (after pruning).
    pub rows_scanned: u64,
    /// As the footer counts it: Parquet's bytes fetched so far; text files' whole sizes.
    pub bytes_scanned: u64,
    /// Files the scans have finished, of the files they will read.
    pub files_done: u64,
    pub files_total: u64,
}

/// How a caller watches a long query: a first report once it has run `after`, then one
/// every `every`, until it ends.
pub struct Watch<'a> {
    pub after: std::time::Duration,
    pub every: std::time::Duration,
    pub report: &'a mut (dyn FnMut(&QueryProgress) + Send),
}

/// The progress of a running plan: the scans' `output_rows` and `files_processed` metrics,
/// their file lists, and [`bytes_scanned`].
pub fn progress_of(plan: &dyn ExecutionPlan, elapsed: std::time::Duration) -> QueryProgress {
    fn walk(plan: &dyn ExecutionPlan, progress: &mut QueryProgress) {
        use datafusion::datasource::physical_plan::FileScanConfig;
        use datafusion::datasource::source::DataSourceExec;
        if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
            let metrics = plan.metrics();
            let count = |name: &str| metrics.as_ref().and_then(|m| m.sum_by_name(name)).map_or(0, |v| v.as_usize() as u64);
            progress.rows_scanned += count("output_rows");
            progress.files_done += count("files_processed");
            if let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() {
                progress.files_total += config.file_groups.iter().map(|g| g.len() as u64).sum::<u64>();
            }
        }
        for child in plan.children() {
            walk(child.as_ref(), progress);
        }
    }
    let mut progress = QueryProgress { elapsed, bytes_scanned: bytes_scanned(plan), ..QueryProgress::default() };
    walk(plan, &mut progress);
    progress.files_done = progress.files_done.min(progress.files_total);
    progress
}

/// Runs `plan` to the end and collects its batches. With a `watch`, a first report once the
/// query has run `watch.after` (counted from `started`, which may be before planning), then
/// one every `watch.every`; `check` runs before the first batch and after each (a scan limit
/// that cancels the query by failing). Dropping the future cancels the query.
pub async fn collect_watched<E>(
    plan: &std::sync::Arc<dyn ExecutionPlan>,
    task: std::sync::Arc<datafusion::execution::TaskContext>,
    started: std::time::Instant,
    watch: Option<&mut Watch<'_>>,
    fail: impl Fn(DataFusionError) -> E,
    check: impl FnMut(&dyn ExecutionPlan) -> Result<(), E>,
) -> Result<Vec<arrow_array::RecordBatch>, E> {
    let mut batches = Vec::new();
    drive_watched(plan, task, started, watch, fail, check, |batch| {
        batches.push(batch);
        Ok(())
    })
    .await?;
    Ok(batches)
}

/// Runs `plan` to the end as [`collect_watched`] does, handing each batch to `take` as it
/// comes instead of keeping it.
pub async fn drive_watched<E>(
    plan: &std::sync::Arc<dyn ExecutionPlan>,
    task: std::sync::Arc<datafusion::execution::TaskContext>,
    started: std::time::Instant,
    mut watch: Option<&mut Watch<'_>>,
    fail: impl Fn(DataFusionError) -> E,
    mut check: impl FnMut(&dyn ExecutionPlan) -> Result<(), E>,
    mut take: impl FnMut(arrow_array::RecordBatch) -> Result<(), E>,
) -> Result<(), E> {
    use futures::StreamExt;
    let mut stream = datafusion::physical_plan::execute_stream(plan.clone(), task).map_err(&fail)?;
    check(plan.as_ref())?;
    // A first report that is due already is made now: the timer rounds deadlines up to the
    // next millisecond, so a query faster than that would otherwise never be reported.
    if let Some(w) = watch.as_mut()
        && started + w.after <= std::time::Instant::now()
    {
        (w.report)(&progress_of(plan.as_ref(), started.elapsed()));
    }
    let mut ticks = watch.as_ref().map(|w| {
        let every = w.every.max(std::time::Duration::from_millis(10));
        let now = std::time::Instant::now();
        let first = if started + w.after <= now { now + every } else { started + w.after };
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::from_std(first), every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        ticks
    });
    loop {
        // The ticks come first, so a query that streams batches all the time still reports.
        let next = match ticks.as_mut() {
            Some(ticks) => tokio::select! {
                biased;
                _ = ticks.tick() => None,
                batch = stream.next() => Some(batch),
            },
            None => Some(stream.next().await),
        };
        match next {
            None => {
                if let Some(watch) = watch.as_mut() {
                    (watch.report)(&progress_of(plan.as_ref(), started.elapsed()));
                }
            }
            Some(None) => return Ok(()),
            Some(Some(batch)) => {
                take(batch.map_err(&fail)?)?;
                check(plan.as_ref())?;
            }
        }
    }
}

/// DataFusion's catalog name for the Glue catalog, as Athena names it.
pub const CATALOG_NAME: &str = "awsdatacatalog";

/// DataFusion's session configuration as Lakebook tunes it, for Athena-style queries and
/// Redshift clusters alike.
pub fn tuned_config() -> SessionConfig {
    SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        // Tuned on TPC-H SF1 with 2 threads (bench/tpch.py). Parquet strings are scanned as
        // views (see provider.rs); results still come out as plain strings.
        .set_bool("datafusion.optimizer.expand_views_at_output", true)
        // Build sides up to 16 MB / 1M rows are hashed once instead of repartitioning the
        // probe side (q18 2x, q3/q5 ~15% faster).
        .set_usize("datafusion.optimizer.hash_join_single_partition_threshold", 16 << 20)
        .set_usize("datafusion.optimizer.hash_join_single_partition_threshold_rows", 1 << 20)
        // Skip the partial aggregation when it would keep more than 1 row in 10 (q18's
        // GROUP BY l_orderkey: 20% faster).
        .set_str("datafusion.execution.skip_partial_aggregation_probe_ratio_threshold", "0.1")
    // Parquet filter pushdown (late materialisation) stays off, DataFusion's default: it
    // made q3, q5, q6 and q9 1.2-2x slower here and helped only q18. So did turning it on
    // only for scans filtered by nothing but join (dynamic) filters: q5 and q9 1.2-1.5x
    // slower, their joins' key sets being large.
}

/// A session on `config` with Lakebook's memory pool, its planner rule (semi_joins.rs) and
/// its last physical rule (physical/: faster expressions).
pub fn context(config: SessionConfig) -> SessionContext {
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(memory::runtime())
        .with_default_features()
        .with_optimizer_rule(std::sync::Arc::new(semi_joins::SemiJoinsDown))
        .with_physical_optimizer_rule(std::sync::Arc::new(physical::FasterExprs))
        .build();
    SessionContext::new_with_state(state)
}

/// Bytes actually read: Parquet reports what it fetched after column and row-group
/// pruning; text formats are read whole, so their files' sizes count.
pub fn bytes_scanned(plan: &dyn ExecutionPlan) -> u64 {
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    let mut total = 0;
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        let parquet = plan.metrics().and_then(|m| m.sum_by_name("bytes_scanned")).map(|v| v.as_usize() as u64);
        match parquet {
            Some(bytes) => total += bytes,
            None => {
                if let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() {
                    total += config.file_groups.iter().flat_map(|g| g.iter()).map(|f| f.object_meta.size).sum::<u64>();
                }
            }
        }
    }
    for child in plan.children() {
        total += bytes_scanned(child.as_ref());
    }
    total
}

/// DataFusion's errors named as Athena names a failed query's reason (SYNTAX_ERROR,
/// TABLE_NOT_FOUND …), with the offending SQL line and a caret for syntax errors.
pub fn sql_error(error: DataFusionError, sql: &str) -> Error {
    let message = root_message(error.find_root()).trim().to_string();
    let lower = message.to_lowercase();
    let (code, hint): (&'static str, Option<String>) = if lower.starts_with("sql error") || lower.contains("parsererror") {
        ("SYNTAX_ERROR", caret(sql, &message))
    } else if lower.contains("table") && lower.contains("not found") {
        ("TABLE_NOT_FOUND", None)
    } else if lower.contains("no field named") || lower.starts_with("schema error") {
        ("COLUMN_NOT_FOUND", None)
    } else if matches!(error.find_root(), DataFusionError::ResourcesExhausted(_)) {
        let (size, source) = memory::limit();
        (
            "EXCEEDED_LOCAL_MEMORY_LIMIT",
            Some(format!(
                "the query needed more than the {} memory pool ({source}) and this part of it cannot spill to disk; set {} larger before starting the kernel, or aggregate or filter earlier",
                crate::human_bytes(size as u64),
                memory::VARIABLE
            )),
        )
    } else if lower.contains("not implemented") || lower.contains("not supported") || lower.contains("unsupported") {
        ("NOT_SUPPORTED", None)
    } else {
        ("GENERIC_USER_ERROR", None)
    };
    let err = Error::Service { code, message, hint: None };
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// The SQL line a parse error points at, with a caret under the column.
fn caret(sql: &str, message: &str) -> Option<String> {
    let after = message.split("Line: ").nth(1)?;
    let line: usize = after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let column: usize = after.split("Column: ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let text = sql.lines().nth(line.checked_sub(1)?)?;
    Some(format!("line {line}: {text}\n{}^", " ".repeat(column.saturating_sub(1) + format!("line {line}: ").len())))
}

/// The innermost error's text, without DataFusion's category prefixes where they only
/// repeat what the Athena failure reason says.
fn root_message(error: &DataFusionError) -> String {
    match error {
        DataFusionError::SQL(e, _) => format!("SQL error: {e}"),
        DataFusionError::Plan(m) | DataFusionError::Execution(m) | DataFusionError::NotImplemented(m) => m.clone(),
        DataFusionError::SchemaError(e, _) => format!("Schema error: {e}"),
        other => other.to_string(),
    }
}
