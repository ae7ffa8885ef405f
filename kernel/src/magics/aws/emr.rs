//! `%aws emr …`: the EMR commands of the AWS CLI that the guides use, answered by the
//! workspace's EMR clusters. Steps given with `--steps` (shorthand `Type=STREAMING,Name=…,
//! ActionOnFailure=…,Args=[…]`, a JSON list, or `file://steps.json`) are queued as
//! AddJobFlowSteps queues them; they run at `%aws emr wait step-complete`, `%emr run` or the
//! next `%emr step`, as steps do here. STREAMING steps (and CUSTOM_JAR steps of
//! `command-runner.jar hadoop-streaming …`) are Hadoop-streaming jobs; arguments Hadoop's
//! StreamJob refuses make a step that fails when it runs, as on EMR.

use clap::{Args, Subcommand};
use lakebook_engine::emr::{ActionOnFailure, Cluster, ClusterConfig, DEFAULT_RELEASE_LABEL, Market, NodeKind, Step, StepConfig, StepKind, StepState, StreamingStep};
use lakebook_engine::{Lakebook, serde_name};
use serde_json::{Value, json};

use super::{epoch, usage};

/// The name create-cluster gives a cluster without `--name`.
const DEFAULT_NAME: &str = "Development Cluster";

#[derive(Debug, Subcommand)]
pub enum Emr {
    /// ≙ RunJobFlow; prints the new cluster's ClusterId and ClusterArn
    CreateCluster(Box<CreateCluster>),
    /// ≙ AddJobFlowSteps; prints the StepIds (the steps run at `wait step-complete` or `%emr run`)
    AddSteps {
        #[arg(long)]
        cluster_id: String,
        #[arg(long, num_args = 1.., required = true)]
        steps: Vec<String>,
    },
    /// ≙ ListClusters, newest first
    ListClusters {
        /// Only clusters that are starting, bootstrapping, running, waiting or terminating
        #[arg(long)]
        active: bool,
        #[arg(long)]
        terminated: bool,
        #[arg(long)]
        failed: bool,
    },
    /// ≙ DescribeCluster
    DescribeCluster {
        #[arg(long)]
        cluster_id: String,
    },
    /// ≙ ListSteps, newest first
    ListSteps {
        #[arg(long)]
        cluster_id: String,
        /// PENDING RUNNING COMPLETED CANCELLED FAILED …
        #[arg(long, num_args = 1..)]
        step_states: Vec<String>,
        #[arg(long, num_args = 1..)]
        step_ids: Vec<String>,
    },
    /// ≙ DescribeStep
    DescribeStep {
        #[arg(long)]
        cluster_id: String,
        #[arg(long)]
        step_id: String,
    },
    /// ≙ CancelSteps (pending steps)
    CancelSteps {
        #[arg(long)]
        cluster_id: String,
        #[arg(long, num_args = 1.., required = true)]
        step_ids: Vec<String>,
    },
    /// ≙ TerminateJobFlows
    TerminateClusters {
        #[arg(long, num_args = 1.., required = true)]
        cluster_ids: Vec<String>,
    },
    /// Waiters: step-complete runs the cluster's pending steps up to that step
    #[command(subcommand)]
    Wait(Waiter),
}

