//! EMR-style clusters and steps on one machine: clusters go through EMR's states on the
//! engine clock, steps queue and run in order with ActionOnFailure, Hadoop-streaming steps
//! run real mapper/reducer processes ([`streaming`]), SQL steps run on the SQL engine, and
//! nodes can be lost on purpose to watch retries and recovery.
//!
//! State: `<workspace>/emr/clusters.json` (clusters, nodes, steps with counters and task
//! attempts; rewritten atomically after every transition), task logs in
//! `<workspace>/emr/logs/<cluster-id>/<step-id>/<task-attempt>.stderr`, and scratch space for
//! running jobs in `<workspace>/emr/work/` (removed when a job ends).
//!
//! Timing (engine clock): STARTING lasts [`STARTING_SECS`], BOOTSTRAPPING
//! [`BOOTSTRAPPING_SECS`], TERMINATING [`TERMINATING_SECS`]. `run_due` applies the transitions
//! that are due, auto-termination after the last step and the idle timeout; `run_pending`
//! waits for the cluster (advancing a manual clock, sleeping on the system clock) and runs
//! the queued steps.
//!
//! Known gaps and deviations (on purpose, or not done yet):
//! - Steps run when `run_pending` is called (the `%emr` magic calls it after adding steps),
//!   not in the background as soon as the cluster is ready. Waiting for the cluster advances
//!   a manual clock without running other services' due work (`Lakebook::run_due_work` runs
//!   it at the next `%clock advance`).
//! - Step time is wall time spent running, stamped with the engine clock: a manual clock does
//!   not move while a step runs.
//! - A cluster needs at least one core node (it holds HDFS in this model); EMR also allows a
//!   master-only cluster. The master runs no tasks.
//! - Lost nodes are not replaced and instance groups shrink (no managed scaling, no spot
//!   re-provisioning). A lost task node's completed map outputs are lost with its local
//!   disk and those maps rerun, as in Hadoop; committed task output survives.
//! - Auto-termination waits for the first step: a cluster created with `auto_terminate` and
//!   no steps keeps WAITING (EMR would terminate it at once) so a notebook can add steps
//!   after creating it.
//! - The idle timeout counts WAITING time with no pending steps; its termination reason is
//!   `ALL_STEPS_COMPLETED` with a message naming the idle timeout.
//! - Only PENDING steps can be cancelled (no `SEND_INTERRUPT` of a running step); an
//!   interrupted cell cancels the step it was running.
//! - Hadoop's speculative execution, data locality, slow start of reducers, distributed
//!   cache archives, custom partitioners/comparators/input formats and counters written by
//!   scripts (`reporter:counter:` on stderr) are not modelled.
//! - Task processes are killed when their attempt is abandoned: the process group of `sh -c`
//!   is killed, so pipelines die too (tokio's `process` feature is not used because it would
//!   change the shared tokio build; std processes with a kill-on-drop guard do the same).

pub mod aggregate;
pub mod model;
pub mod streaming;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use model::{
    ActionOnFailure, ArmedLoss, AttemptState, Cluster, ClusterConfig, ClusterState, Counters, DEFAULT_RELEASE_LABEL, LossTrigger, Market, Node,
    NodeKind, NodeState, Phase, PythonImage, SqlStep, StateChangeReason, Step, StepConfig, StepKind, StepProgress, StepState, StreamingStep,
    TaskAttempt, TaskLog, python_of_release, release_version,
};

use crate::clock::{Clock, ClockMode};
use crate::error::{Result, closest};
use crate::lake::Lake;
use crate::workspace::{Workspace, read_json, write_json};
use crate::{internal_err, service_err};

// `impl Emr` continues with running the steps.
mod steps;

