//! Glue ETL jobs (≙ CreateJob, GetJob(s), DeleteJob, StartJobRun, GetJobRun(s),
//! BatchStopJobRun, GetJobBookmark, ResetJobBookmark), run on the engine with Glue's job
//! model: run states STARTING → RUNNING → SUCCEEDED / FAILED / TIMEOUT / STOPPED, retries as
//! new runs (`<id>_attempt_<n>`, with the previous run's id), the concurrent-run limit, worker
//! type and count billed in DPU-hours, metrics per node, and job bookmarks.
//!
//! A run is a task on the runtime: [`Glue::start_job_run`] returns at once and
//! [`Glue::wait_job_run`] follows it (and its retries). A bookmark is, per source table, the
//! files the job's successful runs processed (with their modification times, so a rewritten
//! file is read again); a run's scans skip them (`query::Bookmarks`), and a successful
//! `job-bookmark-enable` run adds what it read in the same state write that records it
//! SUCCEEDED, so a failed, stopped or killed run never moves the bookmark.
//!
//! Deviations and gaps:
//! - Jobs are Glue Studio visual jobs (`Script::Visual`, `graph.rs`: catalog sources, the
//!   common transforms, S3 targets) or Lakebook SQL jobs (`Script::Sql`: Athena SQL statements
//!   run in order; Glue Studio's SQL transform is the nearest Glue form); `${key}` in either is
//!   a job argument. ResolveChoice, Relationalize and SelectFromCollection are nodes here
//!   (Glue has them as DynamicFrame methods, not Glue Studio nodes). Relationalize pivots
//!   arrays one level deep (an array inside an array's elements stays a key column).
//!   Triggers are in `triggers.rs`, workflows in `workflows.rs`. PySpark / Scala scripts are
//!   refused with an error naming the supported forms. DropNullFields judges a field by the
//!   rows the run reads (with bookmarks, the new rows only); a run without rows keeps every
//!   field.
//! - The timeout is real elapsed time: the manual clock does not move while a job runs, so on
//!   it ExecutionTime is 0 s and a run is billed Glue's 1-minute minimum.
//! - A visual job's writes commit with the run (staged, then renamed into place in the same
//!   decision that moves the bookmark). A SQL job's statements write as Athena's do, one by
//!   one: a run stopped or killed in the middle can leave what its earlier statements wrote
//!   (Glue's own S3 writes behave this way); its bookmark does not move.

mod dynamic;
pub mod graph;
pub mod model;
pub mod triggers;
mod visual;
pub mod workflows;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use md5::Digest as _;

pub use model::{BookmarkEntry, BookmarkOption, Job, JobRun, NodeMetrics, RunState, Script, WorkerType};
use model::State;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::{Lake, S3Uri};
use crate::query::{Bookmarks, QueryProgress, Watch};
use crate::sql::SqlEngine;
use crate::workspace::{Workspace, atomic_write, read_json};
use crate::{internal_err, service_err};

/// How often a waiter looks at a running job.
const WAIT_EVERY: Duration = Duration::from_millis(100);

/// ≙ CreateJob's input; `None` takes Glue's default.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    pub name: String,
    pub description: String,
    /// The SQL, or None with `script_location`.
    pub sql: Option<String>,
    /// ≙ Command.ScriptLocation: a script in the lake, read when a run starts.
    pub script_location: Option<String>,
    pub database: String,
    /// A visual job (the script is a `CodeGenConfigurationNodes` graph), not SQL.
    pub visual: bool,
    pub default_arguments: BTreeMap<String, String>,
    pub bookmark: BookmarkOption,
    pub timeout_minutes: Option<u32>,
    pub max_retries: u32,
    pub max_concurrent_runs: Option<u32>,
    pub worker_type: WorkerType,
    pub number_of_workers: Option<u32>,
    pub glue_version: Option<String>,
}

/// The Glue ETL service of a workspace.
#[derive(Debug)]
pub struct Glue {
    path: PathBuf,
    clock: Arc<Clock>,
    lake: Arc<Lake>,
    catalog: Arc<crate::catalog::Catalog>,
    sql: Arc<SqlEngine>,
    state: Mutex<State>,
    /// Runs in progress, by the id they were started with: the task and the attempt it is on.
    running: Mutex<BTreeMap<String, Running>>,
}

