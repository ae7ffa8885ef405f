//! `%aws`: AWS CLI commands as the guides print them (`%aws kinesis put-record --stream-name
//! Foo --partition-key 123 --data testdata`), answered by the workspace's services and printed
//! as the CLI prints them (JSON with 4-space indents, `--query` as JMESPath, errors as
//! `An error occurred (Code) when calling the Op operation: …`), so a tutorial's commands can be
//! pasted into a notebook as they stand. A bash line `NAME=$(aws …)` keeps the command's output
//! in the notebook variable NAME, and `$NAME` / `${NAME}` expand as in the shell.
//!
//! Known gaps: only `kinesis` and `emr` ([`emr`]) so far; `--output table` and `--cli-input-json` are not
//! offered; `--data` is taken as text (AWS CLI v1's behaviour, which the guides show).

use base64::Engine as _;
use bytes::Bytes;
use clap::{CommandFactory, Parser, Subcommand};
use lakebook_engine::Lakebook;
use lakebook_engine::clock::parse_time;
use lakebook_engine::streams::{Capacity, IteratorStart, PutEntry, Shard, StreamDescription};
use serde_json::{Value, json};

mod emr;

use super::{Body, Ctx, Form, MagicSpec, Running};
use crate::render::Bundle;
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "aws",
    summary: "AWS CLI commands as the guides write them (kinesis, emr), answered with the CLI's output",
    form: Form::Line,
    command: AwsArgs::command,
    body: Body::Data,
    run: start,
};

