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
use crate::output::{Output, Progress};
use crate::render::{self, Bundle};

/// How long a completion or inspection may take (the first one starts the worker, and
/// rust-analyzer loads the standard library's sources).
const ASSIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The worker's binary: `LAKEBOOK_RUST_WORKER`, else where install/setup.sh builds it.
pub fn worker_path() -> PathBuf {
    if let Some(path) = std::env::var_os("LAKEBOOK_RUST_WORKER") {
        return PathBuf::from(path);
    }
    cache_root().join("rust-target").join("release").join("lakebook-rust")
}

/// Lakebook's user cache: `LAKEBOOK_CACHE`, else `~/.cache/lakebook`.
fn cache_root() -> PathBuf {
    std::env::var_os("LAKEBOOK_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("lakebook")))
        .unwrap_or_else(|| PathBuf::from(".cache/lakebook"))
}

/// What answers a running cell's calls to the kernel (the `lakebook` bridge crate's).
pub trait Calls {
    fn answer(&mut self, call: Value) -> impl std::future::Future<Output = Value> + Send;
}

/// Completion and inspection run no cell code, so they make no calls.
struct NoCalls;

impl Calls for NoCalls {
    fn answer(&mut self, _call: Value) -> impl std::future::Future<Output = Value> + Send {
        std::future::ready(json!({"error": {"name": "BridgeError", "message": "no calls while completing"}}))
    }
}

/// The Rust cells of a session: the worker while one runs.
#[derive(Default)]
pub struct RustCells {
    worker: Option<Worker>,
    /// The workspace's reset count the worker belongs to.
    resets: u64,
}

struct Worker {
    /// Its process id, which is also its process group's (a thread waits for it to end).
    pid: u32,
    stdin: ChildStdin,
    /// The worker's stdout lines (a thread reads them; None once it closed).
    stdout: UnboundedReceiver<String>,
    next_id: u64,
    /// The `lakebook` bridge crate is in its evcxr context.
    bridge: bool,
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
    /// A reset emptied the workspace (the worker's build directory and the bridge crate with
    /// it): the worker and its variables go too, and the next Rust cell starts a new one.
    pub fn follow_resets(&mut self, resets: u64) {
        if resets != self.resets {
            self.resets = resets;
            self.worker = None;
        }
    }

    /// Runs one Rust cell: its output streamed, its value (the last expression) returned; the
    /// cell's calls to the kernel (the `lakebook` bridge) are answered by `answer`. A cell that
    /// names `lakebook::` first adds the bridge crate to evcxr's context (once per worker).
    pub async fn eval(&mut self, code: &str, home: &Path, out: &Output, calls: &mut impl Calls) -> Result<Option<Bundle>, CellError> {
        let mut code = code.to_string();
        let add_bridge = super::bridge::used_by(&code) && !self.worker.as_ref().is_some_and(|w| w.bridge && !w.killed.load(Ordering::SeqCst));
        if add_bridge {
            let dir = super::bridge::install(home)?;
            code = format!(":dep lakebook = {{ path = {:?} }}\n{code}", dir.display().to_string());
        }
        let reply = self.request("eval", json!({ "code": code }), home, out, true, calls).await?;
        if add_bridge && let Some(worker) = self.worker.as_mut() {
            worker.bridge = true;
        }
        let mut data = reply.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
        // evcxr carries every mime type as text; Jupyter wants JSON types (a Plotly figure,
        // `application/vnd.plotly.v1+json`) as JSON.
        for (mime, value) in data.iter_mut() {
            if (mime.ends_with("/json") || mime.ends_with("+json"))
                && let Some(parsed) = value.as_str().and_then(|text| serde_json::from_str::<Value>(text).ok())
            {
                *value = parsed;
            }
        }
        Ok((!data.is_empty()).then_some(data))
    }

    /// Completions of the Rust at `pos` (code points), with earlier cells' variables and
    /// items in scope: the names and the range (code points) they replace.
    pub async fn complete(&mut self, code: &str, pos: usize, home: &Path) -> Result<(Vec<String>, usize, usize), CellError> {
        let reply = self.assist("complete", json!({ "code": code, "pos": pos }), home).await?;
        let matches = reply.get("matches").and_then(Value::as_array).map(|m| m.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
        let at = |key: &str| reply.get(key).and_then(Value::as_u64).map_or(pos, |v| v as usize);
        Ok((matches, at("start"), at("end")))
    }

    /// What rust-analyzer says of the name at `pos` (code points): its signature or type and
    /// its documentation, as text and HTML.
    pub async fn inspect(&mut self, code: &str, pos: usize, home: &Path) -> Result<Option<Bundle>, CellError> {
        let reply = self.assist("inspect", json!({ "code": code, "pos": pos }), home).await?;
        let text = reply.get("text").and_then(Value::as_str).unwrap_or_default();
        if text.trim().is_empty() {
            return Ok(None);
        }
        let mut bundle = render::text(text);
        if let Some(html) = reply.get("html").and_then(Value::as_str).filter(|h| !h.is_empty()) {
            bundle.insert("text/html".into(), html.into());
        }
        Ok(Some(bundle))
    }

    /// A completion or inspection: bounded in time, and never a reason to kill the worker (a
    /// late reply is skipped by its id).
    async fn assist(&mut self, op: &str, body: Value, home: &Path) -> Result<Value, CellError> {
        let out = Output::discard();
        let mut no_calls = NoCalls;
        let waiting = self.request(op, body, home, &out, false, &mut no_calls);
        match tokio::time::timeout(ASSIST_TIMEOUT, waiting).await {
            Ok(reply) => reply,
            Err(_) => Err(CellError::new("Timeout", format!("rust-analyzer did not answer within {} s", ASSIST_TIMEOUT.as_secs()))),
        }
    }

    /// Sends a request and waits for its reply, streaming the cell's output meanwhile. When
    /// `interruptible`, dropping the future (an interrupt) kills the worker's process group.
    async fn request(&mut self, op: &str, mut body: Value, home: &Path, out: &Output, interruptible: bool, calls: &mut impl Calls) -> Result<Value, CellError> {
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
        let mut guard = KillOnDrop { pid: interruptible.then_some(worker.pid), killed: worker.killed.clone() };
        let line = format!("{body}\n");
        // One short line into the pipe: does not block in practice.
        if worker.stdin.write_all(line.as_bytes()).is_err() || worker.stdin.flush().is_err() {
            guard.pid = None;
            self.worker = None;
            return Err(died("it stopped before the cell was sent"));
        }
        let mut build = Build::default();
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
            if let Some("compiling") = event.get("event").and_then(Value::as_str) {
                build.compiling(event.get("text").and_then(Value::as_str).unwrap_or_default(), out);
                continue;
            }
            if event.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            let text = || event.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
            match event.get("event").and_then(Value::as_str) {
                Some("call") => {
                    let reply = calls.answer(event.get("call").cloned().unwrap_or_default()).await;
                    let line = format!("{}\n", json!({"op": "answer", "id": id, "answer": reply}));
                    if worker.stdin.write_all(line.as_bytes()).is_err() || worker.stdin.flush().is_err() {
                        guard.pid = None;
                        self.worker = None;
                        return Err(died("it stopped while the cell ran"));
                    }
                }
                Some("stdout") => out.stdout(&text()),
                Some("stderr") => out.stderr(&text()),
                Some("done") => {
                    guard.pid = None;
                    build.finish();
                    return Ok(event);
                }
                Some("error") => {
                    guard.pid = None;
                    build.finish();
                    return Err(cell_error(&event));
                }
                _ => tracing::debug!("rust worker: {line}"),
            }
        }
    }
}

/// The dependencies cargo builds while a cell runs (after `:dep`), shown as one progress
/// display updated in place, which ends as a one-line summary.
#[derive(Default)]
struct Build {
    progress: Option<Progress>,
    crates: usize,
    started: Option<std::time::Instant>,
}

impl Build {
    fn compiling(&mut self, what: &str, out: &Output) {
        self.crates += 1;
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        let line = format!("Compiling dependencies: {what} (crate {}, {:.0} s)", self.crates, started.elapsed().as_secs_f64());
        match &self.progress {
            Some(progress) => progress.update(render::text(&line)),
            None => self.progress = Some(out.progress(render::text(&line))),
        }
    }

    fn finish(&mut self) {
        if let (Some(progress), Some(started)) = (self.progress.take(), self.started) {
            let plural = if self.crates == 1 { "" } else { "s" };
            progress.finish(&format!("Compiled {} dependency crate{plural} in {:.1} s", self.crates, started.elapsed().as_secs_f64()));
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
    // evcxr's crate and its target directory live in the workspace (a restarted kernel reuses
    // the dependencies it built); its compiled-dependency cache (`:cache`, on in the worker) is
    // the user's, in Lakebook's cache (`evcxr/` there: evcxr puts it under XDG_CACHE_HOME).
    let tmp = home.join("rust-cells");
    std::fs::create_dir_all(&tmp).map_err(|e| CellError::new("RustWorkerFailed", format!("{}: {e}", tmp.display())))?;
    let mut child = std::process::Command::new(&path)
        .env("EVCXR_TMPDIR", &tmp)
        .env("XDG_CACHE_HOME", cache_root())
        .env("LAKEBOOK_EXCHANGE", super::bridge::exchange_dir(home))
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
    let compiling = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    if let Some(stderr) = stderr {
        // evcxr's own messages go to the kernel log; cargo's `Compiling serde v1.0.219` lines
        // (a dependency being built) to the running cell's progress display.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match line.trim_start().strip_prefix("Compiling ") {
                    Some(what) => {
                        let _ = compiling.send(json!({"event": "compiling", "text": what.trim()}).to_string());
                    }
                    None => tracing::debug!("rust worker stderr: {line}"),
                }
            }
        });
    }
    // From here an error (or an interrupt while it starts) drops the worker, which kills it.
    let mut worker = Worker { pid, stdin, stdout: stdout_lines, next_id: 0, bridge: false, killed };
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