#[derive(Debug)]
struct Running {
    task: tokio::task::AbortHandle,
    current: Arc<Mutex<String>>,
}

impl Glue {
    /// Opens the service; runs a dead kernel left unfinished are FAILED (their bookmark did
    /// not move).
    pub fn open(workspace: &Workspace, clock: Arc<Clock>, lake: Arc<Lake>, catalog: Arc<crate::catalog::Catalog>, sql: Arc<SqlEngine>) -> Result<Self> {
        // The folder is made by the first save (a workspace without jobs has none).
        let path = workspace.root().join("glue").join("jobs.json");
        let mut state: State = read_json(&path)?.unwrap_or_default();
        let now = clock.now();
        let mut changed = false;
        for run in state.runs.iter_mut() {
            // A decided run whose commit a crash cut short: finish moving its files in.
            for staged in std::mem::take(&mut run.commit) {
                sql.commit_target(&staged)?;
                changed = true;
            }
            if run.state.is_finished() {
                continue;
            }
            run.state = RunState::Failed;
            run.error_message = Some("the kernel ended during the run; the job bookmark did not move".into());
            run.completed_on = Some(now);
            run.last_modified_on = now;
            changed = true;
            for location in std::mem::take(&mut run.staging) {
                lake.delete_marked(&S3Uri::parse(&location)?, &staging_marker(&run.id))?;
            }
        }
        for run in state.workflow_runs.iter_mut().filter(|r| !r.status.is_finished()) {
            run.status = workflows::WorkflowRunStatus::Error;
            run.error_message = Some("the kernel ended during the run".into());
            run.completed_on = Some(now);
            changed = true;
        }
        let glue = Self { path, clock, lake, catalog, sql, state: Mutex::new(state), running: Mutex::default() };
        if changed {
            glue.save(&glue.lock())?;
        }
        Ok(glue)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| internal_err!("{e}"))?;
        atomic_write(&self.path, &bytes)
    }

    /// Applies `change` to a copy of the state and keeps it only once it is saved.
    fn commit<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        let mut next = state.clone();
        let value = change(&mut next)?;
        self.save(&next)?;
        *state = next;
        Ok(value)
    }

    /// ≙ CreateJob.
    pub fn create_job(&self, spec: JobSpec) -> Result<Job> {
        validate_job_name(&spec.name)?;
        let script = match (&spec.sql, &spec.script_location) {
            (Some(_), Some(_)) => return Err(service_err!(InvalidInputException, "a job has its script in the cell or at --script-location, not both")),
            (None, None) => {
                return Err(service_err!(InvalidInputException, "job {}: no script; give it as the cell body or --script-location s3://…/job.sql (or .json)", spec.name));
            }
            (Some(graph), None) if spec.visual => {
                graph::parse(graph)?;
                Script::Visual { graph: graph.clone(), location: None }
            }
            (Some(sql), None) if crate::analytics::sql::split_statements(sql).is_empty() => {
                return Err(service_err!(InvalidInputException, "job {}: the script has no SQL statement", spec.name));
            }
            (Some(sql), None) => Script::Sql { sql: sql.clone(), location: None, database: spec.database.clone() },
            (None, Some(location)) => {
                let visual = script_kind(location)?;
                S3Uri::parse(location)?;
                match visual {
                    true => Script::Visual { graph: String::new(), location: Some(location.clone()) },
                    false => Script::Sql { sql: String::new(), location: Some(location.clone()), database: spec.database.clone() },
                }
            }
        };
        let timeout_minutes = spec.timeout_minutes.unwrap_or(model::DEFAULT_TIMEOUT_MINUTES);
        if timeout_minutes == 0 {
            return Err(service_err!(InvalidInputException, "Timeout is in minutes and at least 1"));
        }
        let max_concurrent_runs = spec.max_concurrent_runs.unwrap_or(1);
        if max_concurrent_runs == 0 {
            return Err(service_err!(InvalidInputException, "MaxConcurrentRuns is at least 1"));
        }
        let number_of_workers = spec.number_of_workers.unwrap_or(10);
        if number_of_workers == 0 {
            return Err(service_err!(InvalidInputException, "NumberOfWorkers is at least 1"));
        }
        for key in spec.default_arguments.keys() {
            validate_argument_name(key)?;
        }
        let now = self.clock.now();
        let job = Job {
            name: spec.name.clone(),
            description: spec.description,
            script,
            default_arguments: spec.default_arguments,
            bookmark: spec.bookmark,
            timeout_minutes,
            max_retries: spec.max_retries,
            max_concurrent_runs,
            worker_type: spec.worker_type,
            number_of_workers,
            glue_version: spec.glue_version.unwrap_or_else(|| "5.0".into()),
            created_on: now,
            last_modified_on: now,
        };
        self.commit(|state| {
            if state.jobs.contains_key(&job.name) {
                return Err(service_err!(AlreadyExistsException, "Job {} already exists", job.name).with_hint("delete it first, or give another name"));
            }
            state.jobs.insert(job.name.clone(), job.clone());
            Ok(())
        })?;
        Ok(job)
    }

    /// ≙ GetJob.
    pub fn job(&self, name: &str) -> Result<Job> {
        let state = self.lock();
        state.jobs.get(name).cloned().ok_or_else(|| no_such_job(name, &state))
    }

    /// ≙ GetJobs, by name.
    pub fn jobs(&self) -> Vec<Job> {
        self.lock().jobs.values().cloned().collect()
    }

    /// ≙ DeleteJob: its runs in progress are stopped; its runs and bookmark go with it.
    pub fn delete_job(&self, name: &str) -> Result<()> {
        self.job(name)?;
        self.abort_where(|run| run.job_name == name);
        self.commit(|state| {
            state.jobs.remove(name);
            state.runs.retain(|r| r.job_name != name);
            state.bookmarks.remove(name);
            Ok(())
        })
    }

    /// ≙ StartJobRun: the run starts at once (STARTING, then RUNNING) as a task on the
    /// runtime; `arguments` (without `--`) go over the job's defaults. Fails with
    /// ConcurrentRunsExceededException when the job already runs its maximum.
    pub fn start_job_run(self: &Arc<Self>, name: &str, arguments: BTreeMap<String, String>, bookmark: Option<BookmarkOption>) -> Result<JobRun> {
        for key in arguments.keys() {
            validate_argument_name(key)?;
        }
        let run = self.commit(|state| {
            let job = state.jobs.get(name).cloned().ok_or_else(|| no_such_job(name, state))?;
            let active = state.runs.iter().filter(|r| r.job_name == name && !r.state.is_finished()).count();
            if active as u32 >= job.max_concurrent_runs {
                return Err(service_err!(
                    ConcurrentRunsExceededException,
                    "Concurrent runs exceeded for {name}: {active} running, MaxConcurrentRuns is {}",
                    job.max_concurrent_runs
                )
                .with_hint("wait for the running one (`%glue job runs`), stop it, or raise --max-concurrent-runs"));
            }
            state.started += 1;
            let now = self.clock.now();
            let id = run_id(name, now, state.started);
            let run = new_run(&job, id, 0, None, arguments, bookmark.unwrap_or(job.bookmark), now);
            state.runs.push(run.clone());
            Ok(run)
        })?;
        let current = Arc::new(Mutex::new(run.id.clone()));
        let glue = self.clone();
        let first = run.clone();
        let task = tokio::spawn(async move { glue.drive(first).await });
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(run.id.clone(), Running { task: task.abort_handle(), current });
        // The task may have ended before it was listed: drop a finished one's entry.
        if task.is_finished() {
            self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&run.id);
        }
        Ok(run)
    }

    /// ≙ GetJobRun (a retry's id too).
    pub fn job_run(&self, name: &str, id: &str) -> Result<JobRun> {
        let state = self.lock();
        if !state.jobs.contains_key(name) {
            return Err(no_such_job(name, &state));
        }
        state
            .runs
            .iter()
            .find(|r| r.job_name == name && r.id == id)
            .cloned()
            .ok_or_else(|| service_err!(EntityNotFoundException, "Job run {id} of {name} not found"))
    }

    /// ≙ GetJobRuns: newest first.
    pub fn job_runs(&self, name: &str) -> Result<Vec<JobRun>> {
        let state = self.lock();
        if !state.jobs.contains_key(name) {
            return Err(no_such_job(name, &state));
        }
        Ok(state.runs.iter().rev().filter(|r| r.job_name == name).cloned().collect())
    }

    /// Follows a run started with [`start_job_run`](Self::start_job_run) and its retries
    /// until the last attempt ends, calling `every` with the attempt in progress; returns
    /// every attempt, first to last.
    pub async fn wait_job_run(&self, name: &str, id: &str, mut every: impl FnMut(&JobRun)) -> Result<Vec<JobRun>> {
        loop {
            let still_running = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|r| r.current.lock().unwrap_or_else(|p| p.into_inner()).clone());
            let attempts = self.attempts(name, id)?;
            let current = attempts.last().ok_or_else(|| internal_err!("run {id} has no attempts"))?;
            if still_running.is_none() && current.state.is_finished() {
                return Ok(attempts);
            }
            every(current);
            tokio::time::sleep(WAIT_EVERY).await;
        }
    }

    fn attempts(&self, name: &str, id: &str) -> Result<Vec<JobRun>> {
        let first = self.job_run(name, id)?;
        let prefix = format!("{id}_attempt_");
        let state = self.lock();
        let mut attempts = vec![first];
        attempts.extend(state.runs.iter().filter(|r| r.job_name == name && r.id.starts_with(&prefix)).cloned());
        Ok(attempts)
    }

    /// ≙ BatchStopJobRun for one run (or one of its retries): the run ends STOPPED and
    /// its bookmark does not move.
    pub fn stop_job_run(&self, name: &str, id: &str) -> Result<JobRun> {
        let run = self.job_run(name, id)?;
        if run.state.is_finished() {
            return Err(service_err!(InvalidInputException, "Job run {id} of {name} is {} already; only a running run can be stopped", run.state));
        }
        let started_as = id.split("_attempt_").next().unwrap_or(id).to_string();
        if let Some(running) = self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&started_as) {
            running.task.abort();
        }
        let now = self.clock.now();
        let stopped: Vec<String> = self.commit(|state| {
            let mut stopped = Vec::new();
            for r in state.runs.iter_mut().filter(|r| r.job_name == name && !r.state.is_finished()) {
                if r.id == started_as || r.id.starts_with(&format!("{started_as}_attempt_")) {
                    stopped.push(r.id.clone());
                    r.state = RunState::Stopped;
                    r.completed_on = Some(now);
                    r.last_modified_on = now;
                    r.execution_seconds = seconds_between(r.started_on, now);
                    for node in r.nodes.iter_mut().filter(|n| n.state == "RUNNING") {
                        node.state = "STOPPED".into();
                    }
                }
            }
            Ok(stopped)
        })?;
        for id in stopped {
            self.finish(&id)?;
        }
        self.job_run(name, id)
    }

    /// ≙ GetJobBookmark (None before the first bookmarked run).
    pub fn bookmark(&self, name: &str) -> Result<Option<BookmarkEntry>> {
        self.job(name)?;
        Ok(self.lock().bookmarks.get(name).cloned())
    }

    /// ≙ ResetJobBookmark: the next bookmarked run reads everything again.
    pub fn reset_bookmark(&self, name: &str) -> Result<()> {
        self.job(name)?;
        self.commit(|state| {
            state.bookmarks.remove(name);
            Ok(())
        })
    }

    /// Stops every run in progress and waits (up to 5 s) for their tasks to end, so nothing
    /// of theirs writes into the workspace after it is reset or closed.
    pub fn close(&self) {
        let tasks: Vec<tokio::task::AbortHandle> = self.running.lock().unwrap_or_else(|p| p.into_inner()).values().map(|r| r.task.clone()).collect();
        self.abort_where(|_| true);
        let deadline = Instant::now() + Duration::from_secs(5);
        while tasks.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn abort_where(&self, which: impl Fn(&JobRun) -> bool) {
        let runs: Vec<JobRun> = self.lock().runs.iter().filter(|r| !r.state.is_finished() && which(r)).cloned().collect();
        for run in runs {
            let _ = self.stop_job_run(&run.job_name, &run.id);
        }
    }

    /// The task of a run: attempts until one succeeds, is stopped, times out, or the retries
    /// are used up.
    async fn drive(self: Arc<Self>, first: JobRun) {
        let started_as = first.id.clone();
        let mut run = first;
        loop {
            let outcome = self.attempt(&run).await;
            let retry = match outcome {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!("glue run {}: {e}", run.id);
                    None
                }
            };
            match retry {
                Some(next) => {
                    if let Some(r) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(&started_as) {
                        *r.current.lock().unwrap_or_else(|p| p.into_inner()) = next.id.clone();
                    }
                    run = next;
                }
                None => break,
            }
        }
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&started_as);
    }

    /// One attempt: RUNNING, the script, then its end state (and the bookmark) in one save.
    /// Returns the retry to run next, if the attempt failed and retries are left.
    async fn attempt(&self, run: &JobRun) -> Result<Option<JobRun>> {
        let job = self.job(&run.job_name)?;
        let running_since = self.clock.now();
        self.update(&run.id, |r| {
            r.state = RunState::Running;
            r.last_modified_on = running_since;
        })?;
        let done = self.lock().bookmarks.get(&job.name).map(|b| b.sources.clone()).unwrap_or_default();
        let bookmarks = Arc::new(Bookmarks { done: if run.bookmark == BookmarkOption::Disable { BTreeMap::new() } else { done }, ..Default::default() });
        let limit = Duration::from_secs(u64::from(run.timeout_minutes) * 60);
        let ran = tokio::time::timeout(limit, self.execute(&job, run, bookmarks.clone())).await;
        let now = self.clock.now();
        let (state, error, writes) = match ran {
            Ok(Ok(writes)) => (RunState::Succeeded, None, writes),
            Ok(Err(e)) => (RunState::Failed, Some(e), Vec::new()),
            Err(_) => (RunState::Timeout, None, Vec::new()),
        };
        let read = std::mem::take(&mut *bookmarks.read.lock().unwrap_or_else(|p| p.into_inner()));
        // The run's end, its bookmark and its staged writes are one state write: a crash
        // before it leaves the staged files to be removed, after it to be moved in.
        let decided = self.commit(|s| {
            let r = s.runs.iter_mut().find(|r| r.id == run.id).ok_or_else(|| internal_err!("run {} vanished", run.id))?;
            if r.state.is_finished() {
                return Ok(None); // stopped meanwhile
            }
            r.state = state;
            r.commit = writes.clone();
            r.completed_on = Some(now);
            r.last_modified_on = now;
            r.execution_seconds = seconds_between(running_since, now);
            r.error_message = match (&error, state) {
                (Some(e), _) => Some(e.to_string()),
                (None, RunState::Timeout) => Some(format!("the job ran longer than its timeout of {} minute(s) and was stopped", run.timeout_minutes)),
                _ => None,
            };
            for node in r.nodes.iter_mut().filter(|n| n.state == "RUNNING") {
                node.state = if state == RunState::Timeout { "STOPPED".into() } else { "FAILED".into() };
            }
            if state == RunState::Succeeded && run.bookmark == BookmarkOption::Enable {
                let entry = s.bookmarks.entry(job.name.clone()).or_insert_with(|| BookmarkEntry { job_name: job.name.clone(), ..Default::default() });
                entry.version += 1;
                entry.run_id = Some(run.id.clone());
                for (source, files) in read {
                    entry.sources.entry(source).or_default().extend(files);
                }
            }
            if state != RunState::Failed || run.attempt >= job.max_retries {
                return Ok(None);
            }
            let attempt = run.attempt + 1;
            let started_as = run.id.split("_attempt_").next().unwrap_or(&run.id).to_string();
            let retry = new_run(&job, format!("{started_as}_attempt_{attempt}"), attempt, Some(run.id.clone()), run.arguments.clone(), run.bookmark, now);
            s.runs.push(retry.clone());
            Ok(Some(retry))
        });
        self.finish(&run.id)?;
        decided
    }

    /// After a run's end is saved: its staged writes are moved in (SUCCEEDED) or removed.
    fn finish(&self, id: &str) -> Result<()> {
        let Some(run) = self.lock().runs.iter().find(|r| r.id == id).cloned() else { return Ok(()) };
        for staged in &run.commit {
            self.sql.commit_target(staged)?;
        }
        if run.state != RunState::Succeeded {
            for location in &run.staging {
                self.lake.delete_marked(&S3Uri::parse(location)?, &staging_marker(&run.id))?;
            }
        }
        if run.commit.is_empty() && run.staging.is_empty() {
            return Ok(());
        }
        self.commit(|s| {
            if let Some(r) = s.runs.iter_mut().find(|r| r.id == id) {
                r.commit.clear();
                r.staging.clear();
            }
            Ok(())
        })
    }

    /// Notes (and saves) a target location a run is about to stage files under.
    pub(super) fn staging_at(&self, id: &str, location: &str) -> Result<()> {
        self.commit(|s| {
            if let Some(r) = s.runs.iter_mut().find(|r| r.id == id)
                && !r.staging.iter().any(|l| l == location)
            {
                r.staging.push(location.to_string());
            }
            Ok(())
        })
    }

    /// Runs the job's script: each SQL statement, or each node of a visual job, with its own
    /// metrics.
    async fn execute(&self, job: &Job, run: &JobRun, bookmarks: Arc<Bookmarks>) -> Result<Vec<crate::sql::StagedWrite>> {
        let (inline, location) = match &job.script {
            Script::Sql { sql, location, .. } => (sql, location),
            Script::Visual { graph, location } => (graph, location),
        };
        let text = match location {
            Some(location) => {
                let bytes = self.lake.get(&S3Uri::parse(location)?).await?;
                String::from_utf8(bytes.to_vec()).map_err(|_| service_err!(InvalidInputException, "{location} is not UTF-8 text"))?
            }
            None => inline.clone(),
        };
        let mut arguments = job.default_arguments.clone();
        arguments.extend(run.arguments.clone());
        let text = expand_arguments(&text, &arguments)?;
        match &job.script {
            Script::Sql { database, .. } => self.execute_sql(&text, database, run, bookmarks).await.map(|()| Vec::new()),
            Script::Visual { .. } => self.execute_visual(&graph::parse(&text)?, run, bookmarks).await,
        }
    }

    async fn execute_sql(&self, text: &str, database: &str, run: &JobRun, bookmarks: Arc<Bookmarks>) -> Result<()> {
        let statements = crate::analytics::sql::split_statements(text);
        if statements.is_empty() {
            return Err(service_err!(InvalidInputException, "the script has no SQL statement"));
        }
        self.update(&run.id, |r| {
            r.nodes = statements.iter().enumerate().map(|(i, s)| NodeMetrics { node: node_name(i, s), state: "WAITING".into(), ..Default::default() }).collect();
        })?;
        for (i, statement) in statements.iter().enumerate() {
            let started = Instant::now();
            let rows_before = bookmarks.rows_read();
            let bytes_before = bookmarks.all_bytes_read();
            self.update(&run.id, |r| r.nodes[i].state = "RUNNING".into())?;
            let mut report = |p: &QueryProgress| {
                let _ = self.update(&run.id, |r| {
                    let node = &mut r.nodes[i];
                    node.records_read = bookmarks.rows_read() - rows_before;
                    node.bytes_read = bytes_read(p.bytes_scanned, bookmarks.all_bytes_read() - bytes_before);
                    node.millis = p.elapsed.as_millis() as u64;
                });
            };
            let mut watch = Watch { after: Duration::ZERO, every: Duration::from_millis(200), report: &mut report };
            let ran = self.sql.run_bookmarked(statement, database, Some(&mut watch), bookmarks.clone()).await;
            let millis = started.elapsed().as_millis() as u64;
            match ran {
                Ok(results) => self.update(&run.id, |r| {
                    let node = &mut r.nodes[i];
                    node.state = "SUCCEEDED".into();
                    node.millis = millis;
                    node.records_written = results.iter().map(|q| q.execution.rows_written).sum();
                    node.records_read = bookmarks.rows_read() - rows_before;
                    let scanned: u64 = results.iter().map(|q| q.execution.bytes_scanned).sum();
                    node.bytes_read = bytes_read(scanned, bookmarks.all_bytes_read() - bytes_before);
                })?,
                Err(e) => {
                    self.node_failed(&run.id, i, millis)?;
                    let node = node_name(i, statement);
                    return Err(Error::service(e.code(), format!("{node} failed: {}", e.message())));
                }
            }
        }
        Ok(())
    }

    /// Marks node `i` of a run FAILED after `millis`.
    pub(super) fn node_failed(&self, id: &str, i: usize, millis: u64) -> Result<()> {
        self.update(id, |r| {
            r.nodes[i].state = "FAILED".into();
            r.nodes[i].millis = millis;
        })
    }

    /// Changes a run in memory (live progress; saved with the next commit).
    fn update(&self, id: &str, change: impl FnOnce(&mut JobRun)) -> Result<()> {
        let mut state = self.lock();
        let run = state.runs.iter_mut().find(|r| r.id == id).ok_or_else(|| internal_err!("run {id} vanished"))?;
        if !run.state.is_finished() {
            change(run);
        }
        Ok(())
    }
}

