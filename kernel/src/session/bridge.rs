//! The kernel's side of the `lakebook` bridge crate (`rust/bridge`): Rust cells ask for SQL
//! results and tables as Polars DataFrames, write DataFrames as lake tables and put records to
//! streams. The crate's source is built into the kernel and written into the workspace
//! (`rust-bridge/`) the first time a cell names `lakebook::`; the worker passes each call on
//! (see `rust/worker/src/main.rs`) and this module answers it, moving rows as Arrow IPC files
//! in `rust-cells/exchange/`.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use lakebook_engine::sql::write_arrow_file;
use lakebook_engine::streams::PutEntry;
use serde_json::{Value, json};

use crate::error::CellError;
use crate::magics::{State, Workspace};

const CARGO_TOML: &str = include_str!("../../../rust/bridge/Cargo.toml");
const LIB_RS: &str = include_str!("../../../rust/bridge/src/lib.rs");

/// Whether a cell uses the bridge.
pub fn used_by(code: &str) -> bool {
    code.contains("lakebook::")
}

/// Where rows are exchanged with cells.
pub fn exchange_dir(home: &Path) -> PathBuf {
    home.join("rust-cells").join("exchange")
}

/// Writes the bridge crate into the workspace (files rewritten only when they changed, so
/// cargo does not rebuild it) and returns its directory.
pub fn install(home: &Path) -> Result<PathBuf, CellError> {
    let dir = home.join("rust-bridge");
    let failed = |e: std::io::Error| CellError::new("BridgeError", format!("writing the lakebook crate into {}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("src")).map_err(failed)?;
    for (name, text) in [("Cargo.toml", CARGO_TOML), ("src/lib.rs", LIB_RS)] {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, text).and_then(|()| std::fs::rename(&partial, &path)).map_err(failed)?;
        }
    }
    std::fs::create_dir_all(exchange_dir(home)).map_err(failed)?;
    Ok(dir)
}

/// Answers a cell's calls with the session's workspace and SQL database.
pub struct Answers<'a> {
    pub workspace: &'a mut Workspace,
    pub state: &'a State,
}

impl super::rust::Calls for Answers<'_> {
    /// `{"path": …, "rows": …}` and the like, or `{"error": {"name", "message"}}`.
    async fn answer(&mut self, call: Value) -> Value {
        match run(self.workspace, self.state, &call).await {
            Ok(answer) => answer,
            Err(e) => json!({"error": {"name": e.ename, "message": e.evalue}}),
        }
    }
}

async fn run(workspace: &mut Workspace, state: &State, call: &Value) -> Result<Value, CellError> {
    let text = |key: &str| call.get(key).and_then(Value::as_str).ok_or_else(|| CellError::new("BridgeError", format!("the call has no {key}: {call}")));
    let engine = workspace.engine()?;
    let home = workspace.home().to_path_buf();
    match text("op")? {
        "sql" => query(&engine, &home, text("sql")?, &state.sql_database).await,
        "table" => {
            let name = text("name")?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                return Err(CellError::new("InvalidRequestException", format!("{name:?} is not a table name (db.table, or a name kept with %sql --output)")));
            }
            query(&engine, &home, &format!("SELECT * FROM {name}"), &state.sql_database).await
        }
        "put_table" => {
            let path = inside_exchange(&home, text("path")?)?;
            let rows = engine.sql().create_table_from_arrow_file(text("name")?, &path, &state.sql_database).await?;
            Ok(json!({"rows": rows}))
        }
        "put_records" => {
            let path = inside_exchange(&home, text("path")?)?;
            let lines = std::fs::read_to_string(&path).map_err(|e| CellError::new("BridgeError", format!("{}: {e}", path.display())))?;
            let entries: Vec<PutEntry> = lines
                .lines()
                .enumerate()
                .map(|(i, line)| PutEntry { partition_key: i.to_string(), data: Bytes::from(line.to_string()), explicit_hash_key: None })
                .collect();
            if entries.is_empty() {
                return Ok(json!({"stored": 0, "failed": 0}));
            }
            let results = engine.streams().put_records_in_calls(text("stream")?, entries)?;
            let failed = results.iter().filter(|r| r.is_err()).count();
            Ok(json!({"stored": results.len() - failed, "failed": failed}))
        }
        op => Err(CellError::new("BridgeError", format!("unknown call {op:?}"))),
    }
}

/// Runs a query and writes its last result as an Arrow IPC file for the cell.
async fn query(engine: &lakebook_engine::Lakebook, home: &Path, sql: &str, database: &str) -> Result<Value, CellError> {
    let mut results = engine.sql().run(sql, database).await?;
    let last = results.pop().ok_or_else(|| CellError::bug("a query ran but returned no result"))?;
    let path = exchange_dir(home).join(format!("{}.arrow", uuid::Uuid::new_v4().simple()));
    write_arrow_file(&path, &last.schema, &last.batches)?;
    let rows: usize = last.batches.iter().map(|b| b.num_rows()).sum();
    Ok(json!({"path": path, "rows": rows}))
}

/// A file a cell names, which must be in the exchange directory.
fn inside_exchange(home: &Path, path: &str) -> Result<PathBuf, CellError> {
    let path = PathBuf::from(path);
    let dir = exchange_dir(home);
    match (path.canonicalize(), dir.canonicalize()) {
        (Ok(file), Ok(dir)) if file.starts_with(&dir) => Ok(file),
        _ => Err(CellError::new("InvalidRequestException", format!("{} is not a file in {}", path.display(), dir.display()))),
    }
}
