//! Redshift: how tables are laid out across slices (EVEN, KEY, ALL) and sorted within them,
//! COPY's formats and options (CSV quoting, pipe-delimited text, JSON 'auto', Parquet, GZIP,
//! NULL AS, column lists), UNLOAD's files, persistence across a reopen, and snapshot expiry.

use std::io::Write;

use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use bytes::Bytes;
use lakebook_engine::clock::parse_time;
use lakebook_engine::redshift::{DistStyle, Outcome, SnapshotType};
use lakebook_engine::{Lakebook, S3Uri};

async fn setup() -> (tempfile::TempDir, Lakebook) {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    lb.clock().set_manual(Some(parse_time("2026-01-01T00:00:00Z").unwrap())).unwrap();
    lb.lake().create_bucket("lake").unwrap();
    lb.redshift().create_cluster("wh", 2, 1).unwrap();
    (dir, lb)
}

async fn put(lb: &Lakebook, at: &str, data: impl Into<Bytes>) {
    lb.lake().put(&S3Uri::parse(at).unwrap(), data.into()).await.unwrap();
}

async fn sql(lb: &Lakebook, text: &str) -> Outcome {
    lb.redshift().run("wh", text).await.unwrap().pop().unwrap()
}

fn one(o: &Outcome) -> RecordBatch {
    datafusion::arrow::compute::concat_batches(&o.schema, &o.batches).unwrap()
}

fn strings(batch: &RecordBatch, i: usize) -> Vec<Option<String>> {
    let column = datafusion::arrow::compute::cast(batch.column(i), &arrow_schema::DataType::Utf8).unwrap();
    let s = column.as_any().downcast_ref::<StringArray>().unwrap();
    (0..s.len()).map(|r| if s.is_null(r) { None } else { Some(s.value(r).to_string()) }).collect()
}

