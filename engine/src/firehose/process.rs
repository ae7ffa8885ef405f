//! The processing steps of a delivery: the transform (Firehose's Lambda step, here SQL) with
//! its per-record result states, JQ-style partition-key extraction for dynamic
//! partitioning, JSON → Parquet conversion against a catalog table's schema, and
//! compression.

use std::io::{Cursor, Write};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use datafusion::prelude::SessionContext;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, compute_leaves};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::service_err;

/// What the transform made of one record (≙ the Lambda response's `result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(Bytes),
    Dropped,
    ProcessingFailed(String),
}

/// Applies `transform` to a batch of (arrival ms, data). A query (`SELECT …`/`WITH …`) sees
/// the batch as the table `records(record_id, approximate_arrival_timestamp, data)` and
/// returns `record_id`, `data` and optionally `result` ('Ok', 'Dropped',
/// 'ProcessingFailed'); records it leaves out are Dropped (or ProcessingFailed when it
/// returns a `result` column, as a Lambda that loses records). Anything else is an
/// expression over `data` giving the new data; NULL drops the record. A transform that
/// fails as a whole fails every record of the batch: nothing is lost, all go to the error
/// output as processing-failed.
pub async fn transform(sql: &str, batch: &[(i64, Bytes)]) -> Vec<Outcome> {
    match run_transform(sql, batch).await {
        Ok(outcomes) => outcomes,
        Err(e) => vec![Outcome::ProcessingFailed(format!("the transform failed: {e}")); batch.len()],
    }
}

async fn run_transform(sql: &str, batch: &[(i64, Bytes)]) -> std::result::Result<Vec<Outcome>, String> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("record_id", DataType::Int64, false),
        Field::new("approximate_arrival_timestamp", DataType::Timestamp(TimeUnit::Millisecond, None), false),
        Field::new("data", DataType::Utf8, false),
    ]));
    let input = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..batch.len() as i64)),
            Arc::new(TimestampMillisecondArray::from_iter_values(batch.iter().map(|(ms, _)| *ms))),
            Arc::new(StringArray::from_iter_values(batch.iter().map(|(_, d)| String::from_utf8_lossy(d).into_owned()))),
        ],
    )
    .map_err(|e| e.to_string())?;
    let ctx = SessionContext::new_with_config_rt(datafusion::prelude::SessionConfig::new(), crate::query::memory::runtime());
    ctx.register_batch("records", input).map_err(|e| e.to_string())?;
    let trimmed = sql.trim().trim_end_matches(';');
    let is_query = trimmed.get(..6).is_some_and(|w| w.eq_ignore_ascii_case("select")) || trimmed.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("with"));
    let query = if is_query { trimmed.to_string() } else { format!("SELECT record_id, CAST(({trimmed}) AS VARCHAR) AS data FROM records") };
    let batches = ctx.sql(&query).await.map_err(|e| e.to_string())?.collect().await.map_err(|e| e.to_string())?;
    let has_result = batches.first().is_some_and(|b| b.schema().index_of("result").is_ok());
    let missing = if has_result && is_query { Outcome::ProcessingFailed("the transform returned no result for this record".into()) } else { Outcome::Dropped };
    let mut outcomes = vec![missing; batch.len()];
    for b in &batches {
        let ids = b.column_by_name("record_id").ok_or("the transform's result has no record_id column")?;
        let ids = datafusion::arrow::compute::cast(ids, &DataType::Int64).map_err(|e| e.to_string())?;
        let ids = ids.as_any().downcast_ref::<Int64Array>().ok_or("record_id is not an integer")?;
        let data = b.column_by_name("data").ok_or("the transform's result has no data column")?;
        let data = datafusion::arrow::compute::cast(data, &DataType::Utf8).map_err(|e| e.to_string())?;
        let data = data.as_any().downcast_ref::<StringArray>().ok_or("data is not text")?;
        let results = match b.column_by_name("result") {
            Some(r) => Some(datafusion::arrow::compute::cast(r, &DataType::Utf8).map_err(|e| e.to_string())?),
            None => None,
        };
        let results = results.as_ref().and_then(|r| r.as_any().downcast_ref::<StringArray>().cloned());
        for row in 0..b.num_rows() {
            let Some(slot) = usize::try_from(ids.value(row)).ok().filter(|i| *i < batch.len()) else {
                return Err(format!("the transform returned record_id {} which is not in the batch", ids.value(row)));
            };
            let result = results.as_ref().filter(|r| r.is_valid(row)).map_or("Ok", |r| r.value(row));
            outcomes[slot] = match result {
                "Ok" if data.is_valid(row) => Outcome::Ok(Bytes::copy_from_slice(data.value(row).as_bytes())),
                "Ok" | "Dropped" => Outcome::Dropped,
                "ProcessingFailed" => Outcome::ProcessingFailed("the transform marked the record ProcessingFailed".into()),
                other => Outcome::ProcessingFailed(format!("the transform returned result {other:?} (expected Ok, Dropped or ProcessingFailed)")),
            };
        }
    }
    Ok(outcomes)
}

