//! Glue triggers (≙ CreateTrigger, StartTrigger, StopTrigger, GetTriggers, DeleteTrigger):
//! SCHEDULED (a `cron(…)` schedule on the engine clock), CONDITIONAL (when watched jobs reach
//! a state, or crawlers succeed: ALL or ANY of the conditions since the trigger last fired)
//! and ON_DEMAND (fired by StartTrigger). Their actions start jobs and crawlers. Triggers are
//! checked with the due work; the runs a firing starts are waited for there, so a chain of
//! conditional triggers completes within one `%clock advance` on the manual clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::Glue;
use crate::error::Result;
use crate::lake::Lake;
use crate::schedule::Schedule;
use crate::service_err;

/// How many rounds of firing one due pass allows (a chain of conditional triggers).
const MAX_ROUNDS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerType {
    Scheduled,
    Conditional,
    OnDemand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerState {
    Created,
    Activated,
    Deactivated,
}

/// `job:NAME` or `crawler:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Job(String),
    Crawler(String),
}

impl Target {
    pub fn parse(text: &str) -> Result<Self> {
        match text.split_once(':') {
            Some(("job", name)) if !name.is_empty() => Ok(Target::Job(name.to_string())),
            Some(("crawler", name)) if !name.is_empty() => Ok(Target::Crawler(name.to_string())),
            _ => Err(service_err!(InvalidInputException, "{text:?}: write job:NAME or crawler:NAME")),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Job(n) => write!(f, "job:{n}"),
            Target::Crawler(n) => write!(f, "crawler:{n}"),
        }
    }
}

/// ≙ Condition: a job reaching a state (SUCCEEDED, FAILED, TIMEOUT, STOPPED), or a crawler
/// succeeding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub watch: Target,
    pub state: String,
}

impl Condition {
    /// `job:clean=SUCCEEDED`, `crawler:raw=SUCCEEDED`.
    pub fn parse(text: &str) -> Result<Self> {
        let (what, state) = text.split_once('=').ok_or_else(|| service_err!(InvalidInputException, "{text:?}: write job:NAME=STATE or crawler:NAME=SUCCEEDED"))?;
        let watch = Target::parse(what)?;
        let state = state.to_ascii_uppercase();
        let ok = match watch {
            Target::Job(_) => ["SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED"].contains(&state.as_str()),
            Target::Crawler(_) => state == "SUCCEEDED",
        };
        if !ok {
            return Err(service_err!(InvalidInputException, "{text:?}: a job's state is SUCCEEDED, FAILED, TIMEOUT or STOPPED; a crawler's is SUCCEEDED"));
        }
        Ok(Condition { watch, state })
    }
}

/// ≙ Trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub name: String,
    pub kind: TriggerType,
    pub state: TriggerState,
    pub schedule: Option<String>,
    /// ALL (true) or ANY of the conditions.
    pub all: bool,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Target>,
    pub created_on: DateTime<Utc>,
    /// When it was activated or last fired: a schedule counts from here, conditions look at
    /// what ended after it.
    pub since: DateTime<Utc>,
    #[serde(default)]
    pub fired: u32,
    /// Job runs a firing has answered already (and those there were at activation).
    #[serde(default)]
    pub consumed: Vec<String>,
    /// Each watched crawler's run count at the last firing (or activation).
    #[serde(default)]
    pub crawls_seen: BTreeMap<String, usize>,
    /// The workflow it belongs to (≙ WorkflowName): its conditions then look only at the
    /// workflow's runs, and an on-demand or scheduled one starts workflow runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
}

/// ≙ CreateTrigger's input.
#[derive(Debug, Clone)]
pub struct TriggerSpec {
    pub name: String,
    pub kind: TriggerType,
    /// A scheduled trigger's `cron(…)`.
    pub schedule: Option<String>,
    /// ALL (true) or ANY of the conditions.
    pub all: bool,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Target>,
    /// ≙ StartOnCreation.
    pub start: bool,
    /// ≙ WorkflowName.
    pub workflow: Option<String>,
}

impl TriggerSpec {
    pub fn new(name: &str, kind: TriggerType, actions: Vec<Target>) -> Self {
        TriggerSpec { name: name.into(), kind, schedule: None, all: true, conditions: Vec::new(), actions, start: false, workflow: None }
    }
}

