//! What Glue ETL keeps in `glue/jobs.json`: jobs, their runs and their bookmarks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::service_err;

/// Glue's price: $0.44 per DPU-hour, billed per second with a 1-minute minimum (Glue 2.0+).
pub const USD_PER_DPU_HOUR: f64 = 0.44;
/// The billed minimum of a run, in seconds.
pub const MIN_BILLED_SECONDS: u64 = 60;
/// Glue's default job timeout: 48 hours.
pub const DEFAULT_TIMEOUT_MINUTES: u32 = 2880;

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Script {
    /// Athena SQL statements run in order in `database`; `${key}` is a job argument. With a
    /// `location` (≙ Command.ScriptLocation) the SQL is read from the lake when a run starts.
    Sql { sql: String, location: Option<String>, database: String },
    /// A Glue Studio visual job: its `CodeGenConfigurationNodes` JSON (or a `.json` file in the
    /// lake at `location`, read when a run starts).
    Visual { graph: String, location: Option<String> },
}

/// ≙ the job's `--job-bookmark-option` argument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookmarkOption {
    /// Every run reads everything; the bookmark is neither read nor changed (Glue's default).
    #[default]
    #[serde(rename = "job-bookmark-disable")]
    Disable,
    /// A run reads only what is new since the last successful run, and moves the bookmark.
    #[serde(rename = "job-bookmark-enable")]
    Enable,
    /// A run reads what is new since the bookmark but leaves the bookmark where it is.
    #[serde(rename = "job-bookmark-pause")]
    Pause,
}

impl BookmarkOption {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "job-bookmark-enable" => Ok(Self::Enable),
            "job-bookmark-disable" => Ok(Self::Disable),
            "job-bookmark-pause" => Ok(Self::Pause),
            other => Err(service_err!(
                InvalidInputException,
                "--job-bookmark-option {other:?}: the options are job-bookmark-enable, job-bookmark-disable and job-bookmark-pause"
            )),
        }
    }
}

impl std::fmt::Display for BookmarkOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

/// ≙ WorkerType: what one worker is, in DPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerType {
    #[serde(rename = "Standard")]
    Standard,
    #[serde(rename = "G.025X")]
    G025X,
    #[default]
    #[serde(rename = "G.1X")]
    G1X,
    #[serde(rename = "G.2X")]
    G2X,
    #[serde(rename = "G.4X")]
    G4X,
    #[serde(rename = "G.8X")]
    G8X,
}

impl WorkerType {
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "Standard" => Self::Standard,
            "G.025X" => Self::G025X,
            "G.1X" => Self::G1X,
            "G.2X" => Self::G2X,
            "G.4X" => Self::G4X,
            "G.8X" => Self::G8X,
            other => {
                return Err(service_err!(InvalidInputException, "worker type {other:?}: Glue's are Standard, G.025X, G.1X, G.2X, G.4X and G.8X"));
            }
        })
    }

    /// DPUs per worker.
    pub fn dpu(self) -> f64 {
        match self {
            Self::G025X => 0.25,
            Self::Standard | Self::G1X => 1.0,
            Self::G2X => 2.0,
            Self::G4X => 4.0,
            Self::G8X => 8.0,
        }
    }
}

impl std::fmt::Display for WorkerType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

/// ≙ Job (CreateJob's input, GetJob's output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub script: Script,
    /// ≙ DefaultArguments, without the leading `--`; `job-bookmark-option` is [`Job::bookmark`].
    pub default_arguments: BTreeMap<String, String>,
    pub bookmark: BookmarkOption,
    pub timeout_minutes: u32,
    pub max_retries: u32,
    pub max_concurrent_runs: u32,
    pub worker_type: WorkerType,
    pub number_of_workers: u32,
    pub glue_version: String,
    pub created_on: DateTime<Utc>,
    pub last_modified_on: DateTime<Utc>,
}

/// ≙ JobRunState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    Starting,
    Running,
    Stopping,
    Stopped,
    Succeeded,
    Failed,
    Timeout,
}

impl RunState {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Stopped | Self::Succeeded | Self::Failed | Self::Timeout)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

/// What one node of a job (a SQL job's statement) did in a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub node: String,
    /// RUNNING, SUCCEEDED or FAILED.
    pub state: String,
    pub records_read: u64,
    pub bytes_read: u64,
    pub records_written: u64,
    pub millis: u64,
}

/// ≙ JobRun.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    pub id: String,
    pub job_name: String,
    /// 0 for the run started; n for its n-th retry (`<id>_attempt_n`).
    pub attempt: u32,
    pub previous_run_id: Option<String>,
    pub state: RunState,
    /// The arguments the run was started with (without `--`), over the job's defaults.
    pub arguments: BTreeMap<String, String>,
    pub bookmark: BookmarkOption,
    pub started_on: DateTime<Utc>,
    pub last_modified_on: DateTime<Utc>,
    pub completed_on: Option<DateTime<Utc>>,
    /// ≙ ExecutionTime: engine-clock seconds from RUNNING to the end.
    pub execution_seconds: u64,
    pub timeout_minutes: u32,
    pub worker_type: WorkerType,
    pub number_of_workers: u32,
    pub error_message: Option<String>,
    pub nodes: Vec<NodeMetrics>,
    /// Target locations the run may have staged files under (removed if it does not commit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staging: Vec<String>,
    /// A SUCCEEDED run's staged writes still to be moved into place (finished when the
    /// workspace opens if a crash cut the commit short).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commit: Vec<crate::sql::StagedWrite>,
}

impl JobRun {
    /// DPU-hours billed: workers × DPU per worker × the execution time, at least a minute.
    pub fn dpu_hours(&self) -> f64 {
        if self.state == RunState::Starting {
            return 0.0;
        }
        let seconds = self.execution_seconds.max(MIN_BILLED_SECONDS) as f64;
        self.number_of_workers as f64 * self.worker_type.dpu() * seconds / 3600.0
    }

    pub fn cost_usd(&self) -> f64 {
        self.dpu_hours() * USD_PER_DPU_HOUR
    }

    /// A SQL job's statements each read their own; a visual job's records are read by its
    /// sources only (the nodes after them take their rows), so the sum counts each read once.
    pub fn records_read(&self) -> u64 {
        self.nodes.iter().map(|n| n.records_read).sum()
    }

    pub fn records_written(&self) -> u64 {
        self.nodes.iter().map(|n| n.records_written).sum()
    }
}

/// ≙ JobBookmarkEntry: per source table (`db.table`), the files processed (`s3://…` → their
/// last-modified time in ms) by the successful runs since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BookmarkEntry {
    pub job_name: String,
    /// Moves with every successful bookmarked run.
    pub version: u32,
    pub run_id: Option<String>,
    pub sources: BTreeMap<String, BTreeMap<String, i64>>,
}

/// The persisted state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct State {
    pub jobs: BTreeMap<String, Job>,
    /// Oldest first.
    pub runs: Vec<JobRun>,
    pub bookmarks: BTreeMap<String, BookmarkEntry>,
    #[serde(default)]
    pub triggers: BTreeMap<String, super::triggers::Trigger>,
    #[serde(default)]
    pub workflows: BTreeMap<String, super::workflows::Workflow>,
    /// Oldest first.
    #[serde(default)]
    pub workflow_runs: Vec<super::workflows::WorkflowRun>,
    /// Runs started so far: makes run ids unique at one engine time.
    pub started: u64,
}
