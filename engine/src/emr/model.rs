//! EMR's vocabulary: clusters and their nodes, steps, task attempts, counters and progress,
//! as `DescribeCluster` / `DescribeStep` show them, in the form persisted in `clusters.json`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lake::S3Uri;

/// ≙ ClusterState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterState {
    Starting,
    Bootstrapping,
    /// A step is running.
    Running,
    /// Ready and idle.
    Waiting,
    Terminating,
    Terminated,
    TerminatedWithErrors,
}

impl ClusterState {
    /// TERMINATED or TERMINATED_WITH_ERRORS: nothing changes any more.
    pub fn is_terminated(self) -> bool {
        matches!(self, Self::Terminated | Self::TerminatedWithErrors)
    }

    /// TERMINATING or terminated: no new steps, no new work.
    pub fn is_ending(self) -> bool {
        self == Self::Terminating || self.is_terminated()
    }
}

/// ≙ ClusterStateChangeReason / StepStateChangeReason: a code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChangeReason {
    /// `USER_REQUEST`, `ALL_STEPS_COMPLETED`, `STEP_FAILURE`, `INSTANCE_FAILURE`, or for
    /// steps the error name (`TaskFailed` …); none for a plain "ready" message.
    pub code: Option<String>,
    pub message: String,
}

impl StateChangeReason {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { code: Some(code.to_string()), message: message.into() }
    }

    pub fn message(message: impl Into<String>) -> Self {
        Self { code: None, message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Market {
    #[default]
    OnDemand,
    Spot,
}

/// ≙ InstanceGroupType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeKind {
    /// Runs no tasks in this model (YARN's resource manager lives there).
    Master,
    /// Runs tasks and holds HDFS (and its local disk holds map outputs).
    Core,
    /// Runs tasks only; its local disk still holds the map outputs of the tasks it ran.
    Task,
}

/// ≙ InstanceState, reduced to what the model can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    /// Before the cluster is ready.
    Provisioning,
    Running,
    /// Taken away (spot interruption, hardware failure): not replaced.
    Lost,
    Terminated,
}

/// One instance of the cluster (≙ ListInstances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `ip-10-0-0-1` for the master, `ip-10-0-1-N` for core, `ip-10-0-2-N` for task nodes.
    pub id: String,
    pub kind: NodeKind,
    pub market: Market,
    pub state: NodeState,
    pub reason: Option<String>,
}

/// What `create_cluster` asks for (≙ RunJobFlow's Instances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub core: u32,
    pub task: u32,
    pub task_market: Market,
    /// Containers (task slots) per core/task node.
    pub slots_per_node: u32,
    /// ≙ KeepJobFlowAliveWhenNoSteps = false: terminate once the last step has run.
    pub auto_terminate: bool,
    /// ≙ AutoTerminationPolicy.IdleTimeout: terminate after this long WAITING.
    #[serde(with = "opt_secs")]
    pub idle_timeout: Option<Duration>,
    /// ≙ ReleaseLabel (`emr-7.5.0`): decides the node image, so far which Python
    /// `/usr/bin/python` is ([`python_of_release`]).
    #[serde(default = "default_release_label")]
    pub release_label: String,
}

/// The release a cluster gets when none is asked for (the CLI requires one; the console
/// offers the newest).
pub const DEFAULT_RELEASE_LABEL: &str = "emr-7.5.0";

fn default_release_label() -> String {
    DEFAULT_RELEASE_LABEL.to_string()
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            core: 2,
            task: 0,
            task_market: Market::OnDemand,
            slots_per_node: 2,
            auto_terminate: false,
            idle_timeout: None,
            release_label: default_release_label(),
        }
    }
}

/// `emr-5.36.0` → (5, 36); `None` for anything else.
pub fn release_version(label: &str) -> Option<(u32, u32)> {
    let rest = label.strip_prefix("emr-")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    parts.all(|p| p.parse::<u32>().is_ok()).then_some((major, minor))
}