impl Glue {
    /// ≙ CreateTrigger (with StartOnCreation: `start`).
    pub fn create_trigger(&self, spec: TriggerSpec) -> Result<Trigger> {
        let TriggerSpec { name, kind, schedule, all, conditions, actions, start, workflow } = spec;
        let name = name.as_str();
        super::validate_job_name(name)?;
        match kind {
            TriggerType::Scheduled => {
                Schedule::parse(schedule.as_deref().ok_or_else(|| service_err!(InvalidInputException, "a SCHEDULED trigger needs a --schedule \"cron(…)\""))?)?;
            }
            TriggerType::Conditional if conditions.is_empty() => return Err(service_err!(InvalidInputException, "a CONDITIONAL trigger needs a predicate (--when job:NAME=SUCCEEDED)")),
            _ => {}
        }
        if actions.is_empty() {
            return Err(service_err!(InvalidInputException, "a trigger needs an action (--action job:NAME or crawler:NAME)"));
        }
        for target in actions.iter().chain(conditions.iter().map(|c| &c.watch)) {
            match target {
                Target::Job(job) => {
                    self.job(job)?;
                }
                Target::Crawler(crawler) => {
                    self.catalog.crawler(crawler)?;
                }
            }
        }
        if let Some(workflow) = &workflow {
            self.workflow(workflow)?;
            if super::workflows::is_start(&kind)
                && let Some(other) = self.triggers().into_iter().find(|t| t.workflow.as_ref() == Some(workflow) && super::workflows::is_start(&t.kind))
            {
                return Err(service_err!(InvalidInputException, "workflow {workflow} has a start trigger already ({}); its other triggers are conditional", other.name));
            }
        }
        let now = self.clock.now();
        let state = if start && kind != TriggerType::OnDemand { TriggerState::Activated } else { TriggerState::Created };
        let mut trigger = Trigger {
            name: name.into(),
            kind,
            state,
            schedule,
            all,
            conditions,
            actions,
            created_on: now,
            since: now,
            fired: 0,
            consumed: Vec::new(),
            crawls_seen: BTreeMap::new(),
            workflow,
        };
        self.mark_seen(&mut trigger);
        self.commit(|s| {
            if s.triggers.contains_key(name) {
                return Err(service_err!(AlreadyExistsException, "Trigger {name} already exists"));
            }
            s.triggers.insert(name.into(), trigger.clone());
            Ok(())
        })?;
        Ok(trigger)
    }

    pub fn triggers(&self) -> Vec<Trigger> {
        self.lock().triggers.values().cloned().collect()
    }

    fn trigger(&self, name: &str) -> Result<Trigger> {
        self.lock().triggers.get(name).cloned().ok_or_else(|| service_err!(EntityNotFoundException, "Trigger {name} not found"))
    }

    /// ≙ StartTrigger: activates a scheduled or conditional trigger; fires an on-demand one
    /// (returning the runs it started).
    pub async fn start_trigger(self: &Arc<Self>, name: &str, lake: &Lake) -> Result<Vec<String>> {
        let trigger = self.trigger(name)?;
        if trigger.kind == TriggerType::OnDemand {
            return self.fire(&trigger, lake).await;
        }
        let now = self.clock.now();
        let mut activated = trigger;
        activated.state = TriggerState::Activated;
        activated.since = now;
        self.mark_seen(&mut activated);
        self.commit(|s| {
            s.triggers.insert(name.to_string(), activated);
            Ok(())
        })?;
        Ok(Vec::new())
    }

    /// ≙ StopTrigger.
    pub fn stop_trigger(&self, name: &str) -> Result<()> {
        self.trigger(name)?;
        self.commit(|s| {
            if let Some(t) = s.triggers.get_mut(name) {
                t.state = TriggerState::Deactivated;
            }
            Ok(())
        })
    }

    /// ≙ DeleteTrigger.
    pub fn delete_trigger(&self, name: &str) -> Result<()> {
        self.trigger(name)?;
        self.commit(|s| {
            s.triggers.remove(name);
            Ok(())
        })
    }

