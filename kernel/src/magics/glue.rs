//! `%glue`: Glue ETL jobs run on the engine — SQL jobs with arguments, runs with Glue's
//! states, retries, timeouts and concurrency limit, DPU-hours and price, metrics per node, and
//! job bookmarks.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, UInt32Array, UInt64Array};
use clap::{CommandFactory, Parser, Subcommand};
use lakebook_engine::glue::{BookmarkOption, Glue, JobRun, JobSpec, RunState, Script, WorkerType};

mod workflow;

use super::{Body, Ctx, Form, MagicSpec};
use crate::error::CellError;
use crate::render::{self, Bundle, Footer, TableOptions, batch, strings, times};

pub const SPEC: MagicSpec = MagicSpec {
    name: "glue",
    summary: "Glue ETL jobs: SQL and visual (Glue Studio) jobs, runs, retries, timeouts, job bookmarks, triggers and workflows",
    form: Form::LineAndCell,
    command: GlueArgs::command,
    // `${key}` in a job's script is a job argument, filled in when the job runs.
    body: Body::Data,
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "Glue ETL jobs: SQL and visual (Glue Studio) jobs, runs, retries, timeouts, job bookmarks, triggers and workflows",
    after_help = "A SQL job is Athena SQL (INSERT INTO … SELECT, CTAS …) run statement by statement, each a node with its metrics.\n\
                  A visual job (--type visual) is Glue Studio's graph, CodeGenConfigurationNodes JSON: catalog and S3 (JSON, CSV, Parquet) sources,\n\
                  ApplyMapping, ResolveChoice, Relationalize, DropNullFields, SelectFields, DropFields, RenameField, Filter, Join, Union,\n\
                  DropDuplicates, Aggregate, SparkSQL, and S3 targets (parquet/json/csv, partition keys, updating the Data Catalog).\n\
                  Triggers (scheduled, conditional, on demand) start jobs and crawlers; a workflow chains them and shows each run's graph.\n\
                  `${key}` in the script is the job argument key (--arg key=value on create or run), filled in when the job runs.\n\
                  With --job-bookmark-option job-bookmark-enable a run reads only the files of its source tables that are new\n\
                  since the last successful run. Runs are billed $0.44 per DPU-hour, at least a minute."
)]
pub struct GlueArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// ETL jobs: create, run, runs, describe, stop, delete, reset-bookmark, list
    #[command(subcommand)]
    Job(JobVerb),
    /// Triggers that start jobs and crawlers: create, start, stop, delete, list
    #[command(subcommand)]
    Trigger(TriggerVerb),
    /// Workflows chaining crawlers and jobs through triggers: create, run, runs, describe, stop, delete, list
    #[command(subcommand)]
    Workflow(workflow::WorkflowVerb),
}

