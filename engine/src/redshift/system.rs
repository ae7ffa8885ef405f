//! The system tables a query sees in `public` (`stl_load_errors`, `stl_load_commits`, `svv_table_info`,
//! `stl_unload_log`, `pg_table_def`, Spectrum's `svv_external_*`) and `pg_last_query_id()`.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::DataType;

use super::model::{Cluster, Column, DistStyle, TableMeta};
use crate::catalog::Catalog;
use crate::error::Result;
use crate::internal_err;

/// `pg_last_query_id()`: the query before the one running (each statement takes the next id
/// before it runs).
pub(super) fn last_query_udf(id: u64) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    create_udf(
        "pg_last_query_id",
        vec![],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(datafusion::scalar::ScalarValue::Int64(Some(id as i64))))),
    )
}

/// `stl_load_errors` and `svv_table_info`, built from the cluster's state.
pub(super) fn system_tables(c: &Cluster, catalog: &Catalog) -> Result<Vec<(&'static str, RecordBatch)>> {
    let strings = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
    let e = &c.load_errors;
    let utc: Arc<str> = "UTC".into();
    let errors = RecordBatch::try_from_iter(vec![
        ("query", Arc::new(arrow_array::Int64Array::from_iter_values(e.iter().map(|l| l.query as i64))) as ArrayRef),
        ("starttime", Arc::new(arrow_array::TimestampMicrosecondArray::from_iter_values(e.iter().map(|l| l.starttime.timestamp_micros())).with_timezone(utc))),
        ("tbl", strings(e.iter().map(|l| l.tbl.clone()).collect())),
        ("filename", strings(e.iter().map(|l| l.filename.clone()).collect())),
        ("line_number", Arc::new(arrow_array::Int64Array::from_iter_values(e.iter().map(|l| l.line_number as i64)))),
        ("colname", strings(e.iter().map(|l| l.colname.clone()).collect())),
        ("type", strings(e.iter().map(|l| l.col_type.clone()).collect())),
        ("raw_line", strings(e.iter().map(|l| l.raw_line.clone()).collect())),
        ("raw_field_value", strings(e.iter().map(|l| l.raw_field_value.clone()).collect())),
        ("err_code", Arc::new(arrow_array::Int32Array::from_iter_values(e.iter().map(|l| l.err_code as i32)))),
        ("err_reason", strings(e.iter().map(|l| l.err_reason.clone()).collect())),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let t = &c.tables;
    let skew = |t: &TableMeta| -> Option<f64> {
        if t.diststyle == DistStyle::All || t.rows() == 0 {
            return None;
        }
        let max = *t.slice_rows.iter().max()? as f64;
        let min = (*t.slice_rows.iter().min()?).max(1) as f64;
        Some(((max / min) * 100.0).round() / 100.0)
    };
    let info = RecordBatch::try_from_iter(vec![
        ("schema", strings(t.iter().map(|t| t.schema.clone()).collect())),
        ("table", strings(t.iter().map(|t| t.name.clone()).collect())),
        ("diststyle", strings(t.iter().map(TableMeta::diststyle_text).collect())),
        ("sortkey1", Arc::new(StringArray::from(t.iter().map(|t| t.sortkey.first().cloned()).collect::<Vec<_>>())) as ArrayRef),
        ("size_bytes", Arc::new(arrow_array::Int64Array::from_iter_values(t.iter().map(|t| t.bytes as i64)))),
        ("tbl_rows", Arc::new(arrow_array::Int64Array::from_iter_values(t.iter().map(|t| t.rows() as i64)))),
        ("skew_rows", Arc::new(arrow_array::Float64Array::from(t.iter().map(skew).collect::<Vec<_>>()))),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let u = &c.unload_log;
    let unloads = RecordBatch::try_from_iter(vec![
        ("query", Arc::new(arrow_array::Int64Array::from_iter_values(u.iter().map(|l| l.query as i64))) as ArrayRef),
        ("path", strings(u.iter().map(|l| l.path.clone()).collect())),
        ("start_time", Arc::new(arrow_array::TimestampMicrosecondArray::from_iter_values(u.iter().map(|l| l.start_time.timestamp_micros())))),
        ("end_time", Arc::new(arrow_array::TimestampMicrosecondArray::from_iter_values(u.iter().map(|l| l.end_time.timestamp_micros())))),
        ("line_count", Arc::new(arrow_array::Int64Array::from_iter_values(u.iter().map(|l| l.line_count as i64)))),
        ("transfer_size", Arc::new(arrow_array::Int64Array::from_iter_values(u.iter().map(|l| l.transfer_size as i64)))),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let l = &c.load_commits;
    let commits = RecordBatch::try_from_iter(vec![
        ("query", Arc::new(arrow_array::Int64Array::from_iter_values(l.iter().map(|l| l.query as i64))) as ArrayRef),
        ("filename", strings(l.iter().map(|l| l.filename.clone()).collect())),
        ("lines_scanned", Arc::new(arrow_array::Int64Array::from_iter_values(l.iter().map(|l| l.lines_scanned as i64)))),
        ("errors", Arc::new(arrow_array::Int64Array::from_iter_values(l.iter().map(|l| l.errors as i64)))),
        ("status", Arc::new(arrow_array::Int32Array::from_iter_values(l.iter().map(|_| 1)))),
        ("curtime", Arc::new(arrow_array::TimestampMicrosecondArray::from_iter_values(l.iter().map(|l| l.curtime.timestamp_micros())))),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    // pg_table_def: a row per column of every table, with its type as Redshift names it and
    // its place in the distribution and sort keys.
    let columns: Vec<(&TableMeta, &Column)> = t.iter().flat_map(|t| t.columns.iter().map(move |c| (t, c))).collect();
    let table_def = RecordBatch::try_from_iter(vec![
        ("schemaname", strings(columns.iter().map(|(t, _)| t.schema.clone()).collect())),
        ("tablename", strings(columns.iter().map(|(t, _)| t.name.clone()).collect())),
        ("column", strings(columns.iter().map(|(_, c)| c.name.clone()).collect())),
        ("type", strings(columns.iter().map(|(_, c)| c.data_type.clone()).collect())),
        ("distkey", Arc::new(BooleanArray::from(columns.iter().map(|(t, c)| t.distkey.as_ref() == Some(&c.name)).collect::<Vec<_>>())) as ArrayRef),
        ("sortkey", Arc::new(arrow_array::Int32Array::from_iter_values(columns.iter().map(|(t, c)| t.sortkey.iter().position(|k| k == &c.name).map_or(0, |p| p as i32 + 1))))),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let mut tables = vec![("stl_load_errors", errors), ("svv_table_info", info), ("stl_unload_log", unloads), ("stl_load_commits", commits), ("pg_table_def", table_def)];
    tables.extend(external_system_tables(c, catalog)?);
    Ok(tables)
}

/// Spectrum's views of the external schemas: `svv_external_schemas`, `svv_external_tables`,
/// `svv_external_columns` and `svv_external_partitions`, read from the Data Catalog.
fn external_system_tables(c: &Cluster, catalog: &Catalog) -> Result<Vec<(&'static str, RecordBatch)>> {
    let strings = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
    let ints = |v: Vec<i32>| Arc::new(arrow_array::Int32Array::from(v)) as ArrayRef;
    let e = &c.external_schemas;
    let schemas = RecordBatch::try_from_iter(vec![
        ("esoid", ints((0..e.len()).map(|i| 100_000 + i as i32).collect())),
        ("eskind", ints(vec![1; e.len()])),
        ("schemaname", strings(e.iter().map(|s| s.name.clone()).collect())),
        ("esowner", ints(vec![100; e.len()])),
        ("databasename", strings(e.iter().map(|s| s.database.clone()).collect())),
        ("esoptions", strings(vec![r#"{"IAM_ROLE":"default"}"#.to_string(); e.len()])),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let mut tables: Vec<(String, crate::catalog::Table)> = Vec::new();
    for schema in e {
        for t in catalog.tables(&schema.database).unwrap_or_default().into_iter().filter(|t| !t.deprecated) {
            tables.push((schema.name.clone(), t));
        }
    }
    let no_slash = |l: &str| l.trim_end_matches('/').to_string();
    let formats = |t: &crate::catalog::Table| t.definition.format.hive_classes();
    let table_rows = RecordBatch::try_from_iter(vec![
        ("schemaname", strings(tables.iter().map(|(s, _)| s.clone()).collect())),
        ("tablename", strings(tables.iter().map(|(_, t)| t.name.clone()).collect())),
        ("location", strings(tables.iter().map(|(_, t)| t.definition.location.clone()).collect())),
        ("input_format", strings(tables.iter().map(|(_, t)| formats(t).0.to_string()).collect())),
        ("output_format", strings(tables.iter().map(|(_, t)| formats(t).1.to_string()).collect())),
        ("serialization_lib", strings(tables.iter().map(|(_, t)| formats(t).2.to_string()).collect())),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let columns: Vec<(&String, &crate::catalog::Table, &crate::catalog::Column, bool, i32)> = tables
        .iter()
        .flat_map(|(s, t)| {
            let data = t.definition.columns.iter().map(|col| (col, false));
            let keys = t.definition.partition_keys.iter().map(|col| (col, true));
            data.chain(keys).enumerate().map(move |(i, (col, key))| (s, t, col, key, i as i32 + 1))
        })
        .collect();
    let column_rows = RecordBatch::try_from_iter(vec![
        ("schemaname", strings(columns.iter().map(|c| c.0.clone()).collect())),
        ("tablename", strings(columns.iter().map(|c| c.1.name.clone()).collect())),
        ("columnname", strings(columns.iter().map(|c| c.2.name.clone()).collect())),
        ("external_type", strings(columns.iter().map(|c| c.2.data_type.clone()).collect())),
        ("columnnum", ints(columns.iter().map(|c| c.4).collect())),
        ("part_key", ints(columns.iter().map(|c| if c.3 { 1 } else { 0 }).collect())),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    let partitions: Vec<(&String, &crate::catalog::Table, &crate::catalog::Partition)> =
        tables.iter().flat_map(|(s, t)| t.partitions.values().filter(|p| !p.deprecated).map(move |p| (s, t, p))).collect();
    let partition_rows = RecordBatch::try_from_iter(vec![
        ("schemaname", strings(partitions.iter().map(|p| p.0.clone()).collect())),
        ("tablename", strings(partitions.iter().map(|p| p.1.name.clone()).collect())),
        ("values", strings(partitions.iter().map(|p| serde_json::to_string(&p.2.values).unwrap_or_default()).collect())),
        ("location", strings(partitions.iter().map(|p| no_slash(&p.2.location)).collect())),
    ])
    .map_err(|e| internal_err!("{e}"))?;
    Ok(vec![
        ("svv_external_schemas", schemas),
        ("svv_external_tables", table_rows),
        ("svv_external_columns", column_rows),
        ("svv_external_partitions", partition_rows),
    ])
}
