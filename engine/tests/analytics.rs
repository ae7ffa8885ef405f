//! Continuous SQL applications: windows fire when the watermark passes their end, late
//! records are counted and dropped, results come once per window in window order, drain
//! fires what is open; checked on hand-computed inputs.

use bytes::Bytes;
use lakebook_engine::analytics::StartFrom;
use lakebook_engine::{Lakebook, S3Uri};

fn app(window: &str, sink_path: &str) -> String {
    format!(
        "CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');
         CREATE TABLE views (page STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{sink_path}', 'format' = 'json');
         INSERT INTO views
         SELECT page, window_start, window_end, COUNT(*) AS n
         FROM TABLE({window})
         GROUP BY page, window_start, window_end;"
    )
}

fn put(lb: &Lakebook, shard_key: &str, page: &str, ts: &str) {
    let data = format!("{{\"page\":\"{page}\",\"ts\":\"2026-01-01 {ts}\"}}");
    lb.streams().put_record("clicks", shard_key, Bytes::from(data), None).unwrap();
}

/// The sink's rows as "page start end n", in the order they were written.
async fn sink_rows(lb: &Lakebook, path: &str) -> Vec<String> {
    let listing = lb.lake().list(&S3Uri::parse(path).unwrap(), true).await.unwrap();
    let mut keys: Vec<_> = listing.objects.iter().map(|o| o.key.clone()).collect();
    keys.sort();
    let mut rows = Vec::new();
    for key in keys {
        let uri = S3Uri { bucket: S3Uri::parse(path).unwrap().bucket, key };
        let text = lb.lake().get(&uri).await.unwrap();
        for line in String::from_utf8_lossy(&text).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let time = |k: &str| v[k].as_str().unwrap().trim_start_matches("2026-01-01T").to_string();
            rows.push(format!("{} {} {} {}", v["page"].as_str().unwrap(), time("window_start"), time("window_end"), v["n"]));
        }
    }
    rows
}

async fn setup(shards: u64) -> (tempfile::TempDir, Lakebook) {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    lb.clock().set_manual(Some("2026-01-01T10:00:00Z".parse().unwrap())).unwrap();
    lb.streams().create("clicks", Some(shards), None).unwrap();
    lb.lake().create_bucket("out").unwrap();
    (dir, lb)
}

#[tokio::test]
async fn tumbling_windows_fire_on_the_watermark_and_late_records_are_dropped() {
    let (_dir, lb) = setup(1).await;
    let path = "s3://out/views/";
    lb.create_analytics_application("per_minute", &app("TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)", path)).await.unwrap();
    lb.analytics().start("per_minute", Some(StartFrom::TrimHorizon)).await.unwrap();
    for (page, ts) in [("a", "10:00:05"), ("b", "10:00:50"), ("a", "10:00:30"), ("a", "10:01:04")] {
        put(&lb, "k", page, ts);
    }
    lb.run_due_work().await;
    // Watermark 10:00:59: the first minute is still open.
    assert!(sink_rows(&lb, path).await.is_empty());
    put(&lb, "k", "b", "10:01:05");
    lb.run_due_work().await;
    // Watermark 10:01:00 passes 10:00:59.999: the first minute fires, once, pages in any order.
    let mut first = sink_rows(&lb, path).await;
    first.sort();
    assert_eq!(first, ["a 10:00:00 10:01:00 2", "b 10:00:00 10:01:00 1"]);
    // A record for the fired minute is late: counted, dropped, never emitted.
    put(&lb, "k", "a", "10:00:59");
    lb.run_due_work().await;
    let d = lb.analytics().describe("per_minute").unwrap();
    assert_eq!((d.app.records_in, d.app.late_records_dropped, d.app.records_out), (6, 1, 2));
    assert_eq!(sink_rows(&lb, path).await.len(), 2);
    // Drain fires the open minute: all results, each window once, in window order.
    let stopped = lb.stop_analytics_application("per_minute", true).await.unwrap();
    assert_eq!(stopped.records_out, 4);
    let mut all = sink_rows(&lb, path).await;
    all[2..].sort();
    assert_eq!(&all[2..], ["a 10:01:00 10:02:00 1", "b 10:01:00 10:02:00 1"]);
}

