//! A Ballista cluster on this machine (`lakebook cluster start|stop|status`), and the query
//! client the kernel sends `%sql --engine ballista://…` queries through. Both are the
//! `lakebook-cluster` binary (`cluster/`, its own workspace: Ballista's crates never slow the
//! kernel's build), found at `$LAKEBOOK_CLUSTER_BIN`, else in `$LAKEBOOK_CACHE/cluster-target`.
//!
//! The processes are started in their own session so they outlive the command that started
//! them; their pids, ports and logs are under `<workspace>/cluster/`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where `lakebook cluster start` keeps what it started.
const STATE_FILE: &str = "cluster.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    /// `df://127.0.0.1:PORT`
    pub scheduler: String,
    pub scheduler_pid: u32,
    pub executors: Vec<ExecutorState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutorState {
    pub pid: u32,
    pub flight_port: u16,
    pub grpc_port: u16,
}

/// The `lakebook-cluster` binary, or how to get it.
pub fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("LAKEBOOK_CLUSTER_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let cache = std::env::var_os("LAKEBOOK_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("lakebook")))
        .unwrap_or_else(|| PathBuf::from(".cache/lakebook"));
    let path = cache.join("cluster-target").join("debug").join("lakebook-cluster");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the Ballista cluster binary is not built ({} is missing): build it once with `install/setup.sh --cluster` (about 20 minutes), or set LAKEBOOK_CLUSTER_BIN",
            path.display()
        ))
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn spawn(binary: &Path, args: &[String], log: &Path) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // its own session: it outlives `lakebook cluster start` and the terminal's signals
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    Ok(child.id())
}

fn wait_for_port(port: u16, pid: u32, what: &str, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        if !alive(pid) || Instant::now() > deadline {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            return Err(format!("the {what} did not start listening on 127.0.0.1:{port}; its log {} ends:\n{tail}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Whether a process is running (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Signals a process group this module started (each process leads its own).
fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill").args([signal, "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
}

/// `lakebook cluster start`: a scheduler on `port` and `executors` executors, on 127.0.0.1.
pub fn start(dir: &Path, port: u16, executors: usize, concurrent_tasks: usize) -> Result<ClusterState, String> {
    if let Some(running) = status(dir)? {
        return Err(format!("a cluster is running already ({}); stop it first with `lakebook cluster stop`", running.scheduler));
    }
    // What an earlier start left (its scheduler gone, executors perhaps not) ends first.
    stop(dir)?;
    let binary = binary()?;
    // A port in use would look like our scheduler answering.
    std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("127.0.0.1:{port} is not free for the scheduler: {e} (choose another with --port)"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let save = |state: &ClusterState| {
        let text = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        lakebook_engine::workspace::atomic_write(&dir.join(STATE_FILE), &text).map_err(|e| e.to_string())
    };
    let log = dir.join("scheduler.log");
    // One machine: an executor that dies is noticed in seconds (heartbeats every 2 s, dead
    // after 10 s without one), not the 3 minutes a networked cluster waits.
    let args = [
        "scheduler", "--bind-host", "127.0.0.1", "--external-host", "127.0.0.1", "--bind-port", &port.to_string(),
        "--executor-timeout-seconds", "10", "--expire-dead-executor-interval-seconds", "2", "--scheduler-policy", "pull-staged",
    ]
    .map(String::from);
    let scheduler_pid = spawn(&binary, &args, &log)?;
    let mut state = ClusterState { scheduler: format!("df://127.0.0.1:{port}"), scheduler_pid, executors: Vec::new() };
    // Recorded as each process starts, so `stop` finds whatever an interrupted start left.
    let started = (|| {
        save(&state)?;
        wait_for_port(port, scheduler_pid, "scheduler", &log)?;
        for i in 0..executors {
            let (flight_port, grpc_port) = (free_port()?, free_port()?);
            let work = dir.join(format!("executor-{i}"));
            std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
            let log = dir.join(format!("executor-{i}.log"));
            let args = [
                "executor", "--bind-host", "127.0.0.1", "--external-host", "127.0.0.1", "--scheduler-host", "127.0.0.1",
                "--scheduler-port", &port.to_string(), "--bind-port", &flight_port.to_string(), "--bind-grpc-port", &grpc_port.to_string(),
                "--concurrent-tasks", &concurrent_tasks.to_string(), "--work-dir", &work.display().to_string(),
                "--executor-heartbeat-interval-seconds", "2", "--task-scheduling-policy", "pull-staged",
            ]
            .map(String::from);
            let pid = spawn(&binary, &args, &log)?;
            state.executors.push(ExecutorState { pid, flight_port, grpc_port });
            save(&state)?;
            wait_for_port(flight_port, pid, "executor", &log)?;
        }
        Ok::<(), String>(())
    })();
    if let Err(e) = started {
        stop_processes(&state);
        let _ = std::fs::remove_file(dir.join(STATE_FILE));
        return Err(e);
    }
    Ok(state)
}

/// The cluster `start` recorded in `dir`, if its scheduler still runs.
pub fn status(dir: &Path) -> Result<Option<ClusterState>, String> {
    Ok(recorded(dir)?.filter(|state| alive(state.scheduler_pid)))
}

/// What `start` recorded in `dir`, whether or not it still runs.
fn recorded(dir: &Path) -> Result<Option<ClusterState>, String> {
    let file = dir.join(STATE_FILE);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{} is not a cluster record: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// `lakebook cluster stop`: SIGTERM, then SIGKILL what lingers; false when nothing ran.
pub fn stop(dir: &Path) -> Result<bool, String> {
    let Some(state) = recorded(dir)? else { return Ok(false) };
    let file = dir.join(STATE_FILE);
    let any = alive(state.scheduler_pid) || state.executors.iter().any(|e| alive(e.pid));
    stop_processes(&state);
    std::fs::remove_file(&file).map_err(|e| format!("cannot remove {}: {e}", file.display()))?;
    Ok(any)
}

fn stop_processes(state: &ClusterState) {
    let pids: Vec<u32> = state.executors.iter().map(|e| e.pid).chain([state.scheduler_pid]).collect();
    for &pid in &pids {
        kill(pid, "-TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in &pids {
        if alive(pid) {
            kill(pid, "-KILL");
        }
    }
}
