//! The crash matrix: for each service's durable state change a child process — this test
//! binary run again with `LAKEBOOK_CRASH_CHILD=<case>` — performs it in a loop on one
//! workspace, printing `ack N` once change N has returned; the parent SIGKILLs it at a random
//! moment, 20 times per case, then reopens the workspace (the dead child's lock is released
//! with it: nothing to repair) and checks that the state is what N or N + 1 changes make:
//! every acknowledged change there, none twice, nothing torn, and the interrupted change can be
//! made again. `cargo test --test crash_matrix -- CASE` runs one case; the kill-time seed is
//! printed, and `LAKEBOOK_CRASH_SEED` replays it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use lakebook_engine::catalog::CrawlerConfig;
use lakebook_engine::dashboards::build::rows_of;
use lakebook_engine::dashboards::{DatasetSpec, Mode, Source};
use lakebook_engine::emr::{ActionOnFailure, ClusterConfig, StepConfig, StepKind, StepState, StreamingStep};
use lakebook_engine::firehose::{Config, RedshiftDestination, Trigger};
use lakebook_engine::streams::{PutEntry, ReadFrom};
use lakebook_engine::{Lakebook, S3Uri};
use serde_json::Value;

const TRIALS: usize = 20;
const CHILD: &str = "LAKEBOOK_CRASH_CHILD";

type Check = fn(&Lakebook, u64) -> Result<(), String>;

/// (name, set the workspace up, change N, check after `acked` changes)
struct Case {
    name: &'static str,
    setup: fn(&Lakebook),
    change: fn(&Lakebook, u64) -> Result<(), String>,
    check: Check,
}

const CASES: [Case; 13] = [
    Case { name: "catalog", setup: setup_lake, change: catalog_change, check: catalog_check },
    Case { name: "crawler", setup: crawler_setup, change: crawler_change, check: crawler_check },
    Case { name: "msck", setup: msck_setup, change: msck_change, check: msck_check },
    Case { name: "insert", setup: insert_setup, change: insert_change, check: insert_check },
    Case { name: "ctas", setup: setup_lake, change: ctas_change, check: ctas_check },
    Case { name: "firehose", setup: firehose_setup, change: firehose_change, check: firehose_check },
    Case { name: "redshift", setup: redshift_setup, change: redshift_change, check: redshift_check },
    Case { name: "spice", setup: spice_setup, change: spice_change, check: spice_check },
    Case { name: "reshard", setup: reshard_setup, change: reshard_change, check: reshard_check },
    Case { name: "snapshot", setup: snapshot_setup, change: snapshot_change, check: snapshot_check },
    Case { name: "firehose_copy", setup: firehose_copy_setup, change: firehose_copy_change, check: firehose_copy_check },
    Case { name: "emr", setup: emr_setup, change: emr_change, check: emr_check },
    Case { name: "application", setup: app_setup, change: app_change, check: app_check },
];

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime").block_on(f)
}

fn sql(lb: &Lakebook, text: &str) -> Result<Vec<Vec<Value>>, String> {
    let mut results = block(lb.sql().run(text, "web")).map_err(|e| format!("{text}: {e}"))?;
    Ok(results.pop().map(|r| rows_of(&r.batches)).unwrap_or_default())
}

fn setup_lake(lb: &Lakebook) {
    lb.lake().create_bucket("lake").expect("bucket");
    block(lb.sql().run("CREATE DATABASE web", "default")).expect("database");
}

// Catalog commit: a table definition per change.
fn catalog_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    sql(lb, &format!("CREATE EXTERNAL TABLE web.t{n} (a int, b string) STORED AS PARQUET LOCATION 's3://lake/t{n}/'")).map(drop)
}

fn catalog_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let tables = lb.catalog().tables("web").map_err(|e| e.to_string())?;
    let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
    let expected = |count: u64| (0..count).map(|n| format!("t{n}")).collect::<std::collections::BTreeSet<_>>();
    let present: std::collections::BTreeSet<String> = names.into_iter().collect();
    if present != expected(acked) && present != expected(acked + 1) {
        return Err(format!("{acked} acknowledged, tables {present:?}"));
    }
    for t in &tables {
        if t.definition.columns.len() != 2 {
            return Err(format!("table {} torn: {:?}", t.name, t.definition.columns));
        }
    }
    // The interrupted change, made again.
    if present.len() as u64 == acked {
        catalog_change(lb, acked)?;
    }
    Ok(())
}

// A crawler run: each change adds a partition folder and crawls it into the catalog.
fn crawler_setup(lb: &Lakebook) {
    setup_lake(lb);
    put_rows(lb, "s3://lake/logs/day=0/a.json", 0).expect("object");
    lb.catalog().upsert_crawler(CrawlerConfig::new("logs", "s3://lake/logs/", "web")).expect("crawler");
    block(lb.catalog().run_crawler(lb.lake(), "logs", &mut |_, _| {})).expect("first crawl");
}

