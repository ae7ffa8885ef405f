//! Glue workflows (≙ CreateWorkflow, GetWorkflow, DeleteWorkflow, ListWorkflows,
//! StartWorkflowRun, GetWorkflowRun(s), StopWorkflowRun): a workflow is the triggers made with
//! `workflow: Some(name)` and the jobs and crawlers they watch and start. Its graph has a
//! node per trigger, job and crawler and an edge from each watched node to its trigger and
//! from each trigger to what it starts.
//!
//! A run fires the workflow's start trigger (its one on-demand or scheduled trigger), starts
//! that trigger's actions together and, as they end, fires the workflow's conditional triggers
//! whose conditions this run's nodes meet (each at most once per run), until nothing more
//! fires: the run is then COMPLETED, whatever its actions' states (as Glue: the statistics
//! count the failed ones). Jobs a run starts get the run's properties as arguments, with
//! `WORKFLOW_NAME` and `WORKFLOW_RUN_ID` (Glue passes these two; the properties stand in for
//! `getWorkflowRunProperties`, so SQL reads them as `${key}`). A run is a task on the runtime,
//! like a job run; a run a dead kernel left unfinished is ERROR when the workspace opens.
//!
//! Deviations: conditional triggers in a workflow fire in its runs unless DEACTIVATED (Glue
//! activates them with the workflow); the graph of a run is the workflow's graph when it
//! started.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Glue;
use super::triggers::{Condition, Target, Trigger, TriggerState, TriggerType};
use crate::error::Result;
use crate::service_err;

/// ≙ Workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// ≙ DefaultRunProperties.
    pub default_run_properties: BTreeMap<String, String>,
    /// ≙ MaxConcurrentRuns (None: no limit).
    pub max_concurrent_runs: Option<u32>,
    pub created_on: DateTime<Utc>,
}

/// ≙ WorkflowRunStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowRunStatus {
    Running,
    Completed,
    Stopping,
    Stopped,
    Error,
}

impl WorkflowRunStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Stopped | Self::Error)
    }
}

impl std::fmt::Display for WorkflowRunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

/// ≙ NodeType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeType {
    Trigger,
    Job,
    Crawler,
}

/// ≙ Node: one trigger, job or crawler of a workflow's graph, with what a run did there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub kind: NodeType,
    pub name: String,
    /// ≙ UniqueId: `trigger:NAME`, `job:NAME`, `crawler:NAME`.
    pub id: String,
    /// In a run: a trigger's FIRED, a job's last attempt's state, a crawler's RUNNING,
    /// SUCCEEDED or FAILED; None for a node the run did not reach.
    #[serde(default)]
    pub state: Option<String>,
    /// A job's run ids in this workflow run (≙ JobDetails.JobRuns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
    /// Why an action failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// ≙ WorkflowGraph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    /// (source id, destination id).
    pub edges: Vec<(String, String)>,
}

/// ≙ WorkflowRunStatistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Statistics {
    pub total: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub stopped: u32,
    pub timeout: u32,
}

/// ≙ WorkflowRun.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub workflow_name: String,
    pub id: String,
    pub status: WorkflowRunStatus,
    pub started_on: DateTime<Utc>,
    pub completed_on: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    /// ≙ WorkflowRunProperties: the defaults with what the run was started with over them.
    pub properties: BTreeMap<String, String>,
    /// The trigger that started it.
    pub started_by: String,
    pub graph: Graph,
}

impl WorkflowRun {
    /// ≙ Statistics: the actions (jobs and crawlers) the run started, by state.
    pub fn statistics(&self) -> Statistics {
        let mut s = Statistics::default();
        for node in self.graph.nodes.iter().filter(|n| n.kind != NodeType::Trigger) {
            let Some(state) = node.state.as_deref() else { continue };
            s.total += 1;
            match state {
                "SUCCEEDED" => s.succeeded += 1,
                "FAILED" | "ERROR" => s.failed += 1,
                "STOPPED" => s.stopped += 1,
                "TIMEOUT" => s.timeout += 1,
                _ => s.running += 1,
            }
        }
        s
    }

