//! `%emr`: EMR-style clusters of master, core and task nodes that run Hadoop-streaming
//! MapReduce steps and SQL steps over the lake, with live progress, Hadoop's counters, task
//! logs and node loss.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, UInt32Array, UInt64Array};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use lakebook_engine::clock::parse_duration;
use lakebook_engine::emr::{
    ActionOnFailure, Cluster, ClusterConfig, LossTrigger, Market, NodeKind, Phase, SqlStep, Step, StepConfig, StepKind, StepProgress, StepState,
    StreamingStep,
};
use lakebook_engine::{serde_name, Lakebook, S3Uri};

use crate::render::{batch, strings, times};
use super::{Body, Ctx, Form, MagicSpec, Units, parse_size};
use crate::output::{Output, Progress};
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "emr",
    summary: "EMR-style clusters: Hadoop-streaming MapReduce and SQL steps over the lake",
    form: Form::LineAndCell,
    command: EmrArgs::command,
    body: Body::SqlFor(&["step"]),
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "EMR-style clusters: Hadoop-streaming MapReduce and SQL steps over the lake",
    after_help = "A cluster's core and task nodes are parallel worker slots on this machine (--slots per node).\n\
                  Cluster states follow the engine clock: STARTING (60 s) → BOOTSTRAPPING (30 s) → WAITING / RUNNING;\n\
                  `%emr step` waits for the cluster (on the manual clock it advances the clock to that moment) and runs the step.\n\
                  Streaming steps run real executables: `python3 mapper.py` with --files s3://…/mapper.py, `cat`, `wc -l` …"
)]
pub struct EmrArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StepType {
    Streaming,
    Sql,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnFailure {
    Continue,
    CancelAndWait,
    TerminateCluster,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MarketArg {
    OnDemand,
    Spot,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a cluster (≙ RunJobFlow)
    Create {
        name: String,
        /// Core nodes (compute and storage)
        #[arg(long, default_value_t = 2)]
        core: u32,
        /// Task nodes (compute only)
        #[arg(long, default_value_t = 0)]
        task: u32,
        /// How task nodes are bought
        #[arg(long, value_enum, default_value = "on-demand")]
        task_market: MarketArg,
        /// Map/reduce slots per core or task node
        #[arg(long, default_value_t = 2)]
        slots: u32,
        /// Terminate once the last step has ended
        #[arg(long)]
        auto_terminate: bool,
        /// Terminate after this long without a step, e.g. 1h
        #[arg(long)]
        idle_timeout: Option<String>,
        /// If a cluster of this name is running already, keep it instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
        /// The EMR release, e.g. emr-5.36.0: before emr-7 the nodes' /usr/bin/python is Python 2.7
        #[arg(long, default_value = lakebook_engine::emr::DEFAULT_RELEASE_LABEL)]
        release_label: String,
    },
    /// List clusters (≙ ListClusters)
    List,
    /// A cluster's state, nodes and steps (≙ DescribeCluster, ListInstances, ListSteps)
    Describe { name: String },
    /// Terminate a cluster; pending steps are cancelled (≙ TerminateJobFlows)
    Terminate { name: String },
    /// Add a step and run it, with live progress (≙ AddJobFlowSteps; %%emr step --type sql takes the SQL as the body)
    Step {
        /// The cluster (name or id)
        name: String,
        #[arg(long = "type", value_enum, default_value = "streaming")]
        kind: StepType,
        /// The step's name (default: the step type)
        #[arg(long = "name")]
        step_name: Option<String>,
        /// Mapper command (streaming)
        #[arg(long)]
        mapper: Option<String>,
        /// Reducer command (streaming; omit with --reducers 0 for a map-only job)
        #[arg(long)]
        reducer: Option<String>,
        /// Combiner command (streaming)
        #[arg(long)]
        combiner: Option<String>,
        /// Number of reduce tasks (0 = map-only)
        #[arg(long, default_value_t = 1)]
        reducers: u32,
        /// Input: s3://bucket/prefix/ or an object; repeat for several
        #[arg(long)]
        input: Vec<String>,
        /// Output location (must not exist) for streaming steps; where a SQL step writes Parquet
        #[arg(long)]
        output: Option<String>,
        /// Scripts shipped from the lake into each task's working directory; repeat for several
        #[arg(long)]
        files: Vec<String>,
        /// Split size, e.g. 64MB (default: the 128 MB block size)
        #[arg(long)]
        split_size: Option<String>,
        /// SQL step: register the output as this catalog table (DB.TABLE)
        #[arg(long)]
        table: Option<String>,
        /// SQL step: the statement (or the %%emr step cell body)
        #[arg(long)]
        sql: Option<String>,
        #[arg(long, value_enum, default_value = "continue")]
        action_on_failure: OnFailure,
        /// Queue the step without running it (runs with the next `%emr step` or `%emr run`)
        #[arg(long)]
        no_wait: bool,
    },
    /// Run the cluster's pending steps
    Run { name: String },
    /// The cluster's steps (≙ ListSteps)
    Steps { name: String },
    /// Cancel a pending step (≙ CancelSteps)
    Cancel { name: String, step: String },
    /// Lose a core or task node, now or after N map tasks of the next step have completed
    LoseNode {
        name: String,
        #[arg(long, conflicts_with = "core", required_unless_present = "core")]
        task: bool,
        #[arg(long)]
        core: bool,
        /// Strike inside the next streaming step once this many map tasks have completed
        #[arg(long)]
        after_maps: Option<u32>,
    },
    /// The stderr of a step's task attempts (≙ the step's container logs)
    Logs { name: String, step: String },
}

pub async fn run(args: EmrArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let out = ctx.out;
    let emr = engine.emr();
    if ctx.body.is_some() && !matches!(args.verb, Verb::Step { kind: StepType::Sql, .. }) {
        return Err(CellError::usage("only `%%emr step CLUSTER --type sql` takes a cell body (the SQL)"));
    }
    match args.verb {
        Verb::Create { name, core, task, task_market, slots, auto_terminate, idle_timeout, if_not_exists, release_label } => {
            if if_not_exists && emr.clusters().iter().any(|c| c.name == name && !c.state.is_terminated()) {
                super::kept(out, &format!("cluster {name}"));
                return Ok(None);
            }
            let config = ClusterConfig {
                core,
                task,
                task_market: match task_market {
                    MarketArg::OnDemand => Market::OnDemand,
                    MarketArg::Spot => Market::Spot,
                },
                slots_per_node: slots,
                auto_terminate,
                idle_timeout: idle_timeout.map(|t| parse_duration(&t)).transpose()?,
                release_label,
            };
            let c = emr.create_cluster(&name, config)?;
            out.stdout(&format!(
                "Created cluster {} ({}, {}): 1 master, {} core, {} task node(s), {} slot(s); {}.\n",
                c.name,
                c.id,
                c.config.release_label,
                core,
                task,
                c.slots(),
                state_text(&c)
            ));
            Ok(None)
        }
        Verb::List => {
            let all = emr.clusters();
            let table = batch(vec![
                ("id", strings(all.iter().map(|c| c.id.clone()))),
                ("name", strings(all.iter().map(|c| c.name.clone()))),
                ("state", strings(all.iter().map(|c| serde_name(&c.state)))),
                ("core", Arc::new(UInt32Array::from_iter_values(all.iter().map(|c| c.group_size(NodeKind::Core) as u32))) as ArrayRef),
                ("task", Arc::new(UInt32Array::from_iter_values(all.iter().map(|c| c.group_size(NodeKind::Task) as u32)))),
                ("steps", Arc::new(UInt32Array::from_iter_values(all.iter().map(|c| c.steps.len() as u32)))),
                ("created", times(all.iter().map(|c| Some(c.created.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
        Verb::Describe { name } => {
            let c = emr.describe(&name)?;
            out.stdout(&format!("{} ({}): {}\n", c.name, c.id, state_text(&c)));
            out.display(nodes_table(&c)?);
            Ok(Some(steps_table(&c.steps)?))
        }
        Verb::Terminate { name } => {
            let c = emr.terminate(&name)?;
            out.stdout(&format!("Terminating cluster {} ({}): {}.\n", c.name, c.id, state_text(&c)));
            Ok(None)
        }
        Verb::Steps { name } => Ok(Some(steps_table(&emr.steps(&name)?)?)),
        Verb::Cancel { name, step } => {
            let s = emr.cancel_step(&name, &step)?;
            out.stdout(&format!("Step {} ({}) is {}.\n", s.name, s.id, serde_name(&s.state)));
            Ok(None)
        }
        Verb::LoseNode { name, task, core: _, after_maps } => {
            let kind = if task { NodeKind::Task } else { NodeKind::Core };
            let when = after_maps.map_or(LossTrigger::Now, LossTrigger::AfterMaps);
            match emr.lose_node(&name, kind, when)? {
                Some(node) => out.stdout(&format!("Lost {} node {node}.\n", serde_name(&kind).to_lowercase())),
                None => out.stdout(&format!(
                    "A {} node will be lost once {} map task(s) of the next streaming step have completed.\n",
                    serde_name(&kind).to_lowercase(),
                    after_maps.unwrap_or(0)
                )),
            }
            Ok(None)
        }
        Verb::Logs { name, step } => {
            let logs = emr.logs(&name, &step)?;
            let table = batch(vec![
                ("task_attempt", strings(logs.iter().map(|l| l.task_attempt.clone()))),
                ("node", strings(logs.iter().map(|l| l.node.clone()))),
                ("stderr", strings(logs.iter().map(|l| l.stderr_tail.clone()))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions { max_rows: 200, ..TableOptions::plain() }, &Footer::default())))
        }
        Verb::Run { name } => run_steps(&engine, &name, out).await,
        Verb::Step {
            name,
            kind,
            step_name,
            mapper,
            reducer,
            combiner,
            reducers,
            input,
            output,
            files,
            split_size,
            table,
            sql,
            action_on_failure,
            no_wait,
        } => {
            let kind = match kind {
                StepType::Streaming => {
                    if sql.is_some() || table.is_some() {
                        return Err(CellError::usage("--sql and --table are for --type sql steps"));
                    }
                    let mapper = mapper.ok_or_else(|| CellError::usage("a streaming step needs --mapper CMD (e.g. --mapper 'python3 mapper.py')"))?;
                    if input.is_empty() {
                        return Err(CellError::usage("a streaming step needs --input s3://bucket/prefix/"));
                    }
                    let output = output.ok_or_else(|| CellError::usage("a streaming step needs --output s3://bucket/prefix/ (a location that does not exist yet)"))?;
                    if reducers > 0 && reducer.is_none() {
                        return Err(CellError::usage("give --reducer CMD, or --reducers 0 for a map-only job"));
                    }
                    let input = input.iter().map(|u| S3Uri::parse(u)).collect::<Result<Vec<_>, _>>()?;
                    let mut step = StreamingStep::new(mapper, reducer.as_deref(), input, S3Uri::parse(&output)?);
                    step.combiner = combiner;
                    step.reducers = reducers;
                    step.files = files.iter().map(|u| S3Uri::parse(u)).collect::<Result<_, _>>()?;
                    step.split_size = match split_size.map(|s| parse_size(&s, Units::Binary)).transpose()? {
                        Some(0) => return Err(CellError::usage("--split-size must be more than 0")),
                        size => size,
                    };
                    StepKind::Streaming(step)
                }
                StepType::Sql => {
                    if mapper.is_some() || reducer.is_some() || combiner.is_some() || !input.is_empty() || !files.is_empty() {
                        return Err(CellError::usage("--mapper/--reducer/--combiner/--input/--files are for --type streaming steps"));
                    }
                    let sql = match (ctx.body.map(str::trim).filter(|b| !b.is_empty()), sql) {
                        (Some(_), Some(_)) => return Err(CellError::usage("give the SQL either as --sql or as the %%emr step body, not both")),
                        (Some(body), None) => body.to_string(),
                        (None, Some(sql)) => sql,
                        (None, None) => return Err(CellError::usage("a SQL step needs its statement: --sql '…' or a %%emr step CLUSTER --type sql cell")),
                    };
                    StepKind::Sql(SqlStep { sql, output: output.map(|o| S3Uri::parse(&o)).transpose()?, table })
                }
            };
            let default_name = match &kind {
                StepKind::Streaming(_) | StepKind::Refused { .. } => "Streaming program",
                StepKind::Sql(_) => "SQL",
            };
            let config = StepConfig {
                name: step_name.unwrap_or_else(|| default_name.to_string()),
                action_on_failure: match action_on_failure {
                    OnFailure::Continue => ActionOnFailure::Continue,
                    OnFailure::CancelAndWait => ActionOnFailure::CancelAndWait,
                    OnFailure::TerminateCluster => ActionOnFailure::TerminateCluster,
                },
                kind,
            };
            let step = emr.add_step(&name, config)?;
            if no_wait {
                out.stdout(&format!("Added step {} ({}): PENDING.\n", step.name, step.id));
                return Ok(None);
            }
            run_steps(&engine, &name, out).await
        }
    }
}

/// Runs the pending steps with a live progress line; shows each step's outcome and returns
/// the last one's counters. A failed step is the cell's error (so a batch run stops there).
async fn run_steps(engine: &Lakebook, cluster: &str, out: &Output) -> Result<Option<Bundle>, CellError> {
    let started = Instant::now();
    let mut progress: Option<Progress> = None;
    let mut on_progress = |p: &StepProgress| {
        let bundle = render::progress(&progress_label(p), progress_fraction(p));
        match &progress {
            Some(live) => live.update(bundle),
            None => progress = Some(out.progress(bundle)),
        }
    };
    let pending: Vec<String> = engine.emr().steps(cluster)?.into_iter().filter(|s| s.state == StepState::Pending).map(|s| s.id).collect();
    let ran = engine.emr().run_pending(cluster, engine.sql(), &mut on_progress).await?;
    let elapsed = started.elapsed();
    // steps that an ActionOnFailure cancelled (or terminated with the cluster) did not run
    let skipped: Vec<Step> = engine.emr().steps(cluster)?.into_iter().filter(|s| pending.contains(&s.id) && !ran.iter().any(|r| r.id == s.id)).collect();
    let summary = if ran.is_empty() && skipped.is_empty() {
        format!("{cluster}: no pending steps")
    } else {
        ran.iter().chain(&skipped).map(step_line).collect::<Vec<_>>().join("\n")
    };
    match progress {
        Some(p) => p.finish(&summary),
        None => out.stdout(&format!("{summary}\n")),
    }
    if let Some(failed) = ran.iter().find(|s| s.state == StepState::Failed) {
        let c = engine.emr().describe(cluster)?;
        let reason = failed.reason.as_ref().map_or("the step failed".to_string(), |r| r.message.clone());
        return Err(CellError::new("StepFailed", format!("step {} ({}) FAILED: {reason}", failed.name, failed.id))
            .with_detail(format!("`%emr logs {} {}` shows every task attempt's stderr; the cluster is {}", c.name, failed.id, state_text(&c))));
    }
    let Some(last) = ran.last() else { return Ok(None) };
    Ok(Some(match last.kind {
        StepKind::Streaming(_) | StepKind::Refused { .. } => counters_table(last, elapsed)?,
        StepKind::Sql(_) => executions_table(engine, last, elapsed)?,
    }))
}

fn progress_label(p: &StepProgress) -> String {
    match p.phase {
        Phase::Provisioning => format!("{}: waiting for the cluster {}", p.step_name, p.cluster_id),
        Phase::Sql => format!("{}: running SQL", p.step_name),
        Phase::Map | Phase::Reduce | Phase::Commit | Phase::Done => format!(
            "{}: map {}/{} · shuffle {} · reduce {}/{}",
            p.step_name,
            p.maps_done,
            p.maps_total,
            lakebook_engine::human_bytes(p.shuffle_bytes),
            p.reduces_done,
            p.reduces_total
        ),
    }
}

fn progress_fraction(p: &StepProgress) -> f64 {
    let total = f64::from(p.maps_total + p.reduces_total);
    if total == 0.0 { 0.0 } else { f64::from(p.maps_done + p.reduces_done) / total }
}

/// One line per step that ran; a failed step's reason is the cell's error instead.
fn step_line(s: &Step) -> String {
    let reason = match &s.reason {
        Some(r) if s.state != StepState::Failed => format!(": {}", r.message),
        _ => String::new(),
    };
    let output = match &s.kind {
        StepKind::Streaming(st) => format!(" → {}", st.output),
        StepKind::Sql(sql) => sql.output.as_ref().map_or(String::new(), |o| format!(" → {o}")),
        StepKind::Refused { .. } => String::new(),
    };
    format!("step {} ({}) {}{output}{reason}", s.name, s.id, serde_name(&s.state))
}

fn counters_table(step: &Step, elapsed: std::time::Duration) -> Result<Bundle, CellError> {
    let named = step.counters.named();
    let table = batch(vec![
        ("counter", strings(named.iter().map(|(n, _)| (*n).to_string()))),
        ("value", Arc::new(UInt64Array::from_iter_values(named.iter().map(|(_, v)| *v))) as ArrayRef),
    ])?;
    let footer = Footer { elapsed: Some(elapsed), extra: vec![format!("step {} {}", step.id, serde_name(&step.state))], ..Footer::default() };
    Ok(render::table(&table, &TableOptions { max_rows: 100, ..TableOptions::plain() }, &footer))
}

/// A SQL step's statements as query executions (the same ones `%sql history` lists).
fn executions_table(engine: &Lakebook, step: &Step, elapsed: std::time::Duration) -> Result<Bundle, CellError> {
    let runs: Vec<_> = engine.sql().history().into_iter().filter(|r| step.query_ids.contains(&r.id)).collect();
    let table = batch(vec![
        ("execution_id", strings(runs.iter().map(|r| r.id.clone()))),
        ("type", strings(runs.iter().map(|r| r.statement_type.to_string()))),
        ("state", strings(runs.iter().map(|r| r.state.to_string()))),
        ("rows", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.rows))) as ArrayRef),
        ("bytes_scanned", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.bytes_scanned)))),
        ("engine_ms", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.engine_ms)))),
        ("query", strings(runs.iter().map(|r| r.query.clone()))),
        ("engine", strings(runs.iter().map(|r| r.engine.clone().unwrap_or_else(|| "local".into())))),
    ])?;
    let footer = Footer { elapsed: Some(elapsed), extra: vec![format!("step {} {}", step.id, serde_name(&step.state))], ..Footer::default() };
    Ok(render::table(&table, &TableOptions::plain(), &footer))
}