#[tokio::test]
async fn hopping_windows_and_the_watermark_of_several_shards() {
    let (_dir, lb) = setup(2).await;
    let path = "s3://out/hop/";
    lb.create_analytics_application("hop", &app("HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '30' SECOND, INTERVAL '1' MINUTE)", path)).await.unwrap();
    lb.analytics().start("hop", Some(StartFrom::TrimHorizon)).await.unwrap();
    // Two shards (keys hash apart); the watermark is the smaller of their largest times.
    let shard_of = |key: &str| lakebook_engine::streams::hash_key(key) >= u128::MAX / 2;
    let (slow, fast) = if shard_of("k0") != shard_of("k1") { ("k0", "k1") } else { ("k0", "k2") };
    assert_ne!(shard_of(slow), shard_of(fast), "the test needs keys on both shards");
    put(&lb, slow, "a", "10:00:10");
    put(&lb, fast, "a", "10:00:40");
    put(&lb, fast, "a", "10:02:00");
    lb.run_due_work().await;
    // The slow shard holds the watermark at 10:00:05: nothing fires.
    assert!(sink_rows(&lb, path).await.is_empty());
    put(&lb, slow, "a", "10:01:10");
    lb.run_due_work().await;
    // Watermark 10:01:05: windows ending by then fire: [09:59:30, 10:00:30) holds 10:00:10;
    // [10:00:00, 10:01:00) holds 10:00:10 and 10:00:40.
    assert_eq!(sink_rows(&lb, path).await, ["a 09:59:30 10:00:30 1", "a 10:00:00 10:01:00 2"]);
    lb.stop_analytics_application("hop", true).await.unwrap();
    assert_eq!(
        sink_rows(&lb, path).await,
        [
            "a 09:59:30 10:00:30 1",
            "a 10:00:00 10:01:00 2",
            "a 10:00:30 10:01:30 2",
            "a 10:01:00 10:02:00 1",
            "a 10:01:30 10:02:30 1",
            "a 10:02:00 10:03:00 1",
        ]
    );
}

#[tokio::test]
async fn session_windows_merge_per_key_close_after_their_gap_and_drop_late_records() {
    let (_dir, lb) = setup(1).await;
    let path = "s3://out/sessions/";
    lb.create_analytics_application("sessions", &app("SESSION(TABLE clicks PARTITION BY page, DESCRIPTOR(ts), INTERVAL '10' SECOND)", path)).await.unwrap();
    lb.analytics().start("sessions", Some(StartFrom::TrimHorizon)).await.unwrap();
    // Watermark = largest time - 5 s, record by record.
    for (page, ts) in [
        ("a", "10:00:00"),
        ("a", "10:00:08"), // a: [00, 18)
        ("b", "10:00:05"), // b: [05, 15)
        ("a", "10:00:18"), // touches a's end: a [00, 28); watermark 10:00:13
        ("b", "10:00:30"), // watermark 10:00:25 closes b [05, 15); b: [30, 40)
        ("b", "10:00:14"), // its own window [14, 24) is past the watermark and touches no open session: late
        ("a", "10:00:26"), // a [00, 28) is still open: a [00, 36)
        ("a", "10:00:50"), // watermark 10:00:45
    ] {
        put(&lb, "k", page, ts);
    }
    lb.run_due_work().await;
    assert_eq!(sink_rows(&lb, path).await, ["b 10:00:05 10:00:15 1", "a 10:00:00 10:00:36 4", "b 10:00:30 10:00:40 1"]);
    let d = lb.analytics().describe("sessions").unwrap();
    assert_eq!((d.app.records_in, d.app.late_records_dropped, d.app.records_out, d.open_windows), (8, 1, 3, 1));
    lb.stop_analytics_application("sessions", true).await.unwrap();
    assert_eq!(sink_rows(&lb, path).await.last().unwrap(), "a 10:00:50 10:01:00 1");
}

