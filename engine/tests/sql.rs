//! Athena-style SQL over crawled tables: partition pruning on named and unnamed partitions
//! (seen in bytes scanned), Parquet column pruning, result files, history, views and errors.

use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use lakebook_engine::catalog::CrawlerConfig;
use lakebook_engine::sql::{QueryResult, QueryState};
use lakebook_engine::{Lakebook, S3Uri};

async fn put(lb: &Lakebook, uri: &str, data: impl Into<Bytes>) {
    let uri = S3Uri::parse(uri).unwrap();
    let _ = lb.lake().create_bucket(&uri.bucket);
    lb.lake().put(&uri, data.into()).await.unwrap();
}

async fn setup() -> (tempfile::TempDir, Lakebook) {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    for day in 1..=3 {
        let rows: String = (0..100).map(|i| format!("{i},/page/{},2026-01-0{day} 10:00:00\n", i % 5)).collect();
        put(&lb, &format!("s3://lake/clicks/year=2026/month=01/day=0{day}/c.csv"), format!("user_id,page,ts\n{rows}")).await;
    }
    put(&lb, "s3://lake/orders/2026/01/o.json", "{\"order_id\":1,\"total\":10.5}\n{\"order_id\":2,\"total\":4.5}\n").await;
    put(&lb, "s3://lake/orders/2026/02/o.json", "{\"order_id\":3,\"total\":1.0}\n").await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..10_000)),
            Arc::new(StringArray::from_iter_values((0..10_000).map(|i| format!("a fairly long label number {i}")))),
            Arc::new(Float64Array::from_iter_values((0..10_000).map(|i| i as f64 / 3.0))),
        ],
    )
    .unwrap();
    let mut pq = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut pq, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    put(&lb, "s3://lake/products/p.parquet", pq).await;
    lb.catalog()
        .upsert_crawler(CrawlerConfig::new("lake", "s3://lake/", "web"))
        .unwrap();
    lb.catalog().run_crawler(lb.lake(), "lake", &mut |_, _| {}).await.unwrap();
    (dir, lb)
}

async fn one(lb: &Lakebook, sql: &str) -> QueryResult {
    lb.sql().run(sql, "web").await.unwrap_or_else(|e| panic!("{sql}: {e}")).pop().unwrap()
}

fn int(result: &QueryResult, row: usize) -> i64 {
    let col = result.batches[0].column(0);
    col.as_any().downcast_ref::<Int64Array>().unwrap().value(row)
}

#[tokio::test]
async fn queries_catalog_tables_with_partition_pruning() {
    let (_dir, lb) = setup().await;
    let all = one(&lb, "SELECT count(*) FROM clicks").await;
    assert_eq!(int(&all, 0), 300);
    let day = one(&lb, "SELECT count(*) FROM clicks WHERE day = '02'").await;
    assert_eq!(int(&day, 0), 100);
    assert!(day.execution.bytes_scanned * 3 == all.execution.bytes_scanned, "{} vs {}", day.execution.bytes_scanned, all.execution.bytes_scanned);
    let explain = one(&lb, "EXPLAIN SELECT count(*) FROM clicks WHERE day = '02'").await;
    let plan = arrow_cast::pretty::pretty_format_batches(&explain.batches).unwrap().to_string();
    assert!(plan.contains("day=02") && !plan.contains("day=01"), "{plan}");

    // Unnamed partitions prune the same way.
    let feb = one(&lb, "SELECT sum(total) FROM orders WHERE partition_1 = '02'").await;
    let total = feb.batches[0].column(0).as_any().downcast_ref::<Float64Array>().unwrap().value(0);
    assert_eq!(total, 1.0);

    // Parquet reads only the columns asked for.
    let narrow = one(&lb, "SELECT sum(id) FROM products").await;
    let wide = one(&lb, "SELECT count(label), sum(price), sum(id) FROM products").await;
    assert!(narrow.execution.bytes_scanned * 2 < wide.execution.bytes_scanned, "{} vs {}", narrow.execution.bytes_scanned, wide.execution.bytes_scanned);
}