    fn node_mut(&mut self, id: &str) -> Option<&mut Node> {
        self.graph.nodes.iter_mut().find(|n| n.id == id)
    }

    fn state_of(&self, id: &str) -> Option<&str> {
        self.graph.nodes.iter().find(|n| n.id == id).and_then(|n| n.state.as_deref())
    }
}

fn node_id(target: &Target) -> String {
    target.to_string()
}

fn trigger_id(name: &str) -> String {
    format!("trigger:{name}")
}

/// Whether a trigger can start a workflow run (Glue: an on-demand or scheduled trigger with no
/// predicate).
pub(super) fn is_start(kind: &TriggerType) -> bool {
    matches!(kind, TriggerType::OnDemand | TriggerType::Scheduled)
}

impl Glue {
    /// ≙ CreateWorkflow.
    pub fn create_workflow(&self, name: &str, description: &str, properties: BTreeMap<String, String>, max_concurrent_runs: Option<u32>) -> Result<Workflow> {
        super::validate_job_name(name)?;
        for key in properties.keys() {
            super::validate_argument_name(key)?;
        }
        if max_concurrent_runs == Some(0) {
            return Err(service_err!(InvalidInputException, "--max-concurrent-runs must be at least 1"));
        }
        let workflow = Workflow {
            name: name.into(),
            description: description.into(),
            default_run_properties: properties,
            max_concurrent_runs,
            created_on: self.clock.now(),
        };
        self.commit(|s| {
            if s.workflows.contains_key(name) {
                return Err(service_err!(AlreadyExistsException, "Workflow {name} already exists"));
            }
            s.workflows.insert(name.into(), workflow.clone());
            Ok(())
        })?;
        Ok(workflow)
    }

