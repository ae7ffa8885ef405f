//! Benchmark (not a test): TPC-H queries through the engine's catalog path next to bare
//! DataFusion on the same Parquet files, 2 Tokio workers. Prints its timings as one JSON
//! object on stdout (progress goes to stderr); `bench/tpch.py` generates the data, runs
//! DuckDB on the same files and prints the comparison.
//!
//!   cargo run --bin bench_tpch -- DATA_DIR [--queries DIR] [--reps N] [--only qN,qM] [--explain] [--redshift]
//!
//! DATA_DIR holds `<table>.parquet` (or `<table>/*.parquet`) as `tpchgen-cli parquet` writes it.
//! The files are hard-linked (copied if that fails) into a temporary workspace's lake at
//! `s3://tpch/<table>/`, catalogued by a crawler into database `tpch`, then every query runs
//! once to warm up and `--reps` times measured, three ways taking turns (`--explain` prints
//! each query's `EXPLAIN ANALYZE` from the engine and bare DataFusion first):
//! - `engine`: `Lakebook::sql().run` (catalog tables, execution records, result files);
//! - `datafusion`: a bare `SessionContext` with `register_parquet`, with the engine's own
//!   session config (so the difference is the engine's overhead);
//! - `datafusion_defaults`: the same with DataFusion's default config and as many target
//!   partitions as the engine (what DataFusion gives out of the box).
//!
//! With `--redshift` (what `bench/redshift.py` runs) the runners are instead `engine` (the
//! catalog tables, queried in place) and `redshift`: a 2-node cluster whose tables were
//! created with distribution and sort keys and loaded with `COPY … FORMAT AS PARQUET` from
//! the same lake files (the load times are reported).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use lakebook_engine::Lakebook;
use lakebook_engine::catalog::CrawlerConfig;
use lakebook_engine::catalog::types::glue_type;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use serde_json::json;

/// The kernel's allocator, so the benchmark measures what the kernel runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error>;

/// The eight TPC-H tables and their columns, in order, as the specification names them.
const TABLES: [(&str, &[&str]); 8] = [
    ("region", &["r_regionkey", "r_name", "r_comment"]),
    ("nation", &["n_nationkey", "n_name", "n_regionkey", "n_comment"]),
    ("supplier", &["s_suppkey", "s_name", "s_address", "s_nationkey", "s_phone", "s_acctbal", "s_comment"]),
    ("customer", &["c_custkey", "c_name", "c_address", "c_nationkey", "c_phone", "c_acctbal", "c_mktsegment", "c_comment"]),
    ("part", &["p_partkey", "p_name", "p_mfgr", "p_brand", "p_type", "p_size", "p_container", "p_retailprice", "p_comment"]),
    ("partsupp", &["ps_partkey", "ps_suppkey", "ps_availqty", "ps_supplycost", "ps_comment"]),
    (
        "orders",
        &["o_orderkey", "o_custkey", "o_orderstatus", "o_totalprice", "o_orderdate", "o_orderpriority", "o_clerk", "o_shippriority", "o_comment"],
    ),
    (
        "lineitem",
        &[
            "l_orderkey",
            "l_partkey",
            "l_suppkey",
            "l_linenumber",
            "l_quantity",
            "l_extendedprice",
            "l_discount",
            "l_tax",
            "l_returnflag",
            "l_linestatus",
            "l_shipdate",
            "l_commitdate",
            "l_receiptdate",
            "l_shipinstruct",
            "l_shipmode",
            "l_comment",
        ],
    ),
];

struct Args {
    data: PathBuf,
    queries: PathBuf,
    reps: usize,
    only: Option<Vec<String>>,
    explain: bool,
    redshift: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let usage = "usage: bench_tpch DATA_DIR [--queries DIR] [--reps N] [--only q1,q6] [--explain] [--redshift]";
    let mut args = std::env::args().skip(1);
    let mut data = None;
    let mut queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/tpch");
    let mut reps = 5;
    let mut only = None;
    let mut explain = false;
    let mut redshift = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--queries" => queries = args.next().ok_or(usage)?.into(),
            "--reps" => reps = args.next().ok_or(usage)?.parse()?,
            "--only" => only = Some(args.next().ok_or(usage)?.split(',').map(str::to_string).collect()),
            "--explain" => explain = true,
            "--redshift" => redshift = true,
            "-h" | "--help" => return Err(usage.into()),
            _ if data.is_none() => data = Some(PathBuf::from(arg)),
            _ => return Err(usage.into()),
        }
    }
    Ok(Args { data: data.ok_or(usage)?, queries, reps: reps.max(1), only, explain, redshift })
}