#[tokio::test]
async fn executions_write_results_and_persist() {
    let (dir, lb) = setup().await;
    let result = one(&lb, "SELECT page, count(*) AS hits FROM clicks GROUP BY page ORDER BY page").await;
    assert_eq!(result.execution.state, QueryState::Succeeded);
    assert_eq!(result.execution.rows, 5);
    assert!(result.execution.cost_usd() >= 10e6 * 5.0 / 1e12, "10 MB minimum");
    let location = result.execution.output_location.clone().unwrap();
    assert_eq!(location, format!("s3://lakebook-query-results/{}.csv", result.execution.id));
    let csv = lb.lake().get(&S3Uri::parse(&location).unwrap()).await.unwrap();
    assert!(String::from_utf8_lossy(&csv).starts_with("page,hits\n/page/0,60\n"));
    assert!(lb.lake().head(&S3Uri::parse(&format!("{location}.metadata")).unwrap()).await.is_ok());

    lb.sql().keep_as_view("hits", &result).unwrap();
    let top = one(&lb, "SELECT max(hits) FROM hits").await;
    assert_eq!(int(&top, 0), 60);

    let err = lb.sql().run("SELECT * FROM clickz", "web").await.unwrap_err();
    assert_eq!(err.code(), "TABLE_NOT_FOUND");
    assert_eq!(err.hint(), Some("did you mean web.clicks?"));
    let err = lb.sql().run("SELECT nope FROM clicks", "web").await.unwrap_err();
    assert_eq!(err.code(), "COLUMN_NOT_FOUND", "{err}");
    let err = lb.sql().run("SELECT count(*)\nFROM clicks WHER day = '01'", "web").await.unwrap_err();
    assert_eq!(err.code(), "SYNTAX_ERROR", "{err}");
    assert!(err.hint().is_some_and(|h| h.contains("line 2") && h.contains('^')), "{:?}", err.hint());
    let err = lb.sql().run("SELECT 1", "nosuchdb").await.unwrap_err();
    assert_eq!(err.code(), "InvalidRequestException");

    let states: Vec<QueryState> = lb.sql().history().iter().map(|e| e.state).collect();
    drop(lb);
    let reopened = Lakebook::open(dir.path().join("ws")).unwrap();
    let again: Vec<QueryState> = reopened.sql().history().iter().map(|e| e.state).collect();
    assert_eq!(states, again);
    assert_eq!(again.iter().filter(|s| **s == QueryState::Failed).count(), 3);
    let ints = reopened.sql().history()[0].rows;
    assert_eq!(ints, 5);
}


#[tokio::test]
async fn a_workgroup_scan_limit_cancels_the_query_and_persists() {
    let (dir, lb) = setup().await;
    // ~13 MB of text: more than the smallest cutoff Athena allows (10 MB).
    one(&lb, "CREATE TABLE big WITH (format = 'TEXTFILE', field_delimiter = ',', external_location = 's3://lake/big/') AS SELECT value AS id, repeat('x', 100) AS pad FROM generate_series(1, 120000)").await;
    let err = lb.sql().create_workgroup("tight", None, Some(1_000), "").unwrap_err();
    assert_eq!(err.code(), "InvalidRequestException");
    lb.sql().create_workgroup("tight", Some("s3://lake/results/"), Some(10_000_000), "ten megabytes").unwrap();
    assert_eq!(lb.sql().create_workgroup("tight", None, None, "").unwrap_err().code(), "InvalidRequestException");

    let err = lb.sql().run_in("SELECT count(*) FROM big", "web", "tight").await.unwrap_err();
    assert_eq!(err.code(), lakebook_engine::sql::SCAN_LIMIT, "{err}");
    assert!(err.message().starts_with("Query cancelled! : Bytes scanned limit was exceeded"), "{err}");
    let cancelled = lb.sql().history().pop().unwrap();
    assert_eq!(cancelled.state, QueryState::Cancelled);
    assert_eq!(cancelled.workgroup, "tight");
    assert!(cancelled.bytes_scanned > 10_000_000, "a cancelled query is billed for what it read");

    // Under the limit the same workgroup runs queries and writes results where it says.
    let small = lb.sql().run_in("SELECT count(*) FROM clicks WHERE day = '01'", "web", "tight").await.unwrap().pop().unwrap();
    assert_eq!(small.execution.state, QueryState::Succeeded);
    let output = small.execution.output_location.clone().unwrap();
    assert!(output.starts_with("s3://lake/results/") && output.ends_with(".csv"), "{output}");
    // The primary workgroup has no limit.
    assert_eq!(int(&one(&lb, "SELECT count(*) FROM big").await, 0), 120_000);
    assert_eq!(lb.sql().run_in("SELECT 1", "web", "tigth").await.unwrap_err().hint(), Some("did you mean tight?"));

    drop(lb);
    let reopened = Lakebook::open(dir.path().join("ws")).unwrap();
    let names: Vec<String> = reopened.sql().workgroups().into_iter().map(|w| w.name).collect();
    assert_eq!(names, ["primary", "tight"]);
}

