//! The `lakebook` binary: run the kernel, install its kernelspec, or pipe records into a
//! stream from a shell. `main` only parses the command line and maps failures to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lakebook_engine::streams::lines::LineKey;
use lakebook_kernel::install::{self, Target};
use lakebook_kernel::{kernel, session::Session};

/// DataFusion allocates heavily in joins and aggregations; mimalloc serves that faster than
/// the system allocator (bench/tpch.py measures the engine with it, as the kernel runs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "lakebook", version, about = "Lakebook: a cloud data-analytics stack inside a Jupyter kernel")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the kernel (Jupyter starts this through kernel.json)
    Kernel {
        /// The connection file Jupyter wrote
        #[arg(long, short = 'f')]
        connection_file: PathBuf,
    },
    /// Install the kernelspec so Jupyter can start Lakebook
    Install {
        #[command(flatten)]
        place: Place,
        /// The kernelspec name
        #[arg(long, default_value = install::KERNEL_NAME)]
        name: String,
        /// The name shown in Jupyter's launcher
        #[arg(long, default_value = "Lakebook")]
        display_name: String,
    },
    /// Remove the kernelspec that `lakebook install` wrote (same flags)
    Uninstall {
        #[command(flatten)]
        place: Place,
        /// The kernelspec name
        #[arg(long, default_value = install::KERNEL_NAME)]
        name: String,
    },
    /// Put stdin's lines into a stream, one record per line (≙ PutRecords, ≤ 500 per call).
    /// Prints one `SHARD_ID<TAB>SEQUENCE_NUMBER` line per record once it is durable (or
    /// `-<TAB>ERROR_CODE`), in input order.
    PutRecords {
        /// The stream
        stream: String,
        /// The workspace (default: $LAKEBOOK_HOME, else ./lakebook-data)
        #[arg(long)]
        home: Option<PathBuf>,
        /// The partition key of every record
        #[arg(long, short = 'k', conflicts_with = "partition_key_field")]
        partition_key: Option<String>,
        /// Take each record's partition key from this field of its JSON
        #[arg(long, required_unless_present = "partition_key")]
        partition_key_field: Option<String>,
    },
    /// A Ballista cluster on this machine: start, stop, status
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
}

/// `lakebook cluster …`
#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// Start an Apache DataFusion Ballista scheduler and executors on 127.0.0.1, in the
    /// background, for `%sql engine connect ballista://127.0.0.1:PORT`
    Start {
        /// Executor processes
        #[arg(long, default_value_t = 2)]
        executors: usize,
        /// The scheduler's port
        #[arg(long, default_value_t = 50050)]
        port: u16,
        /// Tasks each executor runs at once
        #[arg(long, default_value_t = 1)]
        concurrent_tasks: usize,
        /// The workspace whose cluster/ folder keeps the pids and logs (default: $LAKEBOOK_HOME, else ./lakebook-data)
        #[arg(long)]
        home: Option<PathBuf>,
    },
    /// Stop the cluster `start` started
    Stop {
        #[arg(long)]
        home: Option<PathBuf>,
    },
    /// Whether it runs, and where
    Status {
        #[arg(long)]
        home: Option<PathBuf>,
    },
}

/// Where a kernelspec goes, as `jupyter kernelspec install` names it.
#[derive(Debug, clap::Args)]
struct Place {
    /// The user's Jupyter data dir (the default)
    #[arg(long, conflicts_with_all = ["sys_prefix", "prefix"])]
    user: bool,
    /// The active Python environment ($VIRTUAL_ENV or python3's sys.prefix)
    #[arg(long, conflicts_with = "prefix")]
    sys_prefix: bool,
    /// PREFIX/share/jupyter/kernels
    #[arg(long)]
    prefix: Option<PathBuf>,
}

