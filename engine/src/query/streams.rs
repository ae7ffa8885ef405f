//! SQL over streams (the Kinesis Data Analytics idea): each stream is a table in the
//! `streams` schema with the record metadata (`partition_key`, `sequence_number`,
//! `shard_id`, `approximate_arrival_timestamp`, `data`) and, when the records are JSON
//! objects, their fields as columns. The schema is inferred from the records at query time
//! (strings that are all RFC 3339 times become timestamps), so windowed aggregations such as
//! `date_bin(INTERVAL '1 minute', event_time)` work directly. Each query sees a snapshot of
//! the retained records, shard by shard in parent-before-child order.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use serde_json::Value;

use crate::streams::{ReadFrom, Record, Streams};

/// The schema name streams appear under.
pub const SCHEMA: &str = "streams";
/// The metadata columns every stream table starts with.
pub const META_COLUMNS: [&str; 5] = ["shard_id", "sequence_number", "approximate_arrival_timestamp", "partition_key", "data"];
/// How many records the JSON schema is inferred from.
const INFER_FROM: usize = 1_000;

#[derive(Debug)]
pub struct StreamsSchema {
    pub streams: Arc<Streams>,
}

#[async_trait]
impl SchemaProvider for StreamsSchema {
    fn table_names(&self) -> Vec<String> {
        self.streams.list().into_iter().map(|s| s.name).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Ok(records) = self.streams.read(name, &ReadFrom::TrimHorizon) else { return Ok(None) };
        let batch = stream_batch(&records).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.streams.describe(name).is_ok()
    }
}

/// The records of a stream as one batch: metadata columns, then the JSON fields.
pub fn stream_batch(records: &[(String, Record)]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let micros = |r: &Record| r.approximate_arrival.timestamp_micros();
    let mut fields = vec![
        Field::new("shard_id", DataType::Utf8, false),
        Field::new("sequence_number", DataType::Utf8, false),
        Field::new("approximate_arrival_timestamp", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("partition_key", DataType::Utf8, false),
        Field::new("data", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(records.iter().map(|(shard, _)| shard.as_str()))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|(_, r)| r.sequence_number.as_str()))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(records.iter().map(|(_, r)| micros(r)))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|(_, r)| r.partition_key.as_str()))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|(_, r)| String::from_utf8_lossy(&r.data)))),
    ];
    if let Some(json) = json_fields(records)? {
        for (field, column) in json.schema().fields().iter().zip(json.columns()) {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The JSON objects' fields as columns, when the (sampled) records are JSON objects.
fn json_fields(records: &[(String, Record)]) -> Result<Option<RecordBatch>, arrow_schema::ArrowError> {
    let sample: Vec<Value> = records
        .iter()
        .take(INFER_FROM)
        .filter_map(|(_, r)| serde_json::from_slice::<Value>(&r.data).ok())
        .filter(Value::is_object)
        .collect();
    if sample.is_empty() {
        return Ok(None);
    }
    let inferred = arrow_json::reader::infer_json_schema_from_iterator(sample.iter().map(Ok))?;
    let timestamps = |name: &str| {
        sample.iter().filter_map(|v| v.get(name)).filter(|v| !v.is_null()).all(|v| {
            v.as_str().is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
        })
    };
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .filter(|f| !META_COLUMNS.contains(&f.name().as_str()))
        .map(|f| match f.data_type() {
            DataType::Utf8 if timestamps(f.name()) => Field::new(f.name(), DataType::Timestamp(TimeUnit::Microsecond, None), true),
            _ => f.as_ref().clone().with_nullable(true),
        })
        .collect();
    if fields.is_empty() {
        return Ok(None);
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    // One line per record; records that are not JSON objects get all-null fields.
    let mut lines = Vec::new();
    for (_, record) in records {
        match serde_json::from_slice::<Value>(&record.data) {
            Ok(Value::Object(object)) => serde_json::to_writer(&mut lines, &object).map_err(|e| arrow_schema::ArrowError::JsonError(e.to_string()))?,
            _ => lines.extend_from_slice(b"{}"),
        }
        lines.push(b'\n');
    }
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(records.len().max(1))
        .with_coerce_primitive(true)
        .with_strict_mode(false)
        .build(Cursor::new(lines))?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(Some(datafusion::arrow::compute::concat_batches(&schema, &batches)?))
}