fn put_rows(lb: &Lakebook, uri: &str, n: u64) -> Result<(), String> {
    let rows: String = (0..10).map(|i| format!("{{\"n\":{n},\"i\":{i}}}\n")).collect();
    block(lb.lake().put(&S3Uri::parse(uri).map_err(|e| e.to_string())?, Bytes::from(rows))).map(drop).map_err(|e| e.to_string())
}

fn crawler_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    put_rows(lb, &format!("s3://lake/logs/day={}/a.json", n + 1), n + 1)?;
    block(lb.catalog().run_crawler(lb.lake(), "logs", &mut |_, _| {})).map(drop).map_err(|e| e.to_string())
}

/// The partitions a table has and the rows a query sees, checked against `files` folders of
/// 10 rows (partitions `0..`): `registered` of them, no more, each whole.
fn partitions_check(lb: &Lakebook, table: &str, column: &str, acked: u64, per: u64) -> Result<u64, String> {
    let registered = lb.catalog().table("web", table).map_err(|e| e.to_string())?.partitions.len() as u64;
    if registered != acked && registered != acked + 1 {
        return Err(format!("{acked} acknowledged, {registered} partitions"));
    }
    let rows = sql(lb, &format!("SELECT count(*), count(DISTINCT {column}) FROM web.{table}"))?;
    if rows != vec![vec![Value::from(per * registered), Value::from(registered)]] {
        return Err(format!("{acked} acknowledged, {registered} partitions: {rows:?}"));
    }
    Ok(registered)
}

fn crawler_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    // The setup's partition, then one per change.
    partitions_check(lb, "logs", "day", acked + 1, 10)?;
    // The interrupted change's folder may be there uncrawled: the next run finds it.
    block(lb.catalog().run_crawler(lb.lake(), "logs", &mut |_, _| {})).map_err(|e| e.to_string())?;
    let listing = block(lb.lake().list(&S3Uri::parse("s3://lake/logs/").map_err(|e| e.to_string())?, true)).map_err(|e| e.to_string())?;
    let partitions = lb.catalog().table("web", "logs").map_err(|e| e.to_string())?.partitions.len();
    if partitions != listing.objects.len() {
        return Err(format!("{} folders, {partitions} partitions after crawling again", listing.objects.len()));
    }
    Ok(())
}

// MSCK REPAIR TABLE: each change adds a partition folder and repairs the table.
fn msck_setup(lb: &Lakebook) {
    setup_lake(lb);
    sql(lb, "CREATE EXTERNAL TABLE web.ev (name string, n int) PARTITIONED BY (dt string) ROW FORMAT DELIMITED FIELDS TERMINATED BY '|' STORED AS TEXTFILE LOCATION 's3://lake/ev/'").expect("table");
}

fn msck_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    let rows: String = (0..5).map(|i| format!("x{i}|{n}\n")).collect();
    block(lb.lake().put(&S3Uri::parse(&format!("s3://lake/ev/dt={n}/a.txt")).map_err(|e| e.to_string())?, Bytes::from(rows))).map_err(|e| e.to_string())?;
    sql(lb, "MSCK REPAIR TABLE web.ev").map(drop)
}

fn msck_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let registered = partitions_check(lb, "ev", "dt", acked, 5)?;
    sql(lb, "MSCK REPAIR TABLE web.ev")?;
    let listing = block(lb.lake().list(&S3Uri::parse("s3://lake/ev/").map_err(|e| e.to_string())?, true)).map_err(|e| e.to_string())?;
    let partitions = lb.catalog().table("web", "ev").map_err(|e| e.to_string())?.partitions.len();
    if partitions != listing.objects.len() || (partitions as u64) < registered {
        return Err(format!("{} folders, {partitions} partitions after repairing again", listing.objects.len()));
    }
    Ok(())
}

// Athena INSERT INTO: 50 rows per change, as files added to the table.
fn insert_setup(lb: &Lakebook) {
    setup_lake(lb);
    sql(lb, "CREATE TABLE web.events WITH (format = 'PARQUET', external_location = 's3://lake/events/') AS SELECT 0 AS batch, value AS v FROM generate_series(1, 50)").expect("ctas");
}

fn insert_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    sql(lb, &format!("INSERT INTO web.events SELECT {} AS batch, value AS v FROM generate_series(1, 50)", n + 1)).map(drop)
}

fn insert_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let rows = sql(lb, "SELECT batch, count(*) FROM web.events GROUP BY batch ORDER BY batch")?;
    let counts: BTreeMap<u64, u64> = rows.iter().map(|r| (r[0].as_u64().unwrap_or(u64::MAX), r[1].as_u64().unwrap_or(0))).collect();
    let whole = |upto: u64| (0..=upto).map(|b| (b, 50)).collect::<BTreeMap<_, _>>();
    if counts != whole(acked) && counts != whole(acked + 1) {
        return Err(format!("{acked} acknowledged, rows per batch {counts:?}"));
    }
    if counts == whole(acked) {
        insert_change(lb, acked)?;
    }
    Ok(())
}