/// A dynamic-partitioning key: `NAME=JQ`, the jq expression Firehose's inline parsing takes
/// (`.customer_id`, `.device.region`, `.event_timestamp | strftime("%Y")`). The expression is
/// kept as text (it is persisted with the stream) and compiled by [`PartitionKey::query`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionKey {
    pub name: String,
    pub path: String,
}

impl PartitionKey {
    pub fn parse(text: &str) -> Result<Self> {
        let (name, path) = text.split_once('=').ok_or_else(|| {
            service_err!(InvalidArgumentException, "partition key {text:?} is not NAME=JQ").with_hint("e.g. --partition-key customer=.customer_id")
        })?;
        let (name, path) = (name.trim(), path.trim());
        if name.is_empty() || path.is_empty() {
            return Err(service_err!(InvalidArgumentException, "partition key {text:?}: give a name and a jq expression such as .customer_id"));
        }
        super::jq::Query::compile(path)?;
        Ok(Self { name: name.to_string(), path: path.to_string() })
    }

    /// The key's jq expression, compiled.
    pub fn query(&self) -> Result<super::jq::Query> {
        super::jq::Query::compile(&self.path)
    }
}

/// A record that could not be converted: its index in the batch and why.
pub type Rejected = (usize, String);

/// Converts JSON records to one Parquet file with `schema`. Returns the file (None when no
/// record converted) and, for each record that does not fit, its index and why.
///
/// Every core works on its own contiguous slice of the records from JSON to encoded Parquet
/// columns (decoded in blocks that stay in cache and encoded as they come, no barrier between
/// decoding and encoding); each slice is one row group, appended in order. Row groups are at
/// most `ROW_GROUP_ROWS` rows (DuckDB, the peer in `bench/firehose.py`, also writes several).
pub fn to_parquet<R: AsRef<[u8]> + Sync>(schema: &SchemaRef, records: &[R]) -> Result<(Option<Bytes>, Vec<Rejected>)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    // Below a few thousand records a thread costs more than it saves.
    convert(schema, records, records.len().div_ceil(threads).clamp(MIN_GROUP_ROWS, ROW_GROUP_ROWS))
}

/// Rows per Parquet row group of a converted delivery, at most…
const ROW_GROUP_ROWS: usize = 1 << 20;
/// …and at least, unless the delivery is smaller.
const MIN_GROUP_ROWS: usize = 4096;
/// Records decoded at a time: a block of text and its batch stay in cache while encoded.
const BLOCK_RECORDS: usize = 8192;