#[derive(Debug, Parser)]
#[command(
    about = "AWS CLI commands as the guides write them (kinesis, emr), answered with the CLI's output",
    after_help = "Paste a command from a guide without its leading `aws`: `%aws kinesis list-streams`.\n\
                  `%aws NAME=$(aws kinesis get-shard-iterator … --query 'ShardIterator')` keeps the output in the\n\
                  notebook variable NAME (`%set` shows it); `$NAME` and `${NAME}` expand in later commands.\n\
                  --region and --profile are accepted and ignored: the workspace is one account in one region."
)]
pub struct AwsArgs {
    #[command(subcommand)]
    service: Service,
    /// A JMESPath expression applied to the output, e.g. 'ShardIterator'
    #[arg(long, global = true)]
    query: Option<String>,
    /// json (the default) or text
    #[arg(long, global = true, value_parser = ["json", "text"])]
    output: Option<String>,
    /// Accepted and ignored (one region)
    #[arg(long, global = true)]
    region: Option<String>,
    /// Accepted and ignored (one account)
    #[arg(long, global = true)]
    profile: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Service {
    /// Amazon Kinesis Data Streams
    #[command(subcommand)]
    Kinesis(Kinesis),
    /// Amazon EMR: clusters and Hadoop-streaming steps
    #[command(subcommand)]
    Emr(emr::Emr),
}

#[derive(Debug, Subcommand)]
enum Kinesis {
    /// ≙ CreateStream: CREATING for a few seconds of engine time, then ACTIVE
    CreateStream {
        #[arg(long)]
        stream_name: String,
        /// Provisioned shards; without it (or with StreamMode=ON_DEMAND) the stream is on-demand
        #[arg(long)]
        shard_count: Option<u64>,
        /// StreamMode=ON_DEMAND or StreamMode=PROVISIONED
        #[arg(long)]
        stream_mode_details: Option<String>,
    },
    /// ≙ DescribeStreamSummary
    DescribeStreamSummary {
        #[arg(long)]
        stream_name: String,
    },
    /// ≙ DescribeStream
    DescribeStream {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        exclusive_start_shard_id: Option<String>,
    },
    /// ≙ ListStreams
    ListStreams {
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        exclusive_start_stream_name: Option<String>,
    },
    /// ≙ ListShards
    ListShards {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        exclusive_start_shard_id: Option<String>,
        #[arg(long)]
        max_results: Option<usize>,
    },
    /// ≙ PutRecord (--data is text, as AWS CLI v1 takes it)
    PutRecord {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        partition_key: String,
        #[arg(long)]
        data: String,
        #[arg(long)]
        explicit_hash_key: Option<String>,
        /// Accepted: records of one shard are in order anyway
        #[arg(long)]
        sequence_number_for_ordering: Option<String>,
    },
    /// ≙ PutRecords: --records Data=blob1,PartitionKey=key1 Data=blob2,PartitionKey=key2 (or a JSON list)
    PutRecords {
        #[arg(long)]
        stream_name: String,
        #[arg(long, num_args = 1.., required = true)]
        records: Vec<String>,
    },
    /// ≙ GetShardIterator
    GetShardIterator {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        shard_id: String,
        /// TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP
        #[arg(long)]
        shard_iterator_type: String,
        #[arg(long)]
        starting_sequence_number: Option<String>,
        /// RFC 3339 or epoch seconds
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// ≙ GetRecords
    GetRecords {
        #[arg(long)]
        shard_iterator: String,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// ≙ DeleteStream
    DeleteStream {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        enforce_consumer_deletion: bool,
    },
    /// ≙ IncreaseStreamRetentionPeriod
    IncreaseStreamRetentionPeriod {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        retention_period_hours: u32,
    },
    /// ≙ DecreaseStreamRetentionPeriod
    DecreaseStreamRetentionPeriod {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        retention_period_hours: u32,
    },
    /// ≙ SplitShard
    SplitShard {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        shard_to_split: String,
        #[arg(long)]
        new_starting_hash_key: String,
    },
    /// ≙ MergeShards
    MergeShards {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        shard_to_merge: String,
        #[arg(long)]
        adjacent_shard_to_merge: String,
    },
    /// ≙ UpdateShardCount (UNIFORM_SCALING)
    UpdateShardCount {
        #[arg(long)]
        stream_name: String,
        #[arg(long)]
        target_shard_count: u64,
        #[arg(long)]
        scaling_type: String,
    },
}

impl Kinesis {
    /// The API operation's name, as the CLI's error messages say it.
    fn operation(&self) -> &'static str {
        match self {
            Kinesis::CreateStream { .. } => "CreateStream",
            Kinesis::DescribeStreamSummary { .. } => "DescribeStreamSummary",
            Kinesis::DescribeStream { .. } => "DescribeStream",
            Kinesis::ListStreams { .. } => "ListStreams",
            Kinesis::ListShards { .. } => "ListShards",
            Kinesis::PutRecord { .. } => "PutRecord",
            Kinesis::PutRecords { .. } => "PutRecords",
            Kinesis::GetShardIterator { .. } => "GetShardIterator",
            Kinesis::GetRecords { .. } => "GetRecords",
            Kinesis::DeleteStream { .. } => "DeleteStream",
            Kinesis::IncreaseStreamRetentionPeriod { .. } => "IncreaseStreamRetentionPeriod",
            Kinesis::DecreaseStreamRetentionPeriod { .. } => "DecreaseStreamRetentionPeriod",
            Kinesis::SplitShard { .. } => "SplitShard",
            Kinesis::MergeShards { .. } => "MergeShards",
            Kinesis::UpdateShardCount { .. } => "UpdateShardCount",
        }
    }
}

/// `%aws` parses its own words: the CLI's service and operation are clap commands of their
/// own, and `NAME=$(aws …)` is read from the raw line.
fn start<'a>(args: &'a [String], ctx: Ctx<'a>) -> Running<'a> {
    Box::pin(run(args, ctx))
}

pub async fn run(args: &[String], mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    // `NAME=$(aws …)`: the shell's command substitution into a variable.
    if let Some((name, inner)) = substitution(ctx.raw) {
        let words = shlex::split(inner).ok_or_else(|| CellError::usage(format!("cannot split {inner:?} into words (an unclosed quote?)")))?;
        let words = expand_dollars(&words, &ctx.state.variables)?;
        let printed = answer(&words, ctx.engine()?.as_ref()).await?;
        // bash drops the trailing newlines of a command substitution
        ctx.state.variables.insert(name.to_string(), printed.trim_end_matches('\n').to_string());
        return Ok(None);
    }
    let words = expand_dollars(args, &ctx.state.variables)?;
    let printed = answer(&words, ctx.engine()?.as_ref()).await?;
    ctx.out.stdout(&printed);
    Ok(None)
}

/// `NAME=$(aws REST)` → (NAME, REST).
fn substitution(raw: &str) -> Option<(&str, &str)> {
    let raw = raw.trim();
    let (name, rest) = raw.split_once("=$(")?;
    let inner = rest.strip_suffix(')')?.trim();
    let inner = inner.strip_prefix("aws ")?;
    super::set::valid_name(name).then_some((name, inner))
}

/// `$NAME` in a word is the notebook variable's value (`${NAME}` was expanded before).
fn expand_dollars(words: &[String], vars: &std::collections::BTreeMap<String, String>) -> Result<Vec<String>, CellError> {
    words
        .iter()
        .map(|word| {
            let Some(i) = word.find('$') else { return Ok(word.clone()) };
            let name: String = word[i + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !super::set::valid_name(&name) {
                return Ok(word.clone());
            }
            let value = vars.get(&name).ok_or_else(|| super::set::missing(&name, vars))?;
            Ok(format!("{}{value}{}", &word[..i], &word[i + 1 + name.len()..]))
        })
        .collect()
}

/// Runs one CLI command and returns what the CLI would print.
async fn answer(words: &[String], engine: &Lakebook) -> Result<String, CellError> {
    let args: AwsArgs = super::parse(&SPEC, words)?;
    let value = match args.service {
        Service::Kinesis(op) => {
            let operation = op.operation();
            kinesis(op, engine).map_err(|e| cli_error(e, operation))?
        }
        Service::Emr(op) => {
            let operation = op.operation();
            emr::emr(op, engine).await.map_err(|e| cli_error(e, operation))?
        }
    };
    let value = match (&args.query, value) {
        (Some(query), value) => jmespath::compile(query)
            .and_then(|expr| expr.search(value.unwrap_or(Value::Null)))
            .map_err(|e| CellError::usage(format!("--query {query:?}: {e}")))
            .and_then(|found| serde_json::to_value(&*found).map_err(|e| CellError::bug(format!("--query result: {e}"))))
            .map(Some)?,
        (None, value) => value,
    };
    Ok(match value {
        None => String::new(),
        Some(v) if args.output.as_deref() == Some("text") => text(&v) + "\n",
        Some(v) => pretty(&v) + "\n",
    })
}

/// The CLI's JSON: 4-space indents, `"Key": value`.
fn pretty(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    v.serialize(&mut ser).expect("JSON values serialise");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

/// `--output text`: scalars bare, lists tab-separated, objects' values in key order.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join("\t"),
        Value::Object(map) => map.values().map(text).collect::<Vec<_>>().join("\t"),
        other => other.to_string(),
    }
}

fn cli_error(e: lakebook_engine::Error, operation: &str) -> CellError {
    let converted = CellError::from(e);
    CellError { evalue: format!("An error occurred ({}) when calling the {operation} operation: {}", converted.ename, converted.evalue), ..converted }
}

fn usage(text: impl Into<String>) -> lakebook_engine::Error {
    lakebook_engine::Error::service("ValidationException", text)
}

fn kinesis(op: Kinesis, engine: &Lakebook) -> lakebook_engine::Result<Option<Value>> {
    let streams = engine.streams();
    Ok(match op {
        Kinesis::CreateStream { stream_name, shard_count, stream_mode_details } => {
            let on_demand = match stream_mode_details.as_deref().map(|d| d.trim_start_matches("StreamMode=")) {
                None => shard_count.is_none(),
                Some("ON_DEMAND") => true,
                Some("PROVISIONED") => false,
                Some(other) => return Err(usage(format!("StreamMode {other:?} is not ON_DEMAND or PROVISIONED"))),
            };
            if on_demand && shard_count.is_some() {
                return Err(usage("ShardCount is not used with StreamMode=ON_DEMAND"));
            }
            if !on_demand && shard_count.is_none() {
                return Err(usage("a PROVISIONED stream needs --shard-count"));
            }
            streams.create_async(&stream_name, if on_demand { None } else { shard_count }, None)?;
            None
        }
        Kinesis::DescribeStreamSummary { stream_name } => {
            let d = streams.describe(&stream_name)?;
            Some(json!({ "StreamDescriptionSummary": {
                "StreamName": d.name,
                "StreamARN": d.arn,
                "StreamStatus": d.status,
                "StreamModeDetails": { "StreamMode": mode(&d) },
                "RetentionPeriodHours": d.retention_hours,
                "StreamCreationTimestamp": epoch(d.created),
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
                "OpenShardCount": d.open_shards().count(),
                "ConsumerCount": d.consumers.len(),
            }}))
        }
        Kinesis::DescribeStream { stream_name, limit, exclusive_start_shard_id } => {
            let d = streams.describe(&stream_name)?;
            let (shards, more) = page(&d.shards, exclusive_start_shard_id.as_deref(), limit.unwrap_or(100));
            Some(json!({ "StreamDescription": {
                "Shards": shards.iter().map(shard).collect::<Vec<_>>(),
                "StreamARN": d.arn,
                "StreamName": d.name,
                "StreamStatus": d.status,
                "RetentionPeriodHours": d.retention_hours,
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
                "KeyId": null,
                "StreamCreationTimestamp": epoch(d.created),
                "StreamModeDetails": { "StreamMode": mode(&d) },
                "HasMoreShards": more,
            }}))
        }
        Kinesis::ListStreams { limit, exclusive_start_stream_name } => {
            let all = streams.list();
            let after: Vec<&StreamDescription> = all.iter().filter(|d| exclusive_start_stream_name.as_ref().is_none_or(|s| d.name.as_str() > s.as_str())).collect();
            let limit = limit.unwrap_or(after.len().max(1));
            let shown = &after[..limit.min(after.len())];
            Some(json!({
                "StreamNames": shown.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
                "HasMoreStreams": shown.len() < after.len(),
                "StreamSummaries": shown.iter().map(|d| json!({
                    "StreamName": d.name,
                    "StreamARN": d.arn,
                    "StreamStatus": d.status,
                    "StreamModeDetails": { "StreamMode": mode(d) },
                    "StreamCreationTimestamp": epoch(d.created),
                })).collect::<Vec<_>>(),
            }))
        }
        Kinesis::ListShards { stream_name, exclusive_start_shard_id, max_results } => {
            let d = streams.describe(&stream_name)?;
            let (shards, _) = page(&d.shards, exclusive_start_shard_id.as_deref(), max_results.unwrap_or(1000));
            Some(json!({ "Shards": shards.iter().map(shard).collect::<Vec<_>>() }))
        }
        Kinesis::PutRecord { stream_name, partition_key, data, explicit_hash_key, sequence_number_for_ordering: _ } => {
            let put = streams.put_record(&stream_name, &partition_key, Bytes::from(data), explicit_hash_key.as_deref())?;
            Some(json!({ "ShardId": put.shard_id, "SequenceNumber": put.sequence_number }))
        }
        Kinesis::PutRecords { stream_name, records } => {
            let entries = put_entries(&records)?;
            let results = streams.put_records(&stream_name, entries)?;
            let failed = results.iter().filter(|r| r.is_err()).count();
            let records: Vec<Value> = results
                .into_iter()
                .map(|r| match r {
                    Ok(put) => json!({ "SequenceNumber": put.sequence_number, "ShardId": put.shard_id }),
                    Err(e) => json!({ "ErrorCode": e.code(), "ErrorMessage": e.message() }),
                })
                .collect();
            Some(json!({ "FailedRecordCount": failed, "Records": records }))
        }
        Kinesis::GetShardIterator { stream_name, shard_id, shard_iterator_type, starting_sequence_number, timestamp } => {
            let sequence = || starting_sequence_number.clone().ok_or_else(|| usage(format!("{shard_iterator_type} needs --starting-sequence-number")));
            let start = match shard_iterator_type.as_str() {
                "TRIM_HORIZON" => IteratorStart::TrimHorizon,
                "LATEST" => IteratorStart::Latest,
                "AT_SEQUENCE_NUMBER" => IteratorStart::AtSequenceNumber(sequence()?),
                "AFTER_SEQUENCE_NUMBER" => IteratorStart::AfterSequenceNumber(sequence()?),
                "AT_TIMESTAMP" => {
                    let t = timestamp.ok_or_else(|| usage("AT_TIMESTAMP needs --timestamp"))?;
                    IteratorStart::AtTimestamp(match t.parse::<f64>() {
                        Ok(seconds) => chrono::DateTime::from_timestamp_millis((seconds * 1000.0) as i64).ok_or_else(|| usage(format!("{t} is not a time")))?,
                        Err(_) => parse_time(&t)?,
                    })
                }
                other => return Err(usage(format!("Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]"))),
            };
            Some(json!({ "ShardIterator": streams.shard_iterator(&stream_name, &shard_id, start)? }))
        }
        Kinesis::GetRecords { shard_iterator, limit } => {
            // The guide's `SHARD_ITERATOR=$(… --query 'ShardIterator')` keeps the JSON string's
            // quotes (bash does not strip them), and the guide shows the next command working.
            let iterator = shard_iterator.trim_matches('"');
            let out = streams.get_records(iterator, limit)?;
            Some(json!({
                "Records": out.records.iter().map(|r| json!({
                    "SequenceNumber": r.sequence_number,
                    "ApproximateArrivalTimestamp": epoch(r.approximate_arrival),
                    "Data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "PartitionKey": r.partition_key,
                })).collect::<Vec<_>>(),
                "NextShardIterator": out.next_shard_iterator,
                "MillisBehindLatest": out.millis_behind_latest,
            }))
        }
        Kinesis::DeleteStream { stream_name, enforce_consumer_deletion } => {
            let d = streams.describe(&stream_name)?;
            if !d.consumers.is_empty() && !enforce_consumer_deletion {
                return Err(lakebook_engine::Error::service(
                    "ResourceInUseException",
                    format!("Stream {stream_name} has {} registered consumer(s); use --enforce-consumer-deletion", d.consumers.len()),
                ));
            }
            streams.delete(&stream_name)?;
            None
        }
        Kinesis::IncreaseStreamRetentionPeriod { stream_name, retention_period_hours } => {
            streams.set_retention(&stream_name, retention_period_hours, true)?;
            None
        }
        Kinesis::DecreaseStreamRetentionPeriod { stream_name, retention_period_hours } => {
            streams.set_retention(&stream_name, retention_period_hours, false)?;
            None
        }
        Kinesis::SplitShard { stream_name, shard_to_split, new_starting_hash_key } => {
            let at = new_starting_hash_key.parse::<u128>().map_err(|_| usage(format!("NewStartingHashKey {new_starting_hash_key:?} is not a 128-bit integer")))?;
            streams.split(&stream_name, &shard_to_split, Some(at))?;
            None
        }
        Kinesis::MergeShards { stream_name, shard_to_merge, adjacent_shard_to_merge } => {
            streams.merge(&stream_name, &shard_to_merge, &adjacent_shard_to_merge)?;
            None
        }
        Kinesis::UpdateShardCount { stream_name, target_shard_count, scaling_type } => {
            if scaling_type != "UNIFORM_SCALING" {
                return Err(usage(format!("ScalingType {scaling_type:?}: the only scaling type is UNIFORM_SCALING")));
            }
            let current = streams.describe(&stream_name)?.open_shards().count();
            streams.scale(&stream_name, target_shard_count)?;
            Some(json!({ "StreamName": stream_name, "CurrentShardCount": current, "TargetShardCount": target_shard_count }))
        }
    })
}

fn mode(d: &StreamDescription) -> &'static str {
    match d.capacity {
        Capacity::OnDemand => "ON_DEMAND",
        Capacity::Provisioned => "PROVISIONED",
    }
}

/// Seconds since the epoch as a float, as the CLI prints timestamps.
fn epoch(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// Shards after `exclusive_start` (by id), at most `limit`, and whether more follow.
fn page<'a>(shards: &'a [Shard], exclusive_start: Option<&str>, limit: usize) -> (&'a [Shard], bool) {
    let start = exclusive_start.map_or(0, |id| shards.iter().position(|s| s.shard_id.as_str() > id).unwrap_or(shards.len()));
    let rest = &shards[start..];
    let n = limit.min(rest.len());
    (&rest[..n], n < rest.len())
}

fn shard(s: &Shard) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("ShardId".into(), json!(s.shard_id));
    if let Some(p) = &s.parent_shard_id {
        map.insert("ParentShardId".into(), json!(p));
    }
    if let Some(p) = &s.adjacent_parent_shard_id {
        map.insert("AdjacentParentShardId".into(), json!(p));
    }
    map.insert("HashKeyRange".into(), json!({ "StartingHashKey": s.starting_hash_key, "EndingHashKey": s.ending_hash_key }));
    let mut range = serde_json::Map::new();
    range.insert("StartingSequenceNumber".into(), json!(s.starting_sequence_number));
    if let Some(end) = &s.ending_sequence_number {
        range.insert("EndingSequenceNumber".into(), json!(end));
    }
    map.insert("SequenceNumberRange".into(), Value::Object(range));
    Value::Object(map)
}