#[derive(Debug, Args)]
pub struct CreateCluster {
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// emr-7.5.0 (the default), emr-5.36.0 …; before emr-7 /usr/bin/python is Python 2.7
    #[arg(long)]
    pub release_label: Option<String>,
    /// Accepted (Name=Hive Name=Pig …): the nodes run streaming and SQL steps whatever is named
    #[arg(long, num_args = 1..)]
    pub applications: Vec<String>,
    /// Accepted (one account, no IAM)
    #[arg(long)]
    pub use_default_roles: bool,
    /// Accepted (KeyName=…: no SSH)
    #[arg(long)]
    ec2_attributes: Option<String>,
    /// Accepted (nodes are slots on this machine)
    #[arg(long)]
    pub instance_type: Option<String>,
    /// Nodes in all: 1 master and N-1 core
    #[arg(long)]
    pub instance_count: Option<u32>,
    /// InstanceGroupType=MASTER|CORE|TASK,InstanceCount=N,InstanceType=…[,BidPrice=…] …
    #[arg(long, num_args = 1..)]
    pub instance_groups: Vec<String>,
    /// Steps to queue: shorthand, a JSON list, or file://steps.json
    #[arg(long, num_args = 1..)]
    pub steps: Vec<String>,
    /// Terminate once the last step has ended
    #[arg(long, conflicts_with = "no_auto_terminate")]
    pub auto_terminate: bool,
    #[arg(long)]
    pub no_auto_terminate: bool,
    /// IdleTimeout=SECONDS
    #[arg(long)]
    pub auto_termination_policy: Option<String>,
    /// Accepted (logs stay in the workspace: `%emr logs`)
    #[arg(long)]
    pub log_uri: Option<String>,
    /// Accepted (one account, no IAM)
    #[arg(long)]
    pub service_role: Option<String>,
    /// Accepted
    #[arg(long, num_args = 1..)]
    pub tags: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Waiter {
    /// Runs the cluster's pending steps until this one has ended; fails unless it COMPLETED
    StepComplete {
        #[arg(long)]
        cluster_id: String,
        #[arg(long)]
        step_id: String,
    },
    /// Waits (on the engine clock) until the cluster is RUNNING or WAITING
    ClusterRunning {
        #[arg(long)]
        cluster_id: String,
    },
}

impl Emr {
    /// The API operation's name, as the CLI's error messages say it.
    pub fn operation(&self) -> &'static str {
        match self {
            Emr::CreateCluster(_) => "RunJobFlow",
            Emr::AddSteps { .. } => "AddJobFlowSteps",
            Emr::ListClusters { .. } => "ListClusters",
            Emr::DescribeCluster { .. } => "DescribeCluster",
            Emr::ListSteps { .. } => "ListSteps",
            Emr::DescribeStep { .. } => "DescribeStep",
            Emr::CancelSteps { .. } => "CancelSteps",
            Emr::TerminateClusters { .. } => "TerminateJobFlows",
            Emr::Wait(_) => "DescribeStep",
        }
    }
}

