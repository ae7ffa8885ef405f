//! The crawler over a fixture lake: every classifier, the CSV header rule, named and unnamed
//! partitions, grouping vs separate tables, exclusions, re-crawls under each schema-change
//! policy, bad files, persistence and schedules.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use lakebook_engine::catalog::{CrawlSummary, CrawlerConfig, DeleteBehavior, Format, TableAction, UpdateBehavior};
use lakebook_engine::{Lakebook, S3Uri};

fn engine(dir: &tempfile::TempDir) -> Lakebook {
    Lakebook::open(dir.path().join("ws")).unwrap()
}

async fn put(lb: &Lakebook, uri: &str, data: impl Into<Bytes>) {
    let uri = S3Uri::parse(uri).unwrap();
    let _ = lb.lake().create_bucket(&uri.bucket);
    lb.lake().put(&uri, data.into()).await.unwrap();
}

fn parquet_bytes(ids: &[i64], names: &[&str]) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(names.to_vec()))],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(StringArray::from(vec!["a", "b"]))]).unwrap()
}

fn avro_bytes() -> Vec<u8> {
    let batch = batch();
    let mut writer = arrow_avro::writer::AvroWriter::new(Vec::new(), batch.schema().as_ref().clone()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    writer.into_inner()
}

fn orc_bytes() -> Vec<u8> {
    let batch = batch();
    let mut out = Vec::new();
    let mut writer = orc_rust::ArrowWriterBuilder::new(&mut out, batch.schema()).try_build().unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

fn config(name: &str, target: &str) -> CrawlerConfig {
    CrawlerConfig::new(name, target, "web")
}

async fn run(lb: &Lakebook, config: CrawlerConfig) -> CrawlSummary {
    let name = config.name.clone();
    lb.catalog().upsert_crawler(config).unwrap();
    lb.catalog().run_crawler(lb.lake(), &name, &mut |_, _| {}).await.unwrap()
}

fn action(summary: &CrawlSummary, table: &str) -> TableAction {
    summary.tables.iter().find(|t| t.table == table).unwrap_or_else(|| panic!("{table} not in {summary:#?}")).action
}

#[tokio::test]
async fn classifies_every_format_and_groups_tables() {
    let dir = tempfile::tempdir().unwrap();
    let lb = engine(&dir);
    // Hive-partitioned CSV with a header.
    for day in ["01", "02"] {
        put(&lb, &format!("s3://lake/csv/year=2026/month=01/day={day}/part.csv"), format!("user_id,page,ts\n1,/home,2026-01-{day} 10:00:00\n")).await;
    }
    // JSON Lines in unnamed folders.
    put(&lb, "s3://lake/json/2026/01/a.json", "{\"id\":1,\"tags\":[\"a\"]}\n").await;
    put(&lb, "s3://lake/json/2026/02/b.json", "{\"id\":2,\"tags\":[]}\n").await;
    // Parquet, one folder.
    put(&lb, "s3://lake/pq/x.parquet", parquet_bytes(&[1, 2], &["a", "b"])).await;
    // gzip CSV without a header (all strings).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"alice;home\nbob;cart\n").unwrap();
    put(&lb, "s3://lake/gz/names.csv.gz", gz.finish().unwrap()).await;
    // Avro and ORC, schemas from their own headers/footers.
    put(&lb, "s3://lake/avro/part-0.avro", avro_bytes()).await;
    put(&lb, "s3://lake/orc/part-0.orc", orc_bytes()).await;
    // Hidden and underscore files are ignored.
    put(&lb, "s3://lake/pq/_SUCCESS", "").await;
    put(&lb, "s3://lake/pq/.crc", "junk").await;

    let summary = run(&lb, config("all", "s3://lake/")).await;
    assert_eq!(summary.skipped, vec![], "{summary:#?}");
    let tables = lb.catalog().tables("web").unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["avro", "csv", "gz", "json", "orc", "pq"]);
    for (name, format) in [("avro", Format::Avro), ("orc", Format::Orc)] {
        let t = lb.catalog().table("web", name).unwrap();
        assert_eq!(t.definition.format, format);
        let columns: Vec<(&str, &str)> = t.definition.columns.iter().map(|c| (c.name.as_str(), c.data_type.as_str())).collect();
        assert_eq!(columns, vec![("id", "bigint"), ("name", "string")], "{name}");
    }

    let csv = lb.catalog().table("web", "csv").unwrap();
    assert_eq!(csv.definition.format, Format::Csv { delimiter: ',', header: true, escape: None });
    let keys: Vec<&str> = csv.definition.partition_keys.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(keys, vec!["year", "month", "day"]);
    assert_eq!(csv.partitions.len(), 2);
    assert_eq!(csv.partitions["2026/01/02"].location, "s3://lake/csv/year=2026/month=01/day=02/");
    assert_eq!(csv.definition.columns.iter().map(|c| c.data_type.as_str()).collect::<Vec<_>>(), vec!["bigint", "string", "timestamp"]);

    let json = lb.catalog().table("web", "json").unwrap();
    assert_eq!(json.definition.format, Format::Json);
    assert_eq!(json.definition.partition_keys.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["partition_0", "partition_1"]);
    assert_eq!(json.definition.columns[1].data_type, "array<string>");

    let pq = lb.catalog().table("web", "pq").unwrap();
    assert_eq!(pq.definition.format, Format::Parquet);
    assert_eq!(pq.definition.columns[0].data_type, "bigint");

    let gz = lb.catalog().table("web", "gz").unwrap();
    assert_eq!(gz.definition.compression.as_deref(), Some("gzip"));
    assert_eq!(gz.definition.format, Format::Csv { delimiter: ';', header: false, escape: None });
    assert_eq!(gz.definition.columns[0].name, "col0");
}

#[tokio::test]
async fn compatible_siblings_become_partitions_incompatible_become_tables() {
    let dir = tempfile::tempdir().unwrap();
    let lb = engine(&dir);
    put(&lb, "s3://lake/same/east/a.csv", "id,amount\n1,2.5\n").await;
    put(&lb, "s3://lake/same/west/b.csv", "id,amount\n2,3.5\n").await;
    put(&lb, "s3://lake/mixed/sales/a.csv", "id,amount\n1,2.5\n").await;
    put(&lb, "s3://lake/mixed/users/u.json", "{\"user\":\"x\",\"email\":\"y\"}\n").await;
    run(&lb, config("same", "s3://lake/same/")).await;
    let same = lb.catalog().table("web", "same").unwrap();
    assert_eq!(same.definition.partition_keys[0].name, "partition_0");
    assert_eq!(same.partitions.keys().cloned().collect::<Vec<_>>(), vec!["east", "west"]);
    let summary = run(&lb, config("mixed", "s3://lake/mixed/")).await;
    assert_eq!(action(&summary, "sales"), TableAction::Created);
    assert_eq!(action(&summary, "users"), TableAction::Created);
    assert_eq!(lb.catalog().table("web", "sales").unwrap().definition.location, "s3://lake/mixed/sales/");
}

#[tokio::test]
async fn a_lone_dataset_folder_names_the_table_but_value_folders_are_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let lb = engine(&dir);
    put(&lb, "s3://only/web/day=01/a.csv", "id,page\n1,/\n").await;
    put(&lb, "s3://years/orders/2026/01/a.json", "{\"id\":1}\n").await;
    run(&lb, config("only", "s3://only/")).await;
    let web = lb.catalog().table("web", "web").unwrap();
    assert_eq!((web.definition.location.as_str(), web.definition.partition_keys[0].name.as_str()), ("s3://only/web/", "day"));
    run(&lb, config("years", "s3://years/orders/")).await;
    let orders = lb.catalog().table("web", "orders").unwrap();
    assert_eq!(orders.partitions.keys().cloned().collect::<Vec<_>>(), vec!["2026/01"]);
}