/// Engine-clock seconds a cluster spends STARTING (provisioning instances).
pub const STARTING_SECS: i64 = 60;
/// Engine-clock seconds a cluster spends BOOTSTRAPPING (bootstrap actions, daemons).
pub const BOOTSTRAPPING_SECS: i64 = 30;
/// Engine-clock seconds a cluster spends TERMINATING.
pub const TERMINATING_SECS: i64 = 30;
/// Lines of a task attempt's stderr that [`Emr::logs`] returns.
pub const LOG_TAIL_LINES: usize = 20;
/// EMR's limit on the length of cluster and step names.
pub const MAX_NAME_LEN: usize = 256;
/// EMR's limit on PENDING + RUNNING steps per cluster.
pub const MAX_ACTIVE_STEPS: usize = 256;
/// The most nodes an instance group may have here.
pub const MAX_GROUP_NODES: u32 = 64;
/// The reason a step left RUNNING by a dead kernel gets when the workspace is opened again.
pub const KERNEL_STOPPED: &str = "the kernel stopped while the step ran";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct State {
    clusters: Vec<Cluster>,
    /// Clusters ever created: part of each id's seed, so ids never repeat.
    created: u64,
}

/// The EMR service.
#[derive(Debug)]
pub struct Emr {
    dir: PathBuf,
    path: PathBuf,
    clock: Arc<Clock>,
    lake: Arc<Lake>,
    state: Mutex<State>,
    /// One `run_pending` at a time.
    running: tokio::sync::Mutex<()>,
    /// Where node losses go while a streaming step runs, by cluster id.
    active: Mutex<HashMap<String, mpsc::UnboundedSender<ArmedLoss>>>,
}

impl Emr {
    /// Opens the service; steps that a dead kernel left RUNNING become FAILED.
    pub fn open(workspace: &Workspace, clock: Arc<Clock>, lake: Arc<Lake>) -> Result<Self> {
        let dir = workspace.dir("emr")?;
        let path = dir.join("clusters.json");
        let mut state: State = read_json(&path)?.unwrap_or_default();
        let now = clock.now();
        let mut changed = false;
        for cluster in &mut state.clusters {
            for step in cluster.steps.iter_mut().filter(|s| s.state == StepState::Running) {
                // A streaming job that decided to commit is finished (its output whole, the
                // step completed); one that did not leaves its output as it was.
                let committed = match (&step.kind, &step.job_id) {
                    (StepKind::Streaming(spec), Some(job)) => streaming::finish_commit(&lake, &spec.output, job)?,
                    _ => false,
                };
                step.state = if committed { StepState::Completed } else { StepState::Failed };
                step.ended = Some(now);
                step.reason = (!committed).then(|| StateChangeReason::new("INTERNAL_ERROR", KERNEL_STOPPED));
                changed = true;
            }
            if cluster.state == ClusterState::Running {
                set_state(cluster, ClusterState::Waiting, now, None);
                changed = true;
            }
        }
        if changed {
            write_json(&path, &state)?;
        }
        let _ = std::fs::remove_dir_all(dir.join("work"));
        Ok(Self {
            dir,
            path,
            clock,
            lake,
            state: Mutex::new(state),
            running: tokio::sync::Mutex::new(()),
            active: Mutex::new(HashMap::new()),
        })
    }

    /// ≙ RunJobFlow. The cluster starts in STARTING; names are unique among clusters that
    /// are not terminated.
    pub fn create_cluster(&self, name: &str, config: ClusterConfig) -> Result<Cluster> {
        if self.lock().clusters.iter().any(|c| c.name == name && !c.state.is_terminated()) {
            return Err(service_err!(ValidationException, "a cluster named {name} already exists and is not terminated")
                .with_hint("terminate it first, or choose another name"));
        }
        self.run_job_flow(name, config)
    }