pub async fn emr(op: Emr, engine: &Lakebook) -> lakebook_engine::Result<Option<Value>> {
    let emr = engine.emr();
    Ok(match op {
        Emr::CreateCluster(create) => {
            let CreateCluster {
                name,
                release_label,
                instance_count,
                instance_groups,
                steps,
                auto_terminate,
                auto_termination_policy,
                ..
            } = *create;
            let mut config = ClusterConfig { auto_terminate, release_label: release_label.unwrap_or_else(|| DEFAULT_RELEASE_LABEL.into()), ..ClusterConfig::default() };
            match (instance_count, instance_groups.is_empty()) {
                (Some(_), false) => return Err(usage("give --instance-count or --instance-groups, not both")),
                (Some(n), true) => config.core = n.saturating_sub(1),
                (None, false) => {
                    let groups = instance_groups.iter().map(|g| shorthand(g)).collect::<lakebook_engine::Result<Vec<_>>>()?;
                    config.core = 0;
                    for group in &groups {
                        let count: u32 = field(group, "InstanceCount")?.parse().map_err(|_| usage("InstanceCount must be a number"))?;
                        match field(group, "InstanceGroupType")?.to_ascii_uppercase().as_str() {
                            "MASTER" if count != 1 => return Err(usage("the MASTER instance group has exactly one instance")),
                            "MASTER" => {}
                            "CORE" => config.core = count,
                            "TASK" => {
                                config.task = count;
                                if group.iter().any(|(k, _)| k == "BidPrice") {
                                    config.task_market = Market::Spot;
                                }
                            }
                            other => return Err(usage(format!("InstanceGroupType {other:?} is not MASTER, CORE or TASK"))),
                        }
                    }
                }
                (None, true) => return Err(usage("create-cluster needs --instance-groups or --instance-type with --instance-count")),
            }
            if let Some(policy) = auto_termination_policy {
                let fields = shorthand(&policy)?;
                let secs: u64 = field(&fields, "IdleTimeout")?.parse().map_err(|_| usage("IdleTimeout is a number of seconds"))?;
                config.idle_timeout = Some(std::time::Duration::from_secs(secs));
            }
            let steps = step_configs(&steps)?;
            let cluster = emr.run_job_flow(&name, config)?;
            for step in steps {
                emr.add_step(&cluster.id, step)?;
            }
            Some(json!({ "ClusterId": cluster.id, "ClusterArn": arn(&cluster) }))
        }
        Emr::AddSteps { cluster_id, steps } => {
            let configs = step_configs(&steps)?;
            let ids = configs.into_iter().map(|c| emr.add_step(&cluster_id, c).map(|s| s.id)).collect::<lakebook_engine::Result<Vec<_>>>()?;
            Some(json!({ "StepIds": ids }))
        }
        Emr::ListClusters { active, terminated, failed } => {
            let clusters: Vec<Value> = emr
                .clusters()
                .iter()
                .filter(|c| {
                    let any = !(active || terminated || failed);
                    let state = serde_name(&c.state);
                    any || (active && !c.state.is_terminated())
                        || (terminated && state == "TERMINATED")
                        || (failed && state == "TERMINATED_WITH_ERRORS")
                })
                .map(|c| json!({ "Id": c.id, "Name": c.name, "Status": status(c), "NormalizedInstanceHours": 0, "ClusterArn": arn(c) }))
                .collect();
            Some(json!({ "Clusters": clusters }))
        }
        Emr::DescribeCluster { cluster_id } => {
            let c = emr.describe(&cluster_id)?;
            Some(json!({ "Cluster": {
                "Id": c.id,
                "Name": c.name,
                "Status": status(&c),
                "ReleaseLabel": c.config.release_label,
                "AutoTerminate": c.config.auto_terminate,
                "TerminationProtected": false,
                "InstanceCollectionType": "INSTANCE_GROUP",
                "NormalizedInstanceHours": 0,
                "ClusterArn": arn(&c),
                "InstanceGroups": [
                    { "InstanceGroupType": "MASTER", "RunningInstanceCount": c.group_size(NodeKind::Master) },
                    { "InstanceGroupType": "CORE", "RunningInstanceCount": c.group_size(NodeKind::Core) },
                    { "InstanceGroupType": "TASK", "RunningInstanceCount": c.group_size(NodeKind::Task) },
                ],
            } }))
        }
        Emr::ListSteps { cluster_id, step_states, step_ids } => {
            let steps: Vec<Value> = emr
                .steps(&cluster_id)?
                .iter()
                .rev()
                .filter(|s| step_states.is_empty() || step_states.iter().any(|w| w.eq_ignore_ascii_case(&serde_name(&s.state))))
                .filter(|s| step_ids.is_empty() || step_ids.contains(&s.id))
                .map(step)
                .collect();
            Some(json!({ "Steps": steps }))
        }
        Emr::DescribeStep { cluster_id, step_id } => Some(json!({ "Step": step(&emr.describe_step(&cluster_id, &step_id)?) })),
        Emr::CancelSteps { cluster_id, step_ids } => {
            let infos: Vec<Value> = step_ids
                .iter()
                .map(|id| match emr.cancel_step(&cluster_id, id) {
                    Ok(s) => json!({ "StepId": s.id, "Status": "SUBMITTED", "Reason": "" }),
                    Err(e) => json!({ "StepId": id, "Status": "FAILED", "Reason": e.message() }),
                })
                .collect();
            Some(json!({ "CancelStepsInfoList": infos }))
        }
        Emr::TerminateClusters { cluster_ids } => {
            for id in &cluster_ids {
                emr.describe(id)?;
            }
            for id in &cluster_ids {
                emr.terminate(id)?;
            }
            None
        }
        Emr::Wait(Waiter::StepComplete { cluster_id, step_id }) => {
            let wanted = emr.describe_step(&cluster_id, &step_id)?;
            if matches!(wanted.state, StepState::Pending) {
                emr.run_pending(&cluster_id, engine.sql(), &mut |_| {}).await?;
            }
            let s = emr.describe_step(&cluster_id, &step_id)?;
            if s.state != StepState::Completed {
                return Err(lakebook_engine::Error::service(
                    "WaiterError",
                    format!("Waiter StepComplete failed: Waiter encountered a terminal failure state: step {} is {}", s.id, serde_name(&s.state)),
                ));
            }
            None
        }
        Emr::Wait(Waiter::ClusterRunning { cluster_id }) => {
            emr.wait_running(&cluster_id).await?;
            None
        }
    })
}