/// Which Python the release's node image runs as `/usr/bin/python`: Amazon Linux 1 and 2
/// (releases before 7) ship Python 2.7 there, and the guides' sample scripts
/// (`#!/usr/bin/python`, `print "…"`) are written for it; Amazon Linux 2023 (emr-7) has only
/// Python 3.
pub fn python_of_release(label: &str) -> PythonImage {
    match release_version(label) {
        Some((major, _)) if major < 7 => PythonImage::Python2,
        _ => PythonImage::Python3,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonImage {
    Python2,
    Python3,
}

/// A cluster (≙ DescribeCluster, with its instances and steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub name: String,
    pub state: ClusterState,
    pub reason: Option<StateChangeReason>,
    pub config: ClusterConfig,
    pub created: DateTime<Utc>,
    /// When the cluster entered its current state.
    pub state_changed: DateTime<Utc>,
    /// When it first reached WAITING.
    pub ready: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    pub nodes: Vec<Node>,
    pub steps: Vec<Step>,
    /// The state TERMINATING ends in (TERMINATED, or TERMINATED_WITH_ERRORS after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ends_as: Option<ClusterState>,
    /// Node losses armed with `LossTrigger::AfterMaps`, fired by the next streaming step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub armed_losses: Vec<ArmedLoss>,
}

impl Cluster {
    /// Nodes of a kind that are still there.
    pub fn live(&self, kind: NodeKind) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.kind == kind && n.state != NodeState::Lost && n.state != NodeState::Terminated)
    }

    /// The size of an instance group now (lost nodes are not replaced).
    pub fn group_size(&self, kind: NodeKind) -> usize {
        self.live(kind).count()
    }

    /// Task slots of the live core and task nodes.
    pub fn slots(&self) -> u32 {
        (self.group_size(NodeKind::Core) + self.group_size(NodeKind::Task)) as u32 * self.config.slots_per_node
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// A node loss waiting for its moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmedLoss {
    pub kind: NodeKind,
    /// Fires once this many map tasks of the step have completed.
    pub after_maps: u32,
}

/// When `lose_node` strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossTrigger {
    /// At once (inside the running step, if one runs).
    Now,
    /// Inside the current or next streaming step, once this many of its map tasks completed.
    AfterMaps(u32),
}

/// ≙ ActionOnFailure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionOnFailure {
    #[default]
    Continue,
    /// Cancel the steps still pending; the cluster keeps WAITING.
    CancelAndWait,
    /// Terminate the cluster (TERMINATED_WITH_ERRORS).
    TerminateCluster,
}

/// A Hadoop-streaming job (≙ `command-runner.jar hadoop-streaming …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamingStep {
    /// A shell command (`sh -c`), run in the task's working directory.
    pub mapper: String,
    pub reducer: Option<String>,
    pub combiner: Option<String>,
    /// Reduce tasks; 0 makes a map-only job.
    pub reducers: u32,
    #[serde(with = "uris")]
    pub input: Vec<S3Uri>,
    #[serde(with = "uri")]
    pub output: S3Uri,
    /// Bytes per split (default: the block size, 128 MiB).
    pub split_size: Option<u64>,
    /// Objects copied into every task's working directory under their file name (≙ -files).
    #[serde(with = "uris")]
    pub files: Vec<S3Uri>,
}

impl StreamingStep {
    /// A job with one reducer and nothing shipped.
    pub fn new(mapper: impl Into<String>, reducer: Option<&str>, input: Vec<S3Uri>, output: S3Uri) -> Self {
        Self {
            mapper: mapper.into(),
            reducer: reducer.map(str::to_string),
            combiner: None,
            reducers: 1,
            input,
            output,
            split_size: None,
            files: Vec::new(),
        }
    }
}

