//! `lakebook-rust`: the worker that runs the kernel's plain (Rust) cells with evcxr.
//!
//! The kernel starts it on the first plain cell, in its own process group (an interrupt kills
//! the group: this process, the cell's runtime process evcxr starts, and any cargo it runs),
//! and talks to it in JSON lines: a request on stdin, events then one reply on stdout, all
//! carrying the request's `id`.
//!
//! ```text
//! → {"id": 1, "op": "eval", "code": "let v = vec![1, 2, 3];\nv.len()"}
//! ← {"id": 1, "event": "stdout", "text": "…\n"}          (while the cell runs, in order)
//! ← {"id": 1, "event": "done", "data": {"text/plain": "3"}, "ms": 412}
//! ← {"id": 1, "event": "error", "ename": "CompileError", "evalue": "…", "traceback": […]}
//! → {"id": 2, "op": "complete", "code": "v.le", "pos": 4}
//! ← {"id": 2, "event": "done", "matches": ["len"], "start": 2, "end": 4}
//! → {"id": 3, "op": "inspect", "code": "v", "pos": 1}
//! ← {"id": 3, "event": "done", "text": "…Vec<i32>…", "html": "<pre>…</pre>"}
//! ```
//!
//! The first line it writes is `{"event": "ready"}`, once evcxr has compiled its first
//! (empty) crate.
//!
//! A cell calls back into the kernel (the `lakebook` bridge crate: `lakebook::sql(…)`) through
//! evcxr's input protocol: it asks for input with the prompt `lakebook-call HEX` (the call's
//! JSON, hex-encoded, as a prompt cannot hold `:`), the worker passes the call on and writes
//! the kernel's answer, one JSON line, to the cell's stdin.
//!
//! ```text
//! ← {"id": 4, "event": "call", "call": {"op": "sql", "sql": "SELECT 1"}}
//! → {"op": "answer", "id": 4, "answer": {"path": "…/exchange/….arrow", "rows": 1}}
//! ```

use std::io::{BufRead, Write};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, select};
use evcxr::CommandContext;
use serde::Deserialize;
use serde_json::{Value, json};

/// The size of evcxr's cache of compiled dependencies, in MiB (`LAKEBOOK_EVCXR_CACHE_MIB`
/// overrides it; 0 turns the cache off).
const CACHE_MIB: u64 = 4096;

#[derive(Debug, Deserialize)]
struct Request {
    id: u64,
    op: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    pos: usize,
    /// The kernel's answer to a cell's call (`op` = "answer").
    #[serde(default)]
    answer: Value,
}

fn main() {
    // The cells' runtime process is this binary run again by evcxr: it must go first.
    evcxr::runtime_hook();
    let (context, outputs) = match CommandContext::new() {
        Ok(started) => started,
        Err(e) => {
            emit(&json!({"event": "failed", "evalue": e.to_string()}));
            std::process::exit(1);
        }
    };
    emit(&json!({"event": "ready"}));
    let (requests_tx, requests) = crossbeam_channel::unbounded::<Request>();
    let (replies_tx, replies) = crossbeam_channel::unbounded::<Value>();
    let (answers_tx, answers) = crossbeam_channel::unbounded::<Value>();
    std::thread::spawn(move || read_requests(requests_tx, answers_tx));
    let (work_tx, work) = crossbeam_channel::unbounded::<Request>();
    std::thread::spawn(move || serve(context, work, replies_tx, answers));
    pump(requests, work_tx, replies, outputs.stdout, outputs.stderr);
}

/// Requests from stdin; when the kernel closes it, the requests already read still run, then
/// the process ends.
fn read_requests(requests: Sender<Request>, answers: Sender<Value>) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Request>(&line) {
            // an answer goes to the cell waiting for it, not behind it in the queue
            Ok(request) if request.op == "answer" => {
                let _ = answers.send(request.answer);
            }
            Ok(request) => {
                if requests.send(request).is_err() {
                    break;
                }
            }
            Err(e) => emit(&json!({"event": "failed", "evalue": format!("not a request: {e}: {line}")})),
        }
    }
}