/// How deep the Rust is still open at its end: brackets not yet closed, plus one if a string,
/// character or block comment is still open (a console then waits for more lines).
/// Comments, strings (raw ones too) and character literals are skipped; `'a` is a lifetime.
pub fn open_depth(code: &str) -> usize {
    let chars: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                // block comments nest
                let mut nested = 1;
                i += 2;
                while nested > 0 {
                    match (chars.get(i), chars.get(i + 1)) {
                        (None, _) => return depth + 1,
                        (Some('/'), Some('*')) => (nested, i) = (nested + 1, i + 1),
                        (Some('*'), Some('/')) => (nested, i) = (nested - 1, i + 1),
                        _ => {}
                    }
                    i += 1;
                }
                continue;
            }
            '"' => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return depth + 1,
                        Some('\\') => i += 1,
                        Some('"') => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            'r' if (i == 0 || !ident(chars[i - 1]) || (chars[i - 1] == 'b' && (i == 1 || !ident(chars[i - 2])))) && matches!(next, Some('"' | '#')) => {
                let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
                if chars.get(i + 1 + hashes) == Some(&'"') {
                    let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                    let body = i + 2 + hashes;
                    match (body..=chars.len().saturating_sub(close.len())).find(|&j| chars[j..].starts_with(&close)) {
                        Some(j) => i = j + close.len(),
                        None => return depth + 1,
                    }
                    continue;
                }
            }
            '\'' => {
                // 'x', '\n', '\u{1F600}' are characters; 'a (no closing quote next) a lifetime
                if next == Some('\\') {
                    // past the quote, the backslash and the escaped character
                    i += 3;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 2;
                }
            }
            _ => {}
        }
        i += 1;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::open_depth;

    #[test]
    fn open_depth_counts_brackets_outside_strings_comments_and_characters() {
        assert_eq!(open_depth("let x = 1;"), 0);
        assert_eq!(open_depth("fn f() {"), 1);
        assert_eq!(open_depth("fn f() {\n    let v = vec![1,"), 2);
        assert_eq!(open_depth("fn f() {\n}\n"), 0);
        assert_eq!(open_depth("let s = \"{ not a bracket\";"), 0);
        assert_eq!(open_depth("let s = \"open"), 1);
        assert_eq!(open_depth("let s = \"a \\\" b\";"), 0);
        assert_eq!(open_depth("let c = '{';\nlet d = '\\'';"), 0);
        assert_eq!(open_depth("fn f<'a>(x: &'a str) -> &'a str { x }"), 0);
        assert_eq!(open_depth("let r = r#\"{ \"quoted\" }\"#;"), 0);
        assert_eq!(open_depth("let r = br\"{\";"), 0);
        assert_eq!(open_depth("let r = r#\"open"), 1);
        assert_eq!(open_depth("// {\nlet x = 1; /* { /* } */ */"), 0);
        assert_eq!(open_depth("let x = 1; /* open"), 1);
        assert_eq!(open_depth("struct S { x: Vec<(i32,"), 2);
    }
}