#[tokio::test]
async fn exclusions_and_bad_files_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let lb = engine(&dir);
    put(&lb, "s3://lake/t/good.json", "{\"a\":1}\n").await;
    put(&lb, "s3://lake/t/tmp/skip.json", "{\"a\":1}\n").await;
    put(&lb, "s3://lake/t/deep/er/x.tmp", "{\"a\":1}\n").await;
    let mut pq = parquet_bytes(&[1], &["a"]);
    pq.truncate(pq.len() - 20);
    put(&lb, "s3://lake/bad/truncated.parquet", pq).await;
    put(&lb, "s3://lake/bad/invalid.json", "{\"a\":1}\n{\"a\":\n{\"b\":2}\n").await;
    put(&lb, "s3://lake/bad/junk.bin", vec![0u8, 1, 2, 255, 254, 0, 7]).await;
    put(&lb, "s3://lake/bad/empty.csv", "").await;

    let mut cfg = config("ex", "s3://lake/t/");
    cfg.exclusions = vec!["tmp/*".into(), "**/*.tmp".into()];
    let summary = run(&lb, cfg).await;
    let excluded: Vec<&str> = summary.skipped.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(excluded, vec!["s3://lake/t/deep/er/x.tmp", "s3://lake/t/tmp/skip.json"]);
    assert_eq!(lb.catalog().table("web", "t").unwrap().partitions.len(), 0);

    let summary = run(&lb, config("bad", "s3://lake/bad/")).await;
    let reasons: Vec<(&str, &str)> = summary.skipped.iter().map(|s| (s.key.as_str(), s.reason.as_str())).collect();
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    assert!(reasons[0].0.ends_with("empty.csv") && reasons[0].1 == "empty file");
    assert!(reasons[1].0.ends_with("invalid.json") && reasons[1].1.contains("invalid JSON at line 2"));
    assert!(reasons[2].1.contains("binary"));
    assert!(reasons[3].0.ends_with("truncated.parquet") && reasons[3].1.contains("Parquet"), "{reasons:#?}");
    assert!(summary.tables.is_empty());
}

