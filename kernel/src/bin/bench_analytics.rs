//! Continuous SQL throughput (not a test): a keyed tumbling-window count over JSON records,
//! end to end from the stream to the sink.
//!
//!     cargo run --bin bench_analytics -- RECORDS.jsonl
//!
//! The records (one JSON object a line, `user_id` and `ts`) are loaded into a 2-shard
//! stream with limits off, then an application
//! `SELECT user_id, window_start, window_end, COUNT(*) FROM TABLE(TUMBLE(… INTERVAL '1'
//! MINUTE)) GROUP BY …` into a JSON filesystem sink is started and drained. Measured: from
//! the start to the drained stop (read, decode, watermark, window state, fire, query, write,
//! state saves). Prints one JSON line; bench/analytics.py runs Apache Flink on the same
//! records and compares.

use std::time::Instant;

use lakebook_engine::analytics::StartFrom;
use lakebook_engine::{Lakebook, S3Uri};

/// The kernel's allocator, so the benchmark measures what the kernel runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let file = std::env::args().nth(1).expect("usage: bench_analytics RECORDS.jsonl");
    let data = std::fs::read(&file).expect("the records file");
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    lb.clock().set_manual(Some("2026-01-02T00:00:00Z".parse().unwrap())).unwrap();
    lb.lake().create_bucket("out").unwrap();
    lb.streams().create("clicks", Some(2), None).unwrap();
    lb.streams().set_limits("clicks", false).unwrap();
    let key = lakebook_engine::streams::lines::LineKey::Field("user_id".into());
    let loaded = lb.streams().load_lines("clicks", &bytes::Bytes::from(data), &key).unwrap();
    let records = loaded.stored;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let sql = "CREATE TABLE clicks (user_id STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
               WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');
               CREATE TABLE counts (user_id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT)
               WITH ('connector' = 'filesystem', 'path' = 's3://out/counts/', 'format' = 'json');
               INSERT INTO counts
               SELECT user_id, window_start, window_end, COUNT(*) AS n
               FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
               GROUP BY user_id, window_start, window_end;";
    runtime.block_on(lb.create_analytics_application("bench", sql)).unwrap();
    let started = Instant::now();
    runtime.block_on(lb.analytics().start("bench", Some(StartFrom::TrimHorizon))).unwrap();
    runtime.block_on(lb.run_due_work());
    let stopped = runtime.block_on(lb.stop_analytics_application("bench", true)).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let listing = runtime.block_on(lb.lake().list(&S3Uri::parse("s3://out/counts/").unwrap(), true)).unwrap();
    let mut counted = 0u64;
    for object in &listing.objects {
        let text = runtime.block_on(lb.lake().get(&S3Uri { bucket: "out".into(), key: object.key.clone() })).unwrap();
        for line in String::from_utf8_lossy(&text).lines() {
            counted += serde_json::from_str::<serde_json::Value>(line).unwrap()["n"].as_u64().unwrap();
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "records": records,
            "seconds": seconds,
            "events_per_s": records as f64 / seconds,
            "rows_out": stopped.records_out,
            "records_counted": counted,
            "late_records_dropped": stopped.late_records_dropped,
        })
    );
}
