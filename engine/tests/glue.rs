//! Glue ETL jobs on the engine: SQL jobs with arguments, run states, metrics, bookmarks
//! (enable / pause / disable / reset, kept across a reopen, not moved by a failed run),
//! retries as new runs, the concurrent-run limit, stop, timeout, and a PySpark script refused.

use std::collections::BTreeMap;

use bytes::Bytes;
use lakebook_engine::glue::{BookmarkOption, JobRun, JobSpec, RunState};
use lakebook_engine::{Lakebook, S3Uri};

async fn put(lb: &Lakebook, uri: &str, data: &str) {
    let uri = S3Uri::parse(uri).unwrap();
    let _ = lb.lake().create_bucket(&uri.bucket);
    lb.lake().put(&uri, Bytes::from(data.to_string())).await.unwrap();
}

fn lines(ids: std::ops::Range<u32>) -> String {
    ids.map(|i| format!("{{\"id\":{i},\"v\":\"item{i}\"}}\n")).collect()
}

async fn setup(lb: &Lakebook) {
    put(lb, "s3://raw/events/a.json", &lines(0..2)).await;
    let _ = lb.lake().create_bucket("curated");
    lb.sql()
        .run(
            "CREATE DATABASE raw; CREATE DATABASE curated;
             CREATE EXTERNAL TABLE raw.events (id int, v string) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://raw/events/';
             CREATE EXTERNAL TABLE curated.events (id int, v string) STORED AS PARQUET LOCATION 's3://curated/events/'",
            "default",
        )
        .await
        .unwrap();
}

fn job(name: &str, sql: &str, bookmark: BookmarkOption) -> JobSpec {
    JobSpec {
        name: name.into(),
        sql: Some(sql.into()),
        database: "default".into(),
        default_arguments: [("min".to_string(), "0".to_string())].into(),
        bookmark,
        ..Default::default()
    }
}

async fn run(lb: &Lakebook, name: &str, args: &[(&str, &str)], bookmark: Option<BookmarkOption>) -> Vec<JobRun> {
    let arguments: BTreeMap<String, String> = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let started = lb.glue().start_job_run(name, arguments, bookmark).unwrap();
    assert_eq!(started.state, RunState::Starting);
    assert!(started.id.starts_with("jr_") && started.id.len() == 67, "{}", started.id);
    lb.glue().wait_job_run(name, &started.id, |_| {}).await.unwrap()
}

async fn count(lb: &Lakebook) -> i64 {
    let result = lb.sql().run("SELECT count(*) AS n FROM curated.events", "default").await.unwrap().pop().unwrap();
    result.batches[0].column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap().value(0)
}

const COPY: &str = "INSERT INTO curated.events SELECT id, upper(v) FROM raw.events WHERE id >= ${min}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_process_only_new_files_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ws");
    {
        let lb = Lakebook::open(&home).unwrap();
        setup(&lb).await;
        lb.glue().create_job(job("copy", COPY, BookmarkOption::Enable)).unwrap();
        let runs = run(&lb, "copy", &[], None).await;
        assert_eq!(runs.len(), 1);
        let first = &runs[0];
        assert_eq!(first.state, RunState::Succeeded, "{first:?}");
        assert_eq!(first.records_written(), 2);
        assert_eq!(first.records_read(), 2, "{first:?}");
        assert_eq!(first.nodes.len(), 1);
        assert!(first.nodes[0].node.starts_with("statement 1 (INSERT INTO"), "{:?}", first.nodes);
        assert!(first.completed_on.is_some());
        assert!(first.dpu_hours() > 0.0);
        assert_eq!(count(&lb).await, 2);

        put(&lb, "s3://raw/events/b.json", &lines(2..3)).await;
        let second = run(&lb, "copy", &[], None).await.remove(0);
        assert_eq!(second.records_written(), 1, "only the new file: {second:?}");
        assert_eq!(count(&lb).await, 3);
        let bookmark = lb.glue().bookmark("copy").unwrap().unwrap();
        assert_eq!(bookmark.version, 2);
        assert_eq!(bookmark.sources["raw.events"].len(), 2);
        assert_eq!(bookmark.run_id.as_deref(), Some(second.id.as_str()));
    }
    // A new kernel: the bookmark is where the last successful run left it.
    let lb = Lakebook::open(&home).unwrap();
    let third = run(&lb, "copy", &[], None).await.remove(0);
    assert_eq!(third.state, RunState::Succeeded);
    assert_eq!(third.records_written(), 0, "nothing new");
    assert_eq!(lb.glue().job_runs("copy").unwrap().len(), 3);

    // Arguments: the run's over the job's defaults.
    put(&lb, "s3://raw/events/c.json", &lines(3..6)).await;
    let fourth = run(&lb, "copy", &[("min", "5")], None).await.remove(0);
    assert_eq!(fourth.records_written(), 1, "{fourth:?}");
    assert_eq!(count(&lb).await, 4);

    // Pause reads what is new since the bookmark but leaves it; disable reads everything.
    put(&lb, "s3://raw/events/d.json", &lines(6..7)).await;
    let version = lb.glue().bookmark("copy").unwrap().unwrap().version;
    for _ in 0..2 {
        let paused = run(&lb, "copy", &[], Some(BookmarkOption::Pause)).await.remove(0);
        assert_eq!(paused.records_written(), 1);
    }
    assert_eq!(lb.glue().bookmark("copy").unwrap().unwrap().version, version);
    let all = run(&lb, "copy", &[], Some(BookmarkOption::Disable)).await.remove(0);
    assert_eq!(all.records_written(), 7);
    assert_eq!(lb.glue().bookmark("copy").unwrap().unwrap().version, version);

    // A reset bookmark reads everything again.
    lb.glue().reset_bookmark("copy").unwrap();
    assert!(lb.glue().bookmark("copy").unwrap().is_none());
    let again = run(&lb, "copy", &[], None).await.remove(0);
    assert_eq!(again.records_written(), 7);
    let after = run(&lb, "copy", &[], None).await.remove(0);
    assert_eq!(after.records_written(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_names_its_node_retries_as_new_runs_and_leaves_the_bookmark() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    setup(&lb).await;
    lb.glue().create_job(job("copy", COPY, BookmarkOption::Enable)).unwrap();
    run(&lb, "copy", &[], None).await;
    put(&lb, "s3://raw/events/b.json", &lines(2..4)).await;
    let mut spec = job("broken", &format!("{COPY};\nINSERT INTO curated.events SELECT id, nope FROM raw.events"), BookmarkOption::Enable);
    spec.max_retries = 2;
    lb.glue().create_job(spec).unwrap();
    let attempts = run(&lb, "broken", &[], None).await;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for (i, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.state, RunState::Failed);
        assert_eq!(attempt.attempt, i as u32);
        let message = attempt.error_message.as_deref().unwrap();
        assert!(message.contains("statement 2") && message.contains("nope"), "{message}");
        assert_eq!(attempt.nodes[0].state, "SUCCEEDED");
        assert_eq!(attempt.nodes[1].state, "FAILED");
    }
    assert_eq!(attempts[1].id, format!("{}_attempt_1", attempts[0].id));
    assert_eq!(attempts[2].previous_run_id.as_deref(), Some(attempts[1].id.as_str()));
    assert!(lb.glue().bookmark("broken").unwrap().is_none(), "failed runs do not move the bookmark");
    // A script that uses an argument the run does not have fails before reading anything.
    lb.glue().create_job(JobSpec { default_arguments: BTreeMap::new(), ..job("needs-min", COPY, BookmarkOption::Disable) }).unwrap();
    let failed = run(&lb, "needs-min", &[], None).await.remove(0);
    assert_eq!(failed.state, RunState::Failed);
    assert!(failed.error_message.unwrap().contains("${min}"));
}