    /// ≙ RunJobFlow as the API has it: names need not be unique (`%emr` refers to clusters by
    /// name, so [`Emr::create_cluster`] keeps them unique among running clusters; a name then
    /// means the newest running cluster of that name).
    pub fn run_job_flow(&self, name: &str, config: ClusterConfig) -> Result<Cluster> {
        validate_name("cluster", name)?;
        if release_version(&config.release_label).is_none_or(|(major, _)| major < 4) {
            return Err(service_err!(ValidationException, "The requested release label {} is not supported", config.release_label)
                .with_hint("use a release label such as emr-7.5.0, emr-6.15.0 or emr-5.36.0 (releases from emr-4.0.0 on)"));
        }
        if config.core == 0 {
            return Err(service_err!(ValidationException, "a cluster needs at least one core node")
                .with_hint("core nodes hold HDFS here; use --core 1 or more"));
        }
        if config.core > MAX_GROUP_NODES || config.task > MAX_GROUP_NODES {
            return Err(service_err!(ValidationException, "an instance group may have at most {MAX_GROUP_NODES} nodes here"));
        }
        if config.slots_per_node == 0 || config.slots_per_node > 64 {
            return Err(service_err!(ValidationException, "slots per node must be between 1 and 64, not {}", config.slots_per_node));
        }
        if let Some(idle) = config.idle_timeout
            && !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600)).contains(&idle)
        {
            return Err(service_err!(ValidationException, "the idle timeout must be between 60 seconds and 7 days")
                .with_hint("EMR's auto-termination policy accepts 1 minute to 7 days"));
        }
        let now = self.clock.now();
        self.mutate(|state| {
            state.created += 1;
            let id = ident("j-", &format!("{name}|{}|{}", now.to_rfc3339(), state.created));
            let node = |id: String, kind, market| Node { id, kind, market, state: NodeState::Provisioning, reason: None };
            let mut nodes = vec![node("ip-10-0-0-1".into(), NodeKind::Master, Market::OnDemand)];
            nodes.extend((1..=config.core).map(|i| node(format!("ip-10-0-1-{i}"), NodeKind::Core, Market::OnDemand)));
            nodes.extend((1..=config.task).map(|i| node(format!("ip-10-0-2-{i}"), NodeKind::Task, config.task_market)));
            let cluster = Cluster {
                id,
                name: name.to_string(),
                state: ClusterState::Starting,
                reason: None,
                config: config.clone(),
                created: now,
                state_changed: now,
                ready: None,
                ended: None,
                nodes,
                steps: Vec::new(),
                ends_as: None,
                armed_losses: Vec::new(),
            };
            state.clusters.push(cluster.clone());
            Ok(cluster)
        })
    }

    /// ≙ ListClusters: newest first.
    pub fn clusters(&self) -> Vec<Cluster> {
        let mut clusters = self.lock().clusters.clone();
        clusters.reverse();
        clusters
    }

    /// ≙ DescribeCluster, by id or name.
    pub fn describe(&self, cluster: &str) -> Result<Cluster> {
        let state = self.lock();
        Ok(state.clusters[find(&state, cluster)?].clone())
    }

    /// ≙ TerminateJobFlows: pending steps are cancelled, the cluster goes TERMINATING and
    /// ends TERMINATED after [`TERMINATING_SECS`]. Terminating an ended cluster changes nothing.
    pub fn terminate(&self, cluster: &str) -> Result<Cluster> {
        let now = self.clock.now();
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
            if !c.state.is_ending() {
                cancel_pending(c, now, "cancelled because the cluster was terminated");
                begin_termination(c, now, ClusterState::Terminated, StateChangeReason::new("USER_REQUEST", "Terminated by user request"));
            }
            Ok(c.clone())
        })
    }

    /// ≙ AddJobFlowSteps: the step is queued PENDING after the others.
    pub fn add_step(&self, cluster: &str, config: StepConfig) -> Result<Step> {
        validate_name("step", &config.name)?;
        validate_step(&config.kind)?;
        let now = self.clock.now();
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
            refuse_ended(c, "add steps to")?;
            let active = c.steps.iter().filter(|s| matches!(s.state, StepState::Pending | StepState::Running)).count();
            if active >= MAX_ACTIVE_STEPS {
                return Err(service_err!(ValidationException, "the cluster already has {MAX_ACTIVE_STEPS} pending or running steps"));
            }
            let step = Step {
                id: ident("s-", &format!("{}|{}", c.id, c.steps.len())),
                name: config.name.clone(),
                action_on_failure: config.action_on_failure,
                kind: config.kind.clone(),
                state: StepState::Pending,
                reason: None,
                created: now,
                started: None,
                ended: None,
                job_id: None,
                counters: Counters::default(),
                attempts: Vec::new(),
                query_ids: Vec::new(),
            };
            c.steps.push(step.clone());
            Ok(step)
        })
    }

    /// ≙ ListSteps, in the order they were added.
    pub fn steps(&self, cluster: &str) -> Result<Vec<Step>> {
        Ok(self.describe(cluster)?.steps)
    }

    /// ≙ DescribeStep.
    pub fn describe_step(&self, cluster: &str, step: &str) -> Result<Step> {
        let c = self.describe(cluster)?;
        find_step(&c, step).map(|i| c.steps[i].clone())
    }

    /// ≙ CancelSteps for one PENDING step.
    pub fn cancel_step(&self, cluster: &str, step: &str) -> Result<Step> {
        let now = self.clock.now();
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
            let i = find_step(c, step)?;
            let s = &mut c.steps[i];
            if s.state != StepState::Pending {
                return Err(service_err!(InvalidRequestException, "step {} is {}; only PENDING steps can be cancelled", s.id, crate::serde_name(&s.state))
                    .with_hint("interrupt the cell to stop the step that is running"));
            }
            s.state = StepState::Cancelled;
            s.ended = Some(now);
            s.reason = Some(StateChangeReason::new("USER_REQUEST", "cancelled by user request"));
            Ok(s.clone())
        })
    }

    /// Takes a core or task node away, now or once `n` map tasks of the current or next
    /// streaming step have completed. Returns the node lost at once (none when the loss is
    /// armed or strikes inside the running step). Losing the last core node ends the cluster
    /// (TERMINATED_WITH_ERRORS).
    pub fn lose_node(&self, cluster: &str, kind: NodeKind, when: LossTrigger) -> Result<Option<String>> {
        if kind == NodeKind::Master {
            return Err(service_err!(ValidationException, "the master node cannot be lost on purpose")
                .with_hint("terminate the cluster instead; lose a core or task node"));
        }
        let c = self.describe(cluster)?;
        refuse_ended(&c, "lose nodes of")?;
        if c.group_size(kind) == 0 {
            return Err(service_err!(ValidationException, "the cluster {} has no live {} node", c.id, crate::serde_name(&kind))
                .with_hint("describe the cluster to see its nodes"));
        }
        let after_maps = match when {
            LossTrigger::Now => 0,
            LossTrigger::AfterMaps(n) => n,
        };
        let loss = ArmedLoss { kind, after_maps };
        if let Some(tx) = self.active_lock().get(&c.id)
            && tx.send(loss.clone()).is_ok()
        {
            return Ok(None);
        }
        if after_maps > 0 {
            self.mutate(|state| {
                let i = find(state, &c.id)?;
                state.clusters[i].armed_losses.push(loss);
                Ok(())
            })?;
            return Ok(None);
        }
        let node = c.live(kind).last().map(|n| n.id.clone()).ok_or_else(|| internal_err!("live node vanished"))?;
        let reason = match kind {
            NodeKind::Task => "lost (spot interruption)",
            _ => "lost (instance failure)",
        };
        self.mark_lost(&c.id, &node, reason)?;
        Ok(Some(node))
    }

    /// The stderr tails of a step's task attempts (≙ the step's container logs).
    pub fn logs(&self, cluster: &str, step: &str) -> Result<Vec<TaskLog>> {
        let c = self.describe(cluster)?;
        let s = &c.steps[find_step(&c, step)?];
        let dir = self.dir.join("logs").join(&c.id).join(&s.id);
        Ok(s.attempts
            .iter()
            .map(|a| TaskLog {
                task_attempt: a.attempt_id.clone(),
                node: a.node.clone(),
                stderr_tail: streaming::tail_lines(&dir.join(format!("{}.stderr", a.attempt_id)), LOG_TAIL_LINES),
            })
            .collect())
    }

    /// Applies the state changes due at `now` (startup, bootstrap, auto-termination, idle
    /// timeout, termination) and reports them.
    pub fn run_due(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        self.mutate(|state| Ok(state.clusters.iter_mut().flat_map(|c| advance(c, now)).collect()))
    }


    fn mutate<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        let mut next = state.clone();
        let out = f(&mut next)?;
        if next != *state {
            write_json(&self.path, &next)?;
            *state = next;
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn active_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<ArmedLoss>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a step's work ended.
struct Outcome {
    counters: Counters,
    attempts: Vec<TaskAttempt>,
    query_ids: Vec<String>,
    error: Option<crate::Error>,
}

/// Records the step CANCELLED if its future is dropped (an interrupted cell); dropping also
/// dropped the job, whose guards killed the task processes.
struct StepGuard<'a> {
    emr: &'a Emr,
    cluster: String,
    step: String,
    armed: bool,
}