    /// Notes what the watched jobs and crawlers have done so far: only what comes after
    /// counts towards the conditions.
    fn mark_seen(&self, trigger: &mut Trigger) {
        for condition in &trigger.conditions {
            match &condition.watch {
                Target::Job(job) => {
                    let runs: Vec<String> = self.lock().runs.iter().filter(|r| &r.job_name == job && r.state.is_finished()).map(|r| r.id.clone()).collect();
                    for id in runs {
                        if !trigger.consumed.contains(&id) {
                            trigger.consumed.push(id);
                        }
                    }
                }
                Target::Crawler(crawler) => {
                    let count = self.catalog.crawler(crawler).map(|c| c.runs.len()).unwrap_or(0);
                    trigger.crawls_seen.insert(crawler.clone(), count);
                }
            }
        }
    }

    /// Starts a trigger's actions and waits for the job runs; returns what it started.
    async fn fire(self: &Arc<Self>, trigger: &Trigger, lake: &Lake) -> Result<Vec<String>> {
        let now = self.clock.now();
        let mut fired = trigger.clone();
        fired.since = now;
        fired.fired += 1;
        self.mark_seen(&mut fired);
        self.commit(|s| {
            if s.triggers.contains_key(&fired.name) {
                s.triggers.insert(fired.name.clone(), fired.clone());
            }
            Ok(())
        })?;
        let mut started = Vec::new();
        if let Some(workflow) = &trigger.workflow {
            let run = self.start_workflow_run(workflow, BTreeMap::new())?;
            let run = self.wait_workflow_run(workflow, &run.id, |_| {}).await?;
            started.push(format!("trigger {} started workflow {workflow}: run {} {}", trigger.name, run.id, run.status));
            return Ok(started);
        }
        for action in &trigger.actions {
            match action {
                Target::Job(job) => match self.start_job_run(job, Default::default(), None) {
                    Ok(run) => {
                        let attempts = self.wait_job_run(job, &run.id, |_| {}).await?;
                        let last = attempts.last().map_or("?".to_string(), |r| r.state.to_string());
                        started.push(format!("trigger {} started job {job}: run {} {last}", trigger.name, run.id));
                    }
                    Err(e) => started.push(format!("trigger {} could not start job {job}: {e}", trigger.name)),
                },
                Target::Crawler(crawler) => match self.catalog.run_crawler(lake, crawler, &mut |_, _| {}).await {
                    Ok(_) => started.push(format!("trigger {} ran crawler {crawler}", trigger.name)),
                    Err(e) => started.push(format!("trigger {} ran crawler {crawler}: it failed: {e}", trigger.name)),
                },
            }
        }
        Ok(started)
    }

    /// Whether a condition was met since the trigger last fired (or was activated).
    fn met(&self, condition: &Condition, trigger: &Trigger) -> bool {
        match &condition.watch {
            Target::Job(job) => self
                .lock()
                .runs
                .iter()
                .any(|r| &r.job_name == job && r.state.is_finished() && r.state.to_string() == condition.state && !trigger.consumed.contains(&r.id)),
            Target::Crawler(crawler) => {
                let count = self.catalog.crawler(crawler).map(|c| c.runs.len()).unwrap_or(0);
                count > trigger.crawls_seen.get(crawler).copied().unwrap_or(0)
            }
        }
    }

    /// Fires the activated triggers that are due (schedules) or whose conditions are met,
    /// round after round while a firing makes others' conditions true.
    pub async fn run_due_triggers(self: &Arc<Self>, lake: &Lake) -> Vec<String> {
        let mut reports = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let now = self.clock.now();
            let ready: Vec<Trigger> = self
                .triggers()
                .into_iter()
                .filter(|t| t.state == TriggerState::Activated)
                .filter(|t| match t.kind {
                    TriggerType::Scheduled => t.schedule.as_deref().and_then(|s| Schedule::parse(s).ok()).is_some_and(|s| crate::schedule::due(&s, t.since, now)),
                    // A workflow's conditional triggers fire inside its runs only.
                    TriggerType::Conditional if t.workflow.is_some() => false,
                    TriggerType::Conditional => {
                        let met = |c: &Condition| self.met(c, t);
                        if t.all { t.conditions.iter().all(met) } else { t.conditions.iter().any(met) }
                    }
                    TriggerType::OnDemand => false,
                })
                .collect();
            if ready.is_empty() {
                break;
            }
            for trigger in ready {
                match self.fire(&trigger, lake).await {
                    Ok(lines) => reports.extend(lines),
                    Err(e) => reports.push(format!("trigger {} failed: {e}", trigger.name)),
                }
            }
        }
        reports
    }
}