#[tokio::test]
async fn lateness_is_judged_record_by_record_whatever_the_read_size() {
    let (_dir, lb) = setup(1).await;
    let path = "s3://out/tumble/";
    lb.create_analytics_application("t", &app("TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND)", path)).await.unwrap();
    lb.analytics().start("t", Some(StartFrom::TrimHorizon)).await.unwrap();
    // In one read: 10:00:16 moves the watermark to 10:00:11, so 10:00:04 after it is late
    // (its window [00, 10) has passed), as it would be in Flink.
    for ts in ["10:00:01", "10:00:16", "10:00:04", "10:00:12"] {
        put(&lb, "k", "a", ts);
    }
    lb.stop_analytics_application("t", true).await.unwrap();
    assert_eq!(sink_rows(&lb, path).await, ["a 10:00:00 10:00:10 1", "a 10:00:10 10:00:20 2"]);
    assert_eq!(lb.analytics().describe("t").unwrap().app.late_records_dropped, 1);
}

#[tokio::test]
async fn a_late_record_still_counts_in_the_hopping_windows_not_yet_passed() {
    let (_dir, lb) = setup(1).await;
    let path = "s3://out/hop/";
    lb.create_analytics_application("h", &app("HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '15' SECOND)", path)).await.unwrap();
    lb.analytics().start("h", Some(StartFrom::TrimHorizon)).await.unwrap();
    // 10:00:22 moves the watermark to 10:00:17. Then 10:00:03's windows all end by 10:00:15:
    // late. 10:00:09 is in [10:00:05, 10:00:20) still open, so it counts there (only), as in
    // Flink, where a slice that fired merges into the windows still to fire.
    for ts in ["10:00:01", "10:00:22", "10:00:03", "10:00:09"] {
        put(&lb, "k", "a", ts);
    }
    lb.stop_analytics_application("h", true).await.unwrap();
    assert_eq!(
        sink_rows(&lb, path).await,
        [
            "a 09:59:50 10:00:05 1",
            "a 09:59:55 10:00:10 1",
            "a 10:00:00 10:00:15 1",
            "a 10:00:05 10:00:20 1",
            "a 10:00:10 10:00:25 1",
            "a 10:00:15 10:00:30 1",
            "a 10:00:20 10:00:35 1",
        ]
    );
    assert_eq!(lb.analytics().describe("h").unwrap().app.late_records_dropped, 1);
}

/// The JSON records of a stream, in order.
fn stream_rows(lb: &Lakebook, name: &str) -> Vec<serde_json::Value> {
    let records = lb.streams().read(name, &lakebook_engine::streams::ReadFrom::TrimHorizon).unwrap();
    records.iter().map(|(_, r)| serde_json::from_slice(&r.data).unwrap()).collect()
}

