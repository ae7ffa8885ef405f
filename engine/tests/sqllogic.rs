//! SQL behaviour as sqllogictest scripts, run through the engine exactly as `%sql` runs them:
//! Athena's in `tests/slt/*.slt`, Redshift's in `tests/slt/redshift/*.slt` (on a two-node
//! cluster `wh`, as `%sql --cluster wh` runs them). Each script gets a fresh workspace whose
//! lake holds a small fixture (Hive-partitioned CSV clicks, unnamed-partition JSON orders, and
//! an uncatalogued raw folder) that a crawler has catalogued into database `web`.
//!
//! Directives besides standard sqllogictest: none; errors are matched against
//! `CODE: message` as the kernel shows them.

use std::path::PathBuf;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use async_trait::async_trait;
use bytes::Bytes;
use lakebook_engine::catalog::CrawlerConfig;
use lakebook_engine::{Lakebook, S3Uri};
use sqllogictest::{DBOutput, DefaultColumnType};

struct Engine {
    lb: Lakebook,
    _dir: tempfile::TempDir,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SqlError(String);

async fn put(lb: &Lakebook, uri: &str, data: impl Into<Bytes>) {
    let uri = S3Uri::parse(uri).unwrap();
    let _ = lb.lake().create_bucket(&uri.bucket);
    lb.lake().put(&uri, data.into()).await.unwrap();
}

async fn fixture() -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    let days = [
        ("01", "user_id,page,ms\n1,/home,120\n2,/pricing,340\n1,/docs,95\n3,/home,80\n"),
        ("02", "user_id,page,ms\n2,/home,110\n4,/signup,560\n4,/home,70\n"),
        ("03", "user_id,page,ms\n5,/pricing,300\n1,/home,90\n5,/docs,150\n2,/home,60\n"),
    ];
    for (day, body) in days {
        put(&lb, &format!("s3://lake/clicks/year=2026/month=01/day={day}/clicks.csv"), body).await;
    }
    put(&lb, "s3://lake/orders/2026/01/o.json", "{\"order_id\":1,\"total\":10.5}\n{\"order_id\":2,\"total\":4.5}\n").await;
    put(&lb, "s3://lake/orders/2026/02/o.json", "{\"order_id\":3,\"total\":1.0}\n").await;
    // Not crawled: for CREATE EXTERNAL TABLE and MSCK REPAIR TABLE.
    put(&lb, "s3://raw/events/dt=2026-01-01/e.csv", "a|1\nb|2\n").await;
    put(&lb, "s3://raw/events/dt=2026-01-02/e.csv", "c|3\n").await;
    put(&lb, "s3://raw/events/dt=2026-01-02/_SUCCESS", "").await;
    lb.catalog().upsert_crawler(CrawlerConfig::new("lake", "s3://lake/", "web")).unwrap();
    lb.catalog().run_crawler(lb.lake(), "lake", &mut |_, _| {}).await.unwrap();
    Engine { lb, _dir: dir }
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || matches!(data_type, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::new().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| {
                        let text = f.value(row).to_string();
                        if text.is_empty() { "(empty)".to_string() } else { text }
                    })
                    .collect(),
            );
        }
    }
    rows
}

fn table(schema: &arrow_schema::SchemaRef, batches: &[RecordBatch]) -> DBOutput<DefaultColumnType> {
    DBOutput::Rows { types: schema.fields().iter().map(|f| column_type(f.data_type())).collect(), rows: rows(batches) }
}

#[async_trait]
impl sqllogictest::AsyncDB for Engine {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let mut results = self.lb.sql().run(sql, "web").await.map_err(|e| SqlError(e.to_string()))?;
        let last = results.pop().ok_or_else(|| SqlError("no result".into()))?;
        Ok(table(&last.schema, &last.batches))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lakebook"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The same workspace, with SQL sent to a Redshift cluster instead of Athena.
struct Warehouse(Engine);

#[async_trait]
impl sqllogictest::AsyncDB for Warehouse {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let mut outcomes = self.0.lb.redshift().run("wh", sql).await.map_err(|e| SqlError(e.to_string()))?;
        let last = outcomes.pop().ok_or_else(|| SqlError("no result".into()))?;
        if last.message.is_some() && last.batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(DBOutput::StatementComplete(last.rows_loaded.unwrap_or(0)));
        }
        Ok(table(&last.schema, &last.batches))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lakebook-redshift"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Runs every `.slt` script in `tests/<dir>`, each against a fresh fixture that `connect`
/// turns into the database under test; reports every failing script.
async fn run_scripts<D>(dir: &str, connect: impl Fn(Engine) -> D)
where
    D: sqllogictest::AsyncDB<Error = SqlError, ColumnType = DefaultColumnType> + Send + 'static,
{
    // The scripts of the checkout being tested: cargo sets CARGO_MANIFEST_DIR when it runs a test,
    // and a test binary another checkout built into the shared target dir (CI's clone, a worktree)
    // must not read that checkout's scripts, or fail when it is gone.
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let dir = root.join("tests").join(dir);
    let mut scripts: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "slt")).collect();
    scripts.sort();
    assert!(scripts.len() >= 3, "expected the .slt scripts in {}", dir.display());
    let mut failures = Vec::new();
    for script in &scripts {
        let mut db = Some(connect(fixture().await));
        let mut runner = sqllogictest::Runner::new(move || {
            let db = db.take();
            async move { db.ok_or_else(|| SqlError("one connection per script".into())) }
        });
        if let Err(e) = runner.run_file_async(script).await {
            failures.push(format!("{}:\n{}", script.display(), e.display(false)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redshift_logic_scripts() {
    run_scripts("slt/redshift", |engine| {
        engine.lb.redshift().create_cluster("wh", 2, 1).unwrap();
        Warehouse(engine)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_scripts() {
    run_scripts("slt", |engine| engine).await;
}