fn new_run(job: &Job, id: String, attempt: u32, previous_run_id: Option<String>, arguments: BTreeMap<String, String>, bookmark: BookmarkOption, now: DateTime<Utc>) -> JobRun {
    JobRun {
        id,
        job_name: job.name.clone(),
        attempt,
        previous_run_id,
        state: RunState::Starting,
        arguments,
        bookmark,
        started_on: now,
        last_modified_on: now,
        completed_on: None,
        execution_seconds: 0,
        timeout_minutes: job.timeout_minutes,
        worker_type: job.worker_type,
        number_of_workers: job.number_of_workers,
        error_message: None,
        nodes: Vec::new(),
        staging: Vec::new(),
        commit: Vec::new(),
    }
}

/// "statement 2 (INSERT INTO curated.events …)": a SQL job's node.
fn node_name(i: usize, statement: &str) -> String {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let head = words.iter().take(4).copied().collect::<Vec<_>>().join(" ");
    let more = if words.len() > 4 { " …" } else { "" };
    format!("statement {} ({head}{more})", i + 1)
}

/// The folder (under a target's partition folders) a run's staged files wait in.
fn staging_marker(run: &str) -> String {
    format!("{}/{run}", crate::sql::STAGING)
}

/// A statement's bytes read: what its Parquet scans fetched, or else the sizes of the files it
/// read whole (JSON, CSV and the other text formats count no fetched bytes).
fn bytes_read(scanned: u64, files: u64) -> u64 {
    if scanned > 0 { scanned } else { files }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_seconds().max(0) as u64
}