impl Drop for StepGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.emr.active_lock().remove(&self.cluster);
        let now = self.emr.clock.now();
        let result = self.emr.mutate(|state| {
            let i = find(state, &self.cluster)?;
            let c = &mut state.clusters[i];
            let i = find_step(c, &self.step)?;
            let s = &mut c.steps[i];
            s.state = StepState::Cancelled;
            s.ended = Some(now);
            s.reason = Some(StateChangeReason::new("USER_REQUEST", "cancelled by an interrupt while it ran"));
            if c.state == ClusterState::Running {
                set_state(c, ClusterState::Waiting, now, None);
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!("could not record a cancelled step: {e}");
        }
    }
}

/// Runs a SQL step; with `output`, as CTAS (into `table`, or into a temporary table that is
/// dropped again, leaving the Parquet files). Returns the execution ids. With a Ballista
/// cluster connected (`%sql engine connect`) the query runs there and its rows are written
/// here; what the cluster does not run (DDL, stream tables) runs here, and a cluster that
/// does not answer fails the step.
async fn run_sql(step: &Step, spec: &SqlStep, sql: &crate::sql::SqlEngine) -> std::result::Result<Vec<String>, (Vec<String>, crate::Error)> {
    let mut ids = Vec::new();
    match Box::pin(sql_statements(step, spec, sql, &mut ids)).await {
        Ok(()) => Ok(ids),
        Err(e) => Err((ids, e)),
    }
}