/// A statement that runs far longer than any test, in small steps (a cross join would hold a
/// thread for seconds per batch).
const SLOW: &str = "SELECT count(*) FROM range(0, 1000000000000) WHERE value % 7 = 3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_are_limited_and_a_run_can_be_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ws");
    let lb = Lakebook::open(&home).unwrap();
    lb.glue().create_job(JobSpec { sql: Some(SLOW.into()), name: "slow".into(), database: "default".into(), ..Default::default() }).unwrap();
    let glue = lb.glue().clone();
    let first = glue.start_job_run("slow", BTreeMap::new(), None).unwrap();
    let mut seen_running = false;
    for _ in 0..100 {
        if glue.job_run("slow", &first.id).unwrap().state == RunState::Running {
            seen_running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen_running);
    let e = glue.start_job_run("slow", BTreeMap::new(), None).unwrap_err();
    assert_eq!(e.code(), "ConcurrentRunsExceededException", "{e}");
    let stopped = glue.stop_job_run("slow", &first.id).unwrap();
    assert_eq!(stopped.state, RunState::Stopped);
    let attempts = glue.wait_job_run("slow", &first.id, |_| {}).await.unwrap();
    assert_eq!(attempts.last().unwrap().state, RunState::Stopped);
    assert_eq!(glue.stop_job_run("slow", &first.id).unwrap_err().code(), "InvalidInputException");
    // Stopped, it no longer counts against the limit; closing the service stops what runs.
    let again = glue.start_job_run("slow", BTreeMap::new(), None).unwrap();
    glue.close();
    assert_eq!(glue.job_run("slow", &again.id).unwrap().state, RunState::Stopped);
    drop(glue);
    drop(lb);
    let lb = Lakebook::open(&home).unwrap();
    assert_eq!(lb.glue().job_run("slow", &again.id).unwrap().state, RunState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_its_timeout_ends_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    lb.glue()
        .create_job(JobSpec { sql: Some(SLOW.into()), name: "slow".into(), database: "default".into(), timeout_minutes: Some(1), max_retries: 1, ..Default::default() })
        .unwrap();
    let started = std::time::Instant::now();
    let attempts = run(&lb, "slow", &[], None).await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(60));
    assert_eq!(attempts.len(), 1, "a timeout is not retried");
    assert_eq!(attempts[0].state, RunState::Timeout);
    assert!(attempts[0].error_message.as_deref().unwrap().contains("1 minute"));
}

#[tokio::test]
async fn bad_jobs_are_refused_with_glue_errors() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    let glue = lb.glue();
    glue.create_job(job("copy", COPY, BookmarkOption::Enable)).unwrap();
    assert_eq!(glue.create_job(job("copy", COPY, BookmarkOption::Enable)).unwrap_err().code(), "AlreadyExistsException");
    let spark = JobSpec { sql: None, script_location: Some("s3://scripts/etl.py".into()), ..job("spark", "", BookmarkOption::Disable) };
    let e = glue.create_job(spark).unwrap_err();
    assert_eq!(e.code(), "InvalidInputException");
    assert!(e.message().contains("PySpark"), "{e}");
    assert_eq!(glue.create_job(job("empty", "-- nothing", BookmarkOption::Disable)).unwrap_err().code(), "InvalidInputException");
    assert_eq!(glue.create_job(job("bad name!", COPY, BookmarkOption::Disable)).unwrap_err().code(), "InvalidInputException");
    let e = glue.start_job_run("cpoy", BTreeMap::new(), None).unwrap_err();
    assert_eq!(e.code(), "EntityNotFoundException");
    assert_eq!(e.hint(), Some("did you mean copy?"));
    glue.delete_job("copy").unwrap();
    assert!(glue.jobs().is_empty());
}

