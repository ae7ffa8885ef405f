//! `lakebook-cluster`: an Apache DataFusion Ballista scheduler and executors, set up as
//! Ballista's own binaries set them up (S3 access from ballista-core's object store registry,
//! configured per session), and `query`, the client the kernel sends a query through.
//!
//! `query` reads one JSON request on stdin — the statements that declare the tables (`CREATE
//! EXTERNAL TABLE … LOCATION 's3://…'`), the S3 settings, and the query — runs the query on the
//! scheduler, and writes the result as an Arrow IPC stream on stdout. A failure is one JSON
//! line on stderr, `{"error": …, "kind": …}`, and exit status 1.
//!
//! Two guards around the job: the executors the scheduler lists (its REST API) before and
//! after the query — an executor that left meanwhile fails the query (`ExecutorLost`: Ballista
//! 55 reruns a lost executor's tasks, but its answers after such a rerun have been wrong), so
//! no rows reach the kernel from such a job; and a deadline (`timeout_secs`) past which, or on
//! SIGTERM (an interrupted cell), the job is cancelled on the scheduler, not left running.

use std::io::{Read, Write};
use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::object_store::{runtime_env_with_s3_support, session_config_with_s3_support, session_state_with_s3_support};
use clap::{Parser, Subcommand};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde::Deserialize;