/// `to_parquet` with row groups of `group_rows` records, one thread each.
fn convert<R: AsRef<[u8]> + Sync>(schema: &SchemaRef, records: &[R], group_rows: usize) -> Result<(Option<Bytes>, Vec<Rejected>)> {
    use parquet::arrow::arrow_writer::ArrowRowGroupWriterFactory;
    // A column's dictionary stops at 64 KiB (parquet's default: 1 MiB): low-cardinality
    // fields (event type, country) stay dictionary-encoded, and ids, sessions and addresses
    // fall back to plain pages early instead of hashing ~50,000 distinct values first
    // (bench/firehose.py: the first delivery 264 -> 296 MB/s over four runs each, files 0.6%
    // smaller).
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_dictionary_page_size_limit(64 * 1024)
        .build();
    let mut out = Vec::new();
    let writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).map_err(parquet_err)?;
    let (mut file, factory): (_, ArrowRowGroupWriterFactory) = writer.into_serialized_writer().map_err(parquet_err)?;
    // The field each leaf column belongs to (a struct or list field has several leaves).
    let roots: Vec<usize> = (0..file.schema_descr().num_columns()).map(|leaf| file.schema_descr().get_column_root_idx(leaf)).collect();
    let mut slices = Vec::new();
    for (n, part) in records.chunks(group_rows.max(1)).enumerate() {
        let mut fields: Vec<Vec<ArrowColumnWriter>> = (0..schema.fields().len()).map(|_| Vec::new()).collect();
        for (writer, root) in factory.create_column_writers(n).map_err(parquet_err)?.into_iter().zip(&roots) {
            fields[*root].push(writer);
        }
        slices.push((n * group_rows, part, fields));
    }
    let parts: Vec<Part> = std::thread::scope(|scope| {
        let workers: Vec<_> = slices.into_iter().map(|(first, part, fields)| scope.spawn(move || convert_slice(schema, part, first, fields))).collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(crate::internal_err!("a JSON → Parquet thread panicked")))).collect::<Result<Vec<_>>>()
    })?;
    let mut failures = Vec::new();
    let mut rows = 0;
    for part in parts {
        failures.extend(part.rejected);
        if part.rows == 0 {
            continue;
        }
        rows += part.rows;
        let mut row_group = file.next_row_group().map_err(parquet_err)?;
        for chunk in part.chunks {
            chunk.append_to_row_group(&mut row_group).map_err(parquet_err)?;
        }
        row_group.close().map_err(parquet_err)?;
    }
    if rows == 0 {
        return Ok((None, failures));
    }
    file.close().map_err(parquet_err)?;
    Ok((Some(Bytes::from(out)), failures))
}

fn parquet_err(e: parquet::errors::ParquetError) -> crate::Error {
    crate::internal_err!("parquet: {e}")
}

/// One slice converted: its row group's column chunks (in leaf order), and its rejects.
struct Part {
    chunks: Vec<ArrowColumnChunk>,
    rows: usize,
    rejected: Vec<Rejected>,
}

/// Decodes one slice of records (`first` is the index of its first record) block by block,
/// each block's batch written to `fields` (each field's leaf writers) as it comes. A block
/// that does not decode whole is redone record by record and the records that do not fit
/// set aside.
fn convert_slice<R: AsRef<[u8]>>(schema: &SchemaRef, records: &[R], first: usize, mut fields: Vec<Vec<ArrowColumnWriter>>) -> Result<Part> {
    let mut rejected = Vec::new();
    let mut rows = 0;
    let mut blocks = Blocks::new(schema);
    for (b, block) in records.chunks(BLOCK_RECORDS).enumerate() {
        let batch = match blocks.decode(block.iter()) {
            Ok(batch) if batch.num_rows() == block.len() => batch,
            _ => {
                let mut good = Vec::new();
                for (i, record) in block.iter().enumerate() {
                    let is_object = serde_json::from_slice::<Value>(record.as_ref()).is_ok_and(|v| v.is_object());
                    match blocks.decode(std::iter::once(record)) {
                        Ok(one) if is_object && one.num_rows() == 1 => good.push(record),
                        Ok(_) => rejected.push((first + b * BLOCK_RECORDS + i, "the record is not one JSON object".to_string())),
                        Err(e) => rejected.push((first + b * BLOCK_RECORDS + i, e)),
                    }
                }
                blocks.decode(good.into_iter()).map_err(|e| crate::internal_err!("records that converted alone failed together: {e}"))?
            }
        };
        rows += batch.num_rows();
        for (field, writers) in fields.iter_mut().enumerate() {
            let leaves = compute_leaves(schema.field(field), batch.column(field)).map_err(parquet_err)?;
            for (writer, leaf) in writers.iter_mut().zip(leaves) {
                writer.write(&leaf).map_err(parquet_err)?;
            }
        }
    }
    let chunks = fields.into_iter().flatten().map(ArrowColumnWriter::close).collect::<std::result::Result<Vec<_>, _>>().map_err(parquet_err)?;
    Ok(Part { chunks, rows, rejected })
}