// Athena CTAS: a new table and its files per change.
fn ctas_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    sql(lb, &format!("CREATE TABLE web.c{n} WITH (external_location = 's3://lake/c{n}/') AS SELECT {n} AS n, value FROM generate_series(1, 100)")).map(drop)
}

fn ctas_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let tables = lb.catalog().tables("web").map_err(|e| e.to_string())?.len() as u64;
    if tables != acked && tables != acked + 1 {
        return Err(format!("{acked} acknowledged, {tables} tables"));
    }
    for n in 0..tables {
        let rows = sql(lb, &format!("SELECT count(*), min(n), max(n) FROM web.c{n}"))?;
        if rows != vec![vec![Value::from(100), Value::from(n), Value::from(n)]] {
            return Err(format!("table c{n} of {acked} acknowledged: {rows:?}"));
        }
    }
    // A CTAS the kill cut short is run again as the user would: its location is clean.
    if tables == acked {
        ctas_change(lb, acked)?;
    }
    Ok(())
}

// Firehose: puts acknowledged into the durable buffer, deliveries to the lake.
fn firehose_setup(lb: &Lakebook) {
    lb.lake().create_bucket("dest").expect("bucket");
    let config = Config { bucket: "dest".into(), prefix: "fh/".into(), buffer_mb: Some(1), buffer_interval_s: Some(60), ..Config::default() };
    lb.firehose().create("fh", config).expect("delivery stream");
}

fn firehose_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    let put = block(lb.firehose().put("fh", vec![Bytes::from(format!("{{\"n\":{n}}}\n"))])).map_err(|e| e.to_string())?;
    if !put.results.iter().all(Result::is_ok) {
        return Err(format!("put {n}: {:?}", put.results));
    }
    if n % 7 == 6 {
        block(lb.firehose().deliver("fh", Trigger::Force)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn firehose_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    block(lb.firehose().deliver("fh", Trigger::Force)).map_err(|e| e.to_string())?;
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let listing = block(lb.lake().list(&S3Uri::parse("s3://dest/").expect("uri"), true)).map_err(|e| e.to_string())?;
    for object in listing.objects {
        let body = block(lb.lake().get(&S3Uri { bucket: "dest".into(), key: object.key.clone() })).map_err(|e| e.to_string())?;
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let record: Value = serde_json::from_slice(line).map_err(|e| format!("{}: torn record {:?}: {e}", object.key, String::from_utf8_lossy(line)))?;
            *seen.entry(record["n"].as_u64().unwrap_or(u64::MAX)).or_default() += 1;
        }
    }
    let twice: Vec<&u64> = seen.iter().filter(|(_, c)| **c > 1).map(|(n, _)| n).collect();
    let missing: Vec<u64> = (0..acked).filter(|n| !seen.contains_key(n)).collect();
    let unknown: Vec<&u64> = seen.keys().filter(|n| **n > acked).collect();
    if !twice.is_empty() || !missing.is_empty() || !unknown.is_empty() {
        return Err(format!("{acked} acknowledged: delivered twice {twice:?}, missing {missing:?}, never sent {unknown:?}"));
    }
    Ok(())
}

// Redshift: INSERT, UPDATE, DELETE and COPY commits on a cluster table.
fn redshift_setup(lb: &Lakebook) {
    lb.lake().create_bucket("lake").expect("bucket");
    lb.redshift().create_cluster("wh", 2, 1).expect("cluster");
    block(lb.redshift().run("wh", "CREATE TABLE t (id bigint, v bigint) DISTKEY(id)")).expect("table");
}

/// Change `n` applied to the model of the table.
fn redshift_model(changes: u64) -> BTreeMap<i64, i64> {
    let mut table = BTreeMap::new();
    for n in 0..changes as i64 {
        match n % 5 {
            2 => {
                if let Some(v) = table.get_mut(&(n - 1)) {
                    *v += 1000;
                }
            }
            3 => {
                table.remove(&(n - 2));
            }
            4 => {
                table.insert(100_000 + n, n);
            }
            _ => {
                table.insert(n, n);
            }
        }
    }
    table
}

fn redshift_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    let n = n as i64;
    let statement = match n % 5 {
        2 => format!("UPDATE t SET v = v + 1000 WHERE id = {}", n - 1),
        3 => format!("DELETE FROM t WHERE id = {}", n - 2),
        4 => {
            let uri = S3Uri::parse(&format!("s3://lake/copy/{n}.csv")).expect("uri");
            block(lb.lake().put(&uri, Bytes::from(format!("{},{n}\n", 100_000 + n)))).map_err(|e| e.to_string())?;
            format!("COPY t FROM 's3://lake/copy/{n}.csv' CSV")
        }
        _ => format!("INSERT INTO t VALUES ({n}, {n})"),
    };
    block(lb.redshift().run("wh", &statement)).map(drop).map_err(|e| format!("{statement}: {e}"))
}