    /// ≙ GetWorkflow.
    pub fn workflow(&self, name: &str) -> Result<Workflow> {
        let state = self.lock();
        state.workflows.get(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = state.workflows.keys().map(String::as_str).collect();
            let mut e = service_err!(EntityNotFoundException, "Workflow {name} not found");
            if let Some(c) = crate::error::closest(name, &names) {
                e = e.with_hint(format!("did you mean {c}?"));
            }
            e
        })
    }

    /// ≙ ListWorkflows.
    pub fn workflows(&self) -> Vec<Workflow> {
        self.lock().workflows.values().cloned().collect()
    }

    /// ≙ DeleteWorkflow: the workflow and its triggers (not its jobs and crawlers). A running
    /// workflow cannot be deleted.
    pub fn delete_workflow(&self, name: &str) -> Result<()> {
        self.workflow(name)?;
        self.commit(|s| {
            if s.workflow_runs.iter().any(|r| r.workflow_name == name && !r.status.is_finished()) {
                return Err(service_err!(ConcurrentModificationException, "Workflow {name} has a run in progress; stop it first"));
            }
            s.workflows.remove(name);
            s.triggers.retain(|_, t| t.workflow.as_deref() != Some(name));
            Ok(())
        })
    }

    /// The workflow's graph as it is now (no run states).
    pub fn workflow_graph(&self, name: &str) -> Result<Graph> {
        self.workflow(name)?;
        let triggers: Vec<Trigger> = self.triggers().into_iter().filter(|t| t.workflow.as_deref() == Some(name)).collect();
        let mut graph = Graph::default();
        let mut seen = BTreeSet::new();
        let mut add = |graph: &mut Graph, kind: NodeType, name: &str, id: String| {
            if seen.insert(id.clone()) {
                graph.nodes.push(Node { kind, name: name.into(), id, state: None, runs: Vec::new(), error: None });
            }
        };
        // Start triggers first, then the others in name order: the graph reads left to right.
        let mut ordered: Vec<&Trigger> = triggers.iter().filter(|t| is_start(&t.kind)).collect();
        ordered.extend(triggers.iter().filter(|t| !is_start(&t.kind)));
        for trigger in ordered {
            let tid = trigger_id(&trigger.name);
            add(&mut graph, NodeType::Trigger, &trigger.name, tid.clone());
            for condition in &trigger.conditions {
                let (kind, name) = target_parts(&condition.watch);
                add(&mut graph, kind, name, node_id(&condition.watch));
                graph.edges.push((node_id(&condition.watch), tid.clone()));
            }
            for action in &trigger.actions {
                let (kind, name) = target_parts(action);
                add(&mut graph, kind, name, node_id(action));
                graph.edges.push((tid.clone(), node_id(action)));
            }
        }
        Ok(graph)
    }

    /// ≙ StartWorkflowRun: fires the workflow's start trigger in a new run, on the runtime;
    /// returns the run (RUNNING) at once.
    pub fn start_workflow_run(self: &Arc<Self>, name: &str, properties: BTreeMap<String, String>) -> Result<WorkflowRun> {
        let workflow = self.workflow(name)?;
        for key in properties.keys() {
            super::validate_argument_name(key)?;
        }
        let start = self
            .triggers()
            .into_iter()
            .find(|t| t.workflow.as_deref() == Some(name) && is_start(&t.kind))
            .ok_or_else(|| {
                service_err!(InvalidInputException, "Workflow {name} has no start trigger")
                    .with_hint(format!("add one: %glue trigger create NAME --type on-demand --workflow {name} --action job:… (or crawler:…)"))
            })?;
        let graph = self.workflow_graph(name)?;
        let now = self.clock.now();
        let mut merged = workflow.default_run_properties.clone();
        merged.extend(properties);
        let run = self.commit(|s| {
            let active = s.workflow_runs.iter().filter(|r| r.workflow_name == name && !r.status.is_finished()).count() as u32;
            if let Some(limit) = workflow.max_concurrent_runs
                && active >= limit
            {
                return Err(service_err!(ConcurrentRunsExceededException, "Concurrent runs exceeded for workflow {name}: {active} running, MaxConcurrentRuns is {limit}"));
            }
            s.started += 1;
            let id = super::run_id(name, now, s.started).replacen("jr_", "wr_", 1);
            let run = WorkflowRun {
                workflow_name: name.into(),
                id,
                status: WorkflowRunStatus::Running,
                started_on: now,
                completed_on: None,
                error_message: None,
                properties: merged,
                started_by: start.name.clone(),
                graph,
            };
            s.workflow_runs.push(run.clone());
            Ok(run)
        })?;
        let glue = self.clone();
        let id = run.id.clone();
        tokio::spawn(async move { glue.drive_workflow(&id, start).await });
        Ok(run)
    }

    /// ≙ GetWorkflowRun.
    pub fn workflow_run(&self, name: &str, id: &str) -> Result<WorkflowRun> {
        self.workflow(name)?;
        self.lock()
            .workflow_runs
            .iter()
            .find(|r| r.workflow_name == name && r.id == id)
            .cloned()
            .ok_or_else(|| service_err!(EntityNotFoundException, "Workflow run {id} of {name} not found"))
    }

    /// ≙ GetWorkflowRuns: newest first.
    pub fn workflow_runs(&self, name: &str) -> Result<Vec<WorkflowRun>> {
        self.workflow(name)?;
        Ok(self.lock().workflow_runs.iter().rev().filter(|r| r.workflow_name == name).cloned().collect())
    }

    /// Follows a run until it ends, calling `every` as it goes.
    pub async fn wait_workflow_run(&self, name: &str, id: &str, mut every: impl FnMut(&WorkflowRun)) -> Result<WorkflowRun> {
        loop {
            let run = self.workflow_run(name, id)?;
            if run.status.is_finished() {
                return Ok(run);
            }
            every(&run);
            tokio::time::sleep(super::WAIT_EVERY).await;
        }
    }

    /// ≙ StopWorkflowRun: stops the run's job runs in progress; no more triggers fire, and the
    /// run ends STOPPED.
    pub fn stop_workflow_run(&self, name: &str, id: &str) -> Result<WorkflowRun> {
        let run = self.workflow_run(name, id)?;
        if run.status != WorkflowRunStatus::Running {
            return Err(service_err!(IllegalWorkflowStateException, "Workflow run {id} of {name} is {}; only a RUNNING run can be stopped", run.status));
        }
        self.update_workflow_run(id, |r| r.status = WorkflowRunStatus::Stopping)?;
        for node in run.graph.nodes.iter().filter(|n| n.kind == NodeType::Job) {
            for job_run in &node.runs {
                let current = self.job_runs(&node.name).ok().and_then(|runs| runs.into_iter().find(|r| !r.state.is_finished() && r.id.starts_with(job_run.as_str())));
                if let Some(r) = current {
                    let _ = self.stop_job_run(&node.name, &r.id);
                }
            }
        }
        self.workflow_run(name, id)
    }

    fn update_workflow_run(&self, id: &str, change: impl FnOnce(&mut WorkflowRun)) -> Result<()> {
        self.commit(|s| {
            if let Some(run) = s.workflow_runs.iter_mut().find(|r| r.id == id) {
                change(run);
            }
            Ok(())
        })
    }

    fn stopping(&self, id: &str) -> bool {
        self.lock().workflow_runs.iter().any(|r| r.id == id && r.status == WorkflowRunStatus::Stopping)
    }

    /// The task of a workflow run.
    async fn drive_workflow(self: Arc<Self>, id: &str, start: Trigger) {
        let mut fired: BTreeSet<String> = BTreeSet::new();
        fired.insert(start.name.clone());
        let mut outcome = self.fire_in_run(id, &start).await;
        while outcome.is_ok() && !self.stopping(id) {
            let Some(run) = self.lock().workflow_runs.iter().find(|r| r.id == id).cloned() else { break };
            let ready: Vec<Trigger> = self
                .triggers()
                .into_iter()
                .filter(|t| t.workflow.as_deref() == Some(run.workflow_name.as_str()) && t.kind == TriggerType::Conditional)
                .filter(|t| t.state != TriggerState::Deactivated && !fired.contains(&t.name))
                .filter(|t| {
                    let met = |c: &Condition| met_in_run(&run, c);
                    if t.all { t.conditions.iter().all(met) } else { t.conditions.iter().any(met) }
                })
                .collect();
            if ready.is_empty() {
                break;
            }
            // The triggers ready together fire together.
            let firings = ready.iter().map(|t| {
                fired.insert(t.name.clone());
                self.fire_in_run(id, t)
            });
            let results = futures::future::join_all(firings.collect::<Vec<_>>()).await;
            outcome = results.into_iter().collect::<Result<Vec<()>>>().map(|_| ());
        }
        let now = self.clock.now();
        let _ = self.update_workflow_run(id, |r| {
            r.completed_on = Some(now);
            match &outcome {
                Err(e) => {
                    r.status = WorkflowRunStatus::Error;
                    r.error_message = Some(e.to_string());
                }
                Ok(()) if r.status == WorkflowRunStatus::Stopping => r.status = WorkflowRunStatus::Stopped,
                Ok(()) => r.status = WorkflowRunStatus::Completed,
            }
        });
    }

    /// Fires a trigger in a run: marks it FIRED and runs its actions together, recording each
    /// one's state on its node as it ends. An action that fails is its node's state, not the
    /// run's error.
    async fn fire_in_run(self: &Arc<Self>, id: &str, trigger: &Trigger) -> Result<()> {
        self.update_workflow_run(id, |r| {
            if let Some(node) = r.node_mut(&trigger_id(&trigger.name)) {
                node.state = Some("FIRED".into());
            }
        })?;
        let run = self.lock().workflow_runs.iter().find(|r| r.id == id).cloned().ok_or_else(|| crate::internal_err!("workflow run {id} is gone"))?;
        let mut arguments = run.properties.clone();
        arguments.insert("WORKFLOW_NAME".into(), run.workflow_name.clone());
        arguments.insert("WORKFLOW_RUN_ID".into(), run.id.clone());
        let actions = trigger.actions.iter().map(|action| {
            let arguments = arguments.clone();
            async move {
                let node = node_id(action);
                let _ = self.update_workflow_run(id, |r| {
                    if let Some(n) = r.node_mut(&node) {
                        n.state = Some("RUNNING".into());
                    }
                });
                let (state, error) = match action {
                    Target::Job(job) => match self.start_job_run(job, arguments, None) {
                        Ok(started) => {
                            let _ = self.update_workflow_run(id, |r| {
                                if let Some(n) = r.node_mut(&node) {
                                    n.runs.push(started.id.clone());
                                }
                            });
                            match self.wait_job_run(job, &started.id, |_| {}).await {
                                Ok(attempts) => {
                                    let last = attempts.last();
                                    (last.map_or("FAILED".to_string(), |r| r.state.to_string()), last.and_then(|r| r.error_message.clone()))
                                }
                                Err(e) => ("FAILED".to_string(), Some(e.to_string())),
                            }
                        }
                        Err(e) => ("FAILED".to_string(), Some(e.to_string())),
                    },
                    Target::Crawler(crawler) => match self.catalog.run_crawler(&self.lake, crawler, &mut |_, _| {}).await {
                        Ok(_) => ("SUCCEEDED".to_string(), None),
                        Err(e) => ("FAILED".to_string(), Some(e.to_string())),
                    },
                };
                let _ = self.update_workflow_run(id, |r| {
                    if let Some(n) = r.node_mut(&node) {
                        n.state = Some(state);
                        n.error = error;
                    }
                });
            }
        });
        futures::future::join_all(actions.collect::<Vec<_>>()).await;
        Ok(())
    }
}