/// Glue's run ids: `jr_` and 64 hex digits; derived from the job, the engine time and the
/// run count, so a notebook on the manual clock prints the same ids every time.
fn run_id(job: &str, now: DateTime<Utc>, n: u64) -> String {
    let seed = format!("{job}/{}/{n}", now.timestamp_nanos_opt().unwrap_or_default());
    let a: [u8; 16] = md5::Md5::digest(seed.as_bytes()).into();
    let b: [u8; 16] = md5::Md5::digest(format!("{seed}/2").as_bytes()).into();
    format!("jr_{:032x}{:032x}", u128::from_be_bytes(a), u128::from_be_bytes(b))
}

fn no_such_job(name: &str, state: &State) -> Error {
    let names: Vec<&str> = state.jobs.keys().map(String::as_str).collect();
    let mut e = service_err!(EntityNotFoundException, "Job {name} not found");
    if let Some(c) = crate::error::closest(name, &names) {
        e = e.with_hint(format!("did you mean {c}?"));
    }
    e
}

pub(super) fn validate_job_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok { Ok(()) } else { Err(service_err!(InvalidInputException, "job name {name:?}: 1 to 255 letters, digits, '_', '-' or '.'")) }
}

fn validate_argument_name(key: &str) -> Result<()> {
    let ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) && !key.starts_with('-');
    if ok { Ok(()) } else { Err(service_err!(InvalidInputException, "job argument {key:?}: a name of letters, digits, '_' or '-' (`--arg {key}=value`)")) }
}