fn redshift_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let outcome = block(lb.redshift().run("wh", "SELECT id, v FROM t ORDER BY id")).map_err(|e| e.to_string())?.pop().ok_or("no result")?;
    let table: BTreeMap<i64, i64> = rows_of(&outcome.batches).iter().map(|r| (r[0].as_i64().unwrap_or(-1), r[1].as_i64().unwrap_or(-1))).collect();
    if table != redshift_model(acked) && table != redshift_model(acked + 1) {
        return Err(format!("{acked} acknowledged: {table:?}, expected {:?} or one more change", redshift_model(acked)));
    }
    let changes = if table == redshift_model(acked) { acked } else { acked + 1 };
    redshift_change(lb, changes)
}

// SPICE: a dataset's snapshot replaced by each refresh.
fn spice_setup(lb: &Lakebook) {
    setup_lake(lb);
    let rows: String = (0..300).map(|i| format!("{{\"id\":{i},\"page\":\"/p{}\"}}\n", i % 7)).collect();
    block(lb.lake().put(&S3Uri::parse("s3://lake/clicks/a.json").expect("uri"), Bytes::from(rows))).expect("object");
    sql(lb, "CREATE EXTERNAL TABLE web.clicks (id int, page string) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://lake/clicks/'").expect("table");
    let spec = DatasetSpec { name: "clicks".into(), source: Source::Sql { sql: "SELECT * FROM clicks".into(), database: "web".into() }, mode: Mode::Spice, fields: vec![], refresh: None };
    block(lb.dashboards().create_dataset(spec)).expect("dataset");
}

fn spice_change(lb: &Lakebook, _n: u64) -> Result<(), String> {
    block(lb.dashboards().refresh_dataset("clicks")).map(drop).map_err(|e| e.to_string())
}

fn spice_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let dataset = lb.dashboards().dataset("clicks").map_err(|e| e.to_string())?;
    let snapshot = dataset.snapshot.ok_or("no snapshot")?;
    // The creation's ingestion, then one per refresh (the latest 20 are kept).
    let last = dataset.ingestions.last().ok_or("no ingestion")?;
    let number: u64 = last.id.trim_start_matches("ingestion-").parse().map_err(|_| format!("ingestion id {}", last.id))?;
    if snapshot.rows != 300 || (number != acked + 1 && number != acked + 2) {
        return Err(format!("{acked} acknowledged: {} rows, last ingestion {}", snapshot.rows, last.id));
    }
    let spice = lb.home().join("dashboards").join("spice");
    let files: Vec<String> = std::fs::read_dir(&spice).map_err(|e| e.to_string())?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if files != [snapshot.file.clone()] {
        return Err(format!("SPICE files {files:?}, the state names {}", snapshot.file));
    }
    let dashboard = "dataset = \"clicks\"\n[[sheet]]\nname = \"S\"\n[[sheet.visual]]\ntype = \"kpi\"\ntitle = \"Clicks\"\nvalue = \"count(*)\"\n";
    let (_, built) = block(lb.dashboards().create_dashboard("check", dashboard, true)).map_err(|e| e.to_string())?;
    let count = built.sheets[0].visuals[0].frames[0].rows[0].measures[0].clone();
    if count != Value::from(300) {
        return Err(format!("the snapshot reads {count} rows"));
    }
    spice_change(lb, acked)
}

// Stream resharding: each change puts 10 records, then splits the lowest open shard (even
// changes) or merges the two children the last split made (odd ones).
fn reshard_setup(lb: &Lakebook) {
    lb.streams().create("s", Some(1), None).expect("stream");
}

fn reshard_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    let streams = lb.streams();
    let entries = (0..10).map(|i| PutEntry { partition_key: format!("k{i}"), data: Bytes::from(format!("{n}-{i}")), explicit_hash_key: None }).collect();
    let put = streams.put_records("s", entries).map_err(|e| e.to_string())?;
    if let Some(Err(e)) = put.into_iter().find(Result::is_err) {
        return Err(format!("put {n}: {e}"));
    }
    reshard_step(lb, n)
}

fn reshard_step(lb: &Lakebook, n: u64) -> Result<(), String> {
    let streams = lb.streams();
    let description = streams.describe("s").map_err(|e| e.to_string())?;
    let mut open: Vec<_> = description.open_shards().cloned().collect();
    open.sort_by_key(|s| s.hash_range().0);
    let result = match n % 2 {
        0 => streams.split("s", &open[0].shard_id, None),
        _ => streams.merge("s", &open[0].shard_id, &open[1].shard_id),
    };
    result.map(drop).map_err(|e| format!("reshard {n}: {e}"))
}

