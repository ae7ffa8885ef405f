//! Running steps: waiting for the cluster, starting the next PENDING step, running it as a
//! streaming job or SQL with live progress and node losses, and recording how it ended.

use super::*;

impl Emr {
    /// Waits for the cluster to be ready (advancing a manual clock to that moment, sleeping
    /// on the system clock), then runs its pending steps in order and returns them as they
    /// ended. A failed step is not an error: see its state and reason. Dropping the future
    /// kills the running tasks and records the step CANCELLED.
    pub async fn run_pending(
        &self,
        cluster: &str,
        sql: &crate::sql::SqlEngine,
        progress: &mut (dyn FnMut(&StepProgress) + Send),
    ) -> Result<Vec<Step>> {
        let _one = self.running.lock().await;
        let id = self.describe(cluster)?.id;
        self.wait_ready(&id, progress).await?;
        let mut ran = Vec::new();
        while let Some((c, step)) = self.start_next(&id)? {
            ran.push(self.run_step(&c, step, sql, progress).await?);
        }
        self.run_due(self.clock.now())?;
        Ok(ran)
    }

    /// Waits for the cluster to be ready (≙ the cluster-running waiter), advancing a manual
    /// clock to that moment.
    pub async fn wait_running(&self, cluster: &str) -> Result<()> {
        let id = self.describe(cluster)?.id;
        self.wait_ready(&id, &mut |_| {}).await?;
        self.run_due(self.clock.now()).map(drop)
    }

    pub(super) async fn wait_ready(&self, id: &str, progress: &mut (dyn FnMut(&StepProgress) + Send)) -> Result<()> {
        loop {
            let now = self.clock.now();
            self.run_due(now)?;
            let c = self.describe(id)?;
            refuse_ended(&c, "run steps on")?;
            let ready_at = match c.state {
                ClusterState::Starting => c.state_changed + chrono::Duration::seconds(STARTING_SECS + BOOTSTRAPPING_SECS),
                ClusterState::Bootstrapping => c.state_changed + chrono::Duration::seconds(BOOTSTRAPPING_SECS),
                _ => return Ok(()),
            };
            if let Some(first) = c.steps.iter().find(|s| s.state == StepState::Pending) {
                progress(&StepProgress {
                    cluster_id: c.id.clone(),
                    step_id: first.id.clone(),
                    step_name: first.name.clone(),
                    phase: Phase::Provisioning,
                    maps_done: 0,
                    maps_total: 0,
                    reduces_done: 0,
                    reduces_total: 0,
                    shuffle_bytes: 0,
                });
            }
            let wait = (ready_at - now).to_std().unwrap_or_default();
            if self.clock.mode() == ClockMode::Manual {
                self.clock.advance(wait)?;
            } else {
                tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
            }
        }
    }

    /// Marks the first pending step RUNNING (and the cluster with it).
    pub(super) fn start_next(&self, id: &str) -> Result<Option<(Cluster, Step)>> {
        let now = self.clock.now();
        self.mutate(|state| {
            let i = find(state, id)?;
            let c = &mut state.clusters[i];
            if c.state.is_ending() {
                return Ok(None);
            }
            let Some(i) = c.steps.iter().position(|s| s.state == StepState::Pending) else { return Ok(None) };
            let job = format!("job_{}_{:04}", c.created.timestamp_millis(), i + 1);
            let step = &mut c.steps[i];
            step.state = StepState::Running;
            step.started = Some(now);
            if matches!(step.kind, StepKind::Streaming(_)) {
                step.job_id = Some(job);
            }
            let step = step.clone();
            set_state(c, ClusterState::Running, now, Some(StateChangeReason::message(format!("Running step {}", step.name))));
            let snapshot = c.clone();
            if matches!(step.kind, StepKind::Streaming(_)) {
                c.armed_losses.clear();
            }
            Ok(Some((snapshot, step)))
        })
    }