fn nodes_table(c: &Cluster) -> Result<Bundle, CellError> {
    let table = batch(vec![
        ("node", strings(c.nodes.iter().map(|n| n.id.clone()))),
        ("group", strings(c.nodes.iter().map(|n| serde_name(&n.kind)))),
        ("market", strings(c.nodes.iter().map(|n| serde_name(&n.market)))),
        ("state", strings(c.nodes.iter().map(|n| serde_name(&n.state)))),
        ("reason", strings(c.nodes.iter().map(|n| n.reason.clone().unwrap_or_default()))),
    ])?;
    Ok(render::table(&table, &TableOptions::plain(), &Footer { extra: vec![format!("{} slot(s) on live core and task nodes", c.slots())], ..Footer::default() }))
}

fn steps_table(steps: &[Step]) -> Result<Bundle, CellError> {
    let table = batch(vec![
        ("step", strings(steps.iter().map(|s| s.id.clone()))),
        ("name", strings(steps.iter().map(|s| s.name.clone()))),
        ("type", strings(steps.iter().map(|s| match s.kind {
            StepKind::Streaming(_) | StepKind::Refused { .. } => "streaming".to_string(),
            StepKind::Sql(_) => "sql".to_string(),
        }))),
        ("state", strings(steps.iter().map(|s| serde_name(&s.state)))),
        ("action_on_failure", strings(steps.iter().map(|s| serde_name(&s.action_on_failure)))),
        ("started", times(steps.iter().map(|s| s.started.map(|t| t.timestamp_millis())))),
        ("ended", times(steps.iter().map(|s| s.ended.map(|t| t.timestamp_millis())))),
        ("reason", strings(steps.iter().map(|s| s.reason.as_ref().map(|r| r.message.clone()).unwrap_or_default()))),
    ])?;
    Ok(render::table(&table, &TableOptions::plain(), &Footer::default()))
}

fn state_text(c: &Cluster) -> String {
    match &c.reason {
        Some(r) => format!("{} ({})", serde_name(&c.state), r.message),
        None => serde_name(&c.state),
    }
}

