//! `lakebook`: Rust cells ↔ the Lakebook kernel.
//!
//! ```ignore
//! let df = lakebook::sql("SELECT page, count(*) AS views FROM weblogs.clicks GROUP BY page")?;
//! let kept = lakebook::table("top_pages")?;            // after `%sql … --output top_pages`
//! lakebook::put_table("weblogs.page_views", &mut df)?;  // Parquet in the lake, in the catalog
//! lakebook::put_records("clicks", events.iter())?;     // each item as one JSON record
//! use lakebook::serde_json::json;                      // (Polars and serde_json come with it)
//! ```
//!
//! A call goes to the kernel through evcxr's input protocol (the worker answers a prompt
//! `lakebook-call HEX` on the cell's stdin); data moves as Arrow IPC files in the workspace's
//! `rust-cells/exchange/` directory, so the kernel links no second Arrow. Polars reads what
//! the engine writes with the changes it makes by design: dictionary columns become
//! `Categorical`, string and binary views become `String` and `Binary`.

use std::fmt;
use std::path::PathBuf;

pub use polars;
pub use serde_json;
use polars::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

/// A failed call: the kernel's error name (AWS-style where the service has one) and message.
#[derive(Debug, Clone)]
pub struct Error {
    pub name: String,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    fn new(name: &str, message: impl fmt::Display) -> Self {
        Self { name: name.to_string(), message: message.to_string() }
    }
}

impl From<PolarsError> for Error {
    fn from(e: PolarsError) -> Self {
        Self::new("PolarsError", e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Runs a query (Athena's engine, the session's database) and returns its rows.
pub fn sql(query: &str) -> Result<DataFrame> {
    let answer = call(json!({"op": "sql", "sql": query}))?;
    read_answer(&answer)
}

/// The rows of a table (`db.table`) or of a result kept with `%sql … --output NAME`.
pub fn table(name: &str) -> Result<DataFrame> {
    let answer = call(json!({"op": "table", "name": name}))?;
    read_answer(&answer)
}

/// Writes a DataFrame into the lake as a new Parquet table `db.table` (a CTAS: the workgroup's
/// location, registered in the Glue catalog); returns the number of rows written.
pub fn put_table(name: &str, df: &mut DataFrame) -> Result<u64> {
    let path = exchange_file()?;
    let file = std::fs::File::create(&path).map_err(|e| Error::new("IoError", format!("{}: {e}", path.display())))?;
    IpcWriter::new(file).with_compat_level(CompatLevel::newest()).finish(df)?;
    let answer = call(json!({"op": "put_table", "name": name, "path": path}));
    let _ = std::fs::remove_file(&path);
    Ok(answer?.get("rows").and_then(Value::as_u64).unwrap_or_default())
}

/// What a `put_records` did: records stored and records refused (throttled, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutReport {
    pub stored: u64,
    pub failed: u64,
}

/// Puts each item, as one JSON record, to a stream (PutRecords calls of at most 500 records;
/// the partition key is the record's position in `records`).
pub fn put_records<I, T>(stream: &str, records: I) -> Result<PutReport>
where
    I: IntoIterator<Item = T>,
    T: Serialize,
{
    let path = exchange_file()?.with_extension("jsonl");
    let mut lines = String::new();
    for record in records {
        let line = serde_json::to_string(&record).map_err(|e| Error::new("SerializationError", e))?;
        lines.push_str(&line);
        lines.push('\n');
    }
    std::fs::write(&path, lines).map_err(|e| Error::new("IoError", format!("{}: {e}", path.display())))?;
    let answer = call(json!({"op": "put_records", "stream": stream, "path": path}));
    let _ = std::fs::remove_file(&path);
    let answer = answer?;
    let count = |key: &str| answer.get(key).and_then(Value::as_u64).unwrap_or_default();
    Ok(PutReport { stored: count("stored"), failed: count("failed") })
}

/// A new file name in the exchange directory.
fn exchange_file() -> Result<PathBuf> {
    let dir = std::env::var_os("LAKEBOOK_EXCHANGE").map(PathBuf::from).ok_or_else(|| Error::new("NotInLakebook", "LAKEBOOK_EXCHANGE is not set: the bridge works in a Lakebook Rust cell"))?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::new("IoError", format!("{}: {e}", dir.display())))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    Ok(dir.join(format!("cell-{}-{nanos}.arrow", std::process::id())))
}

/// Reads (then removes) the Arrow IPC file an answer names.
fn read_answer(answer: &Value) -> Result<DataFrame> {
    let path = answer.get("path").and_then(Value::as_str).ok_or_else(|| Error::new("BridgeError", format!("the kernel's answer names no file: {answer}")))?;
    let file = std::fs::File::open(path).map_err(|e| Error::new("IoError", format!("{path}: {e}")))?;
    let df = IpcReader::new(file).finish();
    let _ = std::fs::remove_file(path);
    Ok(df?)
}

/// One call to the kernel, answered on stdin.
fn call(request: Value) -> Result<Value> {
    let hex: String = request.to_string().bytes().map(|b| format!("{b:02x}")).collect();
    let line = evcxr_input::get_string(&format!("lakebook-call {hex}"));
    if line.is_empty() {
        return Err(Error::new("NotInLakebook", "no answer from the kernel: the bridge works in a Lakebook Rust cell"));
    }
    let answer: Value = serde_json::from_str(&line).map_err(|e| Error::new("BridgeError", format!("{e}: {line}")))?;
    if let Some(error) = answer.get("error") {
        let text = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        return Err(Error { name: text("name"), message: text("message") });
    }
    Ok(answer)
}
