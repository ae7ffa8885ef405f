//! Glue visual-job throughput (not a test): JSON lines in the lake to Parquet partitioned by
//! `day`, as a Glue Studio graph (a catalog source straight into an S3 target).
//!
//!     cargo run --bin bench_glue -- DIR_OF_JSONL_FILES
//!
//! The files are put in the lake under `s3://raw/events/` and declared as a JSON table
//! (`raw.events`: event_id, ts, user_id, event_type, amount, country, day); then a visual job
//! writes `s3://curated/events/day=…/` Parquet. Measured: from StartJobRun to the run's
//! SUCCEEDED (read, decode, partition, encode, write, stage, commit). Prints one JSON line;
//! bench/glue.py runs DuckDB on the same files and compares.

use std::time::Instant;

use lakebook_engine::glue::{BookmarkOption, JobSpec, RunState};
use lakebook_engine::{Lakebook, S3Uri};

/// The kernel's allocator, so the benchmark measures what the kernel runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GRAPH: &str = r#"{
  "source": {"CatalogSource": {"Name": "events", "Database": "raw", "Table": "events"}},
  "target": {"S3DirectTarget": {"Name": "curated", "Inputs": ["source"], "Path": "s3://curated/events/", "Format": "parquet",
             "Compression": "snappy", "PartitionKeys": [["day"]]}}
}"#;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: bench_glue DIR_OF_JSONL_FILES");
    let workspace = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(workspace.path().join("ws")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    lb.lake().create_bucket("raw").unwrap();
    lb.lake().create_bucket("curated").unwrap();
    let mut bytes_in = 0u64;
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("the JSON folder").map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        bytes_in += data.len() as u64;
        let key = format!("events/{}", file.file_name().unwrap().to_string_lossy());
        runtime.block_on(lb.lake().put(&S3Uri { bucket: "raw".into(), key }, bytes::Bytes::from(data))).unwrap();
    }
    runtime
        .block_on(lb.sql().run(
            "CREATE DATABASE raw;
             CREATE EXTERNAL TABLE raw.events (event_id string, ts string, user_id string, event_type string, amount double, country string, day string)
             ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://raw/events/'",
            "default",
        ))
        .unwrap();
    let glue = lb.glue().clone();
    glue.create_job(JobSpec { name: "to-parquet".into(), sql: Some(GRAPH.into()), visual: true, bookmark: BookmarkOption::Disable, ..Default::default() }).unwrap();
    let (started, cpu_before) = (Instant::now(), cpu_seconds());
    let attempts = runtime
        .block_on(async {
            let run = glue.start_job_run("to-parquet", Default::default(), None)?;
            glue.wait_job_run("to-parquet", &run.id, |_| {}).await
        })
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let run = attempts.last().unwrap();
    assert_eq!(run.state, RunState::Succeeded, "{run:?}");
    let listing = runtime.block_on(lb.lake().list(&S3Uri::parse("s3://curated/events/").unwrap(), true)).unwrap();
    let partitions: std::collections::BTreeSet<&str> = listing.objects.iter().filter_map(|o| o.key.split('/').nth(1)).collect();
    println!(
        "{}",
        serde_json::json!({
            "bytes_in": bytes_in,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "mb_per_s": bytes_in as f64 / 1e6 / seconds,
            "records_read": run.records_read(),
            "records_written": run.records_written(),
            "files_out": listing.objects.len(),
            "bytes_out": listing.objects.iter().map(|o| o.size).sum::<u64>(),
            "partitions": partitions.len(),
        })
    );
}

/// This process's user + system CPU time so far, from /proc (in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
