//! A full disk: the workspace on a small tmpfs (mounted by the test; CI runs as root), filled
//! with a ballast file, then Firehose puts and deliveries, a CTAS and a Redshift COPY. Each
//! refused write fails with `WorkspaceDiskFull`, nothing acknowledged before is lost, and once
//! space is freed the same work succeeds, every acknowledged record delivered exactly once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use lakebook_engine::dashboards::build::rows_of;
use lakebook_engine::firehose::{Config, Trigger};
use lakebook_engine::{Lakebook, S3Uri};
use serde_json::Value;

/// A tmpfs of `mb` MiB mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mb: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"]).arg(dir.path()).status().expect("run mount");
        assert!(status.success(), "mounting a {mb} MiB tmpfs failed: this test needs root (CI runs as root)");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the disk with a ballast file until a write fails with "no space left".
fn fill(root: &Path) -> PathBuf {
    let path = root.join("ballast");
    let mut file = std::fs::File::create(&path).expect("ballast");
    let chunk = vec![0u8; 4096];
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_data()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return path,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime").block_on(f)
}

fn disk_full<T: std::fmt::Debug>(result: lakebook_engine::Result<T>, what: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.code(), "WorkspaceDiskFull", "{what}: {e}");
            assert!(e.hint().is_some_and(|h| h.contains("free space")), "{what}: {:?}", e.hint());
        }
        Ok(v) => panic!("{what} succeeded on a full disk: {v:?}"),
    }
}

#[test]
fn a_full_disk_refuses_writes_with_a_clear_error_and_loses_nothing_acknowledged() {
    let tmpfs = Tmpfs::mount(24);
    let lb = Lakebook::open(tmpfs.path().join("ws")).expect("workspace");
    lb.lake().create_bucket("lake").expect("bucket");
    block(lb.sql().run("CREATE DATABASE web", "default")).expect("database");
    lb.redshift().create_cluster("wh", 2, 0).expect("cluster");
    block(lb.redshift().run("wh", "CREATE TABLE t (n bigint, s varchar(64))")).expect("table");
    let rows: String = (0..200).map(|n| format!("{n},row {n}\n")).collect();
    block(lb.lake().put(&S3Uri::parse("s3://lake/copy/rows.csv").expect("uri"), Bytes::from(rows))).expect("copy input");
    let config = Config { bucket: "lake".into(), prefix: "fh/".into(), buffer_mb: Some(64), buffer_interval_s: Some(900), newline: true, ..Config::default() };
    lb.firehose().create("fh", config).expect("delivery stream");

    // Firehose: puts acknowledged on a disk with room, then puts until the disk refuses.
    let record = |n: u64| Bytes::from(format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(2000)));
    let mut acked = Vec::new();
    for n in 0..50 {
        block(lb.firehose().put("fh", vec![record(n)])).expect("put with room");
        acked.push(n);
    }
    let ballast = fill(tmpfs.path());
    let mut refused = Vec::new();
    for n in 50..2050 {
        match block(lb.firehose().put("fh", vec![record(n)])) {
            Ok(put) if put.results.iter().all(Result::is_ok) => acked.push(n),
            Ok(put) => panic!("put {n}: {:?}", put.results),
            Err(e) => {
                assert_eq!(e.code(), "WorkspaceDiskFull", "put {n}: {e}");
                refused.push(n);
            }
        }
    }
    assert!(!refused.is_empty(), "the full disk refused no put");
    disk_full(block(lb.firehose().deliver("fh", Trigger::Force)), "a Firehose delivery");

    // CTAS and a Redshift COPY on the full disk: refused, nothing half made.
    disk_full(block(lb.sql().run("CREATE TABLE web.big WITH (format = 'PARQUET') AS SELECT value AS v, repeat('y', 200) AS pad FROM generate_series(1, 200000)", "web")), "a CTAS");
    let copy = "COPY t FROM 's3://lake/copy/rows.csv' CSV";
    disk_full(block(lb.redshift().run("wh", copy)), "a COPY");

    // Space again: everything acknowledged is delivered once; the refused work succeeds.
    std::fs::remove_file(&ballast).expect("free the disk");
    let delivered = block(lb.firehose().deliver("fh", Trigger::Force)).expect("delivery after freeing space");
    assert!(!delivered.objects.is_empty());
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let listing = block(lb.lake().list(&S3Uri::parse("s3://lake/fh/").expect("uri"), true)).expect("list");
    for object in listing.objects {
        let body = block(lb.lake().get(&S3Uri { bucket: "lake".into(), key: object.key })).expect("get");
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line).expect("a whole record");
            *seen.entry(v["n"].as_u64().expect("n")).or_default() += 1;
        }
    }
    let missing: Vec<&u64> = acked.iter().filter(|n| !seen.contains_key(n)).collect();
    let twice: Vec<&u64> = seen.iter().filter(|(_, c)| **c > 1).map(|(n, _)| n).collect();
    // A refused put may have reached the buffer before the call failed (as with the
    // service, a failed call can have stored its records); never twice, never torn.
    let unknown: Vec<&u64> = seen.keys().filter(|n| !acked.contains(n) && !refused.contains(n)).collect();
    assert!(missing.is_empty() && twice.is_empty() && unknown.is_empty(), "missing {missing:?}, twice {twice:?}, unknown {unknown:?}");

    assert!(lb.catalog().table("web", "big").is_err(), "the refused CTAS registered its table");
    let rows = block(lb.sql().run("CREATE TABLE web.big WITH (format = 'PARQUET') AS SELECT value AS v FROM generate_series(1, 1000)", "web"));
    rows.expect("the CTAS after freeing space");
    let count = block(lb.sql().run("SELECT count(*) FROM web.big", "web")).expect("count").pop().expect("result");
    assert_eq!(rows_of(&count.batches), vec![vec![Value::from(1000)]]);

    let count = |lb: &Lakebook| {
        let outcome = block(lb.redshift().run("wh", "SELECT count(*) FROM t")).expect("count").pop().expect("result");
        rows_of(&outcome.batches)[0][0].clone()
    };
    assert_eq!(count(&lb), Value::from(0), "the refused COPY loaded rows");
    block(lb.redshift().run("wh", copy)).expect("the COPY after freeing space");
    assert_eq!(count(&lb), Value::from(200));

    // And all of it survives a reopen.
    let home = lb.home().to_path_buf();
    drop(lb);
    let lb = Lakebook::open(home).expect("reopen");
    assert_eq!(count(&lb), Value::from(200));
    assert_eq!(lb.firehose().describe("fh").expect("describe").0.metrics.delivered_records, seen.values().sum::<u64>());
}