fn reshard_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let streams = lb.streams();
    // Every acknowledged record once; of the interrupted change, all or none.
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for (_, record) in streams.read("s", &ReadFrom::TrimHorizon).map_err(|e| e.to_string())? {
        *seen.entry(String::from_utf8_lossy(&record.data).into_owned()).or_default() += 1;
    }
    // The interrupted PutRecords may have stored some of its records (those on a shard whose
    // append finished), as the service's can: each at most once, and only those.
    let interrupted = |key: &String| key.starts_with(&format!("{acked}-"));
    let acknowledged: BTreeMap<String, u64> = seen.iter().filter(|(k, _)| !interrupted(k)).map(|(k, c)| (k.clone(), *c)).collect();
    let expected: BTreeMap<String, u64> = (0..acked).flat_map(|n| (0..10).map(move |i| (format!("{n}-{i}"), 1))).collect();
    if acknowledged != expected || seen.iter().any(|(k, c)| interrupted(k) && *c != 1) {
        return Err(format!("{acked} acknowledged: records {seen:?}"));
    }
    let stored = seen.keys().filter(|k| interrupted(k)).count();
    // The open shards tile the hash space; every closed shard has children.
    let description = streams.describe("s").map_err(|e| e.to_string())?;
    let mut ranges: Vec<(u128, u128)> = description.open_shards().map(|s| s.hash_range()).collect();
    ranges.sort();
    let tiled = ranges.first().is_some_and(|r| r.0 == 0) && ranges.last().is_some_and(|r| r.1 == u128::MAX) && ranges.windows(2).all(|w| w[0].1 + 1 == w[1].0);
    let open = ranges.len() as u64;
    if !tiled || !(1..=2).contains(&open) {
        return Err(format!("{acked} acknowledged: open shards {ranges:?}"));
    }
    for shard in description.shards.iter().filter(|s| !s.is_open()) {
        if !description.shards.iter().any(|c| [&c.parent_shard_id, &c.adjacent_parent_shard_id].iter().any(|p| p.as_deref() == Some(shard.shard_id.as_str()))) {
            return Err(format!("closed shard {} has no child", shard.shard_id));
        }
    }
    // The interrupted change, finished: the records it did not store put again (a
    // producer's retry of the failed entries), then the reshard the shape still needs (two
    // open shards after an even change's split, one after an odd's merge).
    if stored < 10 {
        let missing = (0..10).filter(|i| !seen.contains_key(&format!("{acked}-{i}")));
        let entries = missing.map(|i| PutEntry { partition_key: format!("k{i}"), data: Bytes::from(format!("{acked}-{i}")), explicit_hash_key: None }).collect();
        streams.put_records("s", entries).map_err(|e| e.to_string())?;
        return reshard_step(lb, acked);
    }
    let resharded = (acked % 2 == 0) == (open == 2);
    if !resharded {
        reshard_step(lb, acked)?;
    }
    Ok(())
}

// Redshift snapshots and restores: each change inserts a row, snapshots the cluster as s<n>
// and, every third change, restores that snapshot as cluster r<n>.
fn snapshot_setup(lb: &Lakebook) {
    lb.redshift().create_cluster("wh", 2, 1).expect("cluster");
    block(lb.redshift().run("wh", "CREATE TABLE t (n bigint)")).expect("table");
}

fn snapshot_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    block(lb.redshift().run("wh", &format!("INSERT INTO t VALUES ({n})"))).map_err(|e| e.to_string())?;
    snapshot_rest(lb, n)
}