#[tokio::test]
async fn reference_data_from_an_s3_object_and_a_catalog_table_joins_into_stream_and_firehose_sinks() {
    let (_dir, lb) = setup(1).await;
    lb.streams().create("alerts", Some(1), None).unwrap();
    lb.lake().create_bucket("ref").unwrap();
    lb.lake().put(&S3Uri::parse("s3://ref/pages.csv").unwrap(), Bytes::from("home,Home page\ncart,Shopping cart\n")).await.unwrap();
    lb.lake().put(&S3Uri::parse("s3://ref/owners/o.json").unwrap(), Bytes::from("{\"page\":\"home\",\"team\":\"web\"}\n{\"page\":\"cart\",\"team\":\"shop\"}\n")).await.unwrap();
    lb.sql().run("CREATE DATABASE web", "default").await.unwrap();
    lb.sql().run("CREATE EXTERNAL TABLE web.owners (page string, team string) STORED AS JSONFILE LOCATION 's3://ref/owners/'", "web").await.unwrap();
    let firehose = lakebook_engine::firehose::Config { bucket: "out".into(), prefix: "fh/".into(), buffer_mb: Some(1), buffer_interval_s: Some(60), newline: true, ..Default::default() };
    lb.firehose().create("to_s3", firehose).unwrap();
    let sql = "CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');
         CREATE TABLE pages (page STRING, title STRING) WITH ('connector' = 'filesystem', 'path' = 's3://ref/pages.csv', 'format' = 'csv');
         CREATE TABLE alerts (page STRING, title STRING, team STRING, n BIGINT) WITH ('connector' = 'kinesis', 'stream' = 'alerts', 'format' = 'json');
         CREATE TABLE delivered (page STRING, window_start TIMESTAMP(3), n BIGINT) WITH ('connector' = 'firehose', 'delivery-stream' = 'to_s3', 'format' = 'json');
         INSERT INTO alerts
         SELECT w.page, p.title, o.team, COUNT(*) AS n
         FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) w
         JOIN pages p ON w.page = p.page JOIN web.owners o ON o.page = w.page
         GROUP BY w.page, p.title, o.team, window_start, window_end HAVING COUNT(*) >= 2;
         INSERT INTO delivered
         SELECT page, window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
         GROUP BY page, window_start, window_end;";
    lb.create_analytics_application("enrich", sql).await.unwrap();
    lb.analytics().start("enrich", Some(StartFrom::TrimHorizon)).await.unwrap();
    for (page, ts) in [("home", "10:00:05"), ("home", "10:00:20"), ("cart", "10:00:30"), ("home", "10:01:10")] {
        put(&lb, "k", page, ts);
    }
    lb.run_due_work().await;
    // Only home reached 2 in the first minute: one alert, enriched from both references.
    assert_eq!(stream_rows(&lb, "alerts"), [serde_json::json!({"page": "home", "title": "Home page", "team": "web", "n": 2})]);
    // The Firehose stream buffers for 60 s, then delivers the minute's two rows to S3.
    lb.clock().advance(std::time::Duration::from_secs(61)).unwrap();
    lb.run_due_work().await;
    let listing = lb.lake().list(&S3Uri::parse("s3://out/fh/").unwrap(), true).await.unwrap();
    assert_eq!(listing.objects.len(), 1, "{listing:?}");
    let text = lb.lake().get(&S3Uri { bucket: "out".into(), key: listing.objects[0].key.clone() }).await.unwrap();
    let mut pages: Vec<String> = String::from_utf8_lossy(&text).lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).map(|v| format!("{} {}", v["page"], v["n"])).collect();
    pages.sort();
    assert_eq!(pages, ["\"cart\" 1", "\"home\" 2"]);
}

#[tokio::test]
async fn rows_a_throttled_stream_sink_refuses_wait_in_the_state_and_go_at_the_next_step() {
    let (dir, lb) = setup(1).await;
    lb.streams().create("copy", Some(1), None).unwrap();
    lb.streams().set_limits("clicks", false).unwrap();
    let sql = "CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');
         CREATE TABLE copy (page STRING, ts TIMESTAMP(3)) WITH ('connector' = 'kinesis', 'stream' = 'copy', 'format' = 'json');
         INSERT INTO copy SELECT page, ts FROM clicks WHERE page <> 'skip';";
    lb.create_analytics_application("copier", sql).await.unwrap();
    lb.analytics().start("copier", Some(StartFrom::TrimHorizon)).await.unwrap();
    for i in 0..1_300 {
        put(&lb, "k", if i % 13 == 0 { "skip" } else { "p" }, "10:00:00");
    }
    lb.run_due_work().await;
    // 1,200 rows pass the filter; a shard takes 1,000 records a second.
    assert_eq!(stream_rows(&lb, "copy").len(), 1_000);
    assert_eq!(lb.analytics().describe("copier").unwrap().waiting, 200);
    // A restart keeps them (they are in the saved state) …
    drop(lb);
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    assert_eq!(lb.analytics().describe("copier").unwrap().waiting, 200);
    // … and the next second sends them, once.
    lb.clock().advance(std::time::Duration::from_secs(1)).unwrap();
    lb.run_due_work().await;
    assert_eq!(stream_rows(&lb, "copy").len(), 1_200);
    assert_eq!(lb.analytics().describe("copier").unwrap().waiting, 0);
}