/// Decodes blocks of at most `BLOCK_RECORDS` records (JSON lines once joined), reusing its
/// text buffer and arrow-json decoder from block to block.
struct Blocks<'s> {
    schema: &'s SchemaRef,
    text: Vec<u8>,
    /// None after an error (its state is then unknown): built again for the next block.
    decoder: Option<arrow_json::reader::Decoder>,
}

impl<'s> Blocks<'s> {
    fn new(schema: &'s SchemaRef) -> Self {
        Self { schema, text: Vec::new(), decoder: None }
    }

    /// The records as one batch; a record holding several JSON values gives several rows.
    fn decode<'a, R: AsRef<[u8]> + 'a>(&mut self, lines: impl Iterator<Item = &'a R>) -> std::result::Result<RecordBatch, String> {
        self.text.clear();
        for line in lines {
            self.text.extend_from_slice(line.as_ref());
            self.text.push(b'\n');
        }
        let mut decoder = match self.decoder.take() {
            Some(decoder) => decoder,
            None => arrow_json::ReaderBuilder::new(self.schema.clone())
                .with_batch_size(BLOCK_RECORDS)
                .with_coerce_primitive(false)
                .build_decoder()
                .map_err(|e| e.to_string())?,
        };
        let mut rest = &self.text[..];
        while !rest.is_empty() {
            let used = decoder.decode(rest).map_err(|e| e.to_string())?;
            if used == 0 {
                return Err("a record holds more than one JSON value".into());
            }
            rest = &rest[used..];
        }
        let batch = decoder.flush().map_err(|e| e.to_string())?.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
        self.decoder = Some(decoder);
        Ok(batch)
    }
}

/// S3 compression of a delivered object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Compression {
    #[default]
    Uncompressed,
    Gzip,
    Zip,
    Snappy,
    HadoopSnappy,
}