/// `(name, sql)` for every `qN.sql` in `dir`, in query-number order.
fn read_queries(dir: &Path, only: Option<&[String]>) -> Result<Vec<(String, String)>, BoxError> {
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
        if path.extension().is_some_and(|e| e == "sql") && only.is_none_or(|o| o.contains(&name)) {
            queries.push((name, std::fs::read_to_string(&path)?.trim().trim_end_matches(';').to_string()));
        }
    }
    queries.sort_by_key(|(name, _)| name.trim_start_matches('q').parse::<u32>().unwrap_or(u32::MAX));
    Ok(queries)
}

/// The Parquet files of one table: `DATA/<table>.parquet` or `DATA/<table>/*.parquet`.
fn table_files(data: &Path, table: &str) -> Result<Vec<PathBuf>, BoxError> {
    let single = data.join(format!("{table}.parquet"));
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join(table))
        .map_err(|e| format!("no {table}.parquet or {table}/ in {}: {e}", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

/// Hard-links (or, across file systems, copies) `from` to `to`: placing ~400 MB in the lake
/// through `lake().put` would only measure the disk.
fn place(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to.parent().unwrap_or(to))?;
    std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
}

/// Median of the measured runs, in milliseconds.
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 }
}

/// What runs a query: the engine's catalog path, or a bare DataFusion context.
#[derive(Clone, Copy)]
enum Runner<'a> {
    Engine(&'a Lakebook),
    Bare(&'a SessionContext),
    /// The warehouse cluster `tpch` of the engine.
    Cluster(&'a Lakebook),
}

impl Runner<'_> {
    async fn run(self, sql: &str) -> Result<Vec<RecordBatch>, String> {
        match self {
            Runner::Engine(lb) => {
                let mut out = lb.sql().run(sql, "tpch").await.map_err(|e| e.to_string())?;
                Ok(out.pop().map(|r| r.batches).unwrap_or_default())
            }
            Runner::Bare(ctx) => {
                let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
                df.collect().await.map_err(|e| e.to_string())
            }
            Runner::Cluster(lb) => {
                let mut out = lb.redshift().run(CLUSTER, sql).await.map_err(|e| e.to_string())?;
                Ok(out.pop().map(|o| o.batches).unwrap_or_default())
            }
        }
    }
}

/// One warm-up run per runner, then `reps` rounds in which every runner runs once (in a
/// rotating order), so a burst of load elsewhere on the machine hits all of them alike.
/// Per runner: (times in ms, last result) or the error.
async fn measure(runners: &[(&'static str, Runner<'_>)], sql: &str, reps: usize) -> Vec<Result<(Vec<f64>, Vec<RecordBatch>), String>> {
    let mut outcomes = Vec::new();
    for (_, runner) in runners {
        outcomes.push(runner.run(sql).await.map(|batches| (Vec::with_capacity(reps), batches)));
    }
    for round in 0..reps {
        for i in (0..runners.len()).map(|i| (i + round) % runners.len()) {
            let Ok((times, batches)) = &mut outcomes[i] else { continue };
            let start = Instant::now();
            match runners[i].1.run(sql).await {
                Ok(result) => {
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                    *batches = result;
                }
                Err(e) => outcomes[i] = Err(e),
            }
        }
    }
    outcomes
}

/// Result rows as text, so results whose Arrow types differ (Utf8 vs Utf8View) compare equal.
fn as_text(batches: &[RecordBatch]) -> String {
    arrow_cast::pretty::pretty_format_batches(batches).map(|t| t.to_string()).unwrap_or_else(|e| e.to_string())
}

/// Result rows as JSON arrays of each value's text as Arrow displays it (decimals exact, dates
/// ISO), null as null.
fn rows_json(batches: &[RecordBatch]) -> Result<serde_json::Value, BoxError> {
    use arrow_array::Array;
    use arrow_cast::display::{ArrayFormatter, FormatOptions};
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<(&dyn Array, ArrayFormatter<'_>)> =
            batch.columns().iter().map(|c| Ok((c.as_ref(), ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default())?))).collect::<Result<_, BoxError>>()?;
        for row in 0..batch.num_rows() {
            let values = columns.iter().map(|(c, f)| if c.is_null(row) { serde_json::Value::Null } else { json!(f.value(row).to_string()) });
            rows.push(serde_json::Value::Array(values.collect()));
        }
    }
    Ok(serde_json::Value::Array(rows))
}