#[tokio::test]
async fn bad_applications_are_refused_with_the_reason() {
    let (_dir, lb) = setup(1).await;
    let no_window = "CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
         WITH ('connector' = 'kinesis', 'stream' = 'clicks');
         CREATE TABLE views (page STRING, n BIGINT) WITH ('connector' = 'filesystem', 'path' = 's3://out/v/');
         INSERT INTO views SELECT page, COUNT(*) FROM clicks GROUP BY page;";
    let err = lb.create_analytics_application("x", no_window).await.unwrap_err();
    assert!(err.message().contains("needs a window"), "{err}");
    let bad_column = app("TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)", "s3://out/v/").replace("COUNT(*) AS n", "COUNT(nope) AS n");
    let err = lb.create_analytics_application("x", &bad_column).await.unwrap_err();
    assert!(err.message().contains("nope"), "{err}");
    assert!(lb.analytics().list().is_empty());
    let err = lb.analytics().start("missing", Some(StartFrom::Latest)).await.unwrap_err();
    assert_eq!(err.code(), "ResourceNotFoundException");
}

/// Every file under `dirs` (a snapshot to put back, as a crash at that point would leave them).
fn snapshot(dirs: &[std::path::PathBuf]) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in dirs {
        for entry in walk(dir) {
            files.push((entry.clone(), std::fs::read(&entry).unwrap()));
        }
    }
    files
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

