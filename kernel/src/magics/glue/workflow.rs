//! `%glue workflow`: workflows chaining crawlers and jobs through triggers, runs with their
//! graph and each node's state.

use std::sync::Arc;

use arrow_array::{ArrayRef, UInt32Array};
use clap::Subcommand;
use lakebook_engine::glue::Glue;
use lakebook_engine::glue::workflows::{NodeType, Statistics, WorkflowRun, WorkflowRunStatus};

use crate::error::CellError;
use crate::render::graph::{GraphNode, graph};
use crate::render::{self, Bundle, Footer, TableOptions, batch, strings, times};

#[derive(Debug, Subcommand)]
pub enum WorkflowVerb {
    /// Create a workflow (≙ CreateWorkflow); add its triggers with %glue trigger create … --workflow NAME
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A default run property, key=value (a job reads it as ${key}); repeat for several (≙ DefaultRunProperties)
        #[arg(long = "property")]
        properties: Vec<String>,
        /// Runs of this workflow at once (≙ MaxConcurrentRuns)
        #[arg(long)]
        max_concurrent_runs: Option<u32>,
        /// If the workflow exists already, keep it instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Start a run (its start trigger fires) and follow it; --no-wait returns at once (≙ StartWorkflowRun)
    Run {
        name: String,
        /// A run property for this run, key=value, over the defaults; repeat for several
        #[arg(long = "property")]
        properties: Vec<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// A workflow's runs, newest first (≙ GetWorkflowRuns)
    Runs { name: String },
    /// A workflow and one run's graph with its nodes' states (the latest, or RUN_ID) (≙ GetWorkflow, GetWorkflowRun)
    Describe { name: String, run_id: Option<String> },
    /// Stop a run: its running jobs stop and no more triggers fire (≙ StopWorkflowRun)
    Stop { name: String, run_id: String },
    /// Delete a workflow and its triggers, not its jobs or crawlers (≙ DeleteWorkflow)
    Delete { name: String },
    /// List workflows (≙ ListWorkflows)
    List,
}

pub async fn run(glue: &Arc<Glue>, verb: WorkflowVerb, out: &crate::output::Output) -> Result<Option<Bundle>, CellError> {
    match verb {
        WorkflowVerb::Create { name, description, properties, max_concurrent_runs, if_not_exists } => {
            if if_not_exists && glue.workflow(&name).is_ok() {
                super::super::kept(out, &format!("workflow {name}"));
                return Ok(None);
            }
            glue.create_workflow(&name, &description, super::arguments(&properties)?, max_concurrent_runs)?;
            out.stdout(&format!(
                "Created workflow {name}. Add its start trigger: %glue trigger create NAME --type on-demand --workflow {name} --action crawler:…\n"
            ));
            Ok(None)
        }
        WorkflowVerb::Run { name, properties, no_wait } => {
            let started = glue.start_workflow_run(&name, super::arguments(&properties)?)?;
            if no_wait {
                out.stdout(&format!("Started run {} of workflow {name}.\n", started.id));
                return Ok(Some(render::text(&started.id)));
            }
            follow(glue, &name, &started.id, out).await
        }
        WorkflowVerb::Runs { name } => runs_table(&glue.workflow_runs(&name)?).map(Some),
        WorkflowVerb::Describe { name, run_id } => {
            let workflow = glue.workflow(&name)?;
            let mut text = name.clone();
            if !workflow.description.is_empty() {
                text.push_str(&format!(" — {}", workflow.description));
            }
            if let Some(limit) = workflow.max_concurrent_runs {
                text.push_str(&format!("; max concurrent runs {limit}"));
            }
            if !workflow.default_run_properties.is_empty() {
                let props: Vec<String> = workflow.default_run_properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
                text.push_str(&format!("; run properties {}", props.join(" ")));
            }
            out.stdout(&format!("{text}\n"));
            let run = match run_id {
                Some(id) => Some(glue.workflow_run(&name, &id)?),
                None => glue.workflow_runs(&name)?.into_iter().next(),
            };
            Ok(Some(match run {
                Some(run) => run_graph(&run),
                None => {
                    let g = glue.workflow_graph(&name)?;
                    draw(&format!("workflow {name} (not run yet)"), &g)
                }
            }))
        }
        WorkflowVerb::Stop { name, run_id } => {
            let run = glue.stop_workflow_run(&name, &run_id)?;
            out.stdout(&format!("Run {} of workflow {name} is {}.\n", run.id, run.status));
            Ok(None)
        }
        WorkflowVerb::Delete { name } => {
            glue.delete_workflow(&name)?;
            out.stdout(&format!("Deleted workflow {name} and its triggers (its jobs and crawlers are kept).\n"));
            Ok(None)
        }
        WorkflowVerb::List => {
            let all = glue.workflows();
            let last: Vec<Option<WorkflowRun>> = all.iter().map(|w| glue.workflow_runs(&w.name).ok().and_then(|r| r.into_iter().next())).collect();
            let table = batch(vec![
                ("name", strings(all.iter().map(|w| w.name.clone()))),
                ("description", strings(all.iter().map(|w| w.description.clone()))),
                ("last_run", strings(last.iter().map(|r| r.as_ref().map(|r| r.status.to_string()).unwrap_or_default()))),
                ("created", times(all.iter().map(|w| Some(w.created_on.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
    }
}

/// Stops the workflow run if the cell is interrupted while it follows it.
struct StopOnDrop<'a> {
    glue: &'a Glue,
    name: &'a str,
    id: Option<String>,
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.glue.stop_workflow_run(self.name, &id);
        }
    }
}

fn statistics_text(s: &Statistics) -> String {
    let mut parts = vec![format!("{} action{}", s.total, if s.total == 1 { "" } else { "s" })];
    for (n, what) in [(s.succeeded, "succeeded"), (s.failed, "failed"), (s.timeout, "timed out"), (s.stopped, "stopped"), (s.running, "running")] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(", ")
}

fn progress_text(run: &WorkflowRun) -> String {
    let mut text = format!("run {} of workflow {}: {} · {}", run.id, run.workflow_name, run.status, statistics_text(&run.statistics()));
    for node in run.graph.nodes.iter().filter(|n| n.kind != NodeType::Trigger && n.state.is_some()) {
        text.push_str(&format!("\n  {} {}", node.state.as_deref().unwrap_or(""), node.id));
    }
    text
}

async fn follow(glue: &Arc<Glue>, name: &str, id: &str, out: &crate::output::Output) -> Result<Option<Bundle>, CellError> {
    let mut guard = StopOnDrop { glue, name, id: Some(id.to_string()) };
    let progress = out.progress(render::text(&format!("run {id} of workflow {name}: RUNNING")));
    let run = glue.wait_workflow_run(name, id, |run| progress.update(render::text(&progress_text(run)))).await?;
    guard.id = None;
    progress.finish(&format!("run {} of workflow {name}: {} · {}", run.id, run.status, statistics_text(&run.statistics())));
    let drawn = run_graph(&run);
    match run.status {
        WorkflowRunStatus::Completed => Ok(Some(drawn)),
        _ => {
            out.display(drawn);
            Err(CellError::new("WorkflowRunFailed", format!("run {} of workflow {name} {}: {}", run.id, run.status, run.error_message.as_deref().unwrap_or("stopped"))))
        }
    }
}

fn run_graph(run: &WorkflowRun) -> Bundle {
    let title = format!(
        "workflow {} · run {} {} · {}",
        run.workflow_name,
        run.id,
        run.status,
        statistics_text(&run.statistics())
    );
    draw(&title, &run.graph)
}

fn draw(title: &str, g: &lakebook_engine::glue::workflows::Graph) -> Bundle {
    let nodes: Vec<GraphNode> = g
        .nodes
        .iter()
        .map(|n| GraphNode {
            id: n.id.clone(),
            kind: lakebook_engine::serde_name(&n.kind).to_lowercase(),
            name: match n.runs.last() {
                Some(run) => format!("{} ({}…)", n.name, &run[..run.len().min(9)]),
                None => n.name.clone(),
            },
            state: n.state.clone(),
        })
        .collect();
    let mut bundle = graph(title, &nodes, &g.edges);
    // The reasons actions failed, under the graph.
    let failures: Vec<String> = g.nodes.iter().filter_map(|n| n.error.as_ref().map(|e| format!("{}: {e}", n.id))).collect();
    if !failures.is_empty() {
        let extra = render::text(&failures.join("\n"));
        bundle = render::concat(bundle, extra);
    }
    bundle
}

fn runs_table(runs: &[WorkflowRun]) -> Result<Bundle, CellError> {
    let stats: Vec<Statistics> = runs.iter().map(WorkflowRun::statistics).collect();
    let count = |f: fn(&Statistics) -> u32| Arc::new(UInt32Array::from_iter_values(stats.iter().map(f))) as ArrayRef;
    let table = batch(vec![
        ("id", strings(runs.iter().map(|r| r.id.clone()))),
        ("status", strings(runs.iter().map(|r| r.status.to_string()))),
        ("started_by", strings(runs.iter().map(|r| r.started_by.clone()))),
        ("started", times(runs.iter().map(|r| Some(r.started_on.timestamp_millis())))),
        ("completed", times(runs.iter().map(|r| r.completed_on.map(|t| t.timestamp_millis())))),
        ("actions", count(|s| s.total)),
        ("succeeded", count(|s| s.succeeded)),
        ("failed", count(|s| s.failed + s.timeout)),
        ("error", strings(runs.iter().map(|r| r.error_message.clone().unwrap_or_default()))),
    ])?;
    Ok(render::table(&table, &TableOptions { max_rows: 100, ..TableOptions::plain() }, &Footer::default()))
}