/// Prints `EXPLAIN ANALYZE` of a query from the engine and from bare DataFusion (stderr).
async fn explain(lb: &Lakebook, bare: &SessionContext, name: &str, sql: &str) {
    let sql = format!("EXPLAIN ANALYZE {sql}");
    let engine = match lb.sql().run(&sql, "tpch").await {
        Ok(mut out) => out.pop().map(|r| as_text(&r.batches)).unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    let df = match bare.sql(&sql).await {
        Ok(df) => df.collect().await.map(|b| as_text(&b)).unwrap_or_else(|e| e.to_string()),
        Err(e) => e.to_string(),
    };
    eprintln!("{name} in the engine:\n{engine}\n{name} in bare DataFusion:\n{df}");
}

async fn bare_context(config: SessionConfig, data: &Path) -> Result<SessionContext, BoxError> {
    let ctx = SessionContext::new_with_config(config);
    for (table, _) in TABLES {
        let files = table_files(data, table)?;
        let path = if files.len() == 1 { files[0].clone() } else { data.join(table) };
        ctx.register_parquet(table, path.to_string_lossy().as_ref(), ParquetReadOptions::default()).await?;
    }
    Ok(ctx)
}

const CLUSTER: &str = "tpch";

/// Distribution and sort keys as a Redshift TPC-H load would choose them: the big tables
/// distributed on their join keys and sorted on their date filters, the small ones on every node.
fn layout(table: &str) -> &'static str {
    match table {
        "lineitem" => "DISTKEY(l_orderkey) SORTKEY(l_shipdate)",
        "orders" => "DISTKEY(o_orderkey) SORTKEY(o_orderdate)",
        "customer" => "DISTKEY(c_custkey)",
        "part" => "DISTKEY(p_partkey)",
        "partsupp" => "DISTKEY(ps_partkey)",
        _ => "DISTSTYLE ALL",
    }
}

/// The Redshift column type for a Parquet file's Arrow type.
fn redshift_type(t: &arrow_schema::DataType) -> Result<String, BoxError> {
    use arrow_schema::DataType as D;
    Ok(match t {
        D::Int32 => "integer".into(),
        D::Int64 => "bigint".into(),
        D::Float64 => "double precision".into(),
        D::Decimal128(p, s) => format!("decimal({p},{s})"),
        D::Date32 => "date".into(),
        D::Utf8 | D::Utf8View | D::LargeUtf8 => "varchar(256)".into(),
        other => return Err(format!("no Redshift type for {other}").into()),
    })
}