/// `now()` and `current_timestamp` are the engine clock's time, so "the last N minutes" on a
/// manual clock means the notebook's minutes; in Athena and on a Redshift cluster alike.
#[tokio::test]
async fn now_is_the_engine_clock() {
    let (_dir, lb) = setup().await;
    lb.clock().set_manual(Some(lakebook_engine::clock::parse_time("2026-01-02T10:30:00Z").unwrap())).unwrap();
    let q = "SELECT CAST(now() AS varchar) AS n, CAST(current_timestamp AS varchar) AS c, \
             count(*) FILTER (WHERE ts BETWEEN now() - INTERVAL '1 day' AND now()) AS recent FROM web.clicks";
    let r = one(&lb, q).await;
    let b = &r.batches[0];
    let text = |i: usize| datafusion::arrow::util::display::array_value_to_string(b.column(i), 0).unwrap();
    assert_eq!((text(0), text(1), text(2)), ("2026-01-02T10:30:00".into(), "2026-01-02T10:30:00".into(), "100".into()));
    lb.redshift().create_cluster("wh", 1, 1).unwrap();
    let on_cluster = lb.redshift().run("wh", "SELECT CAST(now() AS varchar) AS n").await.unwrap().pop().unwrap();
    let n = datafusion::arrow::util::display::array_value_to_string(on_cluster.batches[0].column(0), 0).unwrap();
    assert_eq!(n, "2026-01-02T10:30:00");
}

/// Athena matches column names case-insensitively: the crawler (and Hive DDL) lower them, but
/// the JSON keys and Parquet columns keep the writer's `userId`, nested fields too.
#[tokio::test]
async fn camel_case_json_keys_and_parquet_columns_are_read_by_their_lower_case_names() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    put(&lb, "s3://events/json/e.json", "{\"userId\":7,\"eventType\":\"click\",\"device\":{\"osName\":\"linux\"}}\n{\"userId\":8,\"eventType\":\"view\",\"device\":{\"osName\":\"mac\"}}\n").await;
    let schema = Arc::new(Schema::new(vec![Field::new("userId", DataType::Int64, false), Field::new("pageUrl", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![7, 9])), Arc::new(StringArray::from(vec!["/a", "/b"]))]).unwrap();
    let mut pq = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut pq, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    put(&lb, "s3://events/pq/p.parquet", pq).await;
    lb.catalog().upsert_crawler(CrawlerConfig::new("events", "s3://events/", "ev")).unwrap();
    lb.catalog().run_crawler(lb.lake(), "events", &mut |_, _| {}).await.unwrap();

    let run = |sql: &'static str| {
        let lb = &lb;
        async move { lb.sql().run(sql, "ev").await.unwrap_or_else(|e| panic!("{sql}: {e}")).pop().unwrap() }
    };
    let json = run("SELECT userid, eventtype, device.osname FROM json ORDER BY userid").await;
    let text = arrow_cast::pretty::pretty_format_batches(&json.batches).unwrap().to_string();
    assert!(text.contains("| 7      | click     | linux") && text.contains("| 8      | view      | mac"), "{text}");
    let joined = run("SELECT j.eventtype, p.pageurl FROM json j JOIN pq p ON j.userid = p.userid").await;
    let text = arrow_cast::pretty::pretty_format_batches(&joined.batches).unwrap().to_string();
    assert!(text.contains("| click     | /a      |"), "{text}");
    assert_eq!(joined.execution.rows, 1);
    // The table's own names are the ones results carry.
    assert_eq!(json.schema.field(0).name(), "userid");
}

#[tokio::test]
async fn a_json_string_column_takes_numbers_and_booleans_as_their_text() {
    // Athena's JSON SerDes read a number in a `string` column as its text; so does the lake.
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    put(&lb, "s3://shop/orders/day=1/a.json", "{\"id\":1,\"amount\":25.5,\"paid\":true}\n{\"id\":2,\"amount\":\"12.00\",\"paid\":\"no\"}\n").await;
    put(&lb, "s3://shop/orders/day=2/b.json", "{\"id\":3,\"amount\":7,\"paid\":false}\n{\"id\":4}\n").await;
    lb.sql()
        .run(
            "CREATE DATABASE shop; CREATE EXTERNAL TABLE shop.orders (id int, amount string, paid string) PARTITIONED BY (day string) \
             ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://shop/orders/'; MSCK REPAIR TABLE shop.orders",
            "default",
        )
        .await
        .unwrap();
    let rows = lb.sql().run("SELECT id, amount, paid, day FROM orders ORDER BY id", "shop").await.unwrap().pop().unwrap();
    let text = arrow_cast::pretty::pretty_format_batches(&rows.batches).unwrap().to_string();
    for line in ["| 1  | 25.5   | true  | 1   |", "| 2  | 12.00  | no    | 1   |", "| 3  | 7      | false | 2   |", "| 4  |        |       | 2   |"] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    let total = lb.sql().run("SELECT sum(CAST(amount AS DOUBLE)) FROM orders WHERE day = '1'", "shop").await.unwrap().pop().unwrap();
    let total = total.batches[0].column(0).as_any().downcast_ref::<Float64Array>().unwrap().value(0);
    assert_eq!(total, 37.5);
}