impl Compression {
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "none" | "uncompressed" => Ok(Self::Uncompressed),
            "gzip" => Ok(Self::Gzip),
            "zip" => Ok(Self::Zip),
            "snappy" => Ok(Self::Snappy),
            "hadoop-snappy" => Ok(Self::HadoopSnappy),
            other => Err(service_err!(InvalidArgumentException, "compression {other:?} is not one of gzip, zip, snappy, hadoop-snappy")),
        }
    }

    /// The object's file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Uncompressed => "",
            Self::Gzip => ".gz",
            Self::Zip => ".zip",
            Self::Snappy | Self::HadoopSnappy => ".snappy",
        }
    }

    pub fn compress(self, data: &[u8], entry_name: &str) -> Result<Vec<u8>> {
        let failed = |e: std::io::Error| crate::internal_err!("compressing: {e}");
        Ok(match self {
            Self::Uncompressed => data.to_vec(),
            Self::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(data).map_err(failed)?;
                gz.finish().map_err(failed)?
            }
            Self::Zip => {
                let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
                let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
                zip.start_file(entry_name, options).map_err(|e| crate::internal_err!("zip: {e}"))?;
                zip.write_all(data).map_err(failed)?;
                zip.finish().map_err(|e| crate::internal_err!("zip: {e}"))?.into_inner()
            }
            // The Snappy framing format (what `snappy` tools and Spark read).
            Self::Snappy => {
                let mut framed = snap::write::FrameEncoder::new(Vec::new());
                framed.write_all(data).map_err(failed)?;
                framed.into_inner().map_err(|e| crate::internal_err!("snappy: {e}"))?
            }
            // Hadoop's block format: [uncompressed length][compressed length][raw snappy] per
            // block, lengths as 4-byte big-endian integers.
            Self::HadoopSnappy => {
                let mut out = Vec::new();
                let mut encoder = snap::raw::Encoder::new();
                for block in data.chunks(256 * 1024) {
                    let compressed = encoder.compress_vec(block).map_err(|e| crate::internal_err!("snappy: {e}"))?;
                    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                    out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                    out.extend_from_slice(&compressed);
                }
                out
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(items: &[&str]) -> Vec<(i64, Bytes)> {
        items.iter().enumerate().map(|(i, d)| (i as i64, Bytes::from(d.to_string()))).collect()
    }

    #[tokio::test]
    async fn transform_result_states() {
        let b = batch(&[r#"{"a":1}"#, r#"{"a":2}"#, "oops"]);
        let upper = transform("upper(data)", &b).await;
        assert_eq!(upper[0], Outcome::Ok(Bytes::from_static(br#"{"A":1}"#)));
        let q = "SELECT record_id, data, CASE WHEN data LIKE '{%' THEN 'Ok' ELSE 'ProcessingFailed' END AS result FROM records WHERE record_id <> 1";
        let out = transform(q, &b).await;
        assert!(matches!(out[0], Outcome::Ok(_)));
        assert!(matches!(out[1], Outcome::ProcessingFailed(_)), "left out with a result column: {:?}", out[1]);
        assert!(matches!(out[2], Outcome::ProcessingFailed(_)));
        let dropped = transform("SELECT record_id, data FROM records WHERE data <> 'oops'", &b).await;
        assert_eq!(dropped[2], Outcome::Dropped);
        assert_eq!(transform("CASE WHEN data = 'oops' THEN NULL ELSE data END", &b).await[2], Outcome::Dropped);
        let broken = transform("no_such_function(data)", &b).await;
        assert!(broken.iter().all(|o| matches!(o, Outcome::ProcessingFailed(_))));
    }

    #[test]
    fn partition_keys_are_jq_expressions() {
        let value = |key: &str, record: &str| {
            let v: Value = serde_json::from_str(record).unwrap();
            PartitionKey::parse(key).unwrap().query().unwrap().first_value(&v)
        };
        let record = r#"{"device":{"region":"eu"},"n":3,"ts":1565382027,"s":"A b"}"#;
        assert_eq!(value("region=.device.region", record).unwrap().as_deref(), Some("eu"));
        assert_eq!(value("n=.n", record).unwrap().as_deref(), Some("3"));
        assert_eq!(value("x=.missing", record).unwrap(), None);
        // The guide's expressions: strftime over epoch seconds, and jq's other functions.
        assert_eq!(value(r#"year=.ts| strftime("%Y")"#, record).unwrap().as_deref(), Some("2019"));
        assert_eq!(value(r#"hour=.ts | strftime("%H")"#, record).unwrap().as_deref(), Some("20"));
        assert_eq!(value("low=.s | ascii_downcase", record).unwrap().as_deref(), Some("a b"));
        assert_eq!(value(r#"both=(.n|tostring) + "-" + .device.region"#, record).unwrap().as_deref(), Some("3-eu"));
        assert!(value(r#"bad=.s | strftime("%Y")"#, record).is_err(), "a string is not a time");
        assert!(PartitionKey::parse("bad").is_err() && PartitionKey::parse("a=.x |").is_err() && PartitionKey::parse("a=nosuchfn").is_err());
    }

    #[test]
    fn parquet_conversion_isolates_records_that_do_not_fit() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]));
        let records: Vec<Bytes> = [r#"{"id":1,"name":"a","extra":true}"#, r#"{"id":"not a number"}"#, "[1,2]", r#"{"id":3}"#].iter().map(|s| Bytes::from(s.to_string())).collect();
        let (file, failures) = to_parquet(&schema, &records).unwrap();
        assert_eq!(failures.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2]);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file.unwrap()).unwrap().build().unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 2);
    }

    #[test]
    fn parallel_conversion_writes_what_one_writer_writes() {
        // nested fields (several Parquet leaves each), bad records in every slice and block
        let point = arrow_schema::Fields::from(vec![Field::new("x", DataType::Int64, true), Field::new("tags", DataType::new_list(DataType::Utf8, true), true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("p", DataType::Struct(point), true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let records: Vec<Bytes> = (0..20_000)
            .map(|i| match i % 997 {
                0 => Bytes::from(format!(r#"{{"id":"bad {i}"}}"#)),
                // two objects in one record: not one row
                500 => Bytes::from(format!(r#"{{"id":{i}}} {{"id":{i}}}"#)),
                _ => Bytes::from(format!(r#"{{"id":{i},"p":{{"x":{},"tags":["t{i}","u"]}},"name":"n{}"}}"#, i * 2, i % 13)),
            })
            .collect();
        let bad: Vec<usize> = (0..20_000).filter(|i| i % 997 == 0 || i % 997 == 500).collect();
        let read = |file: Bytes| -> (usize, RecordBatch) {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
            let groups = reader.metadata().num_row_groups();
            let batches: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
            (groups, datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap())
        };
        let good: Vec<u8> = records.iter().enumerate().filter(|(i, _)| !bad.contains(i)).flat_map(|(_, r)| [&r[..], b"\n"].concat()).collect();
        let want: Vec<RecordBatch> = arrow_json::ReaderBuilder::new(schema.clone()).build(Cursor::new(good)).unwrap().map(|b| b.unwrap()).collect();
        let want = datafusion::arrow::compute::concat_batches(&schema, &want).unwrap();
        // row groups of 7,000 records on 3 threads, of all of them on one, and of the least size
        for (rows, groups) in [(7_000, 3), (20_000, 1), (MIN_GROUP_ROWS, 5)] {
            let (file, failures) = convert(&schema, &records, rows).unwrap();
            assert_eq!(failures.iter().map(|(i, _)| *i).collect::<Vec<_>>(), bad);
            assert_eq!(read(file.unwrap()), (groups, want.clone()), "row groups of {rows}");
        }
        let (file, _) = to_parquet(&schema, &records).unwrap();
        assert_eq!(read(file.unwrap()).1, want);
        // nothing converts: no file, every record rejected
        let (file, failures) = convert(&schema, &records[..1], 7_000).unwrap();
        assert!(file.is_none() && failures.len() == 1);
    }

    #[test]
    fn every_compression_round_trips() {
        let data = b"hello firehose\n".repeat(1000);
        let gz = Compression::Gzip.compress(&data, "x").unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back).unwrap();
        assert_eq!(back, data);
        let sn = Compression::Snappy.compress(&data, "x").unwrap();
        back.clear();
        std::io::Read::read_to_end(&mut snap::read::FrameDecoder::new(&sn[..]), &mut back).unwrap();
        assert_eq!(back, data);
        let hs = Compression::HadoopSnappy.compress(&data, "x").unwrap();
        let raw_len = u32::from_be_bytes(hs[..4].try_into().unwrap()) as usize;
        let clen = u32::from_be_bytes(hs[4..8].try_into().unwrap()) as usize;
        assert_eq!(snap::raw::Decoder::new().decompress_vec(&hs[8..8 + clen]).unwrap(), data[..raw_len]);
        let zipped = Compression::Zip.compress(&data, "obj").unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(zipped)).unwrap();
        back.clear();
        std::io::Read::read_to_end(&mut archive.by_name("obj").unwrap(), &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(Compression::Uncompressed.compress(&data, "x").unwrap(), data);
        assert!(Compression::parse("lz4").is_err());
    }
}