async fn rows(lb: &Lakebook, sql: &str) -> Vec<String> {
    let result = lb.sql().run(sql, "default").await.unwrap().pop().unwrap();
    let mut out = Vec::new();
    for batch in &result.batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = (0..batch.num_columns())
                .map(|c| datafusion::arrow::util::display::array_value_to_string(batch.column(c), row).unwrap())
                .collect();
            out.push(cells.join(" "));
        }
    }
    out
}

async fn visual_setup(lb: &Lakebook) {
    put(lb, "s3://raw/orders/a.json", "{\"order_id\":\"1\",\"customer\":\"ann\",\"amount\":\"10.5\",\"day\":\"2026-12-01\",\"junk\":\"x\"}\n{\"order_id\":\"2\",\"customer\":\"bob\",\"amount\":\"3\",\"day\":\"2026-12-01\",\"junk\":\"y\"}\n{\"order_id\":\"3\",\"customer\":\"ann\",\"amount\":\"7.25\",\"day\":\"2026-12-02\",\"junk\":\"z\"}\n").await;
    put(lb, "s3://raw/customers/c.json", "{\"name\":\"ann\",\"city\":\"Oslo\"}\n{\"name\":\"bob\",\"city\":\"Rome\"}\n{\"name\":\"cid\",\"city\":\"Lima\"}\n").await;
    let _ = lb.lake().create_bucket("curated");
    lb.sql()
        .run(
            "CREATE DATABASE raw; CREATE DATABASE cur;
             CREATE EXTERNAL TABLE raw.orders (order_id string, customer string, amount string, day string, junk string) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://raw/orders/';
             CREATE EXTERNAL TABLE raw.customers (name string, city string) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://raw/customers/'",
            "default",
        )
        .await
        .unwrap();
}

/// Glue Studio's graph for: orders → ApplyMapping (casts, a dropped field) → Filter → RenameField
/// → a partitioned Parquet target that updates the Data Catalog.
const CLEAN_GRAPH: &str = r#"{
  "node-1": {"S3CatalogSource": {"Name": "orders", "Database": "raw", "Table": "orders"}},
  "node-2": {"ApplyMapping": {"Name": "types", "Inputs": ["node-1"], "Mapping": [
      {"ToKey": "id", "FromPath": ["order_id"], "FromType": "string", "ToType": "long", "Dropped": false},
      {"ToKey": "customer", "FromPath": ["customer"], "FromType": "string", "ToType": "string", "Dropped": false},
      {"ToKey": "amount", "FromPath": ["amount"], "FromType": "string", "ToType": "double", "Dropped": false},
      {"ToKey": "day", "FromPath": ["day"], "FromType": "string", "ToType": "string", "Dropped": false},
      {"ToKey": "junk", "FromPath": ["junk"], "FromType": "string", "ToType": "string", "Dropped": true}]}},
  "node-3": {"Filter": {"Name": "big", "Inputs": ["node-2"], "LogicalOperator": "AND", "Filters": [
      {"Operation": "GT", "Negated": false, "Values": [{"Type": "COLUMNEXTRACTED", "Value": ["amount"]}, {"Type": "CONSTANT", "Value": ["5"]}]}]}},
  "node-4": {"RenameField": {"Name": "rename", "Inputs": ["node-3"], "SourcePath": ["customer"], "TargetPath": ["customer_name"]}},
  "node-5": {"S3DirectTarget": {"Name": "curated", "Inputs": ["node-4"], "Path": "s3://curated/orders/", "Format": "parquet", "Compression": "snappy",
      "PartitionKeys": [["day"]], "SchemaChangePolicy": {"EnableUpdateCatalog": true, "UpdateBehavior": "UPDATE_IN_DATABASE", "Database": "cur", "Table": "orders"}}}
}"#;