/// The rows of each slice file of a table, in file order.
fn slice_files(lb: &Lakebook, table: &str) -> Vec<Vec<i64>> {
    let c = lb.redshift().describe("wh").unwrap();
    let t = c.tables.iter().find(|t| t.name == table).unwrap();
    let dir = lb.home().join("redshift").join("wh").join(format!("public.{table}")).join(format!("v{}", t.version));
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let bytes = Bytes::from(std::fs::read(f).unwrap());
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
            reader
                .flat_map(|b| {
                    let b = b.unwrap();
                    let a = datafusion::arrow::compute::cast(b.column(0), &arrow_schema::DataType::Int64).unwrap();
                    a.as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn layouts_follow_the_distribution_style_and_sort_key() {
    let (_dir, lb) = setup().await;
    sql(&lb, "CREATE TABLE even (n bigint, k int) DISTSTYLE EVEN SORTKEY(n)").await;
    sql(&lb, "INSERT INTO even SELECT 1000 - value, value % 3 FROM generate_series(1, 1000)").await;
    let slices = slice_files(&lb, "even");
    assert_eq!(slices.len(), 4, "2 nodes × 2 slices");
    assert!(slices.iter().all(|s| s.len() == 250), "round robin: {:?}", slices.iter().map(Vec::len).collect::<Vec<_>>());
    assert!(slices.iter().all(|s| s.windows(2).all(|w| w[0] <= w[1])), "each slice sorted by the sort key");

    sql(&lb, "CREATE TABLE keyed (k bigint, n int) DISTKEY(k)").await;
    sql(&lb, "INSERT INTO keyed SELECT value % 7, value FROM generate_series(1, 700)").await;
    let slices = slice_files(&lb, "keyed");
    let mut seen = std::collections::BTreeMap::new();
    for (s, rows) in slices.iter().enumerate() {
        for k in rows {
            assert_eq!(*seen.entry(*k).or_insert(s), s, "key {k} on two slices");
        }
    }
    assert_eq!(seen.len(), 7);
    // the planner is told the slices are hash partitioned on the key: grouping on it moves no
    // rows, where grouping the EVEN table does
    let explain = |o: &Outcome| strings(&one(o), 1).into_iter().flatten().collect::<Vec<_>>().join("\n");
    let plan = explain(&sql(&lb, "EXPLAIN SELECT k, count(*) FROM keyed GROUP BY k").await);
    assert!(!plan.contains("RepartitionExec: partitioning=Hash"), "{plan}");
    let plan = explain(&sql(&lb, "EXPLAIN SELECT k, count(*) FROM even GROUP BY k").await);
    assert!(plan.contains("RepartitionExec: partitioning=Hash"), "{plan}");

    sql(&lb, "CREATE TABLE everywhere (n bigint) DISTSTYLE ALL").await;
    sql(&lb, "INSERT INTO everywhere VALUES (1), (2), (3)").await;
    let c = lb.redshift().describe("wh").unwrap();
    let all = c.tables.iter().find(|t| t.name == "everywhere").unwrap();
    assert_eq!((all.diststyle, all.slice_rows.clone()), (DistStyle::All, vec![3]));
    let info = one(&sql(&lb, "SELECT \"table\", diststyle FROM svv_table_info ORDER BY 1").await); // even, everywhere, keyed
    assert_eq!(strings(&info, 1), vec![Some("EVEN".into()), Some("ALL".into()), Some("KEY(k)".into())]);

    // a restart (a new engine on the workspace) keeps every table and its rows
    let home = lb.home().to_path_buf();
    drop(lb);
    let lb = Lakebook::open(home).unwrap();
    let counted = one(&lb.redshift().run("wh", "SELECT (SELECT count(*) FROM even) + (SELECT count(*) FROM keyed) + (SELECT count(*) FROM everywhere)").await.unwrap()[0]);
    assert_eq!(strings(&counted, 0), vec![Some("1703".into())]);
}

#[tokio::test]
async fn copy_reads_every_format_with_its_options() {
    let (_dir, lb) = setup().await;
    sql(&lb, "CREATE TABLE t (id int, name varchar(20), note varchar(40))").await;
    put(&lb, "s3://lake/csv/a.csv", "1,\"Smith, J\",\"said \"\"hi\"\"\"\n2,Lee,\n").await;
    sql(&lb, "COPY t FROM 's3://lake/csv/' CSV").await;
    put(&lb, "s3://lake/text/b.txt", "3|Kim|N/A\n").await;
    sql(&lb, "COPY t FROM 's3://lake/text/b.txt' NULL AS 'N/A'").await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"id\": 4, \"name\": \"Ng\", \"extra\": true}\n{\"name\": \"Oz\", \"id\": 5, \"note\": \"n\"}").unwrap();
    put(&lb, "s3://lake/json/c.json.gz", gz.finish().unwrap()).await;
    sql(&lb, "COPY t FROM 's3://lake/json/' FORMAT AS JSON 'auto' GZIP").await;
    // a column list: the file has (name, id); note is left null
    put(&lb, "s3://lake/cols/d.csv", "Park,6\n").await;
    sql(&lb, "COPY t (name, id) FROM 's3://lake/cols/' CSV").await;
    // Parquet, by position
    let batch = RecordBatch::try_from_iter(vec![
        ("a", std::sync::Arc::new(Int32Array::from(vec![7])) as arrow_array::ArrayRef),
        ("b", std::sync::Arc::new(StringArray::from(vec!["Quinn"]))),
        ("c", std::sync::Arc::new(StringArray::from(vec![Some("pq")]))),
    ])
    .unwrap();
    let mut file = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    put(&lb, "s3://lake/pq/e.parquet", file).await;
    sql(&lb, "COPY t FROM 's3://lake/pq/' FORMAT PARQUET").await;

    let rows = one(&sql(&lb, "SELECT id, name, note FROM t ORDER BY id").await);
    assert_eq!(strings(&rows, 0), (1..=7).map(|i| Some(i.to_string())).collect::<Vec<_>>());
    assert_eq!(
        strings(&rows, 1),
        ["Smith, J", "Lee", "Kim", "Ng", "Oz", "Park", "Quinn"].iter().map(|s| Some(s.to_string())).collect::<Vec<_>>()
    );
    assert_eq!(strings(&rows, 2), vec![Some("said \"hi\"".into()), Some(String::new()), None, None, Some("n".into()), None, Some("pq".into())]);

    // wrong field counts are load errors with Redshift's codes
    put(&lb, "s3://lake/bad/f.csv", "8,a\n9,b,c,d\n").await;
    let err = lb.redshift().run("wh", "COPY t FROM 's3://lake/bad/' CSV MAXERROR 1").await.unwrap_err();
    assert_eq!(err.code(), "LoadError");
    let errors = one(&sql(&lb, "SELECT line_number, err_code FROM stl_load_errors ORDER BY line_number").await);
    assert_eq!(strings(&errors, 1), vec![Some("1214".into()), Some("1202".into())]);
}

#[tokio::test]
async fn unload_names_files_per_slice_and_snapshots_expire() {
    let (_dir, lb) = setup().await;
    sql(&lb, "CREATE TABLE t (n bigint)").await;
    sql(&lb, "INSERT INTO t SELECT value FROM generate_series(1, 10)").await;
    let done = sql(&lb, "UNLOAD ('SELECT n FROM t ORDER BY n') TO 's3://lake/out/t_' DELIMITER ','").await;
    assert!(done.message.unwrap().contains("10 record(s) unloaded successfully to 4 file(s)"));
    let listing = lb.lake().list(&S3Uri::parse("s3://lake/out/").unwrap(), true).await.unwrap();
    let keys: Vec<String> = listing.objects.iter().map(|o| o.key.clone()).collect();
    assert_eq!(keys, vec!["out/t_0000_part_00", "out/t_0001_part_00", "out/t_0002_part_00", "out/t_0003_part_00"]);
    let first = lb.lake().get(&S3Uri::parse("s3://lake/out/t_0000_part_00").unwrap()).await.unwrap();
    assert_eq!(&first[..], b"1\n2\n3\n");
    // Parquet: Snappy, UNLOAD's documented default; the table's own slices are LZ4
    sql(&lb, "UNLOAD ('SELECT n FROM t') TO 's3://lake/pq/t_' FORMAT PARQUET").await;
    let codec = |bytes: Bytes| parquet::file::reader::SerializedFileReader::new(bytes).map(|r| parquet::file::reader::FileReader::metadata(&r).row_group(0).column(0).compression()).unwrap();
    let unloaded = lb.lake().get(&S3Uri::parse("s3://lake/pq/t_0000_part_00.parquet").unwrap()).await.unwrap();
    assert_eq!(codec(unloaded), parquet::basic::Compression::SNAPPY);
    let c = lb.redshift().describe("wh").unwrap();
    let slice = lb.home().join("redshift/wh/public.t").join(format!("v{}", c.tables[0].version)).join("slice-0000.parquet");
    assert_eq!(codec(Bytes::from(std::fs::read(slice).unwrap())), parquet::basic::Compression::LZ4_RAW);
    // A slice is one large row group of 16 Ki-row pages, the zone maps: the page index holds
    // each page's min/max, and the sort key, all distinct values, is mostly plain-encoded (a
    // whole row group's dictionary would be read for every zone a query keeps).
    sql(&lb, "CREATE TABLE z (k bigint, s varchar(8)) DISTSTYLE EVEN SORTKEY(k)").await;
    sql(&lb, "INSERT INTO z SELECT value, 'x' FROM generate_series(1, 200000)").await;
    let c = lb.redshift().describe("wh").unwrap();
    let version = c.tables.iter().find(|t| t.name == "z").unwrap().version;
    let bytes = Bytes::from(std::fs::read(lb.home().join(format!("redshift/wh/public.z/v{version}/slice-0000.parquet"))).unwrap());
    let options = parquet::file::serialized_reader::ReadOptionsBuilder::new().with_page_index().build();
    let reader = parquet::file::reader::SerializedFileReader::new_with_options(bytes, options).unwrap();
    let meta = parquet::file::reader::FileReader::metadata(&reader);
    assert_eq!(meta.num_row_groups(), 1);
    let rows = meta.row_group(0).num_rows() as usize;
    let pages = &meta.offset_index().expect("a page index")[0][0].page_locations;
    assert!(pages.len() >= rows / 16384 && pages.len() >= 3, "{} pages for {rows} rows", pages.len());
    let starts: Vec<usize> = pages.iter().map(|p| p.first_row_index as usize).chain([rows]).collect();
    // (parquet's writer checks the row limit as it goes, and the page after the dictionary's
    // fallback to plain held 24 Ki rows here)
    assert!(starts.windows(2).all(|w| w[1] - w[0] <= 2 * 16384), "{starts:?}");
    assert!(starts.windows(2).filter(|w| w[1] - w[0] > 16384).count() <= 1, "{starts:?}");
    let dictionary = meta.row_group(0).column(0).dictionary_page_offset().map(|d| (meta.row_group(0).column(0).data_page_offset() - d) as usize);
    assert!(dictionary.unwrap_or(0) <= 80 << 10, "dictionary page of {dictionary:?} bytes");

    let r = lb.redshift();
    let t0 = parse_time("2026-01-01T00:00:00Z").unwrap();
    assert!(r.run_due(t0 + chrono::Duration::hours(7)).unwrap().is_empty());
    let took = r.run_due(t0 + chrono::Duration::hours(8)).unwrap();
    assert_eq!(took, vec!["Redshift took automated snapshot rs:wh-2026-01-01-08-00-00 of wh".to_string()]);
    r.create_snapshot("wh", "keep").unwrap();
    // 26 hours on: two more were due (16:00, 00:00); only the latest is taken, the first expired
    let later = r.run_due(t0 + chrono::Duration::hours(32)).unwrap();
    assert!(later.contains(&"Redshift deleted automated snapshot rs:wh-2026-01-01-08-00-00 (retention ended)".to_string()), "{later:?}");
    let kinds: Vec<(String, SnapshotType)> = r.snapshots(Some("wh")).into_iter().map(|s| (s.id, s.snapshot_type)).collect();
    assert_eq!(kinds, vec![("keep".into(), SnapshotType::Manual), ("rs:wh-2026-01-02-08-00-00".into(), SnapshotType::Automated)]);
}

/// Firehose into a table: each batch is staged in the lake with a manifest and COPYd from
/// it; a COPY that fails (the table is missing) is retried on the clock and, once the table
/// exists, loads — the batch behind it waits its turn; a batch whose retries run out is
/// skipped with its manifest under the error prefix, and a COPY … MANIFEST of that loads it.
#[tokio::test]
async fn firehose_copies_each_staged_batch_and_retries_then_skips_a_failed_copy() {
    use lakebook_engine::firehose::{Config, CopyResult, RedshiftDestination, Trigger};
    let (_dir, lb) = setup().await;
    let fh = lb.firehose();
    let dest = |retry| RedshiftDestination { cluster: "wh".into(), table: "clicks".into(), copy_options: "JSON 'auto'".into(), retry_duration_s: retry };
    let config = |retry| Config {
        redshift: Some(dest(retry)),
        bucket: "lake".into(),
        prefix: "stage/".into(),
        error_prefix: Some("stage-errors/".into()),
        buffer_interval_s: Some(60),
        newline: true,
        ..Config::default()
    };
    fh.create("to-wh", config(600)).unwrap();
    let err = fh.create("nowhere", Config { redshift: Some(RedshiftDestination { cluster: "nope".into(), ..dest(0) }), ..config(0) }).unwrap_err();
    assert_eq!(err.code(), "ClusterNotFound");

    // The table does not exist yet: the first COPY fails and is retried in 5 minutes.
    fh.put("to-wh", vec![Bytes::from(r#"{"page":"/a","n":1}"#), Bytes::from(r#"{"page":"/b","n":2}"#)]).await.unwrap();
    let first = fh.deliver("to-wh", Trigger::Force).await.unwrap();
    assert_eq!(first.objects.len(), 1);
    assert!(first.objects[0].uri.starts_with("s3://lake/stage/2026/01/01/00/to-wh-1-2026-01-01-00-00-00-"), "{}", first.objects[0].uri);
    let [event] = &first.copies[..] else { panic!("{:?}", first.copies) };
    assert!(event.error.as_deref().unwrap().contains("clicks"), "{event}");
    assert_eq!(event.result, CopyResult::Retrying { next_attempt: parse_time("2026-01-01T00:05:00Z").unwrap() });
    let manifest = S3Uri::parse(&event.manifest).unwrap();
    assert!(manifest.key.starts_with("stage/manifests/2026/01/01/00/to-wh-1-"), "{manifest}");
    let body: serde_json::Value = serde_json::from_slice(&lb.lake().get(&manifest).await.unwrap()).unwrap();
    assert_eq!(body["entries"][0]["url"], first.objects[0].uri.as_str());

    // A second batch waits behind the first, even when the first is not due yet.
    lb.clock().advance(std::time::Duration::from_secs(60)).unwrap();
    fh.put("to-wh", vec![Bytes::from(r#"{"page":"/c","n":3}"#)]).await.unwrap();
    let second = fh.deliver("to-wh", Trigger::Force).await.unwrap();
    assert_eq!((second.objects.len(), second.copies.len()), (1, 0));
    assert_eq!(fh.describe("to-wh").unwrap().0.pending_copies.len(), 2);

    // Create the table; at the retry both batches load, in order.
    sql(&lb, "CREATE TABLE clicks (page varchar(20), n int) SORTKEY (n)").await;
    lb.clock().advance(std::time::Duration::from_secs(240)).unwrap();
    let reports = lb.run_due_work().await;
    let copies: Vec<&String> = reports.iter().filter(|r| r.contains("COPY into wh.clicks loaded")).collect();
    assert_eq!(copies.len(), 2, "{reports:?}");
    assert!(copies[0].contains("loaded 2 row(s)") && copies[1].contains("loaded 1 row(s)"), "{copies:?}");
    let rows = one(&sql(&lb, "SELECT page FROM clicks ORDER BY n").await);
    assert_eq!(strings(&rows, 0), vec![Some("/a".into()), Some("/b".into()), Some("/c".into())]);
    // Each staged object the COPYs loaded is in stl_load_commits (what a Firehose killed
    // between a COPY's commit and its own note checks before running that COPY again).
    let commits = one(&sql(&lb, "SELECT filename, lines_scanned, errors, status FROM stl_load_commits ORDER BY query").await);
    let staged = [first.objects[0].uri.clone(), second.objects[0].uri.clone()];
    assert_eq!(strings(&commits, 0), staged.iter().map(|u| Some(u.clone())).collect::<Vec<_>>());
    let text = arrow_cast::pretty::pretty_format_batches(std::slice::from_ref(&commits)).unwrap().to_string();
    assert!(text.contains("| 2             | 0      | 1      |") && text.contains("| 1             | 0      | 1      |"), "{text}");

    // A batch whose COPY keeps failing (bad rows, MAXERROR 0) is skipped when its retry
    // duration is over, and survives a restart while it waits.
    fh.put("to-wh", vec![Bytes::from(r#"{"page":"/d","n":"not a number"}"#)]).await.unwrap();
    let bad = fh.deliver("to-wh", Trigger::Force).await.unwrap();
    assert!(matches!(bad.copies[0].result, CopyResult::Retrying { .. }), "{}", bad.copies[0]);
    let d = fh.describe("to-wh").unwrap().0;
    assert_eq!((d.pending_copies[0].attempts, d.metrics.loaded_records), (1, 3));
    let home = lb.home().to_path_buf();
    drop(lb);
    let lb = Lakebook::open(&home).unwrap();
    let fh = lb.firehose();
    assert_eq!(fh.describe("to-wh").unwrap().0.pending_copies.len(), 1, "the pending COPY is persisted");
    lb.clock().advance(std::time::Duration::from_secs(600)).unwrap();
    let reports = lb.run_due_work().await;
    let skipped = reports.iter().find(|r| r.contains("batch is skipped")).unwrap_or_else(|| panic!("{reports:?}"));
    assert!(skipped.contains("attempt 2") && skipped.contains("LoadError"), "{skipped}");
    let error_manifest = skipped.rsplit(' ').next().unwrap();
    assert!(error_manifest.starts_with("s3://lake/stage-errors/manifests/2026/01/01/00/to-wh-1-"), "{error_manifest}");
    let d = fh.describe("to-wh").unwrap().0;
    assert_eq!((d.pending_copies.len(), d.metrics.skipped_batches), (0, 1));
    // The manifest is a valid COPY manifest for a manual backfill.
    let backfill = lb.redshift().run("wh", &format!("COPY clicks FROM '{error_manifest}' MANIFEST JSON 'auto' MAXERROR 1")).await.unwrap();
    assert_eq!(backfill[0].rows_loaded, Some(0));
    let missing = lb.redshift().run("wh", "COPY clicks FROM 's3://lake/stage/manifests/none' MANIFEST JSON 'auto'").await.unwrap_err();
    assert_eq!(missing.code(), "S3ServiceException");
}
