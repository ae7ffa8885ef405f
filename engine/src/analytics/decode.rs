//! Records into rows: a read's JSON records decoded into the source table's columns
//! (arrow-json, a large read in one part per core), each row's event or processing time, and
//! the JSON text session windows keep.

use std::sync::Arc;

use arrow_array::{Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, SchemaRef, TimeUnit};

use super::sql::TableDecl;
use crate::error::Result;
use crate::internal_err;

/// Records decoded into a table's columns.
pub(super) struct Decoded {
    pub(super) rows: RecordBatch,
    /// The record each row came from.
    pub(super) index: Vec<usize>,
    /// Records that could not be read as the table's JSON.
    pub(super) unreadable: u64,
}

/// A record as an application reads it: its shard (a place in the read's list of shards),
/// its arrival time and its data.
pub(super) struct Read {
    pub(super) shard: usize,
    pub(super) arrival_ms: i64,
    pub(super) data: bytes::Bytes,
}

/// Records per part below which a read is decoded in one part.
const PARALLEL_DECODE_MIN: usize = 10_000;

pub(super) fn decode(table: &TableDecl, records: &[Read]) -> Result<Decoded> {
    let schema = Arc::new(table.schema()?);
    let decode_all = |items: &[&[u8]]| json_rows(&schema, items);
    let all: Vec<&[u8]> = records.iter().map(|r| r.data.as_ref()).collect();
    // All at once, a large read in parallel parts (one per core, each decoded by arrow-json);
    // if one record is bad, one by one to keep the others.
    let parts = std::thread::available_parallelism().map_or(1, usize::from).min(all.len() / PARALLEL_DECODE_MIN).max(1);
    let decoded: Vec<_> = match parts {
        1 => vec![decode_all(&all)],
        n => std::thread::scope(|scope| {
            let handles: Vec<_> = all.chunks(all.len().div_ceil(n)).map(|chunk| scope.spawn(|| decode_all(chunk))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(arrow_schema::ArrowError::ComputeError("a decoding thread panicked".into())))).collect()
        }),
    };
    if let Ok(batches) = decoded.into_iter().collect::<std::result::Result<Vec<_>, _>>() {
        let batches: Vec<RecordBatch> = batches.into_iter().flatten().collect();
        let batch = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| internal_err!("{e}"))?;
        if batch.num_rows() == records.len() {
            return Ok(Decoded { rows: batch, index: (0..records.len()).collect(), unreadable: 0 });
        }
    }
    let mut batches = Vec::new();
    let mut index = Vec::new();
    let mut bad = 0;
    for (i, record) in records.iter().enumerate() {
        match decode_all(&[record.data.as_ref()]) {
            Ok(Some(b)) if b.num_rows() == 1 => {
                batches.push(b);
                index.push(i);
            }
            _ => bad += 1,
        }
    }
    let rows = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| internal_err!("{e}"))?;
    Ok(Decoded { rows, index, unreadable: bad })
}

/// The records' JSON text for the rows that decoded.
pub(super) fn record_lines(records: &[Read], index: &[usize]) -> Vec<String> {
    index.iter().map(|&i| String::from_utf8_lossy(&records[i].data).trim().to_string()).collect()
}

/// Each row's time in ms: its event-time column, or `now` for processing time.
pub(super) fn event_times(table: &TableDecl, rows: &RecordBatch, now: i64) -> Result<Vec<Option<i64>>> {
    let n = rows.num_rows();
    match &table.watermark {
        Some(w) => {
            let column = rows.column_by_name(&w.column).ok_or_else(|| internal_err!("no column {}", w.column))?;
            let column = datafusion::arrow::compute::cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None)).map_err(|e| internal_err!("{e}"))?;
            let ts = column.as_any().downcast_ref::<TimestampMillisecondArray>().ok_or_else(|| internal_err!("event time is not a timestamp"))?;
            Ok((0..n).map(|i| ts.is_valid(i).then(|| ts.value(i))).collect())
        }
        None => Ok(vec![Some(now); n]),
    }
}

/// JSON records (one object each) decoded into `schema`'s columns.
pub(super) fn json_rows(schema: &SchemaRef, items: &[&[u8]]) -> std::result::Result<Option<RecordBatch>, arrow_schema::ArrowError> {
    let mut decoder = datafusion::arrow::json::ReaderBuilder::new(schema.clone()).with_batch_size(items.len().max(1)).build_decoder()?;
    for item in items {
        decoder.decode(item)?;
        decoder.decode(b"\n")?;
    }
    decoder.flush()
}

/// JSON lines decoded into the table's columns (lines that decoded once decode again).
pub(super) fn decode_lines(table: &TableDecl, lines: &[&str]) -> Result<RecordBatch> {
    let schema = Arc::new(table.schema()?);
    let items: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    Ok(json_rows(&schema, &items).map_err(|e| internal_err!("{e}"))?.unwrap_or_else(|| RecordBatch::new_empty(schema)))
}