fn visual(name: &str, graph: &str) -> JobSpec {
    JobSpec { name: name.into(), sql: Some(graph.into()), visual: true, bookmark: BookmarkOption::Enable, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visual_job_maps_filters_renames_and_writes_a_partitioned_catalog_table_with_bookmarks() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    visual_setup(&lb).await;
    lb.glue().create_job(visual("clean", CLEAN_GRAPH)).unwrap();
    let first = run(&lb, "clean", &[], None).await.remove(0);
    assert_eq!(first.state, RunState::Succeeded, "{first:?}");
    let labels: Vec<&str> = first.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(labels[0], "CatalogSource node orders (node-1)");
    assert_eq!(first.nodes[0].records_read, 3, "{:?}", first.nodes);
    let size = lb.lake().list(&S3Uri::parse("s3://raw/orders/").unwrap(), true).await.unwrap().objects[0].size;
    assert_eq!(first.nodes[0].bytes_read, size, "the source read the whole file: {:?}", first.nodes);
    assert_eq!(first.nodes[4].records_written, 2, "{:?}", first.nodes);
    // The target's query read the source's rows: they count once, at the source.
    assert_eq!((first.records_read(), first.records_written()), (3, 2), "{:?}", first.nodes);
    assert!(first.nodes.iter().all(|n| n.state == "SUCCEEDED"), "{:?}", first.nodes);
    assert_eq!(
        rows(&lb, "SELECT id, customer_name, amount, day FROM cur.orders ORDER BY id").await,
        ["1 ann 10.5 2026-12-01", "3 ann 7.25 2026-12-02"]
    );
    let table = lb.catalog().table("cur", "orders").unwrap();
    let columns: Vec<String> = table.definition.columns.iter().map(|c| format!("{}:{}", c.name, c.data_type)).collect();
    assert_eq!(columns, ["id:bigint", "customer_name:string", "amount:double"]);
    assert_eq!(table.partitions.len(), 2);
    let listing = lb.lake().list(&S3Uri::parse("s3://curated/orders/day=2026-12-02/").unwrap(), true).await.unwrap();
    assert_eq!(listing.objects.len(), 1);

    // A new day: the bookmark reads only the new file; the table gains a partition.
    put(&lb, "s3://raw/orders/b.json", "{\"order_id\":\"4\",\"customer\":\"cid\",\"amount\":\"99\",\"day\":\"2026-12-03\",\"junk\":\"q\"}\n").await;
    let second = run(&lb, "clean", &[], None).await.remove(0);
    assert_eq!((second.nodes[0].records_read, second.nodes[4].records_written), (1, 1), "{:?}", second.nodes);
    assert_eq!(second.records_read(), 1, "{:?}", second.nodes);
    assert_eq!(rows(&lb, "SELECT count(*), count(DISTINCT day) FROM cur.orders").await, ["3 3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_unions_aggregates_duplicates_selects_and_sql_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    visual_setup(&lb).await;
    let graph = r#"{
      "o": {"CatalogSource": {"Name": "orders", "Database": "raw", "Table": "orders"}},
      "c": {"CatalogSource": {"Name": "customers", "Database": "raw", "Table": "customers"}},
      "j": {"Join": {"Name": "join", "Inputs": ["o", "c"], "JoinType": "equijoin", "Columns": [{"From": "o", "Keys": [["customer"]]}, {"From": "c", "Keys": [["name"]]}]}},
      "m": {"ApplyMapping": {"Name": "m", "Inputs": ["j"], "Mapping": [
          {"ToKey": "city", "FromPath": ["city"], "FromType": "string", "ToType": "string"},
          {"ToKey": "amount", "FromPath": ["amount"], "FromType": "string", "ToType": "double"}]}},
      "u": {"Union": {"Name": "twice", "Inputs": ["m", "m"], "UnionType": "ALL"}},
      "d": {"DropDuplicates": {"Name": "dedupe", "Inputs": ["u"], "Columns": []}},
      "a": {"Aggregate": {"Name": "per city", "Inputs": ["d"], "Groups": [["city"]], "Aggs": [{"Column": ["amount"], "AggFunc": "sum"}, {"Column": ["amount"], "AggFunc": "count"}]}},
      "s": {"SparkSQL": {"Name": "sql", "Inputs": ["a"], "SqlAliases": [{"From": "a", "Alias": "totals"}], "SqlQuery": "SELECT city, `sum(amount)` AS total FROM totals WHERE `count(amount)` > 0"}},
      "f": {"SelectFields": {"Name": "pick", "Inputs": ["s"], "Paths": [["total"], ["city"]]}},
      "t": {"S3DirectTarget": {"Name": "out", "Inputs": ["f"], "Path": "s3://curated/totals/", "Format": "json",
            "SchemaChangePolicy": {"EnableUpdateCatalog": true, "Database": "cur", "Table": "totals"}}}
    }"#;
    lb.glue().create_job(JobSpec { bookmark: BookmarkOption::Disable, ..visual("report", graph) }).unwrap();
    let done = run(&lb, "report", &[], None).await.remove(0);
    assert_eq!(done.state, RunState::Succeeded, "{done:?}");
    assert_eq!(rows(&lb, "SELECT city, total FROM cur.totals ORDER BY city").await, ["Oslo 17.75", "Rome 3.0"]);
    // Left anti join: customers without orders.
    let anti = r#"{
      "c": {"CatalogSource": {"Name": "customers", "Database": "raw", "Table": "customers"}},
      "o": {"CatalogSource": {"Name": "orders", "Database": "raw", "Table": "orders"}},
      "j": {"Join": {"Name": "none", "Inputs": ["c", "o"], "JoinType": "leftanti", "Columns": [{"From": "c", "Keys": [["name"]]}, {"From": "o", "Keys": [["customer"]]}]}},
      "x": {"DropFields": {"Name": "drop", "Inputs": ["j"], "Paths": [["city"]]}},
      "t": {"S3DirectTarget": {"Name": "out", "Inputs": ["x"], "Path": "s3://curated/idle/", "Format": "csv",
            "SchemaChangePolicy": {"EnableUpdateCatalog": true, "Database": "cur", "Table": "idle"}}}
    }"#;
    lb.glue().create_job(JobSpec { bookmark: BookmarkOption::Disable, ..visual("idle", anti) }).unwrap();
    assert_eq!(run(&lb, "idle", &[], None).await.remove(0).state, RunState::Succeeded);
    assert_eq!(rows(&lb, "SELECT * FROM cur.idle").await, ["cid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_graphs_fail_naming_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    visual_setup(&lb).await;
    let e = lb.glue().create_job(visual("x", r#"{"n": {"SnowflakeSource": {}}, "t": {"S3DirectTarget": {"Inputs": ["n"], "Path": "s3://b/"}}}"#)).unwrap_err();
    assert_eq!(e.code(), "InvalidInputException");
    assert!(e.message().contains("SnowflakeSource"), "{e}");
    let missing_column = CLEAN_GRAPH.replace("[\"amount\"]}, {\"Type\": \"CONSTANT\"", "[\"amout\"]}, {\"Type\": \"CONSTANT\"");
    lb.glue().create_job(visual("typo", &missing_column)).unwrap();
    let failed = run(&lb, "typo", &[], None).await.remove(0);
    assert_eq!(failed.state, RunState::Failed);
    let message = failed.error_message.unwrap();
    assert!(message.contains("Filter node big (node-3)") && message.contains("amout"), "{message}");
    assert!(lb.glue().bookmark("typo").unwrap().is_none());
    let missing_table = CLEAN_GRAPH.replace("\"Table\": \"orders\"}}", "\"Table\": \"ordres\"}}");
    lb.glue().create_job(visual("table", &missing_table)).unwrap();
    let failed = run(&lb, "table", &[], None).await.remove(0);
    assert!(failed.error_message.as_deref().unwrap().contains("CatalogSource node orders (node-1)"), "{failed:?}");
}

/// Glue's resolveChoice sample (aws-glue-samples, examples/resolve_choice.md) on a few rows
/// of its Medicare file: `provider id` is a choice of long and string (two erroneous records
/// at the end), and each of the four actions gives the schema the sample prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_choice_as_the_glue_sample_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    put(
        &lb,
        "s3://raw/medicare/Medicare_Hospital_Provider.csv",
        "drg definition,provider id,provider name,total discharges\n039 - EXTRACRANIAL PROCEDURES,10001,SOUTHEAST ALABAMA MEDICAL CENTER,91\n039 - EXTRACRANIAL PROCEDURES,10005,MARSHALL MEDICAL CENTER SOUTH,14\n039 - EXTRACRANIAL PROCEDURES,23456b,ERRONEOUS RECORD ONE,18\n039 - EXTRACRANIAL PROCEDURES,xyz,ERRONEOUS RECORD TWO,11\n",
    )
    .await;
    let _ = lb.lake().create_bucket("curated");
    lb.sql().run("CREATE DATABASE payments", "default").await.unwrap();
    let job = |name: &str, action: &str| {
        let graph = format!(
            r#"{{"src": {{"S3CsvSource": {{"Name": "medicare", "Paths": ["s3://raw/medicare/"], "Separator": "comma", "WithHeader": true}}}},
                "rc": {{"ResolveChoice": {{"Name": "resolve", "Inputs": ["src"], "Specs": [["provider id", "{action}"]]}}}},
                "t": {{"S3DirectTarget": {{"Name": "out", "Inputs": ["rc"], "Path": "s3://curated/{name}/", "Format": "parquet",
                      "SchemaChangePolicy": {{"EnableUpdateCatalog": true, "Database": "payments", "Table": "{name}"}}}}}}}}"#
        );
        JobSpec { bookmark: BookmarkOption::Disable, ..visual(name, &graph) }
    };
    let columns = |lb: &Lakebook, name: &str| -> Vec<String> {
        lb.catalog().table("payments", name).unwrap().definition.columns.iter().map(|c| format!("{}: {}", c.name, c.data_type)).collect()
    };
    for (name, action) in [("cast", "cast:long"), ("project", "project:long"), ("cols", "make_cols"), ("struct", "make_struct")] {
        lb.glue().create_job(job(name, action)).unwrap();
        let done = run(&lb, name, &[], None).await.remove(0);
        assert_eq!(done.state, RunState::Succeeded, "{name}: {done:?}");
        assert_eq!(done.nodes[0].records_read, 4);
    }
    assert_eq!(columns(&lb, "cast"), ["drg definition: string", "provider id: bigint", "provider name: string", "total discharges: bigint"]);
    assert_eq!(rows(&lb, "SELECT \"provider id\" FROM payments.cast").await, ["10001", "10005", "", ""]);
    assert_eq!(columns(&lb, "project"), columns(&lb, "cast"));
    assert_eq!(
        columns(&lb, "cols"),
        ["drg definition: string", "provider id_long: bigint", "provider name: string", "total discharges: bigint", "provider id_string: string"]
    );
    assert_eq!(rows(&lb, "SELECT \"provider id_long\", \"provider id_string\" FROM payments.cols").await, ["10001 ", "10005 ", " 23456b", " xyz"]);
    assert_eq!(columns(&lb, "struct")[1], "provider id: struct<long:bigint,string:string>");
    assert_eq!(rows(&lb, "SELECT \"provider id\"['string'] FROM payments.struct WHERE \"provider id\"['long'] IS NULL").await, ["23456b", "xyz"]);
}

/// Relationalize as Glue's join-and-relationalize sample uses it on the legislators'
/// history: the root frame flattens structs to `a.b` columns and replaces each array by a
/// key; `hist_root_contact_details` has `id`, `index`, `contact_details.val.type` and
/// `contact_details.val.value`, and joins back to the root on that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationalize_flattens_structs_and_pivots_arrays_into_joinable_frames() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    put(
        &lb,
        "s3://raw/history/persons.json",
        concat!(
            "{\"id\": \"p1\", \"name\": {\"given\": \"Mike\", \"family\": \"Ross\"}, \"contact_details\": [{\"type\": \"fax\", \"value\": \"202-225-1314\"}, {\"type\": \"phone\", \"value\": \"202-225-3772\"}], \"tags\": [\"house\"]}\n",
            "{\"id\": \"p2\", \"name\": {\"given\": \"Ann\", \"family\": \"Lee\"}, \"contact_details\": [{\"type\": \"twitter\", \"value\": \"@ann\"}], \"tags\": []}\n",
            "{\"id\": \"p3\", \"name\": {\"given\": \"Bo\", \"family\": \"Ng\"}}\n"
        ),
    )
    .await;
    let _ = lb.lake().create_bucket("curated");
    lb.sql().run("CREATE DATABASE legislators", "default").await.unwrap();
    let graph = r#"{
      "src": {"S3JsonSource": {"Name": "history", "Paths": ["s3://raw/history/"]}},
      "rel": {"Relationalize": {"Name": "relationalize", "Inputs": ["src"], "RootTableName": "hist_root"}},
      "root": {"SelectFromCollection": {"Name": "root", "Inputs": ["rel"], "Index": 0}},
      "contacts": {"SelectFromCollection": {"Name": "contacts", "Inputs": ["rel"], "Index": 1}},
      "tags": {"SelectFromCollection": {"Name": "tags", "Inputs": ["rel"], "Index": 2}},
      "t1": {"S3DirectTarget": {"Name": "root out", "Inputs": ["root"], "Path": "s3://curated/hist_root/", "Format": "parquet",
            "SchemaChangePolicy": {"EnableUpdateCatalog": true, "Database": "legislators", "Table": "hist_root"}}},
      "t2": {"S3DirectTarget": {"Name": "contacts out", "Inputs": ["contacts"], "Path": "s3://curated/contact_details/", "Format": "parquet",
            "SchemaChangePolicy": {"EnableUpdateCatalog": true, "Database": "legislators", "Table": "hist_root_contact_details"}}},
      "t3": {"S3DirectTarget": {"Name": "tags out", "Inputs": ["tags"], "Path": "s3://curated/tags/", "Format": "parquet",
            "SchemaChangePolicy": {"EnableUpdateCatalog": true, "Database": "legislators", "Table": "hist_root_tags"}}}
    }"#;
    lb.glue().create_job(JobSpec { bookmark: BookmarkOption::Disable, ..visual("relationalize", graph) }).unwrap();
    let done = run(&lb, "relationalize", &[], None).await.remove(0);
    assert_eq!(done.state, RunState::Succeeded, "{done:?}");
    let columns = |name: &str| -> Vec<String> { lb.catalog().table("legislators", name).unwrap().definition.columns.iter().map(|c| c.name.clone()).collect() };
    assert_eq!(columns("hist_root"), ["id", "name.given", "name.family", "contact_details", "tags"]);
    assert_eq!(columns("hist_root_contact_details"), ["id", "index", "contact_details.val.type", "contact_details.val.value"]);
    assert_eq!(columns("hist_root_tags"), ["id", "index", "tags.val"]);
    assert_eq!(
        rows(
            &lb,
            "SELECT r.\"name.family\", c.\"index\", c.\"contact_details.val.type\", c.\"contact_details.val.value\"
             FROM legislators.hist_root r JOIN legislators.hist_root_contact_details c ON r.contact_details = c.id ORDER BY r.id, c.\"index\""
        )
        .await,
        ["Ross 0 fax 202-225-1314", "Ross 1 phone 202-225-3772", "Lee 0 twitter @ann"]
    );
    assert_eq!(rows(&lb, "SELECT \"tags.val\" FROM legislators.hist_root_tags").await, ["house"]);
    assert_eq!(rows(&lb, "SELECT count(*) FROM legislators.hist_root WHERE contact_details IS NULL").await, ["1"]);
}

