//! `%analytics`: continuous SQL applications over streams (≙ Amazon Managed Service for Apache
//! Flink): `%%analytics create APP` with Flink-style SQL, then start / stop / describe.

use std::sync::Arc;

use arrow_array::{ArrayRef, UInt64Array};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use lakebook_engine::analytics::StartFrom;

use super::{Body, Ctx, Form, MagicSpec};
use crate::error::CellError;
use crate::render::chart::{self, ChartArgs};
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
                  INTERVAL '1' MINUTE)) GROUP BY window_start, window_end, …  (HOP, CUMULATE, and\n\
                  SESSION(TABLE clicks PARTITION BY user_id, DESCRIPTOR(ts), INTERVAL '30' SECOND) too).\n\
                  Sinks may also be streams ('connector' = 'kinesis') or Firehose streams ('connector' = 'firehose',\n\
                  'delivery-stream' = 'NAME'); a filesystem table no INSERT writes is reference data to join.\n\
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
    /// The latest result rows (of the first INSERT's sink, or --sink), updated in place with
    /// --follow while the application runs (Flink Studio's live view)
    Peek {
        name: String,
        /// Which sink's rows (the INSERT's target table)
        #[arg(long)]
        sink: Option<String>,
        /// Keep the display updated for this long (e.g. 30s; the system clock only)
        #[arg(long)]
        follow: Option<String>,
        /// Show the last N rows (default 20)
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        chart: ChartArgs,
    },
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
        Verb::Peek { name, sink, follow, limit, chart } => {
            let follow = follow.map(|f| lakebook_engine::clock::parse_duration(&f)).transpose()?;
            if follow.is_some() && engine.clock().mode() == lakebook_engine::ClockMode::Manual {
                return Err(CellError::new(
                    "InvalidArgumentException",
                    "--follow waits for results on the system clock; on the manual clock they change only with `%clock advance`, so peek after advancing",
                ));
            }
            let spec = chart.spec(Some(format!("{name} (latest results)")))?;
            // The display and how many rows the sink has shown so far.
            let view = |include_plotly: bool| -> Result<(Bundle, usize), CellError> {
                let (target, rows) = analytics.peek(&name, sink.as_deref())?;
                let Some(rows) = rows else {
                    return Ok((render::text(&format!("{name}: no results in {target} yet (status {})", analytics.describe(&name)?.app.status)), 0));
                };
                let total = rows.num_rows();
                let last = rows.slice(total.saturating_sub(limit), total.min(limit));
                let footer = Footer { extra: vec![format!("latest of {target}"), format!("{} row(s) emitted in all", analytics.describe(&name)?.app.records_out)], ..Footer::default() };
                Ok(match &spec {
                    Some(spec) => (chart::chart(spec, &last, include_plotly)?, total),
                    None => (render::table(&last, &TableOptions::plain(), &footer), total),
                })
            };
            let include_plotly = spec.is_some() && !ctx.state.plotly_loaded;
            let (first, _) = view(include_plotly)?;
            if spec.is_some() {
                ctx.state.plotly_loaded = true;
            }
            let Some(follow) = follow else { return Ok(Some(first)) };
            let live = out.progress(first);
            let until = std::time::Instant::now() + follow;
            let mut emitted = analytics.describe(&name)?.app.records_out;
            while std::time::Instant::now() < until {
                tokio::time::sleep(std::time::Duration::from_millis(250).min(until.saturating_duration_since(std::time::Instant::now()))).await;
                let now_emitted = analytics.describe(&name)?.app.records_out;
                if now_emitted != emitted {
                    emitted = now_emitted;
                    live.update(view(false)?.0);
                }
            }
            Ok(None)
        }
        Verb::Delete { name } => {
            analytics.delete(&name)?;
            out.stdout(&format!("Deleted application {name}\n"));
            Ok(None)
        }
    }
}
