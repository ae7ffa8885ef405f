//! `lakebook-cluster`: an Apache DataFusion Ballista scheduler and executors, set up as
//! Ballista's own binaries set them up (S3 access from ballista-core's object store registry,
//! configured per session), and `query`, the client the kernel sends a query through.
//!
//! `query` reads one JSON request on stdin — the statements that declare the tables (`CREATE
//! EXTERNAL TABLE … LOCATION 's3://…'`), the S3 settings, and the query — runs the query on the
//! scheduler, and writes the result as an Arrow IPC stream on stdout. A failure is one JSON
//! line on stderr, `{"error": …, "kind": …}`, and exit status 1.

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
    let mut stream = frame.execute_stream().await.map_err(|e| ("Execution".to_string(), e.to_string()))?;
    let stdout = std::io::stdout().lock();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(std::io::BufWriter::new(stdout), &schema).map_err(|e| ("Output".to_string(), e.to_string()))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| ("Execution".to_string(), e.to_string()))?;
        writer.write(&batch).map_err(|e| ("Output".to_string(), e.to_string()))?;
    }
    writer.finish().map_err(|e| ("Output".to_string(), e.to_string()))?;
    writer.into_inner().and_then(|mut w| w.flush().map_err(Into::into)).map_err(|e| ("Output".to_string(), e.to_string()))?;
    Ok(())
}