/// Triggers on the manual clock: a SCHEDULED trigger (Glue's cron) starts a job at its time,
/// a CONDITIONAL trigger chains the next job within the same clock advance, an ON_DEMAND
/// trigger fires when started, and a crawler's success can start a job; all kept across a
/// reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_conditional_and_on_demand_triggers_chain_jobs_and_crawlers() {
    use lakebook_engine::glue::triggers::{Condition, Target, TriggerSpec, TriggerType};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ws");
    let lb = Lakebook::open(&home).unwrap();
    lb.clock().set_manual(Some(lakebook_engine::clock::parse_time("2026-12-04T01:00:00Z").unwrap())).unwrap();
    for name in ["extract", "load", "report"] {
        lb.glue().create_job(JobSpec { name: name.into(), sql: Some("SELECT 1".into()), database: "default".into(), ..Default::default() }).unwrap();
    }
    let glue = lb.glue();
    let scheduled = |name: &str, cron: &str, job: &str| TriggerSpec { schedule: Some(cron.into()), start: true, ..TriggerSpec::new(name, TriggerType::Scheduled, vec![Target::Job(job.into())]) };
    let conditional = |name: &str, all: bool, when: &str, job: &str| TriggerSpec {
        all,
        conditions: vec![Condition::parse(when).unwrap()],
        start: true,
        ..TriggerSpec::new(name, TriggerType::Conditional, vec![Target::Job(job.into())])
    };
    glue.create_trigger(scheduled("nightly", "cron(0 2 * * ? *)", "extract")).unwrap();
    glue.create_trigger(conditional("then-load", true, "job:extract=SUCCEEDED", "load")).unwrap();
    let e = glue.create_trigger(scheduled("bad", "cron(0 2 * * *)", "load")).unwrap_err();
    assert_eq!(e.code(), "InvalidInputException");
    assert_eq!(glue.create_trigger(TriggerSpec::new("x", TriggerType::OnDemand, vec![Target::Job("nope".into())])).unwrap_err().code(), "EntityNotFoundException");

    lb.clock().advance(std::time::Duration::from_secs(59 * 60)).unwrap();
    assert!(lb.run_due_work().await.iter().all(|r| !r.contains("trigger")), "01:59");
    lb.clock().advance(std::time::Duration::from_secs(60)).unwrap();
    let reports = lb.run_due_work().await;
    assert!(reports.iter().any(|r| r.contains("trigger nightly started job extract") && r.contains("SUCCEEDED")), "{reports:?}");
    assert!(reports.iter().any(|r| r.contains("trigger then-load started job load")), "{reports:?}");
    assert_eq!(glue.job_runs("load").unwrap().len(), 1);
    assert!(lb.run_due_work().await.iter().all(|r| !r.contains("trigger")), "each fires once");
    drop(lb);

    let lb = Lakebook::open(&home).unwrap();
    let glue = lb.glue().clone();
    lb.clock().advance(std::time::Duration::from_secs(24 * 3600)).unwrap();
    let reports = lb.run_due_work().await;
    assert_eq!(reports.iter().filter(|r| r.contains("trigger")).count(), 2, "{reports:?}");
    assert_eq!(glue.job_runs("load").unwrap().len(), 2);

    // On demand, and after a crawler.
    glue.create_trigger(TriggerSpec::new("now", TriggerType::OnDemand, vec![Target::Job("report".into())])).unwrap();
    let started = glue.start_trigger("now", lb.lake()).await.unwrap();
    assert!(started[0].contains("started job report"), "{started:?}");
    put(&lb, "s3://raw/t/a.csv", "id,v\n1,2\n").await;
    lb.catalog().create_crawler(lakebook_engine::catalog::CrawlerConfig::new("raw", "s3://raw/t/", "raw")).unwrap();
    glue.create_trigger(conditional("after-crawl", false, "crawler:raw=SUCCEEDED", "report")).unwrap();
    assert!(lb.run_due_work().await.iter().all(|r| !r.contains("after-crawl")));
    lb.catalog().run_crawler(lb.lake(), "raw", &mut |_, _| {}).await.unwrap();
    let reports = lb.run_due_work().await;
    assert!(reports.iter().any(|r| r.contains("trigger after-crawl started job report")), "{reports:?}");
    assert_eq!(glue.job_runs("report").unwrap().len(), 2);
    assert_eq!(Condition::parse("crawler:raw=FAILED").unwrap_err().code(), "InvalidInputException");
}