fn snapshot_rest(lb: &Lakebook, n: u64) -> Result<(), String> {
    let redshift = lb.redshift();
    if !redshift.snapshots(Some("wh")).iter().any(|s| s.id == format!("s{n}")) {
        redshift.create_snapshot("wh", &format!("s{n}")).map_err(|e| e.to_string())?;
    }
    if n % 3 == 2 && redshift.describe(&format!("r{n}")).is_err() {
        redshift.restore(&format!("s{n}"), &format!("r{n}")).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn count_of(lb: &Lakebook, cluster: &str) -> Result<(u64, u64), String> {
    let outcome = block(lb.redshift().run(cluster, "SELECT count(*), coalesce(max(n), -1) FROM t")).map_err(|e| format!("{cluster}: {e}"))?.pop().ok_or("no result")?;
    let row = rows_of(&outcome.batches).pop().ok_or("no row")?;
    Ok((row[0].as_u64().unwrap_or(u64::MAX), row[1].as_i64().map_or(u64::MAX, |m| (m + 1) as u64)))
}

fn snapshot_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let redshift = lb.redshift();
    let (rows, upto) = count_of(lb, "wh")?;
    if rows != upto || (rows != acked && rows != acked + 1) {
        return Err(format!("{acked} acknowledged: {rows} rows up to {upto}"));
    }
    let ids: Vec<String> = redshift.snapshots(Some("wh")).iter().map(|s| s.id.clone()).collect();
    let expected = |count: u64| (0..count).map(|n| format!("s{n}")).collect::<Vec<_>>();
    if ids != expected(acked) && ids != expected(acked + 1) {
        return Err(format!("{acked} acknowledged: snapshots {ids:?}"));
    }
    // Every restored cluster holds its snapshot's rows; the newest snapshot restores whole.
    for n in (0..acked).filter(|n| n % 3 == 2) {
        if count_of(lb, &format!("r{n}"))? != (n + 1, n + 1) {
            return Err(format!("cluster r{n} does not hold snapshot s{n}'s {} rows", n + 1));
        }
    }
    if let Some(last) = ids.last() {
        redshift.restore(last, "check").map_err(|e| e.to_string())?;
        let n: u64 = last[1..].parse().map_err(|_| last.clone())?;
        if count_of(lb, "check")? != (n + 1, n + 1) {
            return Err(format!("snapshot {last} restores torn"));
        }
    }
    // The interrupted change, finished.
    if rows == acked {
        return snapshot_change(lb, acked);
    }
    snapshot_rest(lb, acked)
}

// Firehose to Redshift: puts buffered, each delivery staged in S3 with a manifest and COPYed
// into the cluster; every acknowledged record loaded once.
fn firehose_copy_setup(lb: &Lakebook) {
    lb.lake().create_bucket("stage").expect("bucket");
    lb.redshift().create_cluster("wh", 2, 1).expect("cluster");
    block(lb.redshift().run("wh", "CREATE TABLE t (n bigint)")).expect("table");
    let redshift = RedshiftDestination { cluster: "wh".into(), table: "t".into(), copy_options: "JSON 'auto'".into(), retry_duration_s: 3600 };
    let config = Config { redshift: Some(redshift), bucket: "stage".into(), prefix: "fh/".into(), buffer_interval_s: Some(60), newline: true, ..Config::default() };
    lb.firehose().create("fc", config).expect("delivery stream");
}

fn firehose_copy_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    let put = block(lb.firehose().put("fc", vec![Bytes::from(format!("{{\"n\":{n}}}"))])).map_err(|e| e.to_string())?;
    if !put.results.iter().all(Result::is_ok) {
        return Err(format!("put {n}: {:?}", put.results));
    }
    if n % 3 == 2 {
        let delivered = block(lb.firehose().deliver("fc", Trigger::Force)).map_err(|e| e.to_string())?;
        if let Some(failed) = delivered.copies.iter().find(|c| c.error.is_some()) {
            return Err(format!("COPY after {n}: {failed}"));
        }
    }
    Ok(())
}

fn firehose_copy_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let delivered = block(lb.firehose().deliver("fc", Trigger::Force)).map_err(|e| e.to_string())?;
    if let Some(failed) = delivered.copies.iter().find(|c| c.error.is_some()) {
        return Err(format!("COPY after the restart: {failed}"));
    }
    let pending = lb.firehose().describe("fc").map_err(|e| e.to_string())?.0.pending_copies.len();
    let outcome = block(lb.redshift().run("wh", "SELECT n, count(*) FROM t GROUP BY n")).map_err(|e| e.to_string())?.pop().ok_or("no result")?;
    let loaded: BTreeMap<u64, u64> = rows_of(&outcome.batches).iter().map(|r| (r[0].as_u64().unwrap_or(u64::MAX), r[1].as_u64().unwrap_or(0))).collect();
    let twice: Vec<&u64> = loaded.iter().filter(|(_, c)| **c > 1).map(|(n, _)| n).collect();
    let missing: Vec<u64> = (0..acked).filter(|n| !loaded.contains_key(n)).collect();
    let unknown: Vec<&u64> = loaded.keys().filter(|n| **n > acked).collect();
    if pending > 0 || !twice.is_empty() || !missing.is_empty() || !unknown.is_empty() {
        return Err(format!("{acked} acknowledged: {pending} COPY(s) pending, loaded twice {twice:?}, missing {missing:?}, never sent {unknown:?}"));
    }
    Ok(())
}

// EMR: each change runs a map-only streaming step (three splits, so three parts) into its own
// output folder; the job commit is the state change.
fn emr_setup(lb: &Lakebook) {
    lb.clock().set_manual(Some(lakebook_engine::clock::parse_time("2026-01-01T00:00:00Z").expect("time"))).expect("clock");
    setup_lake(lb);
    for f in 0..3 {
        let lines: String = (0..20).map(|i| format!("f{f} line {i}\n")).collect();
        block(lb.lake().put(&S3Uri::parse(&format!("s3://lake/in/{f}.txt")).expect("uri"), Bytes::from(lines))).expect("input");
    }
    lb.emr().create_cluster("lab", ClusterConfig { core: 1, task: 0, slots_per_node: 2, ..ClusterConfig::default() }).expect("cluster");
}