async fn sql_statements(step: &Step, spec: &SqlStep, sql: &crate::sql::SqlEngine, ids: &mut Vec<String>) -> Result<()> {
    let query = spec.sql.trim().trim_end_matches(';').trim();
    let db = crate::catalog::DEFAULT_DATABASE;
    let on_cluster = match sql.cluster() {
        Some(target) => match sql.run_on_cluster(&target, query, db, crate::sql::PRIMARY_WORKGROUP).await {
            Ok(result) => {
                ids.push(result.execution.id.clone());
                Some(result)
            }
            Err(e) if e.code() == "NOT_SUPPORTED" => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let Some(output) = &spec.output else {
        if on_cluster.is_none() {
            ids.extend(sql.run(query, db).await?.iter().map(|r| r.execution.id.clone()));
        }
        return Ok(());
    };
    let location = output.clone().folder();
    let (table, temporary) = match &spec.table {
        Some(t) => (t.clone(), false),
        None => (format!("{db}.emr_{}", step.id.to_lowercase().replace('-', "_")), true),
    };
    let created = match on_cluster {
        Some(rows) => vec![sql.create_table_from_rows(&table, Some(&location.to_string()), rows.schema, rows.batches, db).await?],
        None => sql.run(&format!("CREATE TABLE {table} WITH (format = 'PARQUET', external_location = '{location}') AS {query}"), db).await?,
    };
    ids.extend(created.iter().map(|r| r.execution.id.clone()));
    if temporary {
        ids.extend(sql.run(&format!("DROP TABLE {table}"), db).await?.iter().map(|r| r.execution.id.clone()));
    }
    Ok(())
}

/// Applies every transition due at `now`, each at the moment it was due; returns reports.
fn advance(c: &mut Cluster, now: DateTime<Utc>) -> Vec<String> {
    let mut reports = Vec::new();
    let secs = chrono::Duration::seconds;
    loop {
        let at = c.state_changed;
        let (next, when, reason) = match c.state {
            ClusterState::Starting if now >= at + secs(STARTING_SECS) => (ClusterState::Bootstrapping, at + secs(STARTING_SECS), None),
            ClusterState::Bootstrapping if now >= at + secs(BOOTSTRAPPING_SECS) => {
                (ClusterState::Waiting, at + secs(BOOTSTRAPPING_SECS), Some(StateChangeReason::message("Cluster ready to run steps.")))
            }
            ClusterState::Waiting => {
                let active = c.steps.iter().any(|s| matches!(s.state, StepState::Pending | StepState::Running));
                if c.config.auto_terminate && !c.steps.is_empty() && !active {
                    c.ends_as = Some(ClusterState::Terminated);
                    (ClusterState::Terminating, at, Some(StateChangeReason::new("ALL_STEPS_COMPLETED", "Steps completed")))
                } else if let Some(idle) = c.config.idle_timeout.and_then(|d| chrono::Duration::from_std(d).ok())
                    && !active
                    && now >= at + idle
                {
                    c.ends_as = Some(ClusterState::Terminated);
                    let message = format!("Terminated after {} idle (auto-termination policy)", crate::clock::format_duration(idle.to_std().unwrap_or_default()));
                    (ClusterState::Terminating, at + idle, Some(StateChangeReason::new("ALL_STEPS_COMPLETED", message)))
                } else {
                    break;
                }
            }
            ClusterState::Terminating if now >= at + secs(TERMINATING_SECS) => {
                (c.ends_as.unwrap_or(ClusterState::Terminated), at + secs(TERMINATING_SECS), c.reason.clone())
            }
            _ => break,
        };
        set_state(c, next, when, reason);
        reports.push(format!("EMR cluster {} ({}) is {}", c.id, c.name, crate::serde_name(&c.state)));
    }
    reports
}

fn set_state(c: &mut Cluster, state: ClusterState, at: DateTime<Utc>, reason: Option<StateChangeReason>) {
    c.state = state;
    c.state_changed = at;
    c.reason = reason;
    match state {
        ClusterState::Waiting if c.ready.is_none() => {
            c.ready = Some(at);
            for n in c.nodes.iter_mut().filter(|n| n.state == NodeState::Provisioning) {
                n.state = NodeState::Running;
            }
        }
        ClusterState::Terminated | ClusterState::TerminatedWithErrors => {
            c.ended = Some(at);
            for n in c.nodes.iter_mut().filter(|n| n.state != NodeState::Lost) {
                n.state = NodeState::Terminated;
            }
        }
        _ => {}
    }
}

fn begin_termination(c: &mut Cluster, now: DateTime<Utc>, ends_as: ClusterState, reason: StateChangeReason) {
    c.ends_as = Some(ends_as);
    set_state(c, ClusterState::Terminating, now, Some(reason));
}

fn cancel_pending(c: &mut Cluster, now: DateTime<Utc>, why: &str) {
    for s in c.steps.iter_mut().filter(|s| s.state == StepState::Pending) {
        s.state = StepState::Cancelled;
        s.ended = Some(now);
        s.reason = Some(StateChangeReason::new("USER_REQUEST", why));
    }
}

fn refuse_ended(c: &Cluster, what: &str) -> Result<()> {
    if c.state.is_ending() {
        return Err(service_err!(InvalidRequestException, "cannot {what} cluster {} ({}): it is {}", c.id, c.name, crate::serde_name(&c.state))
            .with_hint("create a new cluster"));
    }
    Ok(())
}

/// A cluster by id, else by name (the live one, else the latest terminated one).
fn find(state: &State, key: &str) -> Result<usize> {
    if let Some(i) = state.clusters.iter().position(|c| c.id == key) {
        return Ok(i);
    }
    let live = state.clusters.iter().rposition(|c| c.name == key && !c.state.is_terminated());
    if let Some(i) = live.or_else(|| state.clusters.iter().rposition(|c| c.name == key)) {
        return Ok(i);
    }
    let mut candidates: Vec<&str> = state.clusters.iter().filter(|c| !c.state.is_terminated()).map(|c| c.name.as_str()).collect();
    candidates.extend(state.clusters.iter().map(|c| c.id.as_str()));
    let err = service_err!(ResourceNotFoundException, "Cluster {key} does not exist");
    Err(match closest(key, &candidates) {
        Some(c) => err.with_hint(format!("did you mean {c}?")),
        None => err.with_hint("list clusters with `%emr list`"),
    })
}

fn find_step(c: &Cluster, key: &str) -> Result<usize> {
    if let Some(i) = c.steps.iter().position(|s| s.id == key) {
        return Ok(i);
    }
    if let Some(i) = c.steps.iter().rposition(|s| s.name == key) {
        return Ok(i);
    }
    let candidates: Vec<&str> = c.steps.iter().flat_map(|s| [s.id.as_str(), s.name.as_str()]).collect();
    let err = service_err!(ResourceNotFoundException, "Step {key} does not exist in cluster {}", c.id);
    Err(match closest(key, &candidates) {
        Some(s) => err.with_hint(format!("did you mean {s}?")),
        None => err.with_hint("list the cluster's steps with `%emr steps`"),
    })
}

fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(service_err!(ValidationException, "{what} name {name:?} must be 1-{MAX_NAME_LEN} characters without control characters"));
    }
    Ok(())
}