/// A workflow: an on-demand start trigger runs a crawler, a conditional trigger runs a job
/// with the run's properties, another fires only when that job fails; each run's graph keeps
/// its nodes' states; a scheduled start trigger starts runs on the clock; limits and errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_chain_crawlers_and_jobs_and_keep_each_runs_graph() {
    use lakebook_engine::glue::triggers::{Condition, Target, TriggerSpec, TriggerType};
    use lakebook_engine::glue::workflows::{NodeType, WorkflowRunStatus};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ws");
    let lb = Lakebook::open(&home).unwrap();
    lb.clock().set_manual(Some(lakebook_engine::clock::parse_time("2026-12-04T01:00:00Z").unwrap())).unwrap();
    setup(&lb).await;
    lb.catalog().create_crawler(lakebook_engine::catalog::CrawlerConfig::new("landing", "s3://raw/events/", "landing")).unwrap();
    let glue = lb.glue().clone();
    // `${day}` is a run property; the job fails when it is "bad" (a cast error).
    glue.create_job(job("clean", "INSERT INTO curated.events SELECT id + CAST('${day}' AS int) * 0, v FROM landing.events", BookmarkOption::Disable)).unwrap();
    glue.create_job(job("alert", "SELECT '${WORKFLOW_NAME}' AS w, '${WORKFLOW_RUN_ID}' AS r", BookmarkOption::Disable)).unwrap();
    glue.create_workflow("nightly", "raw to curated", [("day".to_string(), "1".to_string())].into(), Some(1)).unwrap();
    assert_eq!(glue.create_workflow("nightly", "", BTreeMap::new(), None).unwrap_err().code(), "AlreadyExistsException");
    assert_eq!(glue.start_workflow_run("nightly", BTreeMap::new()).unwrap_err().code(), "InvalidInputException", "no start trigger yet");

    let in_workflow = |spec: TriggerSpec| TriggerSpec { workflow: Some("nightly".into()), ..spec };
    glue.create_trigger(in_workflow(TriggerSpec::new("kickoff", TriggerType::OnDemand, vec![Target::Crawler("landing".into())]))).unwrap();
    let second = glue.create_trigger(in_workflow(TriggerSpec::new("again", TriggerType::OnDemand, vec![Target::Job("clean".into())]))).unwrap_err();
    assert_eq!(second.code(), "InvalidInputException");
    let when = |name: &str, cond: &str, job: &str| {
        in_workflow(TriggerSpec { conditions: vec![Condition::parse(cond).unwrap()], ..TriggerSpec::new(name, TriggerType::Conditional, vec![Target::Job(job.into())]) })
    };
    glue.create_trigger(when("after-landing", "crawler:landing=SUCCEEDED", "clean")).unwrap();
    glue.create_trigger(when("on-failure", "job:clean=FAILED", "alert")).unwrap();

    let graph = glue.workflow_graph("nightly").unwrap();
    let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["trigger:kickoff", "crawler:landing", "trigger:after-landing", "job:clean", "trigger:on-failure", "job:alert"]);
    assert!(graph.edges.contains(&("crawler:landing".into(), "trigger:after-landing".into())));
    assert!(graph.edges.contains(&("trigger:after-landing".into(), "job:clean".into())));

    // A good day: crawler → clean; the failure branch does not fire.
    let run = glue.start_workflow_run("nightly", BTreeMap::new()).unwrap();
    assert!(run.id.starts_with("wr_"), "{}", run.id);
    assert_eq!(glue.start_workflow_run("nightly", BTreeMap::new()).unwrap_err().code(), "ConcurrentRunsExceededException");
    let done = glue.wait_workflow_run("nightly", &run.id, |_| {}).await.unwrap();
    assert_eq!(done.status, WorkflowRunStatus::Completed, "{done:?}");
    let state = |run: &lakebook_engine::glue::workflows::WorkflowRun, id: &str| run.graph.nodes.iter().find(|n| n.id == id).unwrap().state.clone();
    assert_eq!(state(&done, "crawler:landing").as_deref(), Some("SUCCEEDED"));
    assert_eq!(state(&done, "job:clean").as_deref(), Some("SUCCEEDED"));
    assert_eq!(state(&done, "trigger:on-failure"), None);
    assert_eq!(state(&done, "job:alert"), None);
    let stats = done.statistics();
    assert_eq!((stats.total, stats.succeeded, stats.failed), (2, 2, 0));
    assert_eq!(count(&lb).await, 2);
    let clean_run = &done.graph.nodes.iter().find(|n| n.kind == NodeType::Job && n.name == "clean").unwrap().runs[0];
    let args = glue.job_run("clean", clean_run).unwrap().arguments;
    assert_eq!(args.get("WORKFLOW_RUN_ID"), Some(&run.id));
    assert_eq!(args.get("day").map(String::as_str), Some("1"));

    // A bad day: the run's property breaks clean, the failure branch runs alert with the run's id.
    let bad = glue.start_workflow_run("nightly", [("day".to_string(), "bad".to_string())].into()).unwrap();
    let done = glue.wait_workflow_run("nightly", &bad.id, |_| {}).await.unwrap();
    assert_eq!(done.status, WorkflowRunStatus::Completed);
    assert_eq!(state(&done, "job:clean").as_deref(), Some("FAILED"));
    assert!(done.graph.nodes.iter().find(|n| n.id == "job:clean").unwrap().error.as_deref().unwrap_or("").contains("bad"), "{done:?}");
    assert_eq!(state(&done, "trigger:on-failure").as_deref(), Some("FIRED"));
    assert_eq!(state(&done, "job:alert").as_deref(), Some("SUCCEEDED"));
    let stats = done.statistics();
    assert_eq!((stats.total, stats.succeeded, stats.failed), (3, 2, 1));
    let alert_run = glue.job_runs("alert").unwrap().remove(0);
    assert_eq!(alert_run.arguments.get("WORKFLOW_RUN_ID"), Some(&bad.id));
    assert_eq!(alert_run.arguments.get("WORKFLOW_NAME").map(String::as_str), Some("nightly"));
    // The workflow's conditional triggers do not fire outside its runs.
    assert!(lb.run_due_work().await.iter().all(|r| !r.contains("trigger")));
    drop(lb);

    // After a reopen: the runs are kept; a scheduled start trigger starts runs on the clock.
    let lb = Lakebook::open(&home).unwrap();
    let glue = lb.glue().clone();
    assert_eq!(glue.workflow_runs("nightly").unwrap().len(), 2);
    glue.create_workflow("hourly", "", BTreeMap::new(), None).unwrap();
    glue.create_trigger(TriggerSpec {
        schedule: Some("cron(0 * * * ? *)".into()),
        start: true,
        workflow: Some("hourly".into()),
        ..TriggerSpec::new("every-hour", TriggerType::Scheduled, vec![Target::Job("alert".into())])
    })
    .unwrap();
    lb.clock().advance(std::time::Duration::from_secs(3600)).unwrap();
    let reports = lb.run_due_work().await;
    assert!(reports.iter().any(|r| r.contains("trigger every-hour started workflow hourly") && r.contains("COMPLETED")), "{reports:?}");
    assert_eq!(glue.workflow_runs("hourly").unwrap()[0].statistics().succeeded, 1);

    // Deleting a workflow deletes its triggers, not its jobs.
    glue.delete_workflow("nightly").unwrap();
    assert!(glue.triggers().iter().all(|t| t.workflow.as_deref() != Some("nightly")));
    assert!(glue.job("clean").is_ok());
    assert_eq!(glue.workflow_runs("nightly").unwrap_err().code(), "EntityNotFoundException");
}