impl StreamingStep {
    /// The step from `hadoop-streaming`'s own arguments, as EMR's STREAMING steps pass them
    /// (`-files a.py,b.py -mapper a.py -reducer aggregate -input s3://… -output s3://…`).
    /// Generic options (`-D key=value`, `-files`) and streaming options may come in any order;
    /// `-input` may repeat or list paths separated by commas. The error is Hadoop's message.
    pub fn from_hadoop_args(args: &[String]) -> std::result::Result<Self, String> {
        let mut mapper = None;
        let mut reducer = None;
        let mut combiner = None;
        let mut reducers = None;
        let mut input = Vec::new();
        let mut output = None;
        let mut files = Vec::new();
        let mut split_size = None;
        let mut it = args.iter();
        let uri = |s: &str| S3Uri::parse(s.trim()).map_err(|e| e.message());
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("Missing argument for option: {name}"));
            match arg.as_str() {
                "-mapper" => mapper = Some(value("mapper")?),
                "-reducer" => reducer = Some(value("reducer")?),
                "-combiner" => combiner = Some(value("combiner")?),
                "-input" => {
                    for path in value("input")?.split(',').filter(|p| !p.trim().is_empty()) {
                        input.push(uri(path)?);
                    }
                }
                "-output" => output = Some(uri(&value("output")?)?),
                "-files" | "-file" => {
                    for path in value("files")?.split(',').filter(|p| !p.trim().is_empty()) {
                        files.push(uri(path)?);
                    }
                }
                "-numReduceTasks" => {
                    let n = value("numReduceTasks")?;
                    reducers = Some(n.parse::<u32>().map_err(|_| format!("-numReduceTasks {n} is not a number"))?);
                }
                "-D" => {
                    let setting = value("D")?;
                    let (key, v) = setting.split_once('=').ok_or_else(|| format!("-D {setting}: write -D key=value"))?;
                    match key {
                        "mapreduce.job.reduces" | "mapred.reduce.tasks" => {
                            reducers = Some(v.parse::<u32>().map_err(|_| format!("-D {key}={v} is not a number"))?);
                        }
                        "mapreduce.input.fileinputformat.split.maxsize" | "mapred.max.split.size" => {
                            split_size = Some(v.parse::<u64>().map_err(|_| format!("-D {key}={v} is not a number"))?);
                        }
                        // Settings that change nothing on one machine (names, memory, compression of
                        // intermediate data) are accepted as Hadoop accepts unknown keys.
                        _ => {}
                    }
                }
                other => return Err(format!("Unrecognized option: {other}")),
            }
        }
        let mapper = mapper.ok_or("Required argument: -mapper")?;
        if input.is_empty() {
            return Err("Required argument: -input <name>".into());
        }
        let output = output.ok_or("Required argument: -output <name>")?;
        // No -reducer is Hadoop's identity reducer; a map-only job ignores reducer and combiner.
        let reducers = reducers.unwrap_or(1);
        let (reducer, combiner) = if reducers == 0 { (None, None) } else { (reducer, combiner) };
        Ok(Self { mapper, reducer, combiner, reducers, input, output, split_size, files })
    }

    /// The arguments `hadoop-streaming` runs this job with (what DescribeStep shows as the
    /// step's Args after `hadoop-streaming`); [`StreamingStep::from_hadoop_args`] reads them back.
    pub fn hadoop_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(size) = self.split_size {
            args.extend(["-D".to_string(), format!("mapreduce.input.fileinputformat.split.maxsize={size}")]);
        }
        if !self.files.is_empty() {
            args.extend(["-files".to_string(), self.files.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")]);
        }
        args.extend(["-mapper".to_string(), self.mapper.clone()]);
        if let Some(c) = &self.combiner {
            args.extend(["-combiner".to_string(), c.clone()]);
        }
        if let Some(r) = &self.reducer {
            args.extend(["-reducer".to_string(), r.clone()]);
        }
        if self.reducers != 1 {
            args.extend(["-numReduceTasks".to_string(), self.reducers.to_string()]);
        }
        for i in &self.input {
            args.extend(["-input".to_string(), i.to_string()]);
        }
        args.extend(["-output".to_string(), self.output.to_string()]);
        args
    }
}

/// A SQL step: the query runs on the engine's SQL engine (≙ a Hive/Spark SQL step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlStep {
    pub sql: String,
    /// Write the result as Parquet under this prefix.
    #[serde(with = "opt_uri")]
    pub output: Option<S3Uri>,
    /// With `output`: register the result as this catalog table (`db.table` or `table`).
    pub table: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StepKind {
    Streaming(StreamingStep),
    Sql(SqlStep),
    /// A streaming step whose arguments Hadoop's `StreamJob` refuses (an unknown option, no
    /// -mapper …): EMR accepts the step, and it fails when it runs, with this error.
    Refused { args: Vec<String>, error: String },
}

/// What `add_step` asks for (≙ StepConfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepConfig {
    pub name: String,
    pub action_on_failure: ActionOnFailure,
    pub kind: StepKind,
}

/// ≙ StepState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepState {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

/// ≙ DescribeStep, plus what the job did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// `s-` + 13 characters.
    pub id: String,
    pub name: String,
    pub action_on_failure: ActionOnFailure,
    pub kind: StepKind,
    pub state: StepState,
    pub reason: Option<StateChangeReason>,
    pub created: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    /// The Hadoop job id of a streaming step (`job_<cluster-time>_<n>`).
    pub job_id: Option<String>,
    pub counters: Counters,
    pub attempts: Vec<TaskAttempt>,
    /// Athena-style execution ids of a SQL step's statements.
    #[serde(default)]
    pub query_ids: Vec<String>,
}