/// Whether a run's nodes meet a condition.
fn met_in_run(run: &WorkflowRun, condition: &Condition) -> bool {
    run.state_of(&node_id(&condition.watch)) == Some(condition.state.as_str())
}

fn target_parts(target: &Target) -> (NodeType, &str) {
    match target {
        Target::Job(n) => (NodeType::Job, n),
        Target::Crawler(n) => (NodeType::Crawler, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeType, id: &str, state: Option<&str>) -> Node {
        Node { kind, name: id.split(':').nth(1).unwrap_or(id).into(), id: id.into(), state: state.map(Into::into), runs: Vec::new(), error: None }
    }

    #[test]
    fn statistics_count_the_actions_a_run_reached() {
        let run = WorkflowRun {
            workflow_name: "w".into(),
            id: "wr_1".into(),
            status: WorkflowRunStatus::Completed,
            started_on: Utc::now(),
            completed_on: None,
            error_message: None,
            properties: BTreeMap::new(),
            started_by: "t".into(),
            graph: Graph {
                nodes: vec![
                    node(NodeType::Trigger, "trigger:t", Some("FIRED")),
                    node(NodeType::Crawler, "crawler:raw", Some("SUCCEEDED")),
                    node(NodeType::Job, "job:clean", Some("FAILED")),
                    node(NodeType::Job, "job:load", None),
                ],
                edges: Vec::new(),
            },
        };
        let s = run.statistics();
        assert_eq!((s.total, s.succeeded, s.failed, s.running), (2, 1, 1, 0));
        assert!(met_in_run(&run, &Condition::parse("crawler:raw=SUCCEEDED").unwrap()));
        assert!(met_in_run(&run, &Condition::parse("job:clean=FAILED").unwrap()));
        assert!(!met_in_run(&run, &Condition::parse("job:clean=SUCCEEDED").unwrap()));
        assert!(!met_in_run(&run, &Condition::parse("job:load=SUCCEEDED").unwrap()));
    }
}
