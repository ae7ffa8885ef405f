//! The scheduler: task slots on the live nodes, round-robin assignment, retries up to
//! `MAX_ATTEMPTS`, node losses (which kill running attempts and lose map output held on the
//! node) and the reduce phase once every map's output is safe.

use super::*;

/// The job-wide, read-only part of the attempts' context.
pub(super) struct Ctx<'a> {
    pub(super) job_id: &'a str,
    pub(super) spec: &'a StreamingStep,
    pub(super) work_dir: &'a Path,
    pub(super) log_dir: &'a Path,
    pub(super) committed: &'a Path,
    pub(super) shipped: &'a [(String, PathBuf)],
    pub(super) lake: &'a Lake,
}

impl Ctx<'_> {
    /// The command as the task runs it: a first word naming a shipped file runs that file from
    /// the task's directory (`-mapper wordSplitter.py`), as Hadoop's PipeMapRed looks the
    /// program up in the working directory before PATH.
    pub(super) fn command(&self, command: &str) -> String {
        let trimmed = command.trim_start();
        let first = trimmed.split_whitespace().next().unwrap_or_default();
        if !first.contains('/') && self.shipped.iter().any(|(name, _)| name == first) {
            format!("./{trimmed}")
        } else {
            command.to_string()
        }
    }

    /// `task_…_m_000003` (the job id's tail after `job_`).
    pub(super) fn task_id(&self, map: bool, index: usize) -> String {
        let tail = self.job_id.strip_prefix("job_").unwrap_or(self.job_id);
        format!("task_{tail}_{}_{index:06}", if map { 'm' } else { 'r' })
    }

    pub(super) fn node_dir(&self, node: &str) -> PathBuf {
        self.work_dir.join("nodes").join(node)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskRef {
    Map(usize),
    Reduce(usize),
}

/// A finished attempt.
pub(super) struct Outcome {
    pub(super) task: TaskRef,
    pub(super) attempt: TaskAttempt,
    pub(super) result: std::result::Result<Done, Error>,
}

pub(super) enum Done {
    Map { counters: Counters },
    Reduce { counters: Counters },
    /// Stopped by its node's loss.
    Killed,
}

#[derive(Default)]
pub(super) struct TaskSlot {
    /// Node holding the completed output (for maps with reducers: node-local files).
    pub(super) done_on: Option<String>,
    /// Index into the report's attempts of the attempt that produced the output.
    pub(super) done_attempt: Option<usize>,
    pub(super) counters: Counters,
    pub(super) running: bool,
    pub(super) failures: u32,
    pub(super) next_attempt: u32,
}

pub(super) struct NodeRun {
    pub(super) id: String,
    pub(super) kind: NodeKind,
    pub(super) alive: bool,
    pub(super) busy: u32,
    pub(super) lost: watch::Sender<bool>,
}

pub(super) type AttemptFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

pub(super) struct Scheduler {
    pub(super) maps: Vec<TaskSlot>,
    pub(super) reduces: Vec<TaskSlot>,
    pub(super) splits: Vec<Split>,
    pub(super) nodes: Vec<NodeRun>,
    pub(super) cursor: usize,
    pub(super) slots_per_node: u32,
    pub(super) armed: Vec<ArmedLoss>,
    /// Map attempts that succeeded in this job (what `AfterMaps` counts).
    pub(super) map_successes: u32,
    pub(super) last_map_node: Option<String>,
    pub(super) shuffle_bytes: u64,
}

impl Scheduler {
    pub(super) fn new(job: &Job<'_>, splits: &[Split]) -> Self {
        let nodes = job
            .nodes
            .iter()
            .map(|n| NodeRun { id: n.id.clone(), kind: n.kind, alive: true, busy: 0, lost: watch::Sender::new(false) })
            .collect();
        Self {
            maps: splits.iter().map(|_| TaskSlot::default()).collect(),
            reduces: (0..job.spec.reducers).map(|_| TaskSlot::default()).collect(),
            splits: splits.to_vec(),
            nodes,
            cursor: 0,
            slots_per_node: job.slots_per_node.max(1),
            armed: job.armed.clone(),
            map_successes: 0,
            last_map_node: None,
            shuffle_bytes: 0,
        }
    }

    pub(super) fn progress<'e>(&self, phase: Phase) -> Event<'e> {
        let done = |tasks: &[TaskSlot]| tasks.iter().filter(|t| t.done_on.is_some()).count() as u32;
        Event::Progress {
            phase,
            maps_done: done(&self.maps),
            maps_total: self.maps.len() as u32,
            reduces_done: done(&self.reduces),
            reduces_total: self.reduces.len() as u32,
            shuffle_bytes: self.shuffle_bytes,
        }
    }

    /// The next live node with a free slot, round-robin.
    pub(super) fn free_node(&mut self) -> Option<usize> {
        let n = self.nodes.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if self.nodes[i].alive && self.nodes[i].busy < self.slots_per_node {
                self.cursor = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    pub(super) fn next_task(&self) -> Option<TaskRef> {
        if let Some(i) = self.maps.iter().position(|t| t.done_on.is_none() && !t.running) {
            return Some(TaskRef::Map(i));
        }
        if self.maps.iter().all(|t| t.done_on.is_some()) {
            return self.reduces.iter().position(|t| t.done_on.is_none() && !t.running).map(TaskRef::Reduce);
        }
        None
    }

    pub(super) fn all_done(&self) -> bool {
        self.maps.iter().chain(&self.reduces).all(|t| t.done_on.is_some())
    }

    pub(super) async fn run<'a>(
        &mut self,
        ctx: &'a Ctx<'a>,
        faults: &mut mpsc::UnboundedReceiver<ArmedLoss>,
        report: &mut JobReport,
        on_event: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<()> {
        let mut running: FuturesUnordered<AttemptFuture<'a>> = FuturesUnordered::new();
        let mut faults_open = true;
        on_event(self.progress(Phase::Map));
        loop {
            // Launch what the free slots allow.
            while let Some(task) = self.next_task() {
                let Some(node) = self.free_node() else { break };
                self.nodes[node].busy += 1;
                let node_id = self.nodes[node].id.clone();
                let lost = self.nodes[node].lost.subscribe();
                let (slot, map) = match task {
                    TaskRef::Map(i) => (&mut self.maps[i], true),
                    TaskRef::Reduce(i) => (&mut self.reduces[i], false),
                };
                slot.running = true;
                let attempt_no = slot.next_attempt;
                slot.next_attempt += 1;
                if map {
                    report.counters.launched_map_tasks += 1;
                } else {
                    report.counters.launched_reduce_tasks += 1;
                }
                let inputs = match task {
                    TaskRef::Map(i) => AttemptInput::Map(self.splits[i].clone()),
                    TaskRef::Reduce(r) => AttemptInput::Reduce(
                        self.maps.iter().enumerate().filter_map(|(m, t)| t.done_on.clone().map(|n| map_part_path(ctx, &n, m, r))).collect(),
                    ),
                };
                running.push(Box::pin(attempt(ctx, task, attempt_no, node_id, inputs, lost)));
            }
            if running.is_empty() {
                if self.all_done() {
                    return Ok(());
                }
                return Err(service_err!(NodeLost, "no core or task node is left to run the job's tasks")
                    .with_hint("create a new cluster; lost nodes are not replaced"));
            }
            tokio::select! {
                Some(outcome) = running.next() => self.finish(ctx, outcome, report, on_event)?,
                fault = faults.recv(), if faults_open => match fault {
                    Some(loss) if loss.after_maps <= self.map_successes => {
                        self.lose(ctx, loss.kind, report, on_event, false)?;
                    }
                    Some(loss) => self.armed.push(loss),
                    None => faults_open = false,
                },
            }
        }
    }

    pub(super) fn finish(&mut self, ctx: &Ctx<'_>, outcome: Outcome, report: &mut JobReport, on_event: &mut (dyn FnMut(Event<'_>) + Send)) -> Result<()> {
        let Outcome { task, mut attempt, result } = outcome;
        let node = self.nodes.iter_mut().find(|n| n.id == attempt.node).ok_or_else(|| internal_err!("attempt ran on unknown node {}", attempt.node))?;
        node.busy = node.busy.saturating_sub(1);
        let alive = node.alive;
        let map = matches!(task, TaskRef::Map(_));
        let slot = match task {
            TaskRef::Map(i) => &mut self.maps[i],
            TaskRef::Reduce(i) => &mut self.reduces[i],
        };
        slot.running = false;
        match result {
            Ok(Done::Killed) => {
                attempt.state = AttemptState::Killed;
                attempt.reason.get_or_insert_with(|| format!("node {} was lost", attempt.node));
                if map { report.counters.killed_map_tasks += 1 } else { report.counters.killed_reduce_tasks += 1 }
                report.attempts.push(attempt);
            }
            Ok(Done::Map { .. } | Done::Reduce { .. }) if !alive => {
                attempt.state = AttemptState::Killed;
                attempt.reason = Some(format!("node {} was lost as the attempt finished", attempt.node));
                if map { report.counters.killed_map_tasks += 1 } else { report.counters.killed_reduce_tasks += 1 }
                report.attempts.push(attempt);
            }
            Ok(Done::Map { counters } | Done::Reduce { counters }) => {
                if !map {
                    self.shuffle_bytes += counters.reduce_shuffle_bytes;
                }
                slot.done_on = Some(attempt.node.clone());
                slot.done_attempt = Some(report.attempts.len());
                slot.counters = counters;
                report.attempts.push(attempt.clone());
                if map {
                    self.map_successes += 1;
                    self.last_map_node = Some(attempt.node.clone());
                }
                let phase = if self.maps.iter().all(|t| t.done_on.is_some()) && !self.reduces.is_empty() { Phase::Reduce } else { Phase::Map };
                on_event(self.progress(phase));
                // A loss armed for "after N maps" waits, if need be, until a node of its kind
                // holds work: a spot interruption of an idle node would show nothing.
                let (due, later): (Vec<ArmedLoss>, Vec<ArmedLoss>) = std::mem::take(&mut self.armed).into_iter().partition(|a| a.after_maps <= self.map_successes);
                self.armed = later;
                for loss in due {
                    if !self.lose(ctx, loss.kind, report, on_event, true)? {
                        self.armed.push(loss);
                    }
                }
            }
            Err(error) => {
                attempt.state = AttemptState::Failed;
                attempt.reason = Some(error.message());
                if map { report.counters.failed_map_tasks += 1 } else { report.counters.failed_reduce_tasks += 1 }
                slot.failures += 1;
                let failures = slot.failures;
                report.attempts.push(attempt.clone());
                if failures >= MAX_ATTEMPTS {
                    self.total_counters(report);
                    let tail = tail_lines(&ctx.log_dir.join(format!("{}.stderr", attempt.attempt_id)), FAILURE_TAIL_LINES);
                    return Err(service_err!(
                        TaskFailed,
                        "Task {} failed {failures} times; the last attempt, {} on {}, {}.\nstderr (last {FAILURE_TAIL_LINES} lines):\n{}",
                        attempt.task_id,
                        attempt.attempt_id,
                        attempt.node,
                        error.message(),
                        if tail.is_empty() { "(empty)".to_string() } else { tail }
                    )
                    .with_hint("fix the script and add the step again; every attempt's stderr is in the step's logs"));
                }
            }
        }
        if self.all_done() {
            self.total_counters(report);
        }
        Ok(())
    }

    /// Sums the counters of the attempts whose output the job uses (as Hadoop's job
    /// counters count successful attempts only).
    pub(super) fn total_counters(&self, report: &mut JobReport) {
        let c = &mut report.counters;
        for t in self.maps.iter().chain(&self.reduces).filter(|t| t.done_on.is_some()) {
            let s = &t.counters;
            c.map_input_records += s.map_input_records;
            c.map_output_records += s.map_output_records;
            c.map_output_bytes += s.map_output_bytes;
            c.combine_input_records += s.combine_input_records;
            c.combine_output_records += s.combine_output_records;
            c.reduce_input_groups += s.reduce_input_groups;
            c.reduce_shuffle_bytes += s.reduce_shuffle_bytes;
            c.reduce_input_records += s.reduce_input_records;
            c.reduce_output_records += s.reduce_output_records;
            c.bytes_read += s.bytes_read;
        }
    }

    /// Takes a node of `kind` away: the node that ran the latest map if it is of that kind,
    /// else the last live one. Its running attempts are killed and, with reducers, the map
    /// outputs on its disk are lost, so those maps run again.
    /// Loses a node of `kind` (the last map's, else the busiest); with `when_it_costs`, only
    /// if that node holds work (running attempts or finished map outputs). Whether it did.
    pub(super) fn lose(&mut self, ctx: &Ctx<'_>, kind: NodeKind, report: &mut JobReport, on_event: &mut (dyn FnMut(Event<'_>) + Send), when_it_costs: bool) -> Result<bool> {
        let preferred = self.last_map_node.as_ref().and_then(|id| self.nodes.iter().position(|n| &n.id == id && n.alive && n.kind == kind));
        // Otherwise the node with the most work on it (running attempts, finished map outputs),
        // so a loss always costs something: the last node of the list may have none yet.
        let work = |node: &NodeRun| node.busy as usize + self.maps.iter().filter(|t| t.done_on.as_deref() == Some(node.id.as_str())).count();
        let busiest = || {
            self.nodes.iter().enumerate().filter(|(_, n)| n.alive && n.kind == kind).max_by_key(|&(i, n)| (work(n), i)).map(|(i, _)| i)
        };
        let Some(index) = preferred.or_else(busiest) else {
            return Ok(true);
        };
        if when_it_costs && preferred.is_none() && work(&self.nodes[index]) == 0 {
            return Ok(false);
        }
        let node = &mut self.nodes[index];
        node.alive = false;
        node.lost.send_replace(true);
        let id = node.id.clone();
        let _ = std::fs::remove_dir_all(ctx.node_dir(&id));
        let reason = match kind {
            NodeKind::Task => "the task node was lost (spot interruption); its map outputs are lost and rerun",
            _ => "the core node was lost (instance failure); its map outputs and HDFS blocks are lost",
        };
        on_event(Event::NodeLost { node: &id, reason });
        if !self.reduces.is_empty() {
            for slot in self.maps.iter_mut().filter(|t| t.done_on.as_deref() == Some(id.as_str())) {
                slot.done_on = None;
                slot.counters = Counters::default();
                if let Some(a) = slot.done_attempt.take().and_then(|i| report.attempts.get_mut(i)) {
                    a.state = AttemptState::Killed;
                    a.reason = Some(format!("map output lost with node {id}"));
                    report.counters.killed_map_tasks += 1;
                }
            }
        }
        if kind == NodeKind::Core && !self.nodes.iter().any(|n| n.alive && n.kind == NodeKind::Core) {
            self.total_counters(report);
            return Err(service_err!(NodeLost, "the last core node, {id}, was lost: HDFS is gone and the cluster with it")
                .with_hint("create a new cluster with more core nodes; put spot capacity in task nodes"));
        }
        Ok(true)
    }
}
