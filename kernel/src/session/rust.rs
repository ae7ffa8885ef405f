//! Plain cells are Rust, run by the `lakebook-rust` worker (evcxr in its own process and cargo
//! workspace, `rust/`). The worker starts on the first plain cell, in its own process group,
//! and answers JSON lines on a pipe (the protocol is in `rust/worker/src/main.rs`). An
//! interrupt (or a crash) kills the whole group — the worker, the process evcxr runs cells
//! in, any cargo compiling — and the next plain cell starts a fresh worker, saying that the
//! variables of earlier cells are gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::ChildStdin;

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::error::CellError;
use crate::output::Output;
use crate::render::Bundle;

/// The worker's binary: `LAKEBOOK_RUST_WORKER`, else where install/setup.sh builds it.
pub fn worker_path() -> PathBuf {
    if let Some(path) = std::env::var_os("LAKEBOOK_RUST_WORKER") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("LAKEBOOK_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("lakebook")))
        .unwrap_or_else(|| PathBuf::from(".cache/lakebook"));
    cache.join("rust-target").join("release").join("lakebook-rust")
}

/// The Rust cells of a session: the worker while one runs.
#[derive(Default)]
pub struct RustCells {
    worker: Option<Worker>,
}

struct Worker {
    /// Its process id, which is also its process group's (a thread waits for it to end).
    pid: u32,
    stdin: ChildStdin,
    /// The worker's stdout lines (a thread reads them; None once it closed).
    stdout: UnboundedReceiver<String>,
    next_id: u64,
    /// Set when it ended (an interrupt killed its group, or it crashed).
    killed: Arc<AtomicBool>,
}

/// Kills the worker's process group unless disarmed: a cell future dropped by an interrupt
/// leaves nothing running.
struct KillOnDrop {
    pid: Option<u32>,
    killed: Arc<AtomicBool>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            kill_group(pid);
            self.killed.store(true, Ordering::SeqCst);
        }
    }
}

fn kill_group(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).stderr(std::process::Stdio::null()).status();
}

impl Drop for Worker {
    fn drop(&mut self) {
        if !self.killed.load(Ordering::SeqCst) {
            kill_group(self.pid);
        }
    }
}

impl RustCells {
    /// Runs one Rust cell: its output streamed, its value (the last expression) returned.
    pub async fn eval(&mut self, code: &str, home: &Path, out: &Output) -> Result<Option<Bundle>, CellError> {
        let reply = self.request("eval", json!({ "code": code }), home, out).await?;
        let data = reply.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
        Ok((!data.is_empty()).then_some(data))
    }

    /// Sends a request and waits for its reply, streaming the cell's output meanwhile.
    async fn request(&mut self, op: &str, mut body: Value, home: &Path, out: &Output) -> Result<Value, CellError> {
        if self.worker.as_ref().is_some_and(|w| w.killed.load(Ordering::SeqCst)) {
            self.worker = None;
            out.stderr("The Rust worker stopped (an interrupt, or it crashed): variables from earlier cells are gone.\n");
        }
        if self.worker.is_none() {
            self.worker = Some(start(home).await?);
        }
        let worker = self.worker.as_mut().ok_or_else(|| CellError::bug("no Rust worker"))?;
        worker.next_id += 1;
        let id = worker.next_id;
        body["id"] = json!(id);
        body["op"] = json!(op);
        let mut guard = KillOnDrop { pid: Some(worker.pid), killed: worker.killed.clone() };
        let line = format!("{body}\n");
        // One short line into the pipe: does not block in practice.
        if worker.stdin.write_all(line.as_bytes()).is_err() || worker.stdin.flush().is_err() {
            guard.pid = None;
            self.worker = None;
            return Err(died("it stopped before the cell was sent"));
        }
        loop {
            let line = match worker.stdout.recv().await {
                Some(line) => line,
                None => {
                    guard.pid = None;
                    self.worker = None;
                    return Err(died("it stopped while the cell ran"));
                }
            };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                tracing::debug!("rust worker: {line}");
                continue;
            };
            if event.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            let text = || event.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
            match event.get("event").and_then(Value::as_str) {
                Some("stdout") => out.stdout(&text()),
                Some("stderr") => out.stderr(&text()),
                Some("done") => {
                    guard.pid = None;
                    return Ok(event);
                }
                Some("error") => {
                    guard.pid = None;
                    return Err(cell_error(&event));
                }
                _ => tracing::debug!("rust worker: {line}"),
            }
        }
    }
}

fn died(when: &str) -> CellError {
    CellError::new("RustWorkerDied", format!("the Rust worker ended: {when}; variables from earlier cells are gone"))
        .with_detail("the next plain cell starts a new worker")
}

fn cell_error(event: &Value) -> CellError {
    let ename = event.get("ename").and_then(Value::as_str).unwrap_or("Error");
    let evalue = event.get("evalue").and_then(Value::as_str).unwrap_or_default();
    let mut error = CellError::new(ename, evalue.lines().next().unwrap_or_default().to_string());
    let lines: Vec<String> = event.get("traceback").and_then(Value::as_array).map(|t| t.iter().filter_map(|l| l.as_str().map(str::to_string)).collect()).unwrap_or_default();
    if !lines.is_empty() {
        error.traceback = lines;
    }
    error
}

/// Starts the worker in its own process group and waits until evcxr is ready.
async fn start(home: &Path) -> Result<Worker, CellError> {
    let path = worker_path();
    if !path.exists() {
        return Err(CellError::new("RustWorkerMissing", format!("plain cells run Rust with the lakebook-rust worker, which is not built ({} is missing)", path.display()))
            .with_detail("build it with install/setup.sh (or: cargo build --release --manifest-path rust/Cargo.toml); magics work without it"));
    }
    // evcxr's build directory lives in the workspace; cargo's caches stay the user's.
    let tmp = home.join("rust-cells");
    std::fs::create_dir_all(&tmp).map_err(|e| CellError::new("RustWorkerFailed", format!("{}: {e}", tmp.display())))?;
    let mut child = std::process::Command::new(&path)
        .env("EVCXR_TMPDIR", &tmp)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| CellError::new("RustWorkerFailed", format!("could not start {}: {e}", path.display())))?;
    let pid = child.id();
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    // Waited for at once, so it never lingers as a zombie; its end is noted for the next cell.
    let killed = Arc::new(AtomicBool::new(false));
    let ended = killed.clone();
    std::thread::spawn(move || {
        let _ = child.wait();
        ended.store(true, Ordering::SeqCst);
    });
    let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
        kill_group(pid);
        return Err(CellError::bug("the Rust worker's pipes were not made"));
    };
    let (lines, stdout_lines) = unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    if let Some(stderr) = stderr {
        // cargo's and evcxr's own messages: the kernel log, not the notebook.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tracing::debug!("rust worker stderr: {line}");
            }
        });
    }
    // From here an error (or an interrupt while it starts) drops the worker, which kills it.
    let mut worker = Worker { pid, stdin, stdout: stdout_lines, next_id: 0, killed };
    loop {
        match worker.stdout.recv().await {
            Some(line) => {
                let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                match event.get("event").and_then(Value::as_str) {
                    Some("ready") => break,
                    Some("failed") => {
                        let why = event.get("evalue").and_then(Value::as_str).unwrap_or_default();
                        return Err(CellError::new("RustWorkerFailed", format!("evcxr could not start: {}", why.trim())));
                    }
                    _ => tracing::debug!("rust worker: {line}"),
                }
            }
            None => return Err(CellError::new("RustWorkerFailed", "the Rust worker ended while starting")),
        }
    }
    Ok(worker)
}
