//! `%firehose`: Firehose-style delivery streams — buffered, transformed, converted and
//! compressed delivery into the lake, with object keys as the service forms them.

use std::sync::Arc;

use arrow_array::{ArrayRef, UInt64Array};
use bytes::Bytes;
use clap::{Args, CommandFactory, Parser, Subcommand};
use lakebook_engine::clock::{format_duration, parse_duration};
use lakebook_engine::firehose::{self, Compression, Config, Conversion, DeliveredObject, Delivery, DeliveryStream, PartitionKey, RedshiftDestination, Source, Trigger};
use lakebook_engine::streams::lines;
use lakebook_engine::{Lakebook, S3Uri};

use crate::render::{batch, strings, times};
use super::{Body, Ctx, Form, MagicSpec};
use crate::output::Output;
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "firehose",
    summary: "Firehose-style delivery streams: buffer, transform, convert and deliver records to the lake",
    form: Form::LineAndCell,
    command: FirehoseArgs::command,
    body: Body::SqlFor(&["create"]),
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "Firehose-style delivery streams: buffer, transform, convert and deliver records to the lake",
    after_help = "Buffers flush when they reach --buffer-size or --buffer-interval on the engine clock, whichever comes first:\non the manual clock `%clock advance` delivers what is due; `%firehose flush NAME` delivers now.\nPrefix expressions: !{timestamp:yyyy/MM/dd}, !{firehose:random-string}, !{firehose:error-output-type}, !{partitionKeyFromQuery:NAME}."
)]
pub struct FirehoseArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a delivery stream to the lake or into a Redshift table (≙ CreateDeliveryStream)
    Create(Box<Create>),
    /// List the delivery streams (≙ ListDeliveryStreams)
    List,
    /// Configuration, buffer fill, delivered objects and metrics (≙ DescribeDeliveryStream)
    Describe { name: String },
    /// Delete a delivery stream; buffered records are discarded (≙ DeleteDeliveryStream)
    Delete { name: String },
    /// Put records (≙ PutRecord; %%firehose put: one record per body line ≙ PutRecordBatch)
    Put {
        name: String,
        /// The record (line form)
        #[arg(long)]
        data: Option<String>,
    },
    /// Deliver every buffer now, full or not
    Flush { name: String },
}

#[derive(Debug, Args)]
struct Create {
    pub name: String,
    /// direct-put (default) or stream:STREAM (read a data stream as a consumer)
    #[arg(long, default_value = "direct-put")]
    pub source: String,
    /// The bucket, s3://bucket/[prefix], or redshift:CLUSTER.TABLE (with --intermediate)
    #[arg(long)]
    pub destination: String,
    /// Redshift destination: where batches are staged before each COPY, s3://bucket/prefix/
    #[arg(long)]
    pub intermediate: Option<String>,
    /// Redshift destination: the COPY options, e.g. "JSON 'auto'" or "CSV IGNOREHEADER 1"
    #[arg(long, default_value = "")]
    pub copy_options: String,
    /// Redshift destination: how long a failed COPY is retried, 0s–7200s (default 3600s)
    #[arg(long)]
    pub retry_duration: Option<String>,
    /// Object key prefix (expressions allowed; none → yyyy/MM/dd/HH/ is appended)
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Prefix for failed records (needed when --prefix has expressions)
    #[arg(long)]
    pub error_prefix: Option<String>,
    /// Buffer size, 1MB–128MB (default 5MB; 128MB with --format)
    #[arg(long)]
    pub buffer_size: Option<String>,
    /// Buffer interval, 0s–900s (default 300s)
    #[arg(long)]
    pub buffer_interval: Option<String>,
    /// gzip, zip, snappy or hadoop-snappy
    #[arg(long)]
    pub compression: Option<String>,
    /// Convert JSON records: parquet
    #[arg(long, requires = "schema")]
    pub format: Option<String>,
    /// The catalog table (DB.TABLE) whose columns the converted files get
    #[arg(long, requires = "format")]
    pub schema: Option<String>,
    /// SQL applied to each incoming batch: an expression over `data`, or a query over `records`
    /// (or write it as the body of a `%%firehose create` cell)
    #[arg(long)]
    pub transform: Option<String>,
    /// Partition records by keys taken from their JSON (with --partition-key)
    #[arg(long, requires = "partition_key")]
    pub dynamic_partitioning: bool,
    /// NAME=JQ, a jq expression on the record (.customer_id, '.ts | strftime("%Y")'); repeat for several keys
    #[arg(long, requires = "dynamic_partitioning")]
    pub partition_key: Vec<String>,
    /// Add a newline after each record (records are concatenated verbatim otherwise)
    #[arg(long)]
    pub newline: bool,
    /// If it exists already, keep it as it is instead of failing (a cell that can be rerun)
    #[arg(long)]
    pub if_not_exists: bool,
}

