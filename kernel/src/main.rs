//! The `lakebook` binary: run the kernel, or install its kernelspec. `main` only parses the
//! command line and maps failures to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lakebook_kernel::install::{self, Target};
use lakebook_kernel::{server, session::Session};

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
        /// Into the user's Jupyter data dir (the default)
        #[arg(long, conflicts_with_all = ["sys_prefix", "prefix"])]
        user: bool,
        /// Into the active Python environment ($VIRTUAL_ENV or python3's sys.prefix)
        #[arg(long, conflicts_with = "prefix")]
        sys_prefix: bool,
        /// Into PREFIX/share/jupyter/kernels
        #[arg(long)]
        prefix: Option<PathBuf>,
        /// The kernelspec name
        #[arg(long, default_value = install::KERNEL_NAME)]
        name: String,
        /// The name shown in Jupyter's launcher
        #[arg(long, default_value = "Lakebook")]
        display_name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Kernel { connection_file } => run_kernel(&connection_file),
        Command::Install { user: _, sys_prefix, prefix, name, display_name } => {
            let target = match (sys_prefix, prefix) {
                (true, _) => Target::SysPrefix,
                (false, Some(p)) => Target::Prefix(p),
                (false, None) => Target::User,
            };
            match install::install(&target, &name, &display_name) {
                Ok(dir) => {
                    println!("Installed kernelspec {name} in {}", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lakebook install: {e}");
                    ExitCode::FAILURE
                }
            }
        }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lakebook: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let session = Session::new(lakebook_engine::Lakebook::default_home());
    match runtime.block_on(server::serve(info, session)) {
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
