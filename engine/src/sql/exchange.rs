//! Rows in and out of the engine as Arrow IPC files: how Rust cells (the `lakebook` bridge
//! crate, Polars) exchange data with the kernel without linking a second Arrow into it.

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::datasource::MemTable;

use super::{QueryResult, SqlEngine};
use crate::error::Result;
use crate::internal_err;

/// Writes rows as an Arrow IPC file, atomically (`workspace::atomic_write`: a temporary
/// name, fsync, rename), so a reader never sees half a file. Continuous applications keep
/// their open windows' rows this way too.
pub fn write_arrow_file(path: &Path, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut writer = FileWriter::try_new(&mut bytes, schema).map_err(|e| internal_err!("{}: {e}", path.display()))?;
        for batch in batches {
            writer.write(batch).map_err(|e| internal_err!("{}: {e}", path.display()))?;
        }
        writer.finish().map_err(|e| internal_err!("{}: {e}", path.display()))?;
    }
    crate::workspace::atomic_write(path, &bytes)
}

/// The rows of an Arrow IPC file.
pub(crate) fn read_arrow_file(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let reader = FileReader::try_new(file, None).map_err(|e| internal_err!("{} is not an Arrow IPC file: {e}", path.display()))?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| internal_err!("{}: {e}", path.display()))?;
    Ok((schema, batches))
}

impl SqlEngine {
    /// A new table `name` (`db.table`, or `table` in `database`) holding the rows of an Arrow
    /// IPC file, as Parquet: a CTAS (`CREATE TABLE … WITH (format = 'PARQUET') AS SELECT`)
    /// over the rows, so it lands where Athena's CTAS lands and is in the catalog. Returns the
    /// rows written.
    pub async fn create_table_from_arrow_file(&self, name: &str, path: &Path, database: &str) -> Result<u64> {
        let (schema, batches) = read_arrow_file(path)?;
        let count: usize = batches.iter().map(RecordBatch::num_rows).sum();
        self.create_table_from_rows(name, None, schema, batches, database).await?;
        Ok(count as u64)
    }

    /// A CTAS over rows computed elsewhere (a DataFrame, a query a Ballista cluster ran): a
    /// new Parquet table `name` at `location` (or where Athena's CTAS puts it). Returns the
    /// CTAS's result.
    pub async fn create_table_from_rows(&self, name: &str, location: Option<&str>, schema: SchemaRef, batches: Vec<RecordBatch>, database: &str) -> Result<QueryResult> {
        let (db, table) = name.split_once('.').unwrap_or((database, name));
        crate::catalog::validate_name("database", db)?;
        crate::catalog::validate_name("table", table)?;
        let view = format!("lakebook_rows_{}", uuid::Uuid::new_v4().simple());
        let rows = MemTable::try_new(schema, vec![batches]).map_err(|e| internal_err!("rows for {name}: {e}"))?;
        self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).insert(view.clone(), std::sync::Arc::new(rows));
        let with = match location {
            Some(location) => format!("format = 'PARQUET', external_location = '{}'", location.replace('\'', "''")),
            None => "format = 'PARQUET'".to_string(),
        };
        let created = self.run(&format!("CREATE TABLE {db}.{table} WITH ({with}) AS SELECT * FROM {view}"), database).await;
        self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).remove(&view);
        created?.pop().ok_or_else(|| internal_err!("a CTAS ran but returned no result"))
    }
}