    pub(super) async fn run_step(&self, c: &Cluster, step: Step, sql: &crate::sql::SqlEngine, progress: &mut (dyn FnMut(&StepProgress) + Send)) -> Result<Step> {
        let mut guard = StepGuard { emr: self, cluster: c.id.clone(), step: step.id.clone(), armed: true };
        let base = StepProgress {
            cluster_id: c.id.clone(),
            step_id: step.id.clone(),
            step_name: step.name.clone(),
            phase: Phase::Map,
            maps_done: 0,
            maps_total: 0,
            reduces_done: 0,
            reduces_total: 0,
            shuffle_bytes: 0,
        };
        let outcome = match &step.kind {
            StepKind::Streaming(spec) => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.active_lock().insert(c.id.clone(), tx);
                let nodes = [NodeKind::Core, NodeKind::Task]
                    .into_iter()
                    .flat_map(|k| c.live(k).map(|n| streaming::WorkerNode { id: n.id.clone(), kind: n.kind }).collect::<Vec<_>>())
                    .collect();
                let job = streaming::Job {
                    lake: &self.lake,
                    spec,
                    job_id: step.job_id.clone().unwrap_or_default(),
                    work_dir: self.dir.join("work").join(&c.id).join(&step.id),
                    log_dir: self.dir.join("logs").join(&c.id).join(&step.id),
                    nodes,
                    slots_per_node: c.config.slots_per_node,
                    armed: c.armed_losses.clone(),
                    python: python_of_release(&c.config.release_label),
                };
                let cluster_id = c.id.clone();
                let mut on_event = |event: streaming::Event<'_>| match event {
                    streaming::Event::Progress { phase, maps_done, maps_total, reduces_done, reduces_total, shuffle_bytes } => {
                        progress(&StepProgress { phase, maps_done, maps_total, reduces_done, reduces_total, shuffle_bytes, ..base.clone() });
                    }
                    streaming::Event::NodeLost { node, reason } => {
                        if let Err(e) = self.mark_lost(&cluster_id, node, reason) {
                            tracing::warn!("could not record the loss of {node}: {e}");
                        }
                    }
                };
                let report = streaming::run(job, rx, &mut on_event).await;
                self.active_lock().remove(&c.id);
                Outcome { counters: report.counters, attempts: report.attempts, query_ids: Vec::new(), error: report.error }
            }
            StepKind::Sql(spec) => {
                progress(&StepProgress { phase: Phase::Sql, ..base.clone() });
                // boxed: the SQL engine's futures are large, and this one sits inside the step's
                let (query_ids, error) = match Box::pin(run_sql(&step, spec, sql)).await {
                    Ok(ids) => (ids, None),
                    Err((ids, e)) => (ids, Some(e)),
                };
                Outcome { counters: Counters::default(), attempts: Vec::new(), query_ids, error }
            }
            StepKind::Refused { error, .. } => {
                let error = service_err!(StreamingCommandFailed, "hadoop-streaming exited with status 1: {error}")
                    .with_hint("the step's Args are hadoop-streaming's: -files, -mapper, -reducer, -combiner, -input, -output, -numReduceTasks, -D key=value");
                Outcome { counters: Counters::default(), attempts: Vec::new(), query_ids: Vec::new(), error: Some(error) }
            }
        };
        guard.armed = false;
        let done = self.finish_step(&c.id, &step.id, outcome)?;
        if done.state == StepState::Completed {
            progress(&StepProgress { phase: Phase::Done, ..base });
        }
        Ok(done)
    }

    /// Records how a step ended and applies its ActionOnFailure.
    pub(super) fn finish_step(&self, cluster: &str, step: &str, outcome: Outcome) -> Result<Step> {
        let now = self.clock.now();
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
            let i = find_step(c, step)?;
            let s = &mut c.steps[i];
            s.ended = Some(now);
            s.counters = outcome.counters;
            s.attempts = outcome.attempts;
            s.query_ids = outcome.query_ids;
            let failed = outcome.error.is_some();
            match outcome.error {
                None => {
                    s.state = StepState::Completed;
                    s.reason = None;
                }
                Some(e) => {
                    s.state = StepState::Failed;
                    let message = match e.hint() {
                        Some(hint) => format!("{}\n{hint}", e.message()),
                        None => e.message(),
                    };
                    s.reason = Some(StateChangeReason::new(e.code(), message));
                }
            }
            let s = s.clone();
            if failed {
                match s.action_on_failure {
                    ActionOnFailure::Continue => {}
                    ActionOnFailure::CancelAndWait => cancel_pending(c, now, &format!("cancelled because step {} failed (CANCEL_AND_WAIT)", s.id)),
                    ActionOnFailure::TerminateCluster if !c.state.is_ending() => {
                        cancel_pending(c, now, &format!("cancelled because step {} failed (TERMINATE_CLUSTER)", s.id));
                        let reason = StateChangeReason::new("STEP_FAILURE", format!("Shut down as step {} failed", s.id));
                        begin_termination(c, now, ClusterState::TerminatedWithErrors, reason);
                    }
                    ActionOnFailure::TerminateCluster => {}
                }
            }
            if c.state == ClusterState::Running {
                set_state(c, ClusterState::Waiting, now, Some(StateChangeReason::message("Cluster ready after last step completed.")));
            }
            Ok(s)
        })
    }

    /// Records a node as LOST; losing the last core node starts TERMINATING with errors.
    pub(super) fn mark_lost(&self, cluster: &str, node: &str, reason: &str) -> Result<()> {
        let now = self.clock.now();
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
            let n = c.nodes.iter_mut().find(|n| n.id == node).ok_or_else(|| internal_err!("no node {node} in {cluster}"))?;
            n.state = NodeState::Lost;
            n.reason = Some(reason.to_string());
            let core = n.kind == NodeKind::Core;
            if core && c.group_size(NodeKind::Core) == 0 && !c.state.is_ending() {
                cancel_pending(c, now, "cancelled because the cluster lost its last core node");
                let reason = StateChangeReason::new("INSTANCE_FAILURE", format!("The last core node, {node}, was lost"));
                begin_termination(c, now, ClusterState::TerminatedWithErrors, reason);
            }
            Ok(())
        })
    }
}