/// What a script location holds, by its extension: SQL (false) or a visual job's graph
/// (true); Spark scripts are refused.
fn script_kind(location: &str) -> Result<bool> {
    let lower = location.to_ascii_lowercase();
    if lower.ends_with(".sql") {
        return Ok(false);
    }
    if lower.ends_with(".json") {
        return Ok(true);
    }
    let what = if lower.ends_with(".py") {
        "a PySpark script (glueContext, DynamicFrames in Python)"
    } else if lower.ends_with(".scala") {
        "a Scala script"
    } else {
        "not a .sql script"
    };
    Err(service_err!(InvalidInputException, "{location} is {what}: Lakebook runs Glue jobs as SQL (--type sql: a cell body or a .sql script) or as Glue Studio visual jobs; Spark scripts do not run here"))
}

/// `${key}` in a script is the job argument `key`; `$${` is a literal `${`.
fn expand_arguments(text: &str, arguments: &BTreeMap<String, String>) -> Result<String> {
    use crate::util::Unexpanded;
    crate::util::expand_vars(text, true, |key| arguments.get(key).map(String::as_str)).map_err(|e| match e {
        Unexpanded::Unclosed => service_err!(InvalidInputException, "the script has `${{` without a closing `}}`"),
        Unexpanded::BadName(name) => service_err!(InvalidInputException, "the script has ${{{name}}}, and {name:?} is not an argument name"),
        Unexpanded::Missing(key) => {
            let known: Vec<&str> = arguments.keys().map(String::as_str).collect();
            service_err!(InvalidInputException, "the script uses ${{{key}}} but the run has no argument {key}")
                .with_hint(format!("pass --arg {key}=…; the run's arguments: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_expand_and_missing_ones_are_named() {
        let args: BTreeMap<String, String> = [("day".to_string(), "2026-12-01".to_string())].into();
        assert_eq!(expand_arguments("WHERE day = '${day}' AND x = '$${day}'", &args).unwrap(), "WHERE day = '2026-12-01' AND x = '${day}'");
        let e = expand_arguments("${nope}", &args).unwrap_err();
        assert_eq!(e.code(), "InvalidInputException");
        assert!(e.message().contains("nope"), "{e}");
        assert!(expand_arguments("${day", &args).is_err());
    }

    #[test]
    fn spark_scripts_are_refused_naming_the_supported_forms() {
        let e = script_kind("s3://scripts/job.py").unwrap_err();
        assert!(e.message().contains("PySpark") && e.message().contains("visual"), "{e}");
        assert!(!script_kind("s3://scripts/job.sql").unwrap());
        assert!(script_kind("s3://scripts/job.json").unwrap());
    }

    #[test]
    fn run_ids_look_like_glue_ids_and_repeat_for_the_same_moment() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let id = run_id("clean", now, 1);
        assert_eq!(id.len(), 3 + 64);
        assert!(id.starts_with("jr_"));
        assert_eq!(id, run_id("clean", now, 1));
        assert_ne!(id, run_id("clean", now, 2));
    }

    #[test]
    fn billing_has_a_one_minute_minimum() {
        let now = Utc::now();
        let job = Job {
            name: "j".into(),
            description: String::new(),
            script: Script::Sql { sql: "select 1".into(), location: None, database: "default".into() },
            default_arguments: BTreeMap::new(),
            bookmark: BookmarkOption::Disable,
            timeout_minutes: 10,
            max_retries: 0,
            max_concurrent_runs: 1,
            worker_type: WorkerType::G2X,
            number_of_workers: 10,
            glue_version: "5.0".into(),
            created_on: now,
            last_modified_on: now,
        };
        let mut run = new_run(&job, "jr_x".into(), 0, None, BTreeMap::new(), BookmarkOption::Disable, now);
        run.state = RunState::Succeeded;
        run.execution_seconds = 5;
        assert!((run.dpu_hours() - 10.0 * 2.0 * 60.0 / 3600.0).abs() < 1e-9);
        run.execution_seconds = 7200;
        assert!((run.cost_usd() - 10.0 * 2.0 * 2.0 * 0.44).abs() < 1e-9);
    }
}