/// Writes the cell's output lines as they come, tagged with the request running, and each
/// reply after the output that came before it.
fn pump(requests: Receiver<Request>, work: Sender<Request>, replies: Receiver<Value>, stdout: Receiver<String>, stderr: Receiver<String>) {
    let mut current = 0u64;
    let mut panic = Panic::default();
    // Until stdin closes; then the queued requests finish and `serve` ends, closing `replies`.
    let mut requests = Some(requests);
    let mut work = Some(work);
    let never = crossbeam_channel::never();
    loop {
        select! {
            recv(requests.as_ref().unwrap_or(&never)) -> request => {
                match request {
                    Ok(request) => {
                        if work.as_ref().is_some_and(|w| w.send(request).is_err()) {
                            return;
                        }
                    }
                    Err(_) => {
                        requests = None;
                        work = None;
                    }
                }
            }
            recv(stdout) -> line => {
                if let Ok(line) = line {
                    emit(&json!({"id": current, "event": "stdout", "text": format!("{line}\n")}));
                }
            }
            recv(stderr) -> line => {
                if let Ok(line) = line && panic.see(&line) {
                    emit(&json!({"id": current, "event": "stderr", "text": format!("{line}\n")}));
                }
            }
            recv(replies) -> reply => {
                let Ok(mut reply) = reply else { return };
                if let Some(id) = reply.get("starting").and_then(Value::as_u64) {
                    current = id;
                    panic = Panic::default();
                    continue;
                }
                // Output the runtime wrote before the cell ended is already queued: it goes first.
                for line in stdout.try_iter() {
                    emit(&json!({"id": current, "event": "stdout", "text": format!("{line}\n")}));
                }
                for line in stderr.try_iter().filter(|line| panic.see(line)) {
                    emit(&json!({"id": current, "event": "stderr", "text": format!("{line}\n")}));
                }
                // evcxr catches a cell's panic (keeping the variables) and reports success; to
                // the notebook it is the cell's error.
                if let (Some(message), Some("done")) = (&panic.message, reply.get("event").and_then(Value::as_str)) {
                    reply = json!({"id": current, "event": "error", "ename": "Panic", "evalue": message, "traceback": [format!("panicked: {message}")]});
                }
                emit(&reply);
            }
        }
    }
}

/// A panic seen in a cell's stderr: `thread '…' (id) panicked at file:line:col:`, its
/// message, then (with RUST_BACKTRACE) a backtrace of evcxr's frames, which is not shown.
#[derive(Default)]
struct Panic {
    header: bool,
    message: Option<String>,
    in_backtrace: bool,
}

impl Panic {
    /// Whether the line is shown.
    fn see(&mut self, line: &str) -> bool {
        if line.starts_with("thread '") && line.contains(" panicked at ") {
            self.header = true;
        } else if self.header && self.message.is_none() {
            self.message = Some(line.to_string());
        } else if self.header && line == "stack backtrace:" {
            self.in_backtrace = true;
        } else if self.in_backtrace {
            self.in_backtrace = !line.starts_with("note: ");
            return false;
        }
        !self.in_backtrace
    }
}

/// Runs requests one at a time on the evcxr context; says when each starts, so its output
/// is tagged with its id.
fn serve(mut context: CommandContext, work: Receiver<Request>, replies: Sender<Value>, answers: Receiver<Value>) {
    let mut cache_on = false;
    for request in work {
        // Dependencies a cell adds (`:dep`) are compiled once per machine, not once per
        // workspace: evcxr's cache (under XDG_CACHE_HOME, which the kernel points at its own
        // cache). It is turned on with the first `:dep`, not before: with it on, every rustc
        // runs through evcxr's wrapper, ~17 ms more per cell (bench/rust_cells.py).
        if !cache_on && request.op == "eval" && request.code.lines().any(|l| l.trim_start().starts_with(":dep")) {
            let mib = std::env::var("LAKEBOOK_EVCXR_CACHE_MIB").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(CACHE_MIB);
            if let Err(e) = context.execute(&format!(":cache {mib}")) {
                emit(&json!({"event": "failed", "evalue": format!("could not turn on evcxr's cache: {e}")}));
            }
            cache_on = true;
        }
        if replies.send(json!({"starting": request.id})).is_err() {
            return;
        }
        let mut reply = match request.op.as_str() {
            "eval" => eval(&mut context, &request, &replies, &answers),
            "complete" => complete(&mut context, &request),
            "inspect" => inspect(&mut context, &request),
            op => json!({"event": "error", "ename": "UsageError", "evalue": format!("unknown op {op}"), "traceback": []}),
        };
        reply["id"] = json!(request.id);
        if replies.send(reply).is_err() {
            return;
        }
    }
}