pub async fn run(args: FirehoseArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    if ctx.body.is_some() && !matches!(args.verb, Verb::Put { .. } | Verb::Create(_)) {
        return Err(CellError::usage("only `%%firehose put NAME` (one record per line) and `%%firehose create NAME` (the transform SQL) take a cell body"));
    }
    let out = ctx.out;
    let fh = engine.firehose();
    match args.verb {
        Verb::Create(create) => {
            let Create {
                name,
                source,
                destination,
                intermediate,
                copy_options,
                retry_duration,
                prefix,
                error_prefix,
                buffer_size,
                buffer_interval,
                compression,
                format,
                schema,
                transform,
                dynamic_partitioning: _,
                partition_key,
                newline,
                if_not_exists,
            } = *create;
            if if_not_exists && fh.list().iter().any(|d| d.name == name) {
                super::kept(out, &format!("delivery stream {name}"));
                return Ok(None);
            }
            // `%%firehose create NAME …`: the body is the transform, which is easier to write
            // there than quoted on the line.
            let transform = match (ctx.body.map(str::trim).filter(|b| !b.is_empty()), transform) {
                (Some(_), Some(_)) => return Err(CellError::usage("give the transform either as --transform or as the %%firehose create body, not both")),
                (body, line) => body.map(str::to_string).or(line),
            };
            let (dest, redshift) = match destination.strip_prefix("redshift:") {
                Some(target) => {
                    let (cluster, table) = target
                        .split_once('.')
                        .ok_or_else(|| CellError::usage(format!("--destination {destination}: name the table too, redshift:CLUSTER.TABLE")))?;
                    let stage = intermediate.ok_or_else(|| CellError::usage("a Redshift destination stages its batches first: add --intermediate s3://bucket/prefix/"))?;
                    let retry_duration_s = retry_duration.map(|s| parse_duration(&s).map(|d| d.as_secs())).transpose()?.unwrap_or(firehose::DEFAULT_RETRY_DURATION_S);
                    (S3Uri::parse(&stage)?, Some(RedshiftDestination { cluster: cluster.into(), table: table.into(), copy_options, retry_duration_s }))
                }
                None => {
                    if intermediate.is_some() || retry_duration.is_some() || !copy_options.is_empty() {
                        return Err(CellError::usage("--intermediate, --copy-options and --retry-duration are for a Redshift destination: --destination redshift:CLUSTER.TABLE"));
                    }
                    (S3Uri::parse(&destination)?, None)
                }
            };
            let config = Config {
                redshift,
                source: Some(source),
                bucket: dest.bucket,
                prefix: format!("{}{prefix}", dest.key),
                error_prefix,
                buffer_mb: buffer_size.map(|s| megabytes(&s)).transpose()?,
                buffer_interval_s: buffer_interval.map(|s| parse_duration(&s).map(|d| d.as_secs())).transpose()?,
                compression: compression.map(|c| Compression::parse(&c)).transpose()?.unwrap_or_default(),
                conversion: format.zip(schema).map(|(format, table)| Conversion { format: format.to_ascii_lowercase(), table }),
                transform,
                partition_keys: partition_key.iter().map(|k| PartitionKey::parse(k)).collect::<Result<_, _>>()?,
                newline,
            };
            let d = fh.create(&name, config)?;
            out.stdout(&format!(
                "Created delivery stream {name}: {} → {}, buffer {} MB or {}.\n",
                source_text(&d.source),
                destination_text(&d),
                d.buffer_bytes / (1024 * 1024),
                format_duration(std::time::Duration::from_secs(d.buffer_interval_s))
            ));
            Ok(None)
        }
        Verb::List => {
            let all = fh.list();
            let table = batch(vec![
                ("delivery_stream", strings(all.iter().map(|d| d.name.clone()))),
                ("status", strings(all.iter().map(|d| d.status.clone()))),
                ("source", strings(all.iter().map(|d| source_text(&d.source)))),
                ("destination", strings(all.iter().map(destination_text))),
                ("incoming_records", Arc::new(UInt64Array::from_iter_values(all.iter().map(|d| d.metrics.incoming_records))) as ArrayRef),
                ("delivered_records", Arc::new(UInt64Array::from_iter_values(all.iter().map(|d| d.metrics.delivered_records)))),
                ("objects", Arc::new(UInt64Array::from_iter_values(all.iter().map(|d| d.metrics.delivered_objects)))),
                ("created", times(all.iter().map(|d| Some(d.created.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
        Verb::Describe { name } => describe(&engine, &name, out).map(Some),
        Verb::Delete { name } => {
            let dropped = fh.delete(&name)?;
            out.stdout(&format!("Deleted delivery stream {name}{}.\n", if dropped > 0 { format!("; {dropped} buffered record(s) discarded") } else { String::new() }));
            Ok(None)
        }
        Verb::Put { name, data } => {
            let records: Vec<Bytes> = match (ctx.body, data) {
                (Some(body), None) => lines::lines(&Bytes::copy_from_slice(body.as_bytes())).collect(),
                (None, Some(data)) => vec![Bytes::from(data)],
                (Some(_), Some(_)) => return Err(CellError::usage("%%firehose put takes its records from the cell body, not --data")),
                (None, None) => return Err(CellError::usage("%firehose put needs --data TEXT, or a %%firehose put cell with one record per line")),
            };
            if records.is_empty() {
                return Err(CellError::usage("no records: write one record per line"));
            }
            let (mut ids, mut codes, mut messages) = (Vec::new(), Vec::new(), Vec::new());
            let mut delivered = Delivery::default();
            let mut failed = 0;
            for chunk in records.chunks(firehose::MAX_BATCH_RECORDS) {
                let put = fh.put(&name, chunk.to_vec()).await?;
                delivered.extend(put.delivered);
                for result in put.results {
                    match result {
                        Ok(id) => {
                            ids.push(id);
                            codes.push(String::new());
                            messages.push(String::new());
                        }
                        Err(e) => {
                            failed += 1;
                            ids.push(String::new());
                            codes.push(e.code().to_string());
                            messages.push(e.message());
                        }
                    }
                }
            }
            report_deliveries(&delivered, out);
            let table = batch(vec![("record_id", strings(ids.into_iter())), ("error_code", strings(codes.into_iter())), ("error_message", strings(messages.into_iter()))])?;
            let footer = Footer { extra: vec![format!("FailedPutCount: {failed}")], ..Footer::default() };
            Ok(Some(render::table(&table, &TableOptions::plain(), &footer)))
        }
        Verb::Flush { name } => {
            let delivered = fh.deliver(&name, Trigger::Force).await?;
            if delivered.is_empty() {
                out.stdout(&format!("{name}: the buffers are empty; nothing to deliver.\n"));
                return Ok(None);
            }
            for copy in &delivered.copies {
                out.stdout(&format!("{copy}\n"));
            }
            if delivered.objects.is_empty() {
                return Ok(None);
            }
            Ok(Some(objects_table(&delivered.objects)?))
        }
    }
}


fn source_text(source: &Source) -> String {
    match source {
        Source::DirectPut => "direct put".into(),
        Source::Stream { stream } => format!("stream {stream}"),
    }
}

/// `5MB`, `5MiB` or `5` → 5: Firehose counts buffer sizes in whole MiB, and a bare number is
/// MiB, as the console's field is.
fn megabytes(text: &str) -> Result<u64, CellError> {
    const MIB: u64 = 1 << 20;
    let bare = text.trim().parse::<u64>().is_ok();
    let bytes = super::parse_size(&if bare { format!("{}MB", text.trim()) } else { text.to_string() }, super::Units::Binary)
        .map_err(|e| CellError::usage(format!("--buffer-size {text}: {}", e.evalue)))?;
    if bytes % MIB != 0 {
        return Err(CellError::usage(format!("--buffer-size {text}: give whole megabytes, e.g. 5MB (1MB to 128MB)")));
    }
    Ok(bytes / MIB)
}

fn report_deliveries(delivered: &Delivery, out: &Output) {
    for line in delivered.lines() {
        out.stdout(&format!("{line}\n"));
    }
}

/// `s3://bucket/prefix`, or `redshift:cluster.table via s3://bucket/prefix`.
fn destination_text(d: &DeliveryStream) -> String {
    let s3 = format!("s3://{}/{}", d.bucket, d.prefix);
    match &d.redshift {
        Some(r) => format!("redshift:{} via {s3}", r.target()),
        None => s3,
    }
}

fn objects_table(objects: &[DeliveredObject]) -> Result<Bundle, CellError> {
    let table = batch(vec![
        ("object", strings(objects.iter().map(|o| o.uri.clone()))),
        ("records", Arc::new(UInt64Array::from_iter_values(objects.iter().map(|o| o.records))) as ArrayRef),
        ("bytes", Arc::new(UInt64Array::from_iter_values(objects.iter().map(|o| o.bytes)))),
        ("error_output_type", strings(objects.iter().map(|o| o.error_output_type.clone().unwrap_or_default()))),
        ("delivered", times(objects.iter().map(|o| Some(o.delivered.timestamp_millis())))),
    ])?;
    Ok(render::table(&table, &TableOptions { max_rows: 200, ..TableOptions::plain() }, &Footer::default()))
}

fn describe(engine: &Lakebook, name: &str, out: &Output) -> Result<Bundle, CellError> {
    let (d, fills) = engine.firehose().describe(name)?;
    let m = &d.metrics;
    let mut facts = vec![
        format!("{} ({})", d.name, d.status),
        format!("source: {}", source_text(&d.source)),
        format!("destination: {}", destination_text(&d)),
        format!("error prefix: {}", d.error_prefix.as_deref().unwrap_or("(default: <error-output-type>/yyyy/MM/dd/HH/)")),
        format!("buffer: {} MB or {}", d.buffer_bytes / (1024 * 1024), format_duration(std::time::Duration::from_secs(d.buffer_interval_s))),
        format!("compression: {:?}", d.compression),
    ];
    if let Some(c) = &d.conversion {
        facts.push(format!("conversion: JSON → {} with the schema of {}", c.format, c.table));
    }
    if let Some(t) = &d.transform {
        facts.push(format!("transform: {t}"));
    }
    if !d.partition_keys.is_empty() {
        facts.push(format!("dynamic partitioning: {}", d.partition_keys.iter().map(|k| format!("{}={}", k.name, k.path)).collect::<Vec<_>>().join(", ")));
    }
    if d.newline {
        facts.push("newline delimiter".into());
    }
    if let Some(r) = &d.redshift {
        facts.push(format!(
            "COPY {} FROM '<manifest>' MANIFEST {}; failed COPYs retried for {}",
            r.table,
            r.copy_options,
            format_duration(std::time::Duration::from_secs(r.retry_duration_s))
        ));
        facts.push(format!("loaded into {}: {} row(s); {} batch(es) skipped after their retries", r.target(), m.loaded_records, m.skipped_batches));
    }
    let failed: Vec<String> = m.failed_records.iter().map(|(k, v)| format!("{v} {k}")).collect();
    facts.push(format!(
        "metrics: {} record(s) in ({} bytes), {} delivered in {} object(s), {} dropped, failed: {}",
        m.incoming_records,
        m.incoming_bytes,
        m.delivered_records,
        m.delivered_objects,
        m.dropped_records,
        if failed.is_empty() { "none".to_string() } else { failed.join(", ") }
    ));
    out.stdout(&format!("{}\n", facts.join("\n")));
    if !d.recent_objects.is_empty() {
        out.display(objects_table(&d.recent_objects)?);
    }
    if !d.pending_copies.is_empty() {
        let p = &d.pending_copies;
        let table = batch(vec![
            ("manifest", strings(p.iter().map(|c| c.manifest.clone()))),
            ("records", Arc::new(UInt64Array::from_iter_values(p.iter().map(|c| c.records))) as ArrayRef),
            ("attempts", Arc::new(UInt64Array::from_iter_values(p.iter().map(|c| u64::from(c.attempts))))),
            ("next_attempt", times(p.iter().map(|c| Some(c.next_attempt.timestamp_millis())))),
            ("last_error", strings(p.iter().map(|c| c.last_error.clone().unwrap_or_default()))),
        ])?;
        out.display(render::table(&table, &TableOptions::plain(), &Footer { extra: vec!["staged, waiting for COPY".into()], ..Footer::default() }));
    }
    let table = batch(vec![
        ("buffer", strings(fills.iter().map(|f| f.buffer.clone()))),
        ("records", Arc::new(UInt64Array::from_iter_values(fills.iter().map(|f| f.records))) as ArrayRef),
        ("bytes", Arc::new(UInt64Array::from_iter_values(fills.iter().map(|f| f.bytes)))),
        ("oldest_record", times(fills.iter().map(|f| Some(f.oldest.timestamp_millis())))),
    ])?;
    Ok(render::table(&table, &TableOptions::plain(), &Footer { extra: vec!["buffered, not yet delivered".into()], ..Footer::default() }))
}
