//! Firehose JSON → Parquet delivery throughput (not a test).
//!
//!     cargo run --bin bench_firehose -- [RECORDS] [--json FILE]
//!
//! (`bench/firehose.py` runs it with `--json` and DuckDB on the same lines: the peer ratio.)
//!
//! Clickstream-style JSON records (the generator's template, seeded) are put into a delivery
//! stream that converts to Parquet with a catalog table's schema, then a forced delivery
//! converts and writes them; twice, the second measured (the first warms the process up, as
//! a running stream's earlier buffers do). Measured: the delivery (buffer → Parquet object in the lake),
//! in MB of JSON per second and records per second; Firehose's conversion alone
//! (`process::to_parquet`, decode and encode on every core); and, in the same run, the bare
//! conversion on one thread (arrow-json decode + one Parquet `ArrowWriter`, no buffer, no lake).
//! Target: ≥ 100 MB/s per core. Prints one JSON line.

use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lakebook_engine::Lakebook;
use lakebook_engine::firehose::{Config, Conversion, Trigger, process};
use lakebook_engine::streams::generator::{Template, rng};

/// The kernel's allocator, so the benchmark measures what the kernel runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json_out = args.iter().position(|a| a == "--json").map(|i| args.get(i + 1).expect("--json FILE").clone());
    let records: usize = args.first().filter(|a| !a.starts_with("--")).map_or(200_000, |n| n.parse().expect("RECORDS is a number"));
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    lb.clock().set_manual(Some(start)).unwrap();
    lb.lake().create_bucket("lake").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    lb.catalog().create_database("web", "").unwrap();
    runtime
        .block_on(lb.sql().run(
            "CREATE EXTERNAL TABLE web.clicks (event_id string, event_time timestamp, user_id string, session_id string, event_type string, \
             page string, product_id string, price double, device string, country string, referrer string, ip string) \
             STORED AS PARQUET LOCATION 's3://lake/clicks/'",
            "web",
        ))
        .unwrap();
    let template = Template::named_or_text("clickstream").unwrap();
    let mut random = rng(Some(1));
    let data: Vec<Bytes> = (0..records).map(|i| Bytes::from(template.render(&mut random, start + chrono::Duration::milliseconds(i as i64)))).collect();
    let json_bytes: usize = data.iter().map(Bytes::len).sum();
    if let Some(path) = &json_out {
        // the same records as JSON lines, for a peer to convert
        std::fs::write(path, json_lines(&data)).expect("writing --json FILE");
        // on disk before anything is timed: its write-back would otherwise share the disk
        // with the deliveries' fsyncs
        std::fs::File::open(path).and_then(|f| f.sync_all()).expect("syncing --json FILE");
    }

    let config = Config {
        bucket: "lake".into(),
        prefix: "clicks/".into(),
        buffer_mb: Some(128),
        buffer_interval_s: Some(900),
        conversion: Some(Conversion { format: "parquet".into(), table: "web.clicks".into() }),
        ..Config::default()
    };
    lb.firehose().create("bench", config).unwrap();
    // A stream delivers buffer after buffer: the first buffer warms up the process (its
    // allocator's pages, the catalog's schema), as the TPC-H benchmarks run each query once
    // before timing it; the second is measured.
    let (mut ingest, mut delivery, mut delivered, mut first_delivery) = (0.0, 0.0, Vec::new(), 0.0);
    for round in 0..2 {
        lb.clock().set_manual(Some(start + chrono::Duration::minutes(round))).unwrap();
        let started = Instant::now();
        for chunk in data.chunks(500) {
            runtime.block_on(lb.firehose().put("bench", chunk.to_vec())).unwrap();
        }
        ingest = started.elapsed().as_secs_f64();
        let started = Instant::now();
        delivered = runtime.block_on(lb.firehose().deliver("bench", Trigger::Force)).unwrap().objects;
        delivery = started.elapsed().as_secs_f64();
        assert_eq!(delivered.iter().map(|o| o.records).sum::<u64>() as usize, records);
        if round == 0 {
            first_delivery = delivery;
        }
    }

    let schema = {
        let table = lb.catalog().table("web", "clicks").unwrap();
        let fields: Vec<arrow_schema::Field> = table
            .definition
            .columns
            .iter()
            .map(|c| arrow_schema::Field::new(&c.name, lakebook_engine::catalog::types::arrow_type(&c.data_type).unwrap(), true))
            .collect();
        std::sync::Arc::new(arrow_schema::Schema::new(fields))
    };
    // the bare conversion on one thread: arrow-json decode + one ArrowWriter, as Firehose did
    let started = Instant::now();
    let text = json_lines(&data);
    let batches: Vec<_> = arrow_json::ReaderBuilder::new(schema.clone()).with_batch_size(8192).build(std::io::Cursor::new(text)).unwrap().map(|b| b.unwrap()).collect();
    let props = parquet::file::properties::WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build();
    let mut file = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut file, schema.clone(), Some(props)).unwrap();
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
    let bare = started.elapsed().as_secs_f64();
    // Firehose's conversion alone (both cores), without the buffer and the lake
    let started = Instant::now();
    let (converted, failures) = process::to_parquet(&schema, &data).unwrap();
    let conversion = started.elapsed().as_secs_f64();
    assert!(failures.is_empty() && converted.is_some());

    // the conversion's halves: arrow-json's decode alone
    let started = Instant::now();
    let text = json_lines(&data);
    let decoded: usize = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(8192)
        .build(std::io::Cursor::new(text))
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    let decode = started.elapsed().as_secs_f64();
    assert_eq!(decoded, records);

    let mb = json_bytes as f64 / 1e6;
    println!(
        "{}",
        serde_json::json!({
            "records": records,
            "json_mb": (mb * 10.0).round() / 10.0,
            "put_records_per_s": (records as f64 / ingest).round(),
            "delivery_mb_per_s": (mb / delivery * 10.0).round() / 10.0,
            "delivery_records_per_s": (records as f64 / delivery).round(),
            "first_delivery_mb_per_s": (mb / first_delivery * 10.0).round() / 10.0,
            "bare_conversion_one_thread_mb_per_s": (mb / bare * 10.0).round() / 10.0,
            "conversion_mb_per_s": (mb / conversion * 10.0).round() / 10.0,
            "json_decode_alone_mb_per_s": (mb / decode * 10.0).round() / 10.0,
            "parquet_bytes": delivered.iter().map(|o| o.bytes).sum::<u64>(),
            "delivery_s": delivery,
        })
    );
}

/// The records as one JSON-lines text.
fn json_lines(data: &[Bytes]) -> Vec<u8> {
    let mut text = Vec::with_capacity(data.iter().map(|d| d.len() + 1).sum());
    for line in data {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    text
}