/// Job counters, named as Hadoop names them ([`Counters::named`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub map_input_records: u64,
    pub map_output_records: u64,
    pub map_output_bytes: u64,
    pub combine_input_records: u64,
    pub combine_output_records: u64,
    pub reduce_input_groups: u64,
    pub reduce_shuffle_bytes: u64,
    pub reduce_input_records: u64,
    pub reduce_output_records: u64,
    /// Bytes read from the input objects (compressed size for compressed files).
    pub bytes_read: u64,
    /// Bytes written to the output location.
    pub bytes_written: u64,
    pub launched_map_tasks: u64,
    pub launched_reduce_tasks: u64,
    pub failed_map_tasks: u64,
    pub failed_reduce_tasks: u64,
    pub killed_map_tasks: u64,
    pub killed_reduce_tasks: u64,
}

impl Counters {
    /// `(Hadoop's display name, value)` in the order the job history shows them.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("Launched map tasks", self.launched_map_tasks),
            ("Launched reduce tasks", self.launched_reduce_tasks),
            ("Failed map tasks", self.failed_map_tasks),
            ("Failed reduce tasks", self.failed_reduce_tasks),
            ("Killed map tasks", self.killed_map_tasks),
            ("Killed reduce tasks", self.killed_reduce_tasks),
            ("Map input records", self.map_input_records),
            ("Map output records", self.map_output_records),
            ("Map output bytes", self.map_output_bytes),
            ("Combine input records", self.combine_input_records),
            ("Combine output records", self.combine_output_records),
            ("Reduce input groups", self.reduce_input_groups),
            ("Reduce shuffle bytes", self.reduce_shuffle_bytes),
            ("Reduce input records", self.reduce_input_records),
            ("Reduce output records", self.reduce_output_records),
            ("Bytes Read", self.bytes_read),
            ("Bytes Written", self.bytes_written),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptState {
    Succeeded,
    /// Exited non-zero (counts toward the task's 4 attempts).
    Failed,
    /// Stopped because its node was lost, or its output was lost with the node (does not
    /// count toward the attempts).
    Killed,
}

/// One task attempt (≙ the job history's attempt list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAttempt {
    /// `attempt_<cluster-time>_<n>_m_000003_0`.
    pub attempt_id: String,
    /// `task_<cluster-time>_<n>_m_000003`.
    pub task_id: String,
    pub node: String,
    pub state: AttemptState,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// What a step's task wrote to stderr (≙ the container logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLog {
    pub task_attempt: String,
    pub node: String,
    /// The last lines (at most [`super::LOG_TAIL_LINES`]).
    pub stderr_tail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Waiting for the cluster to be ready.
    Provisioning,
    Map,
    Reduce,
    /// Writing the output to the lake.
    Commit,
    Sql,
    Done,
}

/// What a running step has done so far, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepProgress {
    pub cluster_id: String,
    pub step_id: String,
    pub step_name: String,
    pub phase: Phase,
    pub maps_done: u32,
    pub maps_total: u32,
    pub reduces_done: u32,
    pub reduces_total: u32,
    pub shuffle_bytes: u64,
}

/// Durations persist as whole seconds.
mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(Duration::from_secs_f64))
    }
}

/// `S3Uri` persists as its `s3://` text.
mod uri {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::lake::S3Uri;

    pub fn serialize<S: Serializer>(value: &S3Uri, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<S3Uri, D::Error> {
        let text = String::deserialize(d)?;
        S3Uri::parse(&text).map_err(serde::de::Error::custom)
    }
}

mod opt_uri {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::lake::S3Uri;

    pub fn serialize<S: Serializer>(value: &Option<S3Uri>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(u) => s.serialize_some(&u.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<S3Uri>, D::Error> {
        Option::<String>::deserialize(d)?.map(|t| S3Uri::parse(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

mod uris {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::lake::S3Uri;

    pub fn serialize<S: Serializer>(value: &[S3Uri], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(value.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<S3Uri>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|t| S3Uri::parse(t).map_err(serde::de::Error::custom)).collect()
    }
}

/// Counts per node, for `describe`'s instance groups.
pub fn group_sizes(cluster: &Cluster) -> BTreeMap<NodeKind, usize> {
    [NodeKind::Master, NodeKind::Core, NodeKind::Task].into_iter().map(|k| (k, cluster.group_size(k))).collect()
}