impl Place {
    fn target(self) -> Target {
        match (self.sys_prefix, self.prefix) {
            (true, _) => Target::SysPrefix,
            (false, Some(p)) => Target::Prefix(p),
            (false, None) => Target::User,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Kernel { connection_file } => run_kernel(&connection_file),
        Command::Install { place, name, display_name } => match install::install(&place.target(), &name, &display_name) {
            Ok(dir) => {
                println!("Installed kernelspec {name} in {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lakebook install: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Uninstall { place, name } => match install::uninstall(&place.target(), &name) {
            Ok(dir) => {
                println!("Removed kernelspec {name} from {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lakebook uninstall: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Cluster { action } => run_cluster(action),
        Command::PutRecords { stream, home, partition_key, partition_key_field } => {
            let home = home.unwrap_or_else(lakebook_engine::Lakebook::default_home);
            let key = match (partition_key, partition_key_field) {
                (Some(k), _) => LineKey::Fixed(k),
                (None, Some(f)) => LineKey::Field(f),
                (None, None) => unreachable!("clap requires one of them"),
            };
            match put_records::run(&home, &stream, &key) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lakebook put-records: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run_cluster(action: ClusterAction) -> ExitCode {
    use lakebook_kernel::cluster;
    let dir = |home: Option<PathBuf>| home.unwrap_or_else(lakebook_engine::Lakebook::default_home).join("cluster");
    let done = match action {
        ClusterAction::Start { executors, port, concurrent_tasks, home } => cluster::start(&dir(home), port, executors.max(1), concurrent_tasks.max(1)).map(|state| {
            let pids: Vec<String> = state.executors.iter().map(|e| e.pid.to_string()).collect();
            let address = state.scheduler.trim_start_matches("df://");
            println!("Ballista scheduler {} (pid {}) with {} executor(s) (pids {})", state.scheduler, state.scheduler_pid, pids.len(), pids.join(", "));
            println!("use it from a notebook with: %sql engine connect ballista://{address}");
        }),
        ClusterAction::Stop { home } => cluster::stop(&dir(home)).map(|stopped| println!("{}", if stopped { "cluster stopped" } else { "no cluster was running" })),
        ClusterAction::Status { home } => cluster::status(&dir(home)).map(|state| match state {
            Some(state) => println!("running: scheduler {} (pid {}), {} executor(s)", state.scheduler, state.scheduler_pid, state.executors.iter().filter(|e| cluster::alive(e.pid)).count()),
            None => println!("not running"),
        }),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lakebook cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The kernel's workspace: `LAKEBOOK_HOME`; else, when a Jupyter server names the notebook
/// (`JPY_SESSION_NAME`), `./lakebook-data/<notebook name>`, so that every notebook has a
/// workspace of its own and two open notebooks do not contend for one workspace lock; else
/// `./lakebook-data` (nbconvert and papermill runs).
fn kernel_home() -> PathBuf {
    let unset = std::env::var_os(lakebook_engine::HOME_ENV).is_none_or(|h| h.is_empty());
    let notebook = std::env::var_os("JPY_SESSION_NAME").map(PathBuf::from);
    match notebook.as_deref().and_then(std::path::Path::file_stem).filter(|_| unset) {
        Some(stem) => PathBuf::from(lakebook_engine::DEFAULT_HOME).join(stem),
        None => lakebook_engine::Lakebook::default_home(),
    }
}

fn run_kernel(connection_file: &PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAKEBOOK_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let info = match std::fs::read_to_string(connection_file)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(info) => info,
        Err(e) => {
            eprintln!("lakebook: cannot read connection file {}: {e}", connection_file.display());
            return ExitCode::from(2);
        }
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    // 8 MiB stacks (tokio's default is 2 MiB): DataFusion plans and optimises by recursion, and
    // an unoptimised build's futures for a step that runs SQL inside an EMR job are large.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).thread_stack_size(8 << 20).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lakebook: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let session = Session::new(kernel_home());
    match runtime.block_on(kernel::run(info, session)) {
        Ok(code) => {
            // Background tasks (socket loops) would keep a graceful runtime shutdown waiting.
            runtime.shutdown_background();
            ExitCode::from(code as u8)
        }
        Err(e) => {
            eprintln!("lakebook: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `lakebook put-records`: stdin lines → PutRecords calls. A reader thread feeds lines
/// through a channel so a call takes whatever has arrived (up to 500 records) without
/// waiting for a full batch: a slow producer still sees each record acknowledged promptly.
mod put_records {
    use std::io::{BufRead, Write};
    use std::path::Path;
    use std::sync::mpsc;
    use std::time::Duration;

    use bytes::Bytes;
    use lakebook_engine::streams::lines::LineKey;
    use lakebook_engine::streams::{MAX_PUT_RECORDS, PutEntry};

    pub fn run(home: &Path, stream: &str, key: &LineKey) -> Result<(), String> {
        let engine = lakebook_engine::Lakebook::open(home).map_err(|e| e.to_string())?;
        engine.streams().describe(stream).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::sync_channel::<String>(4 * MAX_PUT_RECORDS);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = std::io::stdout().lock();
        while let Ok(first) = rx.recv() {
            let mut lines = vec![first];
            while lines.len() < MAX_PUT_RECORDS {
                match rx.recv_timeout(Duration::from_millis(5)) {
                    Ok(line) => lines.push(line),
                    Err(_) => break,
                }
            }
            let entries: Vec<PutEntry> = lines
                .into_iter()
                .map(|line| key.entry(Bytes::from(line)))
                .collect();
            let results = engine.streams().put_records(stream, entries).map_err(|e| e.to_string())?;
            let mut acks = String::new();
            for result in results {
                match result {
                    Ok(put) => acks.push_str(&format!("{}\t{}\n", put.shard_id, put.sequence_number)),
                    Err(e) => acks.push_str(&format!("-\t{}\n", e.code())),
                }
            }
            out.write_all(acks.as_bytes()).and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))?;
        }
        Ok(())
    }
}
