//! Benchmark (not a test): crawl 10,000 small JSON Lines files in 100 Hive partitions and
//! print files/s. Target: the whole crawl under 2 s on a 2-core machine.
//!
//!   cargo run --bin bench_crawl            # the test build
//!   cargo run --bin bench_crawl --release  # optimised

use std::time::Instant;

use bytes::Bytes;
use lakebook_engine::catalog::CrawlerConfig;
use lakebook_engine::{Lakebook, S3Uri};

const PARTITIONS: usize = 100;
const FILES_PER_PARTITION: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let lb = Lakebook::open(dir.path().join("ws"))?;
    lb.lake().create_bucket("bench")?;
    let setup = Instant::now();
    for p in 0..PARTITIONS {
        for f in 0..FILES_PER_PARTITION {
            let body = format!(
                "{{\"event_id\":{},\"user\":\"u{}\",\"page\":\"/p/{}\",\"ms\":{}.5}}\n",
                p * FILES_PER_PARTITION + f,
                f % 17,
                f % 7,
                f
            );
            let uri = S3Uri::parse(&format!("s3://bench/events/day={p:03}/part-{f:04}.json"))?;
            lb.lake().put(&uri, Bytes::from(body)).await?;
        }
    }
    println!("setup: wrote {} files in {:.2} s", PARTITIONS * FILES_PER_PARTITION, setup.elapsed().as_secs_f64());
    lb.catalog().create_crawler(CrawlerConfig::new("bench", "s3://bench/events/", "bench"))?;
    let start = Instant::now();
    let summary = lb.catalog().run_crawler(lb.lake(), "bench", &mut |_, _| {}).await?;
    let elapsed = start.elapsed().as_secs_f64();
    let table = lb.catalog().table("bench", "events")?;
    assert_eq!(table.partitions.len(), PARTITIONS);
    let profile = if cfg!(debug_assertions) { "test build (deps optimised, lakebook unoptimised)" } else { "release" };
    println!("profile: {profile}");
    println!(
        "crawl: {} files, {} partitions, {} table in {elapsed:.3} s = {:.0} files/s (target: < 2 s)",
        summary.files_seen,
        table.partitions.len(),
        summary.tables.len(),
        summary.files_seen as f64 / elapsed
    );
    Ok(())
}