#[derive(Parser)]
#[command(name = "lakebook-cluster", version, about = "Ballista's scheduler and executors for Lakebook, and the query client the kernel uses")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Ballista scheduler (the options are ballista-scheduler's, e.g. --bind-port 50050)
    Scheduler {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a Ballista executor (the options are ballista-executor's, e.g. --scheduler-port 50050 -p 50051)
    Executor {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run one query (a JSON request on stdin) on a scheduler; Arrow IPC on stdout
    Query {
        /// df://HOST:PORT of the scheduler
        #[arg(long)]
        scheduler: String,
    },
}

/// What the kernel sends `query`.
#[derive(Deserialize)]
struct Request {
    /// `s3.*` session options (endpoint, region, credentials): how executors reach the lake.
    #[serde(default)]
    options: Vec<(String, String)>,
    /// Statements run first, on the client: the catalog's tables declared.
    #[serde(default)]
    setup: Vec<String>,
    sql: String,
    /// Cancel the job and fail after this many seconds.
    #[serde(default)]
    timeout_secs: Option<u64>,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
        .unwrap_or_else(|e| fail("Runtime", &format!("cannot start the runtime: {e}")));
    let result = runtime.block_on(async move {
        match args.command {
            Command::Scheduler { args } => scheduler(args).await,
            Command::Executor { args } => executor(args).await,
            Command::Query { scheduler } => query(&scheduler).await,
        }
    });
    if let Err((kind, message)) = result {
        fail(&kind, &message);
    }
}

fn fail(kind: &str, message: &str) -> ! {
    let line = serde_json::json!({ "error": message, "kind": kind });
    eprintln!("{line}");
    std::process::exit(1);
}

type Outcome = Result<(), (String, String)>;

fn logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_ansi(false).with_writer(std::io::stderr).with_env_filter(filter).try_init();
}

async fn scheduler(args: Vec<String>) -> Outcome {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::{Config, SchedulerConfig};
    let opt = Config::parse_from(std::iter::once("ballista-scheduler".to_string()).chain(args));
    logging(&opt.log_level_setting);
    let address = format!("{}:{}", opt.bind_host, opt.bind_port).parse().map_err(|e| ("Configuration".to_string(), format!("{e}")))?;
    let config: SchedulerConfig = opt.try_into().map_err(|e| ("Configuration".to_string(), format!("{e}")))?;
    let config = config
        .with_override_config_producer(Arc::new(session_config_with_s3_support))
        .with_override_session_builder(Arc::new(session_state_with_s3_support));
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(|e| ("Scheduler".to_string(), e.to_string()))?;
    ballista_scheduler::scheduler_process::start_server(cluster, address, Arc::new(config))
        .await
        .map_err(|e| ("Scheduler".to_string(), e.to_string()))
}

async fn executor(args: Vec<String>) -> Outcome {
    use ballista_executor::config::Config;
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    let opt = Config::parse_from(std::iter::once("ballista-executor".to_string()).chain(args));
    let mut config: ExecutorProcessConfig = opt.try_into().map_err(|e| ("Configuration".to_string(), format!("{e}")))?;
    logging(&config.special_mod_log_level);
    config.override_config_producer = Some(Arc::new(session_config_with_s3_support));
    config.override_runtime_producer = Some(Arc::new(runtime_env_with_s3_support));
    start_executor_process(Arc::new(config)).await.map_err(|e| ("Executor".to_string(), e.to_string()))
}

async fn query(scheduler: &str) -> Outcome {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| ("Request".to_string(), e.to_string()))?;
    let request: Request = serde_json::from_str(&input).map_err(|e| ("Request".to_string(), format!("not a query request: {e}")))?;
    let mut config = session_config_with_s3_support();
    for (key, value) in &request.options {
        config.options_mut().set(key, value).map_err(|e| ("Configuration".to_string(), e.to_string()))?;
    }
    // Ballista connects when the query runs; a scheduler that does not answer is said first.
    let address = scheduler.trim_start_matches("df://").trim_end_matches('/');
    match tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(("SchedulerUnavailable".to_string(), format!("{address}: {e}"))),
        Err(_) => return Err(("SchedulerUnavailable".to_string(), format!("{address}: no answer within 5 s"))),
    }
    let state = session_state_with_s3_support(config).map_err(|e| ("Configuration".to_string(), e.to_string()))?;
    let ctx = SessionContext::remote_with_state(scheduler, state).await.map_err(|e| ("SchedulerUnavailable".to_string(), e.to_string()))?;
    for statement in &request.setup {
        ctx.sql(statement).await.map_err(|e| ("Setup".to_string(), format!("{e} (in {statement})")))?;
    }
    let frame = ctx.sql(&request.sql).await.map_err(|e| ("Planning".to_string(), e.to_string()))?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let task_ctx = frame.task_ctx();
    let plan = frame.create_physical_plan().await.map_err(|e| ("Planning".to_string(), e.to_string()))?;
    let before = executors(address).await;
    let job = plan.clone();
    let run = async move {
        let mut stream = datafusion::physical_plan::execute_stream(job, Arc::new(task_ctx)).map_err(|e| ("Execution".to_string(), e.to_string()))?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            batches.push(batch.map_err(|e| ("Execution".to_string(), e.to_string()))?);
        }
        Ok::<_, (String, String)>(batches)
    };
    let deadline = async {
        match request.timeout_secs {
            Some(secs) => tokio::time::sleep(std::time::Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| ("Runtime".to_string(), e.to_string()))?;
    // An executor the scheduler drops while the job runs fails the query at once.
    let watch = async {
        let Some(before) = &before else { return std::future::pending().await };
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if let Some(lost) = lost(before, address).await {
                return lost;
            }
        }
    };
    tokio::pin!(run);
    let mut ran = false;
    let outcome = tokio::select! {
        outcome = &mut run => {
            ran = true;
            outcome
        }
        lost = watch => Err(lost),
        _ = deadline => Err(("Timeout".to_string(), format!("the query ran longer than {} s", request.timeout_secs.unwrap_or_default()))),
        _ = terminate.recv() => Err(("Cancelled".to_string(), "the query was interrupted".to_string())),
    };
    // The job's answer (or its failure) stands only if every executor it started with is still there.
    let recheck = outcome.as_ref().err().is_none_or(|(kind, _)| kind == "Execution");
    let outcome = match &before {
        Some(before) if recheck => match lost(before, address).await {
            Some(lost) => Err(lost),
            None => outcome,
        },
        _ => outcome,
    };
    if outcome.is_err() {
        // Ballista's client learns the job id from the job's first status update (push mode),
        // which a job waiting for busy executors may not have sent: the submission goes on
        // for a moment, then the job is looked up by its name.
        let waiting = std::time::Instant::now();
        while !ran && job_id(plan.as_ref()).is_none() && waiting.elapsed() < std::time::Duration::from_secs(1) {
            tokio::select! {
                _ = &mut run => ran = true,
                _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
        }
        let name = request.options.iter().find(|(key, _)| key == "ballista.job.name").map(|(_, name)| name.as_str());
        cancel(address, plan.as_ref(), name).await;
    }
    let batches = outcome?;
    let stdout = std::io::stdout().lock();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(std::io::BufWriter::new(stdout), &schema).map_err(|e| ("Output".to_string(), e.to_string()))?;
    for batch in &batches {
        writer.write(batch).map_err(|e| ("Output".to_string(), e.to_string()))?;
    }
    writer.finish().map_err(|e| ("Output".to_string(), e.to_string()))?;
    writer.into_inner().and_then(|mut w| w.flush().map_err(Into::into)).map_err(|e| ("Output".to_string(), e.to_string()))?;
    Ok(())
}

/// `ExecutorLost` if an executor of `before` is no longer in the scheduler's list.
async fn lost(before: &std::collections::BTreeSet<String>, address: &str) -> Option<(String, String)> {
    let now = executors(address).await?;
    let names: Vec<&str> = before.difference(&now).map(String::as_str).collect();
    (!names.is_empty()).then(|| {
        (
            "ExecutorLost".to_string(),
            format!(
                "executor {} left the cluster while the query ran; the job was cancelled (Ballista 55 reruns a lost executor's tasks, but its answers after such a rerun have been wrong)",
                names.join(", ")
            ),
        )
    })
}

/// The ids of the executors the scheduler lists (`GET /api/executors`); None when it has no
/// REST API (a scheduler built without it, or started with it disabled) or does not answer.
async fn executors(address: &str) -> Option<std::collections::BTreeSet<String>> {
    #[derive(Deserialize)]
    struct Executor {
        id: String,
    }
    let listed: Vec<Executor> = rest_get(address, "/api/executors").await?;
    Some(listed.into_iter().map(|e| e.id).collect())
}

/// A JSON answer of the scheduler's REST API; None if it has none or does not answer.
async fn rest_get<T: serde::de::DeserializeOwned>(address: &str, path: &str) -> Option<T> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().ok()?;
    let response = client.get(format!("http://{address}{path}")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_slice(&response.bytes().await.ok()?).ok()
}

/// The scheduler's id for the job of Ballista's distributed plan, once it has accepted it.
fn job_id(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> Option<String> {
    use ballista_core::execution_plans::DistributedQueryExec;
    use datafusion_proto::protobuf::LogicalPlanNode;
    plan.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>().and_then(|exec| exec.job_id()).map(|id| id.to_string())
}

/// Cancels the plan's job on the scheduler (gRPC `CancelJob`, which every scheduler has): by
/// the id Ballista's client got, else by the job's unique name in the scheduler's job list
/// (REST). A failure is only reported: the query has failed already.
async fn cancel(address: &str, plan: &dyn datafusion::physical_plan::ExecutionPlan, name: Option<&str>) {
    use ballista_core::serde::protobuf::CancelJobParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    let mut ids: Vec<String> = job_id(plan).into_iter().collect();
    if ids.is_empty()
        && let Some(name) = name
    {
        ids = unfinished_jobs_named(address, name).await;
    }
    if ids.is_empty() {
        return;
    }
    match SchedulerGrpcClient::connect(format!("http://{address}")).await {
        Ok(mut scheduler) => {
            for job_id in ids {
                if let Err(e) = scheduler.cancel_job(CancelJobParams { job_id: job_id.clone() }).await {
                    eprintln!("cancelling job {job_id}: {e}");
                }
            }
        }
        Err(e) => eprintln!("cancelling the job: {e}"),
    }
}

/// The ids of the queued or running jobs called `name` in the scheduler's job list.
async fn unfinished_jobs_named(address: &str, name: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Job {
        job_id: String,
        job_name: String,
        status: String,
    }
    let jobs: Vec<Job> = rest_get(address, "/api/jobs").await.unwrap_or_default();
    jobs.into_iter().filter(|j| j.job_name == name && matches!(j.status.as_str(), "Queued" | "Running")).map(|j| j.job_id).collect()
}