/// Creates the 2-node cluster and loads every table with COPY from the lake; returns the
/// seconds each COPY took.
async fn load_cluster(lb: &Lakebook, data: &Path) -> Result<BTreeMap<String, f64>, BoxError> {
    lb.redshift().create_cluster(CLUSTER, 2, 1)?;
    let mut loads = BTreeMap::new();
    for (table, _) in TABLES {
        let file = std::fs::File::open(&table_files(data, table)?[0])?;
        let schema = ArrowReaderMetadata::load(&file, Default::default())?.schema().clone();
        let columns: Vec<String> =
            schema.fields().iter().map(|f| Ok(format!("{} {}", f.name(), redshift_type(f.data_type())?))).collect::<Result<_, BoxError>>()?;
        lb.redshift().run(CLUSTER, &format!("CREATE TABLE {table} ({}) {}", columns.join(", "), layout(table))).await?;
        let start = Instant::now();
        let done = lb.redshift().run(CLUSTER, &format!("COPY {table} FROM 's3://tpch/{table}/' FORMAT AS PARQUET")).await?;
        let seconds = start.elapsed().as_secs_f64();
        eprintln!("COPY {table}: {} row(s) in {seconds:.1} s", done.last().and_then(|o| o.rows_loaded).unwrap_or(0));
        loads.insert(table.to_string(), seconds);
    }
    Ok(loads)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let queries = read_queries(&args.queries, args.only.as_deref())?;
    if queries.is_empty() {
        return Err(format!("no queries in {}", args.queries.display()).into());
    }

    // The workspace sits beside the data so hard links work (same file system).
    let data = std::fs::canonicalize(&args.data)?;
    let dir = tempfile::tempdir_in(data.parent().unwrap_or(&data))?;
    let lb = Lakebook::open(dir.path().join("ws"))?;
    lb.lake().create_bucket("tpch")?;
    let bucket_dir = lb.home().join("lake").join("tpch");
    let setup = Instant::now();
    for (table, _) in TABLES {
        for file in table_files(&data, table)? {
            let name = file.file_name().ok_or("a data file without a name")?;
            place(&file, &bucket_dir.join(table).join(name))?;
        }
    }
    lb.catalog().create_crawler(CrawlerConfig::new("tpch", "s3://tpch/", "tpch"))?;
    let crawl = lb.catalog().run_crawler(lb.lake(), "tpch", &mut |_, _| {}).await?;
    eprintln!("lake + crawl: {} files catalogued in {:.2} s", crawl.files_seen, setup.elapsed().as_secs_f64());

    // The crawler must find the eight tables with the files' columns and types.
    let catalogued = lb.catalog().tables("tpch")?;
    if catalogued.len() != TABLES.len() {
        let names: Vec<_> = catalogued.iter().map(|t| t.name.as_str()).collect();
        return Err(format!("the crawler made {} tables, not 8: {names:?}", names.len()).into());
    }
    for (table, columns) in TABLES {
        let entry = lb.catalog().table("tpch", table)?;
        let got: Vec<(String, String)> = entry.definition.columns.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect();
        let file = std::fs::File::open(&table_files(&data, table)?[0])?;
        let schema = ArrowReaderMetadata::load(&file, Default::default())?.schema().clone();
        let want: Vec<(String, String)> = schema.fields().iter().map(|f| (f.name().clone(), glue_type(f.data_type()))).collect();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        if got != want || names != columns || !entry.definition.partition_keys.is_empty() {
            return Err(format!("tpch.{table} was catalogued as {got:?}, expected {want:?}").into());
        }
    }

    let engine_config = lb.sql().session_config();
    let partitions = engine_config.target_partitions();
    // Bare DataFusion gets its own default catalog, not the engine's Glue catalog names.
    let tuned = engine_config.with_create_default_catalog_and_schema(true).with_default_catalog_and_schema("datafusion", "public");
    let bare = bare_context(tuned, &data).await?;
    let defaults = bare_context(SessionConfig::new().with_target_partitions(partitions), &data).await?;
    let loads = if args.redshift { Some(load_cluster(&lb, &data).await?) } else { None };

    let mut results = BTreeMap::new();
    for (name, sql) in &queries {
        eprintln!("{name} …");
        if args.explain && args.redshift {
            let plan = match lb.redshift().run(CLUSTER, &format!("EXPLAIN ANALYZE {sql}")).await {
                Ok(mut out) => out.pop().map(|o| as_text(&o.batches)).unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            eprintln!("{name} on the cluster:\n{plan}");
        } else if args.explain {
            explain(&lb, &bare, name, sql).await;
        }
        let runners: Vec<(&'static str, Runner<'_>)> = if args.redshift {
            vec![("engine", Runner::Engine(&lb)), ("redshift", Runner::Cluster(&lb))]
        } else {
            vec![("engine", Runner::Engine(&lb)), ("datafusion", Runner::Bare(&bare)), ("datafusion_defaults", Runner::Bare(&defaults))]
        };
        let outcomes = measure(&runners, sql, args.reps).await;
        let mut texts = BTreeMap::new();
        let mut entry = serde_json::Map::new();
        for ((label, _), outcome) in runners.iter().zip(outcomes) {
            let value = match outcome {
                Ok((mut times, batches)) => {
                    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                    texts.insert(label, as_text(&batches));
                    // the engine's answer itself, for bench/tpch.py to hold against DuckDB's
                    let result = if matches!(*label, "engine" | "redshift") { rows_json(&batches)? } else { serde_json::Value::Null };
                    json!({ "median_ms": median(&mut times), "best_ms": times[0], "times_ms": times, "rows": rows, "result": result })
                }
                Err(error) => json!({ "error": error }),
            };
            entry.insert(label.to_string(), value);
        }
        // All three must agree on the answer, or the times compare different work.
        let mut distinct: Vec<&String> = texts.values().collect();
        distinct.sort();
        distinct.dedup();
        entry.insert("results_agree".into(), json!(distinct.len() <= 1));
        if distinct.len() > 1 {
            for (label, text) in &texts {
                eprintln!("{name} result from {label}:\n{text}");
            }
        }
        results.insert(name.clone(), serde_json::Value::Object(entry));
    }

    let profile = if cfg!(debug_assertions) {
        "dev profile (dependencies and lakebook-engine at opt-level 2)"
    } else {
        "release"
    };
    let report = json!({
        "profile": profile,
        "tokio_workers": 2,
        "target_partitions": partitions,
        "reps": args.reps,
        "copy_seconds": loads,
        "queries": results,
    });
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