#[derive(Debug, Subcommand)]
enum TriggerVerb {
    /// Create a trigger (≙ CreateTrigger): --type scheduled --schedule "cron(0 2 * * ? *)", conditional --when job:NAME=SUCCEEDED, or on-demand
    Create {
        name: String,
        #[arg(long = "type", value_parser = ["scheduled", "conditional", "on-demand"])]
        kind: String,
        /// Glue's six-field cron(…) in UTC (scheduled triggers)
        #[arg(long)]
        schedule: Option<String>,
        /// A condition, job:NAME=SUCCEEDED|FAILED|TIMEOUT|STOPPED or crawler:NAME=SUCCEEDED; repeat for several
        #[arg(long = "when")]
        conditions: Vec<String>,
        /// Whether all conditions or any one of them fires it
        #[arg(long, default_value = "all", value_parser = ["all", "any"])]
        logical: String,
        /// What it starts, job:NAME or crawler:NAME; repeat for several
        #[arg(long = "action", required = true)]
        actions: Vec<String>,
        /// Activate it at once (≙ StartOnCreation)
        #[arg(long)]
        start: bool,
        /// The workflow it belongs to: an on-demand or scheduled trigger starts the workflow's runs, a conditional one fires inside them
        #[arg(long)]
        workflow: Option<String>,
        /// If the trigger exists already, keep it instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Activate a scheduled or conditional trigger; fire an on-demand one (≙ StartTrigger)
    Start { name: String },
    /// Deactivate a trigger (≙ StopTrigger)
    Stop { name: String },
    /// Delete a trigger (≙ DeleteTrigger)
    Delete { name: String },
    /// List triggers (≙ GetTriggers)
    List,
}

#[derive(Debug, Subcommand)]
enum JobVerb {
    /// Create a job; %%glue job create NAME takes the SQL (or, --type visual, the graph's JSON) as the cell body (≙ CreateJob)
    Create {
        name: String,
        /// sql (Athena SQL statements) or visual (a Glue Studio graph: CodeGenConfigurationNodes JSON)
        #[arg(long = "type", default_value = "sql", value_parser = ["sql", "visual"])]
        kind: String,
        /// A .sql script or a visual job's .json graph in the lake, read when a run starts (≙ Command.ScriptLocation)
        #[arg(long)]
        script_location: Option<String>,
        /// The database unqualified table names are in
        #[arg(long, default_value = "default")]
        database: String,
        /// A default argument, key=value (the script's ${key}); repeat for several (≙ DefaultArguments)
        #[arg(long = "arg")]
        args: Vec<String>,
        /// job-bookmark-enable, job-bookmark-disable or job-bookmark-pause
        #[arg(long, default_value = "job-bookmark-disable")]
        job_bookmark_option: String,
        /// Minutes a run may take before it ends TIMEOUT (Glue's default: 2880)
        #[arg(long)]
        timeout: Option<u32>,
        /// Times a failed run is retried, each as a new run
        #[arg(long, default_value_t = 0)]
        max_retries: u32,
        /// Runs of this job at once (≙ ExecutionProperty.MaxConcurrentRuns)
        #[arg(long)]
        max_concurrent_runs: Option<u32>,
        /// Standard, G.025X, G.1X, G.2X, G.4X or G.8X
        #[arg(long, default_value = "G.1X")]
        worker_type: String,
        #[arg(long)]
        number_of_workers: Option<u32>,
        #[arg(long)]
        glue_version: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// If the job exists already, keep it instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Start a run and follow it with live progress; --no-wait returns at once (≙ StartJobRun)
    Run {
        name: String,
        /// An argument for this run, key=value, over the job's defaults; repeat for several
        #[arg(long = "arg")]
        args: Vec<String>,
        /// This run's bookmark option, over the job's
        #[arg(long)]
        job_bookmark_option: Option<String>,
        /// Start the run and return its id without waiting
        #[arg(long)]
        no_wait: bool,
    },
    /// A job's runs, newest first (≙ GetJobRuns)
    Runs { name: String },
    /// A job, its bookmark, and one run's nodes (the latest, or RUN_ID) (≙ GetJob, GetJobBookmark, GetJobRun)
    Describe { name: String, run_id: Option<String> },
    /// Stop a running run: it ends STOPPED and its bookmark does not move (≙ BatchStopJobRun)
    Stop { name: String, run_id: String },
    /// Delete a job with its runs and bookmark (≙ DeleteJob)
    Delete { name: String },
    /// Forget what the job's bookmark has processed (≙ ResetJobBookmark)
    ResetBookmark { name: String },
    /// List jobs (≙ GetJobs)
    List,
}

pub async fn run(args: GlueArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let glue = engine.glue().clone();
    let out = ctx.out;
    let verb = match args.verb {
        Verb::Job(verb) => verb,
        Verb::Trigger(verb) => {
            if ctx.body.is_some() {
                return Err(CellError::usage("`%glue trigger` takes no cell body"));
            }
            return trigger(&engine, verb, out).await;
        }
        Verb::Workflow(verb) => {
            if ctx.body.is_some() {
                return Err(CellError::usage("`%glue workflow` takes no cell body"));
            }
            return workflow::run(&glue, verb, out).await;
        }
    };
    if ctx.body.is_some() && !matches!(verb, JobVerb::Create { .. }) {
        return Err(CellError::usage("only `%%glue job create NAME` takes a cell body (the job's SQL or graph)"));
    }
    match verb {
        JobVerb::Create {
            name,
            kind,
            script_location,
            database,
            args,
            job_bookmark_option,
            timeout,
            max_retries,
            max_concurrent_runs,
            worker_type,
            number_of_workers,
            glue_version,
            description,
            if_not_exists,
        } => {
            if if_not_exists && glue.job(&name).is_ok() {
                super::kept(out, &format!("job {name}"));
                return Ok(None);
            }
            let sql = ctx.body.map(str::to_string);
            let spec = JobSpec {
                name,
                description,
                sql,
                script_location,
                database,
                visual: kind == "visual",
                default_arguments: arguments(&args)?,
                bookmark: BookmarkOption::parse(&job_bookmark_option)?,
                timeout_minutes: timeout,
                max_retries,
                max_concurrent_runs,
                worker_type: WorkerType::parse(&worker_type)?,
                number_of_workers,
                glue_version,
            };
            let job = glue.create_job(spec)?;
            let what = match &job.script {
                Script::Sql { database, .. } => format!("SQL in {database}"),
                Script::Visual { graph, location: None } => format!("visual, {} node(s)", lakebook_engine::glue::graph::parse(graph)?.nodes.len()),
                Script::Visual { location: Some(l), .. } => format!("visual, from {l}"),
            };
            out.stdout(&format!(
                "Created job {} ({what}; {} × {}, timeout {} min, {} retr{}, {}).\n",
                job.name,
                job.number_of_workers,
                job.worker_type,
                job.timeout_minutes,
                job.max_retries,
                if job.max_retries == 1 { "y" } else { "ies" },
                job.bookmark
            ));
            Ok(None)
        }
        JobVerb::Run { name, args, job_bookmark_option, no_wait } => {
            let bookmark = job_bookmark_option.as_deref().map(BookmarkOption::parse).transpose()?;
            let started = glue.start_job_run(&name, arguments(&args)?, bookmark)?;
            if no_wait {
                out.stdout(&format!("Started run {} of {name}.\n", started.id));
                return Ok(Some(render::text(&started.id)));
            }
            follow(&glue, &name, &started.id, ctx.out).await
        }
        JobVerb::Runs { name } => Ok(Some(runs_table(&glue.job_runs(&name)?)?)),
        JobVerb::Describe { name, run_id } => {
            let job = glue.job(&name)?;
            let (kind, sql, location) = match &job.script {
                Script::Sql { sql, location, database } => (format!("SQL job in {database}"), sql, location),
                Script::Visual { graph, location } => ("visual job".to_string(), graph, location),
            };
            let mut text = format!(
                "{} — {kind}; {} × {} (Glue {}), timeout {} min, max retries {}, max concurrent runs {}, {}\n",
                job.name, job.number_of_workers, job.worker_type, job.glue_version, job.timeout_minutes, job.max_retries, job.max_concurrent_runs, job.bookmark
            );
            if !job.default_arguments.is_empty() {
                let args: Vec<String> = job.default_arguments.iter().map(|(k, v)| format!("--{k} {v}")).collect();
                text.push_str(&format!("default arguments: {}\n", args.join(" ")));
            }
            match location {
                Some(location) => text.push_str(&format!("script: {location}\n")),
                None => text.push_str(&format!("script:\n{}\n", sql.trim_end())),
            }
            match glue.bookmark(&name)? {
                Some(b) => {
                    let files: usize = b.sources.values().map(BTreeMap::len).sum();
                    let sources: Vec<String> = b.sources.iter().map(|(s, f)| format!("{s} ({} file(s))", f.len())).collect();
                    text.push_str(&format!("bookmark: version {}, {files} file(s) processed: {}\n", b.version, sources.join(", ")));
                }
                None => text.push_str("bookmark: none yet\n"),
            }
            out.stdout(&text);
            let runs = glue.job_runs(&name)?;
            let run = match run_id {
                Some(id) => Some(glue.job_run(&name, &id)?),
                None => runs.first().cloned(),
            };
            match run {
                Some(run) => Ok(Some(nodes_table(&run)?)),
                None => Ok(None),
            }
        }
        JobVerb::Stop { name, run_id } => {
            let run = glue.stop_job_run(&name, &run_id)?;
            out.stdout(&format!("Run {} of {name} is {}.\n", run.id, run.state));
            Ok(None)
        }
        JobVerb::Delete { name } => {
            glue.delete_job(&name)?;
            out.stdout(&format!("Deleted job {name}, its runs and its bookmark.\n"));
            Ok(None)
        }
        JobVerb::ResetBookmark { name } => {
            glue.reset_bookmark(&name)?;
            out.stdout(&format!("The bookmark of {name} is reset: its next run reads everything.\n"));
            Ok(None)
        }
        JobVerb::List => {
            let jobs = glue.jobs();
            let runs: Vec<Option<JobRun>> = jobs.iter().map(|j| glue.job_runs(&j.name).ok().and_then(|r| r.into_iter().next())).collect();
            let table = batch(vec![
                ("name", strings(jobs.iter().map(|j| j.name.clone()))),
                ("worker_type", strings(jobs.iter().map(|j| j.worker_type.to_string()))),
                ("workers", Arc::new(UInt32Array::from_iter_values(jobs.iter().map(|j| j.number_of_workers))) as ArrayRef),
                ("bookmark", strings(jobs.iter().map(|j| j.bookmark.to_string()))),
                ("last_run", strings(runs.iter().map(|r| r.as_ref().map(|r| r.state.to_string()).unwrap_or_default()))),
                ("created", times(jobs.iter().map(|j| Some(j.created_on.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
    }
}

async fn trigger(engine: &lakebook_engine::Lakebook, verb: TriggerVerb, out: &crate::output::Output) -> Result<Option<Bundle>, CellError> {
    use lakebook_engine::glue::triggers::{Condition, Target, TriggerSpec, TriggerType};
    let glue = engine.glue();
    match verb {
        TriggerVerb::Create { name, kind, schedule, conditions, logical, actions, start, workflow, if_not_exists } => {
            if if_not_exists && glue.triggers().iter().any(|t| t.name == name) {
                super::kept(out, &format!("trigger {name}"));
                return Ok(None);
            }
            let kind = match kind.as_str() {
                "scheduled" => TriggerType::Scheduled,
                "conditional" => TriggerType::Conditional,
                _ => TriggerType::OnDemand,
            };
            let conditions = conditions.iter().map(|c| Condition::parse(c)).collect::<Result<Vec<_>, _>>()?;
            let actions = actions.iter().map(|a| Target::parse(a)).collect::<Result<Vec<_>, _>>()?;
            let t = glue.create_trigger(TriggerSpec { schedule, all: logical == "all", conditions, start, workflow, ..TriggerSpec::new(&name, kind, actions) })?;
            out.stdout(&format!("Created trigger {} ({}, {}).\n", t.name, lakebook_engine::serde_name(&t.kind), lakebook_engine::serde_name(&t.state)));
            Ok(None)
        }
        TriggerVerb::Start { name } => {
            for line in glue.start_trigger(&name, engine.lake()).await? {
                out.stdout(&format!("{line}\n"));
            }
            out.stdout(&format!("Trigger {name} started.\n"));
            Ok(None)
        }
        TriggerVerb::Stop { name } => {
            glue.stop_trigger(&name)?;
            out.stdout(&format!("Trigger {name} is DEACTIVATED.\n"));
            Ok(None)
        }
        TriggerVerb::Delete { name } => {
            glue.delete_trigger(&name)?;
            out.stdout(&format!("Deleted trigger {name}.\n"));
            Ok(None)
        }
        TriggerVerb::List => {
            let all = glue.triggers();
            let when = |t: &lakebook_engine::glue::triggers::Trigger| match &t.schedule {
                Some(s) => s.clone(),
                None => t.conditions.iter().map(|c| format!("{}={}", c.watch, c.state)).collect::<Vec<_>>().join(if t.all { " AND " } else { " OR " }),
            };
            let table = batch(vec![
                ("name", strings(all.iter().map(|t| t.name.clone()))),
                ("type", strings(all.iter().map(|t| lakebook_engine::serde_name(&t.kind)))),
                ("state", strings(all.iter().map(|t| lakebook_engine::serde_name(&t.state)))),
                ("when", strings(all.iter().map(when))),
                ("actions", strings(all.iter().map(|t| t.actions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")))),
                ("fired", Arc::new(UInt32Array::from_iter_values(all.iter().map(|t| t.fired))) as ArrayRef),
                ("workflow", strings(all.iter().map(|t| t.workflow.clone().unwrap_or_default()))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
    }
}

/// `key=value` pairs (a leading `--` on the key is Glue's spelling and is dropped).
fn arguments(pairs: &[String]) -> Result<BTreeMap<String, String>, CellError> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| CellError::usage(format!("--arg {pair:?}: write key=value")))?;
        out.insert(key.trim_start_matches("--").to_string(), value.to_string());
    }
    Ok(out)
}

/// Stops the run if the cell is interrupted while it follows it.
struct StopOnDrop<'a> {
    glue: &'a Glue,
    job: &'a str,
    id: Option<String>,
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let current = self.glue.job_runs(self.job).ok().and_then(|runs| runs.into_iter().find(|r| !r.state.is_finished() && r.id.starts_with(&id)));
            if let Some(run) = current {
                let _ = self.glue.stop_job_run(self.job, &run.id);
            }
        }
    }
}

/// Follows a run (and its retries) with one live display, then shows its nodes; a run that
/// does not succeed is the cell's error.
async fn follow(glue: &Arc<Glue>, name: &str, id: &str, out: &crate::output::Output) -> Result<Option<Bundle>, CellError> {
    let mut guard = StopOnDrop { glue, job: name, id: Some(id.to_string()) };
    let progress = out.progress(render::text(&format!("run {id} of {name}: STARTING")));
    let attempts = glue
        .wait_job_run(name, id, |run| {
            progress.update(render::text(&progress_text(run)));
        })
        .await?;
    guard.id = None;
    let last = attempts.last().ok_or_else(|| CellError::bug("a run without attempts"))?;
    let retries = if attempts.len() > 1 { format!(" after {} attempts", attempts.len()) } else { String::new() };
    progress.finish(&format!(
        "run {} of {name}: {}{retries} · {} read · {} written · {:.4} DPU-hours · ${:.4}",
        last.id,
        last.state,
        plural(last.records_read(), "record"),
        plural(last.records_written(), "record"),
        attempts.iter().map(JobRun::dpu_hours).sum::<f64>(),
        attempts.iter().map(JobRun::cost_usd).sum::<f64>()
    ));
    if attempts.len() > 1 {
        out.display(runs_table(&attempts.iter().rev().cloned().collect::<Vec<_>>())?);
    }
    let nodes = nodes_table(last)?;
    if last.state == RunState::Succeeded {
        return Ok(Some(nodes));
    }
    out.display(nodes);
    let ename = if last.state == RunState::Timeout { "JobRunTimeout" } else { "JobRunFailed" };
    Err(CellError::new(ename, format!("run {} of {name} {}: {}", last.id, last.state, last.error_message.as_deref().unwrap_or("stopped"))))
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn progress_text(run: &JobRun) -> String {
    let mut text = format!("run {} of {}: {}", run.id, run.job_name, run.state);
    if run.attempt > 0 {
        text.push_str(&format!(" (retry {})", run.attempt));
    }
    for node in &run.nodes {
        text.push_str(&format!("\n  {} {}: {} read, {} written", node.state, node.node, plural(node.records_read, "record"), plural(node.records_written, "record")));
    }
    text
}

fn runs_table(runs: &[JobRun]) -> Result<Bundle, CellError> {
    let table = batch(vec![
        ("id", strings(runs.iter().map(|r| r.id.clone()))),
        ("attempt", Arc::new(UInt32Array::from_iter_values(runs.iter().map(|r| r.attempt))) as ArrayRef),
        ("state", strings(runs.iter().map(|r| r.state.to_string()))),
        ("started", times(runs.iter().map(|r| Some(r.started_on.timestamp_millis())))),
        ("execution_s", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.execution_seconds))) as ArrayRef),
        ("records_read", Arc::new(UInt64Array::from_iter_values(runs.iter().map(JobRun::records_read))) as ArrayRef),
        ("records_written", Arc::new(UInt64Array::from_iter_values(runs.iter().map(JobRun::records_written))) as ArrayRef),
        ("dpu_hours", Arc::new(Float64Array::from_iter_values(runs.iter().map(|r| (r.dpu_hours() * 1e4).round() / 1e4))) as ArrayRef),
        ("cost_usd", Arc::new(Float64Array::from_iter_values(runs.iter().map(|r| (r.cost_usd() * 1e4).round() / 1e4))) as ArrayRef),
        ("error", strings(runs.iter().map(|r| r.error_message.clone().unwrap_or_default()))),
    ])?;
    Ok(render::table(&table, &TableOptions { max_rows: 100, ..TableOptions::plain() }, &Footer::default()))
}

fn nodes_table(run: &JobRun) -> Result<Bundle, CellError> {
    let nodes = &run.nodes;
    let table = batch(vec![
        ("node", strings(nodes.iter().map(|n| n.node.clone()))),
        ("state", strings(nodes.iter().map(|n| n.state.clone()))),
        ("records_read", Arc::new(UInt64Array::from_iter_values(nodes.iter().map(|n| n.records_read))) as ArrayRef),
        ("bytes_read", Arc::new(UInt64Array::from_iter_values(nodes.iter().map(|n| n.bytes_read))) as ArrayRef),
        ("records_written", Arc::new(UInt64Array::from_iter_values(nodes.iter().map(|n| n.records_written))) as ArrayRef),
        ("elapsed_ms", Arc::new(UInt64Array::from_iter_values(nodes.iter().map(|n| n.millis))) as ArrayRef),
    ])?;
    let footer = Footer { extra: vec![format!("run {} {}", run.id, run.state)], ..Footer::default() };
    Ok(render::table(&table, &TableOptions::plain(), &footer))
}