fn emr_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    let mut spec = StreamingStep::new("cat", None, vec![S3Uri::parse("s3://lake/in/").expect("uri")], S3Uri::parse(&format!("s3://lake/out/{n}/")).expect("uri"));
    spec.reducers = 0;
    lb.emr().add_step("lab", StepConfig { name: format!("s{n}"), action_on_failure: ActionOnFailure::Continue, kind: StepKind::Streaming(spec) }).map_err(|e| e.to_string())?;
    let ran = block(lb.emr().run_pending("lab", lb.sql(), &mut |_| {})).map_err(|e| e.to_string())?;
    match ran.last() {
        Some(step) if step.state == StepState::Completed => Ok(()),
        other => Err(format!("step {n}: {other:?}")),
    }
}

/// The lines of the part files under `out/<n>/` and whether `_SUCCESS` is there.
fn emr_output(lb: &Lakebook, n: u64) -> Result<(Vec<String>, bool, usize), String> {
    let listing = block(lb.lake().list(&S3Uri::parse(&format!("s3://lake/out/{n}/")).expect("uri"), true)).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let mut success = false;
    for object in &listing.objects {
        let name = object.key.rsplit('/').next().unwrap_or_default();
        success |= name == "_SUCCESS";
        if name.starts_with("part-") {
            let body = block(lb.lake().get(&S3Uri { bucket: "lake".into(), key: object.key.clone() })).map_err(|e| e.to_string())?;
            lines.extend(String::from_utf8_lossy(&body).lines().map(|l| l.trim_end().to_string()));
        }
    }
    lines.sort();
    Ok((lines, success, listing.objects.len()))
}

fn emr_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    let mut input: Vec<String> = (0..3).flat_map(|f| (0..20).map(move |i| format!("f{f} line {i}"))).collect();
    input.sort();
    let steps = lb.emr().steps("lab").map_err(|e| e.to_string())?;
    for n in 0..=acked {
        let (lines, success, objects) = emr_output(lb, n)?;
        let step = steps.iter().find(|s| s.name == format!("s{n}"));
        let completed = step.is_some_and(|s| s.state == StepState::Completed);
        if n < acked && !(completed && success && lines == input) {
            return Err(format!("acknowledged step {n}: {:?}, _SUCCESS {success}, {} of {} lines", step.map(|s| s.state), lines.len(), input.len()));
        }
        if n == acked {
            // The interrupted job: committed whole (and its step completed), or nothing written.
            let whole = completed && success && lines == input;
            if !whole && objects > 0 {
                return Err(format!("interrupted step {n} ({:?}) left {objects} object(s) and _SUCCESS {success}: torn", step.map(|s| s.state)));
            }
            if !whole && step.is_some_and(|s| s.state == StepState::Pending) {
                // Added before the kill, not started: it runs now.
                let ran = block(lb.emr().run_pending("lab", lb.sql(), &mut |_| {})).map_err(|e| e.to_string())?;
                return match ran.last() {
                    Some(s) if s.state == StepState::Completed => Ok(()),
                    other => Err(format!("pending step {n} after the restart: {other:?}")),
                };
            }
            if !whole {
                return emr_change(lb, acked);
            }
        }
    }
    Ok(())
}

// A continuous application copying a stream into a catalog table: each change puts three
// records and runs the due work (the application's step: read, append to the table, save
// its state, checkpoint). After a restart and catching up, the table holds every record the
// stream holds exactly once.
fn app_setup(lb: &Lakebook) {
    lb.clock().set_manual(Some(lakebook_engine::clock::parse_time("2026-01-01T00:00:00Z").expect("time"))).expect("clock");
    setup_lake(lb);
    lb.streams().create("clicks", Some(1), None).expect("stream");
    lb.streams().set_limits("clicks", false).expect("limits");
    sql(lb, "CREATE EXTERNAL TABLE web.sink (page string, n bigint) STORED AS PARQUET LOCATION 's3://lake/sink/'").expect("table");
    let app = "CREATE TABLE clicks (page STRING, n BIGINT) WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');
         INSERT INTO web.sink SELECT page, n FROM clicks;";
    block(lb.create_analytics_application("copier", app)).expect("application");
    block(lb.analytics().start("copier", Some(lakebook_engine::analytics::StartFrom::TrimHorizon))).expect("start");
}

fn app_change(lb: &Lakebook, n: u64) -> Result<(), String> {
    for i in 0..3 {
        let data = format!("{{\"page\":\"p{i}\",\"n\":{}}}", n * 3 + i);
        lb.streams().put_record("clicks", "k", Bytes::from(data), None).map_err(|e| e.to_string())?;
    }
    block(lb.run_due_work());
    Ok(())
}

