//! `%analytics`: continuous SQL applications over streams (≙ Amazon Managed Service for Apache
//! Flink): `%%analytics create APP` with Flink-style SQL, then start / stop / describe.

use std::sync::Arc;

use arrow_array::{ArrayRef, UInt64Array};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use lakebook_engine::analytics::StartFrom;

use super::{Body, Ctx, Form, MagicSpec};
use crate::error::CellError;
use crate::render::{self, Bundle, Footer, TableOptions, batch, strings, times};

pub const SPEC: MagicSpec = MagicSpec {
    name: "analytics",
    summary: "Continuous SQL applications over streams: windows, watermarks, sinks (Managed Service for Apache Flink)",
    form: Form::LineAndCell,
    command: AnalyticsArgs::command,
    body: Body::SqlFor(&["create"]),
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "Continuous SQL applications over streams: windows, watermarks, sinks (Managed Service for Apache Flink)",
    after_help = "The body of `%%analytics create APP` is Flink SQL: sources\n\
                  CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)\n\
                  WITH ('connector' = 'kinesis', 'stream' = 'clickstream', 'format' = 'json');\n\
                  sinks CREATE TABLE out (…) WITH ('connector' = 'filesystem', 'path' = 's3://bucket/prefix/', 'format' = 'json')\n\
                  or a catalog table db.table; and INSERT INTO out SELECT … FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts),\n\
                  INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, …  (HOP and CUMULATE too).\n\
                  A window fires when the watermark passes its end; later records are counted as late and dropped.\n\
                  It runs as the engine clock moves: `%clock advance 1m` on the manual clock."
)]
pub struct AnalyticsArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum From {
    TrimHorizon,
    Latest,
    Now,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create an application from the cell's SQL (≙ CreateApplication)
    Create {
        name: String,
        /// If it exists already, keep it as it is instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Start reading its streams (≙ StartApplication)
    Start {
        name: String,
        /// Start afresh from this position, without the saved state; without it, a stopped
        /// application resumes where it stopped (a first start reads from trim-horizon)
        #[arg(long, value_enum)]
        from: Option<From>,
    },
    /// Stop it (≙ StopApplication); --drain fires every open window first
    Stop {
        name: String,
        #[arg(long)]
        drain: bool,
    },
    /// Applications and their status (≙ ListApplications)
    List,
    /// Status, sources with watermark and lag, records in / out, late records (≙ DescribeApplication)
    Describe { name: String },
    /// Delete it and its state (≙ DeleteApplication)
    Delete { name: String },
}

pub async fn run(args: AnalyticsArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let analytics = engine.analytics();
    let out = ctx.out;
    match args.verb {
        Verb::Create { name, if_not_exists } => {
            if if_not_exists && analytics.list().iter().any(|a| a.name == name) {
                super::kept(out, &format!("application {name}"));
                return Ok(None);
            }
            let body = ctx.body.filter(|b| !b.trim().is_empty()).ok_or_else(|| {
                CellError::usage("`%%analytics create NAME` takes the application's SQL as the cell body")
            })?;
            let app = engine.create_analytics_application(&name, body).await?;
            out.stdout(&format!("Created application {}: {}. Start it with `%analytics start {}`.\n", app.name, app.status, app.name));
            Ok(None)
        }
        Verb::Start { name, from } => {
            let from = from.map(|from| match from {
                From::TrimHorizon => StartFrom::TrimHorizon,
                From::Latest | From::Now => StartFrom::Latest,
            });
            let app = analytics.start(&name, from).await?;
            // What is already in the streams is read at once.
            for line in engine.run_due_work().await {
                out.stdout(&format!("{line}\n"));
            }
            out.stdout(&format!("{}: {}\n", app.name, analytics.describe(&name)?.app.status));
            Ok(None)
        }
        Verb::Stop { name, drain } => {
            let app = engine.stop_analytics_application(&name, drain).await?;
            out.stdout(&format!("{}: {} ({} row(s) emitted in all)\n", app.name, app.status, app.records_out));
            Ok(None)
        }
        Verb::List => {
            let all = analytics.list();
            let table = batch(vec![
                ("application", strings(all.iter().map(|a| a.name.clone()))),
                ("status", strings(all.iter().map(|a| a.status.to_string()))),
                ("records_in", Arc::new(UInt64Array::from_iter_values(all.iter().map(|a| a.records_in))) as ArrayRef),
                ("records_out", Arc::new(UInt64Array::from_iter_values(all.iter().map(|a| a.records_out)))),
                ("created", times(all.iter().map(|a| Some(a.created.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::default(), &Footer::default())))
        }
        Verb::Describe { name } => {
            let d = analytics.describe(&name)?;
            let a = &d.app;
            let mut text = format!(
                "{}: {}\nrecords in {}, out {}, late records dropped {}, unreadable records {}; {} record(s) in open windows\nlast checkpoint: {}\n",
                a.name,
                a.status,
                a.records_in,
                a.records_out,
                a.late_records_dropped,
                a.records_unreadable,
                d.open_windows,
                a.last_checkpoint.map_or("none".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
            );
            if d.waiting > 0 {
                text.push_str(&format!("{} result row(s) wait for their stream or Firehose sink to accept them\n", d.waiting));
            }
            for (table, s) in &d.sources {
                let watermark = s
                    .watermark
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map_or("none yet".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string());
                text.push_str(&format!("source {table} (stream {}): watermark {watermark}, MillisBehindLatest {}\n", s.stream, s.millis_behind_latest));
            }
            out.stdout(&text);
            Ok(None)
        }
        Verb::Delete { name } => {
            analytics.delete(&name)?;
            out.stdout(&format!("Deleted application {name}\n"));
            Ok(None)
        }
    }
}