/// `--records` in the CLI's shorthand (`Data=blob1,PartitionKey=key1` per record) or as a
/// JSON list of `{"Data": …, "PartitionKey": …}`.
fn put_entries(records: &[String]) -> lakebook_engine::Result<Vec<PutEntry>> {
    let objects: Vec<serde_json::Map<String, Value>> = match records {
        [one] if one.trim_start().starts_with('[') => serde_json::from_str(one).map_err(|e| usage(format!("--records is not a JSON list of records: {e}")))?,
        _ => records
            .iter()
            .map(|r| {
                r.split(',')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').ok_or_else(|| usage(format!("--records {r:?}: expected Key=Value pairs separated by commas")))?;
                        Ok((k.trim().to_string(), Value::String(v.to_string())))
                    })
                    .collect()
            })
            .collect::<lakebook_engine::Result<_>>()?,
    };
    objects
        .into_iter()
        .map(|o| {
            let field = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            let data = field("Data").ok_or_else(|| usage("each record needs Data"))?;
            let partition_key = field("PartitionKey").ok_or_else(|| usage("each record needs PartitionKey"))?;
            Ok(PutEntry { partition_key, data: Bytes::from(data), explicit_hash_key: field("ExplicitHashKey") })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_and_dollar_expansion() {
        assert_eq!(substitution("IT=$(aws kinesis get-shard-iterator --stream-name Foo --query 'ShardIterator')"), Some(("IT", "kinesis get-shard-iterator --stream-name Foo --query 'ShardIterator'")));
        assert_eq!(substitution("kinesis list-streams"), None);
        let vars = [("IT".to_string(), "\"AAA=\"".to_string())].into_iter().collect();
        assert_eq!(expand_dollars(&["--shard-iterator".into(), "$IT".into()], &vars).unwrap(), vec!["--shard-iterator", "\"AAA=\""]);
        assert_eq!(expand_dollars(&["$5".into()], &vars).unwrap(), vec!["$5"]);
        assert_eq!(expand_dollars(&["$NOPE".into()], &vars).unwrap_err().ename, "UndefinedVariable");
    }

    #[test]
    fn json_as_the_cli_prints_it() {
        assert_eq!(pretty(&json!({"A": [1], "B": {"C": null}})), "{\n    \"A\": [\n        1\n    ],\n    \"B\": {\n        \"C\": null\n    }\n}");
        assert_eq!(epoch(chrono::DateTime::from_timestamp(1_572_297_168, 0).unwrap()).to_string(), "1572297168");
        assert_eq!(pretty(&json!(epoch(chrono::DateTime::from_timestamp(1_572_297_168, 0).unwrap()))), "1572297168.0");
    }

    #[test]
    fn records_in_shorthand_and_json() {
        let short = put_entries(&["Data=blob1,PartitionKey=partitionkey1".into(), "Data=blob2,PartitionKey=partitionkey2".into()]).unwrap();
        assert_eq!((short[1].partition_key.as_str(), &short[1].data[..]), ("partitionkey2", &b"blob2"[..]));
        let long = put_entries(&[r#"[{"Data": "x", "PartitionKey": "k"}]"#.into()]).unwrap();
        assert_eq!(long[0].partition_key, "k");
        assert!(put_entries(&["Data=x".into()]).is_err());
    }
}