/// `--steps` words: shorthand steps, one JSON list, or `file://path` of a JSON list.
fn step_configs(words: &[String]) -> lakebook_engine::Result<Vec<StepConfig>> {
    let mut configs = Vec::new();
    for word in words {
        let json_text = if let Some(path) = word.strip_prefix("file://") {
            Some(std::fs::read_to_string(path).map_err(|e| usage(format!("Error parsing parameter '--steps': Unable to load paramfile {word}: {e}")))?)
        } else if word.trim_start().starts_with('[') || word.trim_start().starts_with('{') {
            Some(word.clone())
        } else {
            None
        };
        match json_text {
            Some(text) => {
                let value: Value = serde_json::from_str(&text).map_err(|e| usage(format!("Error parsing parameter '--steps': Invalid JSON: {e}")))?;
                let list = match value {
                    Value::Array(items) => items,
                    one @ Value::Object(_) => vec![one],
                    _ => return Err(usage("Error parsing parameter '--steps': expected a list of steps")),
                };
                for item in list {
                    let obj = item.as_object().ok_or_else(|| usage("each step is a JSON object"))?;
                    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
                    let args = match obj.get("Args") {
                        None => Vec::new(),
                        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| usage("Args are strings"))).collect::<Result<_, _>>()?,
                        Some(_) => return Err(usage("Args is a list of strings")),
                    };
                    configs.push(step_config(text("Type"), text("Name"), text("ActionOnFailure"), text("Jar"), args)?);
                }
            }
            None => {
                let fields = shorthand(word)?;
                let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                let args = get("Args").map(|a| list(&a)).unwrap_or_default();
                configs.push(step_config(get("Type"), get("Name"), get("ActionOnFailure"), get("Jar"), args)?);
            }
        }
    }
    Ok(configs)
}

fn step_config(kind: Option<String>, name: Option<String>, on_failure: Option<String>, jar: Option<String>, args: Vec<String>) -> lakebook_engine::Result<StepConfig> {
    let kind = kind.unwrap_or_else(|| "CUSTOM_JAR".into()).to_ascii_uppercase();
    let streaming_args = match kind.as_str() {
        "STREAMING" => args,
        "CUSTOM_JAR" if jar.as_deref().is_some_and(|j| j.ends_with("command-runner.jar")) && args.first().map(String::as_str) == Some("hadoop-streaming") => {
            args[1..].to_vec()
        }
        "CUSTOM_JAR" => {
            return Err(usage(format!(
                "a CUSTOM_JAR step runs here only as Jar=command-runner.jar,Args=[hadoop-streaming,…], not {}",
                jar.unwrap_or_else(|| "without a Jar".into())
            )));
        }
        other => return Err(usage(format!("{other} steps are not run here: use Type=STREAMING, or %%emr step --type sql for SQL"))),
    };
    let action_on_failure = match on_failure.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("CONTINUE") => ActionOnFailure::Continue,
        Some("CANCEL_AND_WAIT") => ActionOnFailure::CancelAndWait,
        Some("TERMINATE_CLUSTER" | "TERMINATE_JOB_FLOW") => ActionOnFailure::TerminateCluster,
        Some(other) => return Err(usage(format!("ActionOnFailure {other:?} is not CONTINUE, CANCEL_AND_WAIT or TERMINATE_CLUSTER"))),
    };
    let kind = match StreamingStep::from_hadoop_args(&streaming_args) {
        Ok(step) => StepKind::Streaming(step),
        Err(error) => StepKind::Refused { args: streaming_args, error },
    };
    Ok(StepConfig { name: name.unwrap_or_else(|| "Streaming program".into()), action_on_failure, kind })
}

/// `Key=Value,Key2=[a,b],…` → pairs, as the CLI's shorthand parser reads them.
fn shorthand(text: &str) -> lakebook_engine::Result<Vec<(String, String)>> {
    let mut fields = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| usage(format!("Error parsing shorthand {text:?}: expected Key=Value, found {part:?}")))?;
        fields.push((k.trim().to_string(), v.to_string()));
    }
    Ok(fields)
}

/// `[a,b,c]` → its items (a value without brackets is one item).
fn list(value: &str) -> Vec<String> {
    let inner = value.trim().strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    inner.split(',').map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty()).collect()
}