fn validate_step(kind: &StepKind) -> Result<()> {
    match kind {
        StepKind::Streaming(s) => {
            if s.mapper.trim().is_empty() {
                return Err(service_err!(ValidationException, "a streaming step needs a mapper").with_hint("use `cat` for an identity mapper"));
            }
            if s.input.is_empty() {
                return Err(service_err!(ValidationException, "a streaming step needs at least one input location"));
            }
            if s.reducers > 1000 {
                return Err(service_err!(ValidationException, "{} reducers is more than the 1000 allowed here", s.reducers));
            }
            if s.reducers == 0 && (s.reducer.is_some() || s.combiner.is_some()) {
                return Err(service_err!(ValidationException, "a map-only job (0 reducers) has no reducer or combiner")
                    .with_hint("drop --reducer/--combiner, or give --reducers 1 or more"));
            }
            if s.split_size == Some(0) {
                return Err(service_err!(ValidationException, "the split size must be at least 1 byte"));
            }
            if s.input.iter().any(|i| i.bucket == s.output.bucket && !s.output.key.is_empty() && i.key.starts_with(&s.output.key)) {
                return Err(service_err!(ValidationException, "the output location {} lies inside an input", s.output));
            }
        }
        StepKind::Refused { .. } => {}
        StepKind::Sql(s) => {
            if s.sql.trim().is_empty() {
                return Err(service_err!(ValidationException, "a SQL step needs a query"));
            }
            if s.table.is_some() && s.output.is_none() {
                return Err(service_err!(ValidationException, "a SQL step that creates a table needs an output location")
                    .with_hint("add --output s3://bucket/prefix/"));
            }
        }
    }
    Ok(())
}

/// `prefix` + 13 uppercase alphanumerics derived from `seed` (deterministic, so notebooks
/// on the manual clock print the same ids every run).
fn ident(prefix: &str, seed: &str) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut n = u128::from_be_bytes(Md5::digest(seed.as_bytes()).into());
    let mut id = String::from(prefix);
    for _ in 0..13 {
        id.push(ALPHABET[(n % 36) as usize] as char);
        n /= 36;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_emr_ids_and_are_deterministic() {
        let a = ident("j-", "x|2026");
        assert_eq!(a.len(), 15);
        assert!(a[2..].chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_eq!(a, ident("j-", "x|2026"));
        assert_ne!(a, ident("j-", "x|2027"));
    }
}