fn eval(context: &mut CommandContext, request: &Request, replies: &Sender<Value>, answers: &Receiver<Value>) -> Value {
    let started = Instant::now();
    // A cell's input request: a bridge call is passed to the kernel and its answer waited
    // for; anything else (evcxr_input::get_string) gets an empty line, as evcxr's default.
    let call_kernel = |prompt: &str| -> String {
        let Some(call) = prompt.strip_prefix("lakebook-call ").and_then(decode_call) else {
            return String::new();
        };
        // answers left by a call that was abandoned are not this call's
        while answers.try_recv().is_ok() {}
        if replies.send(json!({"id": request.id, "event": "call", "call": call})).is_err() {
            return json!({"error": {"name": "RustWorkerDied", "message": "the worker is stopping"}}).to_string();
        }
        match answers.recv() {
            Ok(answer) => answer.to_string(),
            Err(_) => json!({"error": {"name": "RustWorkerDied", "message": "the kernel went away"}}).to_string(),
        }
    };
    // (evcxr does not export its InputRequest type: the closure's argument is inferred)
    let mut callbacks = evcxr::EvalCallbacks { input_reader: &|input| call_kernel(&input.prompt) };
    match context.execute_with_callbacks(&request.code, &mut callbacks) {
        Ok(outputs) => {
            let data: serde_json::Map<String, Value> = outputs.content_by_mime_type.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            json!({"event": "done", "data": data, "ms": started.elapsed().as_millis() as u64})
        }
        Err(evcxr::Error::CompilationErrors(errors)) => compile_error(&errors, &request.code),
        Err(evcxr::Error::SubprocessTerminated(message)) => {
            json!({"event": "error", "ename": "Panic", "evalue": message.clone(), "traceback": [message], "restarted": true})
        }
        Err(e) => json!({"event": "error", "ename": "EvalError", "evalue": e.to_string(), "traceback": [e.to_string()]}),
    }
}

/// Compile errors as short Jupyter errors: each error's message, the cell line it points at
/// with a caret under the span, and rustc's help.
fn compile_error(errors: &[evcxr::CompilationError], code: &str) -> Value {
    let lines: Vec<&str> = code.lines().collect();
    let mut traceback = Vec::new();
    let mut first = None;
    for error in errors {
        let message = error.message();
        first.get_or_insert_with(|| message.clone());
        traceback.push(format!("error{}: {message}", error.code().map(|c| format!("[{c}]")).unwrap_or_default()));
        if error.is_from_user_code() {
            for spanned in error.spanned_messages() {
                let Some(span) = &spanned.span else { continue };
                if let Some(text) = lines.get(span.start_line.saturating_sub(1)) {
                    traceback.push(format!("  --> cell line {}", span.start_line));
                    traceback.push(format!("   | {text}"));
                    let width = if span.end_line == span.start_line { span.end_column.saturating_sub(span.start_column).max(1) } else { 1 };
                    traceback.push(format!("   | {}{} {}", " ".repeat(span.start_column.saturating_sub(1)), "^".repeat(width), spanned.label));
                }
            }
        }
        for help in error.help() {
            traceback.push(format!("   = help: {help}"));
        }
    }
    json!({"event": "error", "ename": "CompileError", "evalue": first.unwrap_or_default(), "traceback": traceback})
}

fn complete(context: &mut CommandContext, request: &Request) -> Value {
    let pos = byte_offset(&request.code, request.pos);
    match context.completions(&request.code, pos) {
        Ok(c) => {
            let matches: Vec<&str> = c.completions.iter().map(|c| c.code.as_str()).collect();
            json!({"event": "done", "matches": matches, "start": char_offset(&request.code, c.start_offset), "end": char_offset(&request.code, c.end_offset)})
        }
        Err(e) => json!({"event": "error", "ename": "CompletionError", "evalue": e.to_string(), "traceback": []}),
    }
}

/// What rust-analyzer says of the name the cursor is in (evcxr hovers at the end of the code
/// it is given, so the name is taken whole); nothing found is an empty text.
fn inspect(context: &mut CommandContext, request: &Request) -> Value {
    let code = &request.code;
    let mut pos = byte_offset(code, request.pos);
    pos += code[pos..].find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(code.len() - pos);
    // a call (`v.len()`): evcxr hovers a method when the code ends with its `(`
    if code[pos..].starts_with('(') {
        pos += 1;
    }
    match context.hover_at(code, pos) {
        Ok((text, _)) if text.trim() == "No documentation found" => json!({"event": "done", "text": "", "html": ""}),
        Ok((text, html)) => json!({"event": "done", "text": text, "html": html}),
        Err(e) => json!({"event": "error", "ename": "InspectError", "evalue": e.to_string(), "traceback": []}),
    }
}

/// A call's JSON from its hex form.
fn decode_call(hex: &str) -> Option<Value> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
    serde_json::from_slice(&bytes?).ok()
}

/// Jupyter counts cursor positions in characters (code points); evcxr in bytes.
fn byte_offset(code: &str, chars: usize) -> usize {
    code.char_indices().nth(chars).map_or(code.len(), |(i, _)| i)
}

fn char_offset(code: &str, bytes: usize) -> usize {
    code[..bytes.min(code.len())].chars().count()
}

fn emit(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}