/// S3ParquetSource reads Parquet files of two schemas (merged, a missing column null) and
/// DropNullFields drops the fields that hold only nulls or the node's placeholders ("" with
/// IsEmpty, the integer 0 given as a custom null), keeping a field with the string "null"
/// (IsNullString is off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_source_and_drop_null_fields() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    for bucket in ["raw", "curated"] {
        let _ = lb.lake().create_bucket(bucket);
    }
    lb.sql()
        .run(
            "CREATE DATABASE raw; CREATE DATABASE cur;
             CREATE TABLE raw.p1 WITH (format = 'PARQUET', external_location = 's3://raw/pq/one/') AS
               SELECT * FROM (VALUES (1, '', 0, 'null'), (2, CAST(NULL AS varchar), CAST(NULL AS int), 'null')) AS t(id, note, score, flag);
             CREATE TABLE raw.p2 WITH (format = 'PARQUET', external_location = 's3://raw/pq/two/') AS
               SELECT * FROM (VALUES (3, 0, 'null', 'x')) AS t(id, score, flag, extra)",
            "default",
        )
        .await
        .unwrap();
    let graph = r#"{
      "src": {"S3ParquetSource": {"Name": "files", "Paths": ["s3://raw/pq/"]}},
      "drop": {"DropNullFields": {"Name": "nulls", "Inputs": ["src"], "NullCheckBoxList": {"IsEmpty": true, "IsNullString": false, "IsNegOne": false},
               "NullTextList": [{"Value": "0", "Datatype": {"Id": "INT", "Label": "INT"}}]}},
      "out": {"S3DirectTarget": {"Name": "out", "Inputs": ["drop"], "Path": "s3://curated/pq/", "Format": "parquet",
              "SchemaChangePolicy": {"EnableUpdateCatalog": true, "Database": "cur", "Table": "pq"}}}
    }"#;
    lb.glue().create_job(visual("pq", graph)).unwrap();
    let first = run(&lb, "pq", &[], None).await.remove(0);
    assert_eq!(first.state, RunState::Succeeded, "{first:?}");
    assert_eq!(first.nodes[0].node, "S3ParquetSource node files (src)");
    assert_eq!(first.nodes[0].records_read, 3, "{:?}", first.nodes);
    let table = lb.catalog().table("cur", "pq").unwrap();
    let columns: Vec<&str> = table.definition.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["id", "flag", "extra"], "note ('' and null) and score (0 and null) dropped");
    assert_eq!(rows(&lb, "SELECT id, flag, extra FROM cur.pq ORDER BY id").await, ["1 null ", "2 null ", "3 null x"]);

    // A bad placeholder and a bad type are refused when the job is made.
    let bad = graph.replace(r#""Value": "0", "Datatype": {"Id": "INT""#, r#""Value": "zero", "Datatype": {"Id": "INT""#);
    assert_eq!(lb.glue().create_job(visual("bad", &bad)).unwrap_err().code(), "InvalidInputException");
    let bad = graph.replace(r#""Id": "INT""#, r#""Id": "DATE""#);
    assert_eq!(lb.glue().create_job(visual("bad", &bad)).unwrap_err().code(), "InvalidInputException");
}
