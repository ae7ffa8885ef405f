//! Building small Arrow tables for the kernel's own listings and descriptions (`%stream list`,
//! `%emr describe`, …), which `render::table` then shows like a query result.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{Field, Schema};

use crate::error::CellError;

/// A UTF-8 column.
pub fn strings(values: impl Iterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// A UTC timestamp column from epoch milliseconds (None → NULL).
pub fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter(values).with_timezone("UTC"))
}

/// A table from named columns of equal length, every column nullable.
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, CellError> {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| CellError::bug(format!("building a result table: {e}")))
}