fn field(fields: &[(String, String)], key: &str) -> lakebook_engine::Result<String> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).ok_or_else(|| usage(format!("missing {key}=…")))
}

fn arn(c: &Cluster) -> String {
    format!("arn:aws:elasticmapreduce:us-east-1:000000000000:cluster/{}", c.id)
}

fn status(c: &Cluster) -> Value {
    let mut timeline = serde_json::Map::new();
    timeline.insert("CreationDateTime".into(), json!(epoch(c.created)));
    if let Some(t) = c.ready {
        timeline.insert("ReadyDateTime".into(), json!(epoch(t)));
    }
    if let Some(t) = c.ended {
        timeline.insert("EndDateTime".into(), json!(epoch(t)));
    }
    json!({ "State": serde_name(&c.state), "StateChangeReason": reason(c.reason.as_ref()), "Timeline": timeline })
}

fn reason(r: Option<&lakebook_engine::emr::StateChangeReason>) -> Value {
    match r {
        None => json!({}),
        Some(r) => match &r.code {
            Some(code) => json!({ "Code": code, "Message": r.message }),
            None => json!({ "Message": r.message }),
        },
    }
}

fn step(s: &Step) -> Value {
    let args: Vec<String> = match &s.kind {
        StepKind::Streaming(st) => std::iter::once("hadoop-streaming".to_string()).chain(st.hadoop_args()).collect(),
        StepKind::Refused { args, .. } => std::iter::once("hadoop-streaming".to_string()).chain(args.iter().cloned()).collect(),
        StepKind::Sql(sql) => vec!["sql".into(), sql.sql.clone()],
    };
    let mut timeline = serde_json::Map::new();
    timeline.insert("CreationDateTime".into(), json!(epoch(s.created)));
    if let Some(t) = s.started {
        timeline.insert("StartDateTime".into(), json!(epoch(t)));
    }
    if let Some(t) = s.ended {
        timeline.insert("EndDateTime".into(), json!(epoch(t)));
    }
    let mut status = serde_json::Map::new();
    status.insert("State".into(), json!(serde_name(&s.state)));
    status.insert("StateChangeReason".into(), json!({}));
    if s.state == StepState::Failed
        && let Some(r) = &s.reason
    {
        status.insert("FailureDetails".into(), json!({ "Reason": r.code.clone().unwrap_or_default(), "Message": r.message }));
    }
    status.insert("Timeline".into(), Value::Object(timeline));
    json!({
        "Id": s.id,
        "Name": s.name,
        "Config": { "Jar": "command-runner.jar", "Properties": {}, "Args": args },
        "ActionOnFailure": serde_name(&s.action_on_failure),
        "Status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_keeps_bracketed_lists_whole() {
        let f = shorthand("Type=STREAMING,Name=Streaming Program,ActionOnFailure=CONTINUE,Args=[-files,s3://b/w.py,-mapper,w.py]").unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[1], ("Name".into(), "Streaming Program".into()));
        assert_eq!(list(&f[3].1), vec!["-files", "s3://b/w.py", "-mapper", "w.py"]);
    }

    #[test]
    fn refused_arguments_make_a_step_that_fails_later() {
        let c = step_config(Some("STREAMING".into()), None, None, None, vec!["--files".into(), "x".into()]).unwrap();
        assert!(matches!(c.kind, StepKind::Refused { ref error, .. } if error.contains("Unrecognized option: --files")), "{:?}", c.kind);
        let c = step_config(
            Some("STREAMING".into()),
            Some("s".into()),
            Some("TERMINATE_CLUSTER".into()),
            None,
            ["-mapper", "cat", "-reducer", "aggregate", "-input", "s3://bkt/in", "-output", "s3://bkt/out"].map(String::from).to_vec(),
        )
        .unwrap();
        assert_eq!(c.action_on_failure, ActionOnFailure::TerminateCluster);
        let StepKind::Streaming(s) = c.kind else { panic!("not streaming") };
        assert_eq!(StreamingStep::from_hadoop_args(&s.hadoop_args()).unwrap(), s);
        assert!(step_config(Some("HIVE".into()), None, None, None, vec![]).is_err());
    }
}