#[tokio::test]
async fn recrawl_picks_up_partitions_and_columns_and_applies_delete_behaviour() {
    for behavior in [DeleteBehavior::Deprecate, DeleteBehavior::Delete, DeleteBehavior::Log] {
        let dir = tempfile::tempdir().unwrap();
        let lb = engine(&dir);
        put(&lb, "s3://lake/web/day=01/a.json", "{\"id\":1,\"page\":\"/\"}\n").await;
        put(&lb, "s3://lake/web/day=02/a.json", "{\"id\":2,\"page\":\"/x\"}\n").await;
        let mut cfg = config("web", "s3://lake/web/");
        cfg.delete_behavior = behavior;
        assert_eq!(action(&run(&lb, cfg.clone()).await, "web"), TableAction::Created);
        assert_eq!(action(&run(&lb, cfg.clone()).await, "web"), TableAction::Unchanged);

        // A new day with a new column: new partition, new version.
        put(&lb, "s3://lake/web/day=03/a.json", "{\"id\":3,\"page\":\"/y\",\"referrer\":\"g\"}\n").await;
        let summary = run(&lb, cfg.clone()).await;
        let change = &summary.tables[0];
        assert_eq!((change.action, change.version, change.partitions_added), (TableAction::Updated, 2, 1));
        assert!(change.detail.contains("referrer"), "{}", change.detail);
        let table = lb.catalog().table("web", "web").unwrap();
        assert_eq!(table.versions.len(), 2);
        assert_eq!(table.versions[0].definition.columns.len(), 2);
        assert_eq!(table.definition.columns.len(), 3);

        // A day disappears.
        lb.lake().delete_prefix(&S3Uri::parse("s3://lake/web/day=01/").unwrap()).await.unwrap();
        run(&lb, cfg.clone()).await;
        let table = lb.catalog().table("web", "web").unwrap();
        match behavior {
            DeleteBehavior::Delete => assert!(!table.partitions.contains_key("01")),
            DeleteBehavior::Deprecate => assert!(table.partitions["01"].deprecated),
            DeleteBehavior::Log => assert!(!table.partitions["01"].deprecated),
        }

        // All data gone: the table itself.
        lb.lake().delete_prefix(&S3Uri::parse("s3://lake/web/").unwrap()).await.unwrap();
        let summary = run(&lb, cfg).await;
        let expected = match behavior {
            DeleteBehavior::Delete => TableAction::Deleted,
            DeleteBehavior::Deprecate => TableAction::Deprecated,
            DeleteBehavior::Log => TableAction::Logged,
        };
        assert_eq!(action(&summary, "web"), expected);
        assert_eq!(lb.catalog().table("web", "web").is_ok(), behavior != DeleteBehavior::Delete);
    }
}

