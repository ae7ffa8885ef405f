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
use datafusion::catalog::{SchemaProvider, Session};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use serde_json::Value;

use crate::streams::{Record, ShardCut, Streams};

/// The schema name streams appear under.
pub const SCHEMA: &str = "streams";
/// The metadata columns every stream table starts with.
pub const META_COLUMNS: [&str; 5] = ["shard_id", "sequence_number", "approximate_arrival_timestamp", "partition_key", "data"];
/// How many records the JSON schema is inferred from.
const INFER_FROM: usize = 1_000;
/// How many records a scan reads and decodes at a time.
const CHUNK: usize = 8_192;

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
        let Ok(cuts) = self.streams.cuts(name) else { return Ok(None) };
        let external = |e: crate::Error| DataFusionError::External(Box::new(e));
        let mut sample = Vec::new();
        for cut in &cuts {
            let left = INFER_FROM - sample.len();
            if left == 0 {
                break;
            }
            sample.extend(self.streams.read_between(name, cut, cut.first, left).map_err(external)?.0);
        }
        let json = json_schema(sample.iter()).map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
        let scan = StreamScan { streams: self.streams.clone(), name: name.to_string(), schema: table_schema(json.as_ref()), json, cuts };
        Ok(Some(Arc::new(StreamTable(Arc::new(scan)))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.streams.describe(name).is_ok()
    }
}

/// A stream as a table: a snapshot of its shards' records, read from their logs a chunk at
/// a time while the query runs (a day of records need not fit in memory).
#[derive(Debug)]
struct StreamTable(Arc<StreamScan>);

#[derive(Debug)]
struct StreamScan {
    streams: Arc<Streams>,
    name: String,
    schema: SchemaRef,
    /// The JSON fields' columns, inferred when the table was looked up.
    json: Option<SchemaRef>,
    cuts: Vec<ShardCut>,
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(&self, _state: &dyn Session, projection: Option<&Vec<usize>>, _filters: &[Expr], limit: Option<usize>) -> DfResult<Arc<dyn ExecutionPlan>> {
        let partition: Arc<dyn PartitionStream> = self.0.clone();
        Ok(Arc::new(StreamingTableExec::try_new(self.0.schema.clone(), vec![partition], projection, None, false, limit)?))
    }
}

impl PartitionStream for StreamScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (streams, name, cuts, json, schema) = (self.streams.clone(), self.name.clone(), self.cuts.clone(), self.json.clone(), self.schema.clone());
        // (shard position, next counter): shard by shard in parent-before-child order.
        let mut at = (0usize, cuts.first().map_or(0, |c| c.first));
        let batches = std::iter::from_fn(move || {
            loop {
                let cut = cuts.get(at.0)?;
                if at.1 > cut.last {
                    at = (at.0 + 1, cuts.get(at.0 + 1).map_or(0, |c| c.first));
                    continue;
                }
                let (records, next) = match streams.read_between(&name, cut, at.1, CHUNK) {
                    Ok(read) => read,
                    Err(e) => return Some(Err(DataFusionError::External(Box::new(e)))),
                };
                at.1 = next;
                if records.is_empty() {
                    continue;
                }
                let rows: Vec<(String, Record)> = records.into_iter().map(|r| (cut.shard_id.clone(), r)).collect();
                return Some(stream_batch(&rows, &schema, json.as_ref()).map_err(|e| DataFusionError::ArrowError(Box::new(e), None)));
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::iter(batches)))
    }
}

/// The metadata columns, then the JSON fields'.
fn table_schema(json: Option<&SchemaRef>) -> SchemaRef {
    let mut fields = vec![
        Field::new("shard_id", DataType::Utf8, false),
        Field::new("sequence_number", DataType::Utf8, false),
        Field::new("approximate_arrival_timestamp", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("partition_key", DataType::Utf8, false),
        Field::new("data", DataType::Utf8, false),
    ];
    fields.extend(json.iter().flat_map(|j| j.fields().iter().map(|f| f.as_ref().clone())));
    Arc::new(Schema::new(fields))
}

/// Records of a stream as one batch of `schema` (metadata columns, then the fields of
/// `json`).
fn stream_batch(records: &[(String, Record)], schema: &SchemaRef, json: Option<&SchemaRef>) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let micros = |r: &Record| r.approximate_arrival.timestamp_micros();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(records.iter().map(|(shard, _)| shard.as_str()))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|(_, r)| r.sequence_number.as_str()))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(records.iter().map(|(_, r)| micros(r)))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|(_, r)| r.partition_key.as_str()))),
        Arc::new(StringArray::from_iter_values(records.iter().map(|(_, r)| String::from_utf8_lossy(&r.data)))),
    ];
    if let Some(json) = json {
        columns.extend(json_fields(records, json)?.columns().iter().cloned());
    }
    RecordBatch::try_new(schema.clone(), columns)
}

/// The columns of the JSON objects' fields, inferred from `sample`; None when the sampled
/// records are not JSON objects.
fn json_schema<'a>(sample: impl Iterator<Item = &'a Record>) -> Result<Option<SchemaRef>, arrow_schema::ArrowError> {
    let sample: Vec<Value> = sample.filter_map(|r| serde_json::from_slice::<Value>(&r.data).ok()).filter(Value::is_object).collect();
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
    Ok((!fields.is_empty()).then(|| Arc::new(Schema::new(fields))))
}

/// The fields of `schema` read from the records (all null where a record is not a JSON object).
fn json_fields(records: &[(String, Record)], schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
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
    datafusion::arrow::compute::concat_batches(schema, &batches)
}
