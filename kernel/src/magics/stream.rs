//! `%stream`: Kinesis-style data streams — create, put (one record, a cell of records, or a
//! file), read with shard iterators or parent-first, reshard, consumers, and the generator.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt64Array};
use bytes::Bytes;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use lakebook_engine::clock::{format_duration, format_time, parse_duration, parse_time};
use lakebook_engine::streams::generator::{self, Template};
use lakebook_engine::streams::leases::{InitialPosition, Lease};
use lakebook_engine::streams::lines::{self, LineKey};
use lakebook_engine::streams::meter::Reader;
use lakebook_engine::streams::{self, IteratorStart, PutEntry, ReadFrom, Record, StreamDescription};
use lakebook_engine::{ClockMode, GenerateSpec, Lakebook};

use crate::render::{batch, strings, times};
use super::{Body, Ctx, Form, MagicSpec};
use crate::output::Output;
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "stream",
    summary: "Kinesis-style data streams: shards, puts, iterators, resharding, consumers, a data generator",
    form: Form::LineAndCell,
    command: StreamArgs::command,
    body: Body::Data,
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "Kinesis-style data streams: shards, puts, iterators, resharding, consumers, a data generator",
    after_help = "Limits are enforced per shard on the engine clock: 1,000 records or 1 MiB written and 5 reads or 2 MiB read per second.\n`%stream limits NAME off` switches them off for bulk loads. Query a stream with `%sql SELECT … FROM streams.NAME`."
)]
pub struct StreamArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a stream (≙ CreateStream)
    Create {
        name: String,
        /// Provisioned capacity: this many shards
        #[arg(long, conflicts_with = "on_demand", required_unless_present = "on_demand")]
        shards: Option<u64>,
        /// On-demand capacity (starts at 4 shards: 4 MiB/s, 4,000 records/s)
        #[arg(long)]
        on_demand: bool,
        /// How long records are kept: 24h (default) to 8760h
        #[arg(long)]
        retention: Option<String>,
        /// If it exists already, keep it as it is instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List the streams (≙ ListStreams)
    List,
    /// A stream's shards with hash ranges, lineage and sequence ranges (≙ DescribeStream)
    Describe { name: String },
    /// Put records (≙ PutRecord; %%stream put: one record per body line ≙ PutRecords)
    Put {
        name: String,
        /// The partition key (hashed with MD5 to pick the shard)
        #[arg(long, short = 'k', conflicts_with = "partition_key_field")]
        partition_key: Option<String>,
        /// Take each record's partition key from this field of its JSON
        #[arg(long)]
        partition_key_field: Option<String>,
        /// The record (line form)
        #[arg(long, conflicts_with = "from")]
        data: Option<String>,
        /// Bulk-load a file, one record per line (group-committed)
        #[arg(long)]
        from: Option<String>,
        /// Route by this hash key instead of the partition key's MD5
        #[arg(long)]
        explicit_hash_key: Option<String>,
    },
    /// Read one shard with an iterator (≙ GetShardIterator + GetRecords)
    Get {
        name: String,
        /// The shard, e.g. shardId-000000000000 (or just 0)
        #[arg(long)]
        shard: Option<String>,
        #[arg(long, value_enum, default_value = "trim-horizon")]
        iterator: IteratorType,
        /// For AT_/AFTER_SEQUENCE_NUMBER
        #[arg(long)]
        sequence_number: Option<String>,
        /// For AT_TIMESTAMP (RFC 3339)
        #[arg(long)]
        timestamp: Option<String>,
        /// Continue from a NextShardIterator instead
        #[arg(long, conflicts_with_all = ["shard", "sequence_number", "timestamp"])]
        shard_iterator: Option<String>,
        /// At most this many records (1–10,000)
        #[arg(long)]
        limit: Option<usize>,
        /// Read as this registered fan-out consumer (its own read budget)
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Every shard's records in parent-before-child order, as a table (a snapshot, not metered)
    Read {
        name: String,
        #[arg(long, value_enum, default_value = "trim-horizon")]
        from: ReadStart,
        /// For --from at-timestamp (RFC 3339)
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// Split a shard in two (≙ SplitShard)
    Split {
        name: String,
        shard: String,
        /// The second child's starting hash key (default: the middle of the range)
        #[arg(long)]
        at: Option<String>,
    },
    /// Merge two adjacent shards (≙ MergeShards)
    Merge { name: String, shard: String, adjacent: String },
    /// Change the number of open shards, ½× to 2× (≙ UpdateShardCount, UNIFORM_SCALING)
    Scale {
        name: String,
        #[arg(long)]
        shards: u64,
    },
    /// Delete a stream and its records (≙ DeleteStream)
    Delete { name: String },
    /// Switch throughput limits on or off for a stream
    Limits {
        name: String,
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Produce realistic records like the Kinesis Data Generator
    Generate {
        name: String,
        /// clickstream, iot, logs, or a record template with {{…}} placeholders
        #[arg(long, default_value = "clickstream")]
        template: String,
        /// Records per second (or /m, /h): 200/s
        #[arg(long, default_value = "100/s")]
        rate: String,
        /// For how long (engine time): 30s, 5m
        #[arg(long, default_value = "10s")]
        duration: String,
        /// Seed for reproducible records
        #[arg(long)]
        seed: Option<u64>,
        /// Partition key field of the JSON records (default: the template's, else random)
        #[arg(long)]
        partition_key_field: Option<String>,
        /// Print the template's text and functions instead of generating
        #[arg(long)]
        show_template: bool,
    },
    /// Enhanced fan-out consumers (≙ RegisterStreamConsumer / Deregister / ListStreamConsumers)
    Consumer {
        #[arg(value_enum)]
        action: ConsumerAction,
        name: String,
        consumer: Option<String>,
    },
    /// Records since the application's checkpoints, then checkpoint (KCL-style)
    Consume {
        name: String,
        #[arg(long)]
        app: String,
        /// At most this many records
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Where a new application starts
        #[arg(long, value_enum, default_value = "trim-horizon")]
        initial_position: Initial,
    },
    /// An application's lease table: one checkpoint per shard
    Leases {
        name: String,
        #[arg(long)]
        app: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum IteratorType {
    #[value(name = "trim-horizon", alias = "TRIM_HORIZON")]
    TrimHorizon,
    #[value(name = "latest", alias = "LATEST")]
    Latest,
    #[value(name = "at-sequence-number", alias = "AT_SEQUENCE_NUMBER")]
    AtSequenceNumber,
    #[value(name = "after-sequence-number", alias = "AFTER_SEQUENCE_NUMBER")]
    AfterSequenceNumber,
    #[value(name = "at-timestamp", alias = "AT_TIMESTAMP")]
    AtTimestamp,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReadStart {
    #[value(name = "trim-horizon", alias = "TRIM_HORIZON")]
    TrimHorizon,
    #[value(name = "latest", alias = "LATEST")]
    Latest,
    #[value(name = "at-timestamp", alias = "AT_TIMESTAMP")]
    AtTimestamp,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ConsumerAction {
    Register,
    Deregister,
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Initial {
    #[value(name = "trim-horizon", alias = "TRIM_HORIZON")]
    TrimHorizon,
    #[value(name = "latest", alias = "LATEST")]
    Latest,
}

pub async fn run(args: StreamArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    if ctx.body.is_some() && !matches!(args.verb, Verb::Put { .. }) {
        return Err(CellError::usage("only `%%stream put NAME` takes a cell body (one record per line)"));
    }
    let streams = engine.streams();
    let out = ctx.out;
    match args.verb {
        Verb::Create { name, shards, on_demand: _, retention, if_not_exists } => {
            if if_not_exists && streams.describe(&name).is_ok() {
                super::kept(out, &format!("stream {name}"));
                return Ok(Some(describe(&engine, &name)?));
            }
            let retention = retention.map(|r| retention_hours(&r)).transpose()?;
            let d = streams.create(&name, shards, retention)?;
            out.stdout(&format!(
                "Created stream {name} ({}, {} shard(s), retention {} h, writes up to {}).\n",
                capacity(&d),
                d.shards.len(),
                d.retention_hours,
                d.write_capacity()
            ));
            Ok(Some(describe(&engine, &name)?))
        }
        Verb::List => list(&engine).map(Some),
        Verb::Describe { name } => describe(&engine, &name).map(Some),
        Verb::Put { name, partition_key, partition_key_field, data, from, explicit_hash_key } => {
            let key = line_key(partition_key, partition_key_field)?;
            match (ctx.body, data, from) {
                (Some(body), None, None) => put_lines(&engine, &name, &key, body).map(Some),
                (None, Some(data), None) => {
                    let LineKey::Fixed(key) = key else {
                        return Err(CellError::usage("%stream put --data needs --partition-key KEY"));
                    };
                    let put = streams.put_record(&name, &key, Bytes::from(data), explicit_hash_key.as_deref())?;
                    let hash = explicit_hash_key.unwrap_or_else(|| streams::hash_key(&key).to_string());
                    let table = batch(vec![
                        ("partition_key", strings([key].into_iter())),
                        ("hash_key", strings([hash].into_iter())),
                        ("shard_id", strings([put.shard_id].into_iter())),
                        ("sequence_number", strings([put.sequence_number].into_iter())),
                    ])?;
                    Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
                }
                (None, None, Some(file)) => load_file(&engine, &name, &key, &file, out).map(Some),
                (Some(_), _, _) => Err(CellError::usage("%%stream put takes its records from the cell body, not --data/--from")),
                _ => Err(CellError::usage("%stream put needs --data TEXT, --from FILE, or a %%stream put cell with one record per line")),
            }
        }
        Verb::Get { name, shard, iterator, sequence_number, timestamp, shard_iterator, limit, consumer } => {
            let it = match shard_iterator {
                Some(it) => it,
                None => {
                    let shard = shard.ok_or_else(|| CellError::usage("%stream get needs --shard ID (or --shard-iterator)"))?;
                    let shard = shard_id(&shard);
                    let start = iterator_start(iterator, sequence_number, timestamp)?;
                    streams.shard_iterator(&name, &shard, start)?
                }
            };
            let reader = consumer.map_or(Reader::Shared, Reader::Consumer);
            let got = streams.get_records_as(&it, limit, &reader)?;
            let rows: Vec<(String, Record)> = got.records.into_iter().map(|r| (String::new(), r)).collect();
            let table = records_batch(&rows, false)?;
            ctx.state.last_result = Some(table.clone());
            let next = got.next_shard_iterator.as_deref().unwrap_or("null (the closed shard is fully read)");
            out.stdout(&format!("NextShardIterator: {next}\nMillisBehindLatest: {}\n", got.millis_behind_latest));
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
        Verb::Read { name, from, timestamp } => {
            let from = match from {
                ReadStart::TrimHorizon => ReadFrom::TrimHorizon,
                ReadStart::Latest => ReadFrom::Latest,
                ReadStart::AtTimestamp => ReadFrom::AtTimestamp(parse_time(
                    timestamp.as_deref().ok_or_else(|| CellError::usage("--from at-timestamp needs --timestamp TIME"))?,
                )?),
            };
            let rows = streams.read(&name, &from)?;
            let table = records_batch(&rows, true)?;
            ctx.state.last_result = Some(table.clone());
            let shards = streams.describe(&name)?.shards.len();
            let footer = Footer { extra: vec![format!("{shards} shard(s) read, parents before children")], ..Footer::default() };
            Ok(Some(render::table(&table, &TableOptions::plain(), &footer)))
        }
        Verb::Split { name, shard, at } => {
            let at = at.map(|a| a.parse::<u128>().map_err(|_| CellError::usage(format!("--at {a} is not a hash key (a decimal number below 2^128)")))).transpose()?;
            let children = streams.split(&name, &shard_id(&shard), at)?;
            out.stdout(&format!("Split {} into {}.\n", shard_id(&shard), ids(&children)));
            Ok(Some(describe(&engine, &name)?))
        }
        Verb::Merge { name, shard, adjacent } => {
            let child = streams.merge(&name, &shard_id(&shard), &shard_id(&adjacent))?;
            out.stdout(&format!("Merged {} and {} into {}.\n", shard_id(&shard), shard_id(&adjacent), ids(&child)));
            Ok(Some(describe(&engine, &name)?))
        }
        Verb::Scale { name, shards } => {
            let children = streams.scale(&name, shards)?;
            if children.is_empty() {
                out.stdout(&format!("{name} already has {shards} evenly split open shard(s).\n"));
            } else {
                out.stdout(&format!("Scaled {name} to {shards} open shard(s): {}.\n", ids(&children)));
            }
            Ok(Some(describe(&engine, &name)?))
        }
        Verb::Delete { name } => {
            streams.delete(&name)?;
            out.stdout(&format!("Deleted stream {name} and its records.\n"));
            Ok(None)
        }
        Verb::Limits { name, state } => {
            streams.set_limits(&name, matches!(state, OnOff::On))?;
            let d = streams.describe(&name)?;
            let state = if d.limits { format!("on: writes up to {}", d.write_capacity()) } else { "off: nothing is throttled".to_string() };
            out.stdout(&format!("Throughput limits of {name}: {state}.\n"));
            Ok(None)
        }
        Verb::Generate { name, template, rate, duration, seed, partition_key_field, show_template } => {
            if show_template {
                let text = Template::builtin_text(&template).unwrap_or(&template);
                out.stdout(&format!("{text}\n\nFunctions:\n  {}\n", generator::FUNCTIONS.join("\n  ")));
                return Ok(None);
            }
            let mut template = Template::named_or_text(&template)?;
            if partition_key_field.is_some() {
                template.partition_key_field = partition_key_field;
            }
            let spec = GenerateSpec {
                stream: name,
                template,
                rate: generator::parse_rate(&rate)?,
                duration: parse_duration(&duration)?,
                seed,
            };
            generate(&engine, &spec, out).await.map(|()| None)
        }
        Verb::Consumer { action, name, consumer } => {
            let need = || consumer.clone().ok_or_else(|| CellError::usage("give the consumer's name: %stream consumer register STREAM NAME"));
            match action {
                ConsumerAction::Register => {
                    let c = streams.register_consumer(&name, &need()?)?;
                    out.stdout(&format!("Registered consumer {} ({}): it reads with its own 2 MiB/s per shard.\n", c.name, c.arn));
                }
                ConsumerAction::Deregister => {
                    streams.deregister_consumer(&name, &need()?)?;
                    out.stdout("Deregistered.\n");
                }
                ConsumerAction::List => {}
            }
            let consumers = streams.describe(&name)?.consumers;
            let table = batch(vec![
                ("consumer", strings(consumers.iter().map(|c| c.name.clone()))),
                ("status", strings(consumers.iter().map(|c| c.status.clone()))),
                ("arn", strings(consumers.iter().map(|c| c.arn.clone()))),
                ("created", times(consumers.iter().map(|c| Some(c.created.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
        Verb::Consume { name, app, limit, initial_position } => {
            let initial = match initial_position {
                Initial::TrimHorizon => InitialPosition::TrimHorizon,
                Initial::Latest => InitialPosition::Latest,
            };
            let consumed = streams.consume(&name, &app, initial, limit)?;
            if !consumed.throttled.is_empty() {
                out.stderr(&format!(
                    "ProvisionedThroughputExceededException on {}: those shards were skipped this time; consume again later.\n",
                    consumed.throttled.join(", ")
                ));
            }
            let table = records_batch(&consumed.records, true)?;
            ctx.state.last_result = Some(table.clone());
            let checkpoints: Vec<String> = consumed.leases.iter().map(|l| format!("{}: {}", l.shard_id, short_checkpoint(l))).collect();
            let footer = Footer { extra: vec![format!("app {app} checkpoints: {}", checkpoints.join(", "))], ..Footer::default() };
            Ok(Some(render::table(&table, &TableOptions::plain(), &footer)))
        }
        Verb::Leases { name, app } => {
            let leases = streams.leases(&name, &app)?;
            let table = batch(vec![
                ("shard_id", strings(leases.iter().map(|l| l.shard_id.clone()))),
                ("checkpoint", strings(leases.iter().map(|l| l.checkpoint.clone()))),
                ("lease_counter", Arc::new(UInt64Array::from_iter_values(leases.iter().map(|l| l.lease_counter))) as ArrayRef),
                ("parent_shard_ids", strings(leases.iter().map(|l| l.parent_shard_ids.join(", ")))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer { extra: vec![format!("application {app}")], ..Footer::default() })))
        }
    }
}

fn line_key(key: Option<String>, field: Option<String>) -> Result<LineKey, CellError> {
    match (key, field) {
        (Some(k), _) => Ok(LineKey::Fixed(k)),
        (None, Some(f)) => Ok(LineKey::Field(f)),
        (None, None) => Err(CellError::usage("a put needs --partition-key KEY or --partition-key-field FIELD")
            .with_detail("Kinesis routes every record by its partition key")),
    }
}


/// `shardId-000000000003` from `3` or the full id.
fn shard_id(text: &str) -> String {
    match text.parse::<u64>() {
        Ok(n) => format!("shardId-{n:012}"),
        Err(_) => text.to_string(),
    }
}

/// "A", "A and B", "A, B and C".
fn ids(shards: &[streams::Shard]) -> String {
    let ids: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    match ids.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => ids.join(""),
    }
}

fn retention_hours(text: &str) -> Result<u32, CellError> {
    let d = parse_duration(text)?;
    let hours = d.as_secs() / 3600;
    if d.as_secs() % 3600 != 0 {
        return Err(CellError::usage(format!("retention is in whole hours (24h to 8760h), not {text}")));
    }
    u32::try_from(hours).map_err(|_| CellError::usage(format!("retention {text} is too long")))
}

fn capacity(d: &StreamDescription) -> &'static str {
    match d.capacity {
        streams::Capacity::Provisioned => "provisioned",
        streams::Capacity::OnDemand => "on-demand",
    }
}

fn short_checkpoint(lease: &Lease) -> String {
    match lease.checkpoint.len() {
        56 => format!("…{}", lease.checkpoint[14..].trim_start_matches('0')),
        _ => lease.checkpoint.clone(),
    }
}

fn iterator_start(kind: IteratorType, sequence: Option<String>, timestamp: Option<String>) -> Result<IteratorStart, CellError> {
    let sequence = || sequence.clone().ok_or_else(|| CellError::usage("this iterator type needs --sequence-number S"));
    Ok(match kind {
        IteratorType::TrimHorizon => IteratorStart::TrimHorizon,
        IteratorType::Latest => IteratorStart::Latest,
        IteratorType::AtSequenceNumber => IteratorStart::AtSequenceNumber(sequence()?),
        IteratorType::AfterSequenceNumber => IteratorStart::AfterSequenceNumber(sequence()?),
        IteratorType::AtTimestamp => IteratorStart::AtTimestamp(parse_time(
            timestamp.as_deref().ok_or_else(|| CellError::usage("AT_TIMESTAMP needs --timestamp TIME"))?,
        )?),
    })
}

/// Records as a table; with their shard when they come from several.
fn records_batch(rows: &[(String, Record)], with_shard: bool) -> Result<RecordBatch, CellError> {
    let mut columns: Vec<(&str, ArrayRef)> = Vec::new();
    if with_shard {
        columns.push(("shard_id", strings(rows.iter().map(|(s, _)| s.clone()))));
    }
    columns.push(("sequence_number", strings(rows.iter().map(|(_, r)| r.sequence_number.clone()))));
    columns.push(("approximate_arrival_timestamp", times(rows.iter().map(|(_, r)| Some(r.approximate_arrival.timestamp_millis())))));
    columns.push(("partition_key", strings(rows.iter().map(|(_, r)| r.partition_key.clone()))));
    columns.push(("data", strings(rows.iter().map(|(_, r)| String::from_utf8_lossy(&r.data).into_owned()))));
    batch(columns)
}

fn list(engine: &Lakebook) -> Result<Bundle, CellError> {
    let all = engine.streams().list();
    let mut records = Vec::new();
    for s in &all {
        records.push(engine.streams().shard_stats(&s.name)?.iter().map(|s| s.records).sum::<u64>());
    }
    let table = batch(vec![
        ("stream", strings(all.iter().map(|s| s.name.clone()))),
        ("status", strings(all.iter().map(|s| s.status.clone()))),
        ("mode", strings(all.iter().map(|s| capacity(s).to_string()))),
        ("open_shards", Arc::new(UInt64Array::from_iter_values(all.iter().map(|s| s.open_shards().count() as u64)))),
        ("records", Arc::new(UInt64Array::from_iter_values(records))),
        ("retention_hours", Arc::new(UInt64Array::from_iter_values(all.iter().map(|s| u64::from(s.retention_hours))))),
        ("limits", Arc::new(BooleanArray::from(all.iter().map(|s| s.limits).collect::<Vec<_>>()))),
        ("consumers", Arc::new(UInt64Array::from_iter_values(all.iter().map(|s| s.consumers.len() as u64)))),
        ("created", times(all.iter().map(|s| Some(s.created.timestamp_millis())))),
    ])?;
    Ok(render::table(&table, &TableOptions::plain(), &Footer::default()))
}

fn describe(engine: &Lakebook, name: &str) -> Result<Bundle, CellError> {
    let d = engine.streams().describe(name)?;
    let stats = engine.streams().shard_stats(name)?;
    let table = batch(vec![
        ("shard_id", strings(d.shards.iter().map(|s| s.shard_id.clone()))),
        ("state", strings(d.shards.iter().map(|s| if s.is_open() { "OPEN" } else { "CLOSED" }.to_string()))),
        ("parent_shard_id", strings(d.shards.iter().map(|s| s.parent_shard_id.clone().unwrap_or_default()))),
        ("adjacent_parent_shard_id", strings(d.shards.iter().map(|s| s.adjacent_parent_shard_id.clone().unwrap_or_default()))),
        ("starting_hash_key", strings(d.shards.iter().map(|s| s.starting_hash_key.clone()))),
        ("ending_hash_key", strings(d.shards.iter().map(|s| s.ending_hash_key.clone()))),
        ("starting_sequence_number", strings(d.shards.iter().map(|s| s.starting_sequence_number.clone()))),
        ("ending_sequence_number", strings(d.shards.iter().map(|s| s.ending_sequence_number.clone().unwrap_or_default()))),
        ("records", Arc::new(UInt64Array::from_iter_values(stats.iter().map(|s| s.records)))),
        ("bytes", Arc::new(Int64Array::from_iter_values(stats.iter().map(|s| s.bytes as i64)))),
    ])?;
    let facts = vec![
        d.status.clone(),
        capacity(&d).to_string(),
        format!("retention {} h", d.retention_hours),
        if d.limits { format!("writes up to {}", d.write_capacity()) } else { format!("limits off (capacity {})", d.write_capacity()) },
        format!("{} fan-out consumer(s)", d.consumers.len()),
    ];
    let options = TableOptions { max_rows: 500, ..TableOptions::plain() };
    let mut bundle = render::table(&table, &options, &Footer { extra: facts, ..Footer::default() });
    if let Some(serde_json::Value::String(html)) = bundle.get_mut("text/html") {
        *html = format!("<p><b>{}</b> {}</p>{html}", render::escape(&d.name), render::escape(&d.arn));
    }
    if let Some(serde_json::Value::String(text)) = bundle.get_mut("text/plain") {
        *text = format!("{} {}\n{text}", d.name, d.arn);
    }
    Ok(bundle)
}

/// `%%stream put`: each body line is a record; ≤ 500 per PutRecords call.
fn put_lines(engine: &Lakebook, name: &str, key: &LineKey, body: &str) -> Result<Bundle, CellError> {
    let body = Bytes::copy_from_slice(body.as_bytes());
    let lines: Vec<Bytes> = lines::lines(&body).collect();
    if lines.is_empty() {
        return Err(CellError::usage("the %%stream put cell has no records: write one record per line"));
    }
    let (mut keys, mut shards, mut sequences, mut codes, mut messages) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut failed = 0;
    let calls = lines.len().div_ceil(streams::MAX_PUT_RECORDS);
    let entries: Vec<PutEntry> = lines.into_iter().map(|l| key.entry(l)).collect();
    keys.extend(entries.iter().map(|e| e.partition_key.clone()));
    for result in engine.streams().put_records_in_calls(name, entries)? {
        match result {
            Ok(put) => {
                shards.push(put.shard_id);
                sequences.push(put.sequence_number);
                codes.push(String::new());
                messages.push(String::new());
            }
            Err(e) => {
                failed += 1;
                shards.push(String::new());
                sequences.push(String::new());
                codes.push(e.code().to_string());
                messages.push(e.message());
            }
        }
    }
    let table = batch(vec![
        ("partition_key", strings(keys.into_iter())),
        ("shard_id", strings(shards.into_iter())),
        ("sequence_number", strings(sequences.into_iter())),
        ("error_code", strings(codes.into_iter())),
        ("error_message", strings(messages.into_iter())),
    ])?;
    let footer = Footer { extra: vec![format!("FailedRecordCount: {failed}"), format!("{calls} PutRecords call(s)")], ..Footer::default() };
    Ok(render::table(&table, &TableOptions::plain(), &footer))
}

/// `--from FILE`: a bulk load, one record per line, group-committed in large batches.
fn load_file(engine: &Lakebook, name: &str, key: &LineKey, file: &str, out: &Output) -> Result<Bundle, CellError> {
    let text = std::fs::read(file).map_err(|e| CellError::new("FileNotFoundError", format!("cannot read {file}: {e}")))?;
    let started = Instant::now();
    let report = engine.streams().load_lines(name, &Bytes::from(text), key)?;
    let elapsed = started.elapsed();
    let rate = report.stored as f64 / elapsed.as_secs_f64().max(1e-9);
    if let Some(e) = &report.first_error {
        out.stderr(&format!("{} record(s) failed; the first: {}: {}\n", report.failed, e.code(), e.message()));
        if report.throttled > 0 {
            out.stderr(&format!("{} were throttled: `%stream limits {name} off` switches the limits off for bulk loads.\n", report.throttled));
        }
    }
    let table = batch(vec![
        ("file", strings([file.to_string()].into_iter())),
        ("stored", Arc::new(UInt64Array::from_iter_values([report.stored])) as ArrayRef),
        ("failed", Arc::new(UInt64Array::from_iter_values([report.failed]))),
        ("throttled", Arc::new(UInt64Array::from_iter_values([report.throttled]))),
        ("records_per_second", Arc::new(UInt64Array::from_iter_values([rate as u64]))),
    ])?;
    Ok(render::table(&table, &TableOptions::plain(), &Footer { elapsed: Some(elapsed), ..Footer::default() }))
}

async fn generate(engine: &Lakebook, spec: &GenerateSpec, out: &Output) -> Result<(), CellError> {
    let label = |done: u64, total: u64| format!("generating into {}: {done}/{total} records", spec.stream);
    let progress = out.progress(render::progress(&label(0, 0), 0.0));
    let report = engine
        .generate(spec, |report, total| {
            progress.update(render::progress(&label(report.sent, total), report.sent as f64 / total.max(1) as f64));
        })
        .await?;
    let mut summary = format!(
        "Generated {} record(s) into {} over {} ({:.0}/s): {} stored, {} throttled, {} failed.",
        report.sent,
        spec.stream,
        format_duration(spec.duration),
        spec.rate,
        report.stored,
        report.throttled,
        report.failed
    );
    if engine.clock().mode() == ClockMode::Manual {
        summary.push_str(&format!(" Manual clock advanced to {}.", format_time(engine.clock().now())));
    }
    progress.finish(&summary);
    if let Some(e) = report.first_error {
        out.stderr(&format!("first failure: {}: {}\n", e.code(), e.message()));
    }
    for line in report.due_work {
        out.stdout(&format!("{line}\n"));
    }
    Ok(())
}