fn app_check(lb: &Lakebook, acked: u64) -> Result<(), String> {
    for _ in 0..3 {
        block(lb.run_due_work());
    }
    let mut stream: Vec<u64> = Vec::new();
    for (_, record) in lb.streams().read("clicks", &ReadFrom::TrimHorizon).map_err(|e| e.to_string())? {
        let v: Value = serde_json::from_slice(&record.data).map_err(|e| e.to_string())?;
        stream.push(v["n"].as_u64().unwrap_or(u64::MAX));
    }
    if (stream.len() as u64) < acked * 3 || (0..acked * 3).any(|n| !stream.contains(&n)) {
        return Err(format!("{acked} acknowledged: the stream holds {}", stream.len()));
    }
    let rows = sql(lb, "SELECT n, count(*) FROM web.sink GROUP BY n ORDER BY n")?;
    let table: Vec<(u64, u64)> = rows.iter().map(|r| (r[0].as_u64().unwrap_or(u64::MAX), r[1].as_u64().unwrap_or(0))).collect();
    stream.sort_unstable();
    let expected: Vec<(u64, u64)> = stream.iter().map(|n| (*n, 1)).collect();
    if table != expected {
        let twice: Vec<u64> = table.iter().filter(|(_, c)| *c > 1).map(|(n, _)| *n).collect();
        let missing: Vec<u64> = stream.iter().filter(|n| !table.iter().any(|(t, _)| t == *n)).copied().collect();
        return Err(format!("{acked} acknowledged: written twice {twice:?}, missing {missing:?}"));
    }
    Ok(())
}

/// The child: opens the workspace and makes the case's changes until it is killed.
fn child(case: &str, home: &Path) {
    let case = CASES.iter().find(|c| c.name == case).unwrap_or_else(|| panic!("no case {case}"));
    let lb = Lakebook::open(home).expect("open the workspace");
    let mut stdout = std::io::stdout();
    for n in 0.. {
        (case.change)(&lb, n).unwrap_or_else(|e| panic!("change {n}: {e}"));
        writeln!(stdout, "ack {n}").and_then(|()| stdout.flush()).expect("stdout");
    }
}

/// xorshift64*: kill times, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn trial(case: &Case, rng: &mut Rng) -> Result<u64, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let home = dir.path().join("ws");
    {
        let lb = Lakebook::open(&home).map_err(|e| e.to_string())?;
        (case.setup)(&lb);
    }
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(CHILD, case.name)
        .env("LAKEBOOK_HOME", &home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let acks = Arc::new(Mutex::new(0u64));
    let reader = {
        let acks = acks.clone();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // Only a whole line is an acknowledgement: the kill can cut the last one short.
            while matches!(stdout.read_line(&mut line), Ok(n) if n > 0) && line.ends_with('\n') {
                if let Some(n) = line.trim().strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()) {
                    *acks.lock().unwrap_or_else(|p| p.into_inner()) = n + 1;
                }
                line.clear();
            }
        })
    };
    // Kill after the first acknowledgement, somewhere in the next 0-400 ms of changes.
    let started = Instant::now();
    while *acks.lock().unwrap_or_else(|p| p.into_inner()) == 0 {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            return Err(format!("the child exited {status} before any change: {err}"));
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err("no change acknowledged in 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(rng.below(400)));
    child.kill().map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = reader.join();
    let acked = *acks.lock().unwrap_or_else(|p| p.into_inner());
    if status.code().is_some() {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
        }
        return Err(format!("the child failed on its own ({status}) after {acked} changes: {err}"));
    }
    let lb = Lakebook::open(&home).map_err(|e| format!("reopening after the kill: {e}"))?;
    (case.check)(&lb, acked)?;
    Ok(acked)
}

fn main() {
    if let Ok(case) = std::env::var(CHILD) {
        let home = std::env::var("LAKEBOOK_HOME").expect("LAKEBOOK_HOME");
        child(&case, Path::new(&home));
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let seed = std::env::var("LAKEBOOK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1);
    println!("crash matrix: kill-time seed {seed} (LAKEBOOK_CRASH_SEED)");
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    for case in &CASES {
        let name = format!("crash_matrix::{}", case.name);
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        let mut acked = Vec::new();
        for t in 0..TRIALS {
            match trial(case, &mut rng) {
                Ok(n) => acked.push(n),
                Err(e) => failures.push(format!("{}, trial {t}: {e}", case.name)),
            }
        }
        println!("test {name} ... {} trials, killed after {:?} changes, {:.1} s", acked.len(), acked, started.elapsed().as_secs_f64());
    }
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED {f}");
        }
        std::process::exit(1);
    }
    println!("test result: ok");
}