#[tokio::test]
async fn log_update_behaviour_keeps_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let lb = engine(&dir);
    put(&lb, "s3://lake/t/a.json", "{\"id\":1}\n").await;
    let mut cfg = config("t", "s3://lake/t/");
    cfg.update_behavior = UpdateBehavior::Log;
    run(&lb, cfg.clone()).await;
    put(&lb, "s3://lake/t/b.json", "{\"id\":2,\"extra\":true}\n").await;
    let summary = run(&lb, cfg).await;
    assert_eq!(action(&summary, "t"), TableAction::Logged);
    assert_eq!(lb.catalog().table("web", "t").unwrap().definition.columns.len(), 1);
}

#[tokio::test]
async fn catalog_survives_reopen_and_schedules_follow_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    {
        let lb = engine(&dir);
        lb.clock().set_manual(Some(lakebook_engine::clock::parse_time("2026-01-01").unwrap())).unwrap();
        put(&lb, "s3://lake/t/a.csv", "id,v\n1,2\n").await;
        let mut cfg = config("hourly", "s3://lake/t/");
        cfg.schedule = Some("rate(1 hour)".into());
        lb.catalog().create_crawler(cfg).unwrap();
        assert!(lb.run_due_work().await.is_empty());
        lb.clock().advance(std::time::Duration::from_secs(3600)).unwrap();
        let reports = lb.run_due_work().await;
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(lb.run_due_work().await.is_empty(), "ran once per period");
    }
    let lb = engine(&dir);
    assert_eq!(lb.catalog().table("web", "t").unwrap().definition.columns.len(), 2);
    assert_eq!(lb.catalog().crawler("hourly").unwrap().runs.len(), 1);
    assert_eq!(lb.catalog().crawler("hourlx").unwrap_err().hint(), Some("did you mean hourly?"));
}

/// Glue's six-field cron on the manual clock: a crawler at 12:15 UTC every day runs at
/// 12:15, once, and next at 12:15 the day after; a bad schedule is refused with the reason.
#[tokio::test]
async fn cron_schedules_run_crawlers_at_their_times() {
    let dir = tempfile::tempdir().unwrap();
    let lb = engine(&dir);
    lb.clock().set_manual(Some(lakebook_engine::clock::parse_time("2026-12-04T12:00:00Z").unwrap())).unwrap();
    put(&lb, "s3://lake/t/a.csv", "id,v\n1,2\n").await;
    let mut cfg = config("daily", "s3://lake/t/");
    cfg.schedule = Some("cron(15 12 * * ? *)".into());
    lb.catalog().create_crawler(cfg).unwrap();
    lb.clock().advance(std::time::Duration::from_secs(14 * 60)).unwrap();
    assert!(lb.run_due_work().await.is_empty(), "12:14 is not 12:15");
    lb.clock().advance(std::time::Duration::from_secs(60)).unwrap();
    assert_eq!(lb.run_due_work().await.len(), 1, "12:15");
    lb.clock().advance(std::time::Duration::from_secs(23 * 3600 + 59 * 60)).unwrap();
    assert!(lb.run_due_work().await.is_empty(), "12:14 the next day");
    lb.clock().advance(std::time::Duration::from_secs(60)).unwrap();
    assert_eq!(lb.run_due_work().await.len(), 1, "12:15 the next day");
    let mut bad = config("bad", "s3://lake/t/");
    bad.schedule = Some("cron(15 12 * * MON *)".into());
    let e = lb.catalog().create_crawler(bad).unwrap_err();
    assert_eq!(e.code(), "InvalidInputException");
    assert!(e.message().contains("must be ?"), "{e}");
}
