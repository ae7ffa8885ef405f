//! Stream ingest and read throughput, in-process (run by bench/streams.py; not a test).
//!
//!     cargo run --bin bench_streams -- [RECORDS] [DIR]
//!
//! 100-byte records with limits off into a 4-shard stream, durably (fsync before each
//! acknowledgement):
//! - PutRecords: calls of 500 records, one fsync per shard per call;
//! - bulk load (`Streams::load`, what `%stream put --from FILE` uses): groups of 50,000;
//! - GetRecords: every shard read from TRIM_HORIZON in calls of 10,000.
//!
//! The peer, measured in the same run on the same disk, is the floor any durable log pays:
//! the same bytes appended with `write` + `fdatasync` per batch to four plain files (in
//! parallel, as the engine syncs a call's shards). The
//! ratio engine/peer is the engine's overhead over raw durable appends. Prints one JSON line.

use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use lakebook_engine::Lakebook;
use lakebook_engine::streams::{IteratorStart, PutEntry};

/// The kernel's allocator, so the benchmark measures what the kernel runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SHARDS: u64 = 4;
const RECORD: usize = 100;
/// A stored frame: 8-byte header, 18 bytes of fixed fields, a 4-byte key, the data.
const FRAME: usize = 8 + 18 + 4 + RECORD;

fn entries(n: usize, offset: usize) -> Vec<PutEntry> {
    (offset..offset + n)
        .map(|i| {
            let mut data = format!("{{\"i\":{i},\"pad\":\"");
            data.push_str(&"x".repeat(RECORD - data.len() - 2));
            data.push_str("\"}");
            PutEntry { partition_key: format!("k{:03}", i % 1000), data: Bytes::from(data), explicit_hash_key: None }
        })
        .collect()
}

/// Seconds to append `records` frames in batches of `batch`, spread over four files as the
/// shards would be, each file written and fdatasync'd per batch in parallel (as the engine
/// syncs the shards of one call).
fn raw_append(dir: &std::path::Path, records: usize, batch: usize) -> f64 {
    let mut files: Vec<std::fs::File> = (0..SHARDS)
        .map(|i| std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("raw-{batch}-{i}"))).unwrap())
        .collect();
    let chunk = vec![b'x'; FRAME * batch.div_ceil(SHARDS as usize)];
    let started = Instant::now();
    for _ in 0..records / batch {
        std::thread::scope(|scope| {
            for file in &mut files {
                let chunk = &chunk;
                scope.spawn(move || {
                    file.write_all(chunk).unwrap();
                    file.sync_data().unwrap();
                });
            }
        });
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let records: usize = args.next().map_or(1_000_000, |n| n.parse().expect("RECORDS is a number"));
    let dir = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join("lakebook-bench-streams"),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lb = Lakebook::open(dir.join("ws")).unwrap();
    let streams = lb.streams();

    // PutRecords, 500 per call.
    streams.create("calls", Some(SHARDS), None).unwrap();
    streams.set_limits("calls", false).unwrap();
    let batches: Vec<Vec<PutEntry>> = (0..records / 500).map(|b| entries(500, b * 500)).collect();
    let started = Instant::now();
    for batch in batches {
        let results = streams.put_records("calls", batch).unwrap();
        assert!(results.iter().all(Result::is_ok));
    }
    let put_records = started.elapsed().as_secs_f64();

    // Bulk load, groups of 50,000.
    streams.create("bulk", Some(SHARDS), None).unwrap();
    streams.set_limits("bulk", false).unwrap();
    let group = 50_000.min(records);
    let groups: Vec<Vec<PutEntry>> = (0..records / group).map(|g| entries(group, g * group)).collect();
    let started = Instant::now();
    for g in groups {
        assert_eq!(streams.load("bulk", g).unwrap().stored as usize, group);
    }
    let load = started.elapsed().as_secs_f64();

    // GetRecords over every shard.
    let started = Instant::now();
    let mut read = 0;
    for shard in streams.describe("bulk").unwrap().shards {
        let mut it = streams.shard_iterator("bulk", &shard.shard_id, IteratorStart::TrimHorizon).unwrap();
        loop {
            let out = streams.get_records(&it, None).unwrap();
            read += out.records.len();
            if out.records.is_empty() {
                break;
            }
            it = out.next_shard_iterator.unwrap();
        }
    }
    let get_records = started.elapsed().as_secs_f64();
    assert_eq!(read, records / group * group);

    let raw_500 = raw_append(&dir, records, 500);
    let raw_group = raw_append(&dir, records, group);
    let rate = |n: usize, secs: f64| (n as f64 / secs).round();
    let report = serde_json::json!({
        "records": records,
        "record_bytes": RECORD,
        "shards": SHARDS,
        "put_records_per_s": rate(records / 500 * 500, put_records),
        "load_per_s": rate(records / group * group, load),
        "get_records_per_s": rate(read, get_records),
        "raw_fsync_500_per_s": rate(records / 500 * 500, raw_500),
        "raw_fsync_group_per_s": rate(records / group * group, raw_group),
        "group": group,
    });
    println!("{report}");
    drop(lb);
    let _ = std::fs::remove_dir_all(&dir);
}