fn restore(dirs: &[std::path::PathBuf], files: &[(std::path::PathBuf, Vec<u8>)]) {
    for dir in dirs {
        for path in walk(dir) {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (path, bytes) in files {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

const COUNTS: &str = "TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)";

#[tokio::test]
async fn a_crash_after_the_state_is_saved_but_before_the_lease_checkpoint_reads_nothing_twice() {
    let (dir, lb) = setup(1).await;
    let path = "s3://out/c/";
    lb.create_analytics_application("c", &app(COUNTS, path)).await.unwrap();
    lb.analytics().start("c", None).await.unwrap();
    put(&lb, "k", "a", "10:00:01");
    put(&lb, "k", "a", "10:00:02");
    lb.run_due_work().await;
    let leases = [dir.path().join("ws/streams/clicks/leases")];
    let before = snapshot(&leases);
    assert!(!before.is_empty(), "the lease table is where the test expects it");
    put(&lb, "k", "a", "10:00:03");
    lb.run_due_work().await;
    // The lease table as it was before that step: the state saved, the checkpoint lost.
    restore(&leases, &before);
    drop(lb);
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    put(&lb, "k", "a", "10:01:10");
    lb.run_due_work().await;
    assert_eq!(sink_rows(&lb, path).await, ["a 10:00:00 10:01:00 3"]);
    assert_eq!(lb.analytics().describe("c").unwrap().app.records_in, 4);
}

#[tokio::test]
async fn a_crash_after_the_results_are_written_but_before_the_state_is_saved_writes_them_once() {
    let (dir, lb) = setup(1).await;
    let path = "s3://out/c/";
    lb.create_analytics_application("c", &app(COUNTS, path)).await.unwrap();
    lb.analytics().start("c", None).await.unwrap();
    put(&lb, "k", "a", "10:00:01");
    put(&lb, "k", "a", "10:00:30");
    lb.run_due_work().await;
    let state = [dir.path().join("ws/analytics"), dir.path().join("ws/streams/clicks/leases")];
    let before = snapshot(&state);
    put(&lb, "k", "a", "10:01:10");
    lb.run_due_work().await;
    assert_eq!(sink_rows(&lb, path).await, ["a 10:00:00 10:01:00 2"]);
    // State and positions as they were before that step; its result file stays.
    restore(&state, &before);
    drop(lb);
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    lb.run_due_work().await;
    put(&lb, "k", "a", "10:02:10");
    lb.stop_analytics_application("c", true).await.unwrap();
    assert_eq!(sink_rows(&lb, path).await, ["a 10:00:00 10:01:00 2", "a 10:01:00 10:02:00 1", "a 10:02:00 10:03:00 1"]);
}

#[tokio::test]
async fn stop_and_start_resume_or_start_afresh_from_each_position() {
    let (_dir, lb) = setup(1).await;
    // Many reads in one second of a frozen clock: past the 5 GetRecords a second a shard allows.
    lb.streams().set_limits("clicks", false).unwrap();
    let path = "s3://out/c/";
    lb.create_analytics_application("c", &app(COUNTS, path)).await.unwrap();
    lb.analytics().start("c", None).await.unwrap();
    put(&lb, "k", "a", "10:00:01");
    lb.run_due_work().await;
    lb.stop_analytics_application("c", false).await.unwrap();
    // Stopped without drain: the open minute is kept; what arrives meanwhile is read on resume.
    put(&lb, "k", "a", "10:00:20");
    lb.analytics().start("c", None).await.unwrap();
    put(&lb, "k", "a", "10:01:10");
    lb.run_due_work().await;
    assert_eq!(sink_rows(&lb, path).await, ["a 10:00:00 10:01:00 2"]);
    lb.stop_analytics_application("c", false).await.unwrap();
    // --from latest: afresh at the tip; the open minute (10:01:10) and b are skipped.
    put(&lb, "k", "b", "10:02:00");
    lb.analytics().start("c", Some(StartFrom::Latest)).await.unwrap();
    put(&lb, "k", "c", "10:03:00");
    lb.stop_analytics_application("c", true).await.unwrap();
    assert_eq!(sink_rows(&lb, path).await, ["a 10:00:00 10:01:00 2", "c 10:03:00 10:04:00 1"]);
    // --from trim-horizon: everything the stream holds, again.
    lb.analytics().start("c", Some(StartFrom::TrimHorizon)).await.unwrap();
    lb.stop_analytics_application("c", true).await.unwrap();
    let rows = sink_rows(&lb, path).await;
    assert_eq!(rows[2..], ["a 10:00:00 10:01:00 2", "a 10:01:00 10:02:00 1", "b 10:02:00 10:03:00 1", "c 10:03:00 10:04:00 1"]);
}

/// The files holding an application's open windows.
fn segment_files(dir: &std::path::Path, app: &str) -> Vec<String> {
    let windows = dir.join("ws").join("analytics").join(format!("{app}.windows"));
    std::fs::read_dir(windows).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_large_read_decodes_in_parts_keeps_a_bad_record_out_and_its_open_windows_survive_a_restart() {
    let (dir, lb) = setup(2).await;
    lb.streams().set_limits("clicks", false).unwrap();
    let path = "s3://out/large/";
    lb.create_analytics_application("large", &app("TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND)", path)).await.unwrap();
    lb.analytics().start("large", Some(StartFrom::TrimHorizon)).await.unwrap();
    // 25,001 records a millisecond apart from 10:00:00 (pages a and b, on both shards), one
    // with a time that does not parse.
    let mut text = String::new();
    for i in 0..=25_000u32 {
        let ts = format!("10:00:{:02}.{:03}", i / 1000, i % 1000);
        let ts = if i == 12_345 { "soon".to_string() } else { format!("2026-01-01 {ts}") };
        text.push_str(&format!("{{\"page\":\"{}\",\"ts\":\"{ts}\"}}\n", if i % 2 == 0 { "a" } else { "b" }));
    }
    let key = lakebook_engine::streams::lines::LineKey::Field("page".into());
    lb.streams().load_lines("clicks", &Bytes::from(text), &key).unwrap();
    lb.run_due_work().await;
    // Watermark 10:00:19.999 (b's shard reached 10:00:24.999): [00, 10) and [10, 20) fired;
    // [20, 30) holds 5,001 records, in one saved segment.
    let fired = sink_rows(&lb, path).await;
    assert_eq!(fired.len(), 4, "{fired:?}");
    let d = lb.analytics().describe("large").unwrap();
    assert_eq!((d.app.records_in, d.app.records_unreadable, d.open_windows), (25_001, 1, 5_001));
    assert_eq!(segment_files(dir.path(), "large").len(), 1);
    drop(lb);
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    assert_eq!(lb.analytics().describe("large").unwrap().open_windows, 5_001);
    lb.stop_analytics_application("large", true).await.unwrap();
    let rows = sink_rows(&lb, path).await;
    let counted: u64 = rows.iter().map(|r| r.rsplit(' ').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(counted, 25_000);
    let mut last = rows[4..].to_vec();
    last.sort();
    assert_eq!(last, ["a 10:00:20 10:00:30 2501", "b 10:00:20 10:00:30 2500"]);
    // Every window fired: no segment is left.
    assert!(segment_files(dir.path(), "large").is_empty());
}
