//! The message core: msg_type → handler, `busy`/`idle` around every request, the execution
//! count, history, aborting queued executes after an error, interrupts and shutdown. It turns
//! the interpreter's results into protocol messages; the interpreter never sees a socket.

use jupyter_protocol::{CompleteRequest, ExecuteRequest, InspectRequest, IsCompleteRequest};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use crate::history::History;
use crate::output::{Output, OutputEvent};
use crate::server::wire::{Incoming, Outgoing, PROTOCOL_VERSION};
use crate::server::{IopubCommand, Replier};
use crate::error::CellError;
use crate::session::Session;

/// State shared by the shell and control workers.
pub struct Core {
    iopub: mpsc::UnboundedSender<IopubCommand>,
    shell: Replier,
    control: Replier,
    shutdown: mpsc::UnboundedSender<bool>,
    interrupt: Notify,
}

impl Core {
    pub fn new(
        iopub: mpsc::UnboundedSender<IopubCommand>,
        shell: Replier,
        control: Replier,
        shutdown: mpsc::UnboundedSender<bool>,
    ) -> Self {
        Self { iopub, shell, control, shutdown, interrupt: Notify::new() }
    }

    fn publish(&self, parent: &Incoming, msg_type: &str, content: Value) {
        let message = Outgoing::child_of(Some(parent), msg_type, content);
        let message = Outgoing { identities: vec![topic(msg_type)], ..message };
        let _ = self.iopub.send(IopubCommand::Publish(Box::new(message)));
    }

    fn status(&self, parent: &Incoming, state: &str) {
        self.publish(parent, "status", json!({ "execution_state": state }));
    }

    async fn reply(&self, via: &Replier, request: &Incoming, content: Value) {
        let msg_type = reply_type(&request.msg_type);
        via.send(Outgoing::child_of(Some(request), &msg_type, content)).await;
    }

    /// Control channel: answered at once, even while a cell runs.
    pub async fn handle_control(&self, request: Incoming) {
        self.status(&request, "busy");
        match request.msg_type.as_str() {
            "kernel_info_request" => self.reply(&self.control, &request, kernel_info()).await,
            "interrupt_request" => {
                self.interrupt.notify_waiters();
                self.reply(&self.control, &request, json!({ "status": "ok" })).await;
            }
            "shutdown_request" => self.shutdown(&self.control, &request).await,
            other => tracing::warn!("control: ignoring unknown message type {other}"),
        }
        self.status(&request, "idle");
    }

    async fn shutdown(&self, via: &Replier, request: &Incoming) {
        let restart = request.content.get("restart").and_then(Value::as_bool).unwrap_or(false);
        self.reply(via, request, json!({ "status": "ok", "restart": restart })).await;
        self.status(request, "idle");
        let _ = self.shutdown.send(restart);
    }
}

/// The shell worker: owns the interpreter and handles shell requests one at a time.
pub struct ShellWorker {
    core: std::sync::Arc<Core>,
    session: Session,
    execution_count: usize,
    history: History,
}

impl ShellWorker {
    pub fn new(core: std::sync::Arc<Core>, session: Session) -> Self {
        let history = History::open(session.home());
        Self { core, session, execution_count: 0, history }
    }

    pub async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Incoming>) {
        let mut next = None;
        loop {
            let request = match next.take() {
                Some(request) => request,
                None => match requests.recv().await {
                    Some(request) => request,
                    None => break,
                },
            };
            let Some(failed_at) = self.handle(&request).await else { continue };
            // stop_on_error: abort the executes queued behind the failed one — those sent
            // before its reply went out; one sent after (the client saw the error) runs.
            while let Ok(queued) = requests.try_recv() {
                if queued.msg_type != "execute_request" {
                    self.handle(&queued).await;
                } else if queued.received <= failed_at {
                    self.core.status(&queued, "busy");
                    let content = json!({ "status": "aborted", "execution_count": self.execution_count });
                    self.core.reply(&self.core.shell, &queued, content).await;
                    self.core.status(&queued, "idle");
                } else {
                    next = Some(queued);
                    break;
                }
            }
        }
    }

    /// Handles one request; for a failed execute with `stop_on_error`, when its reply was sent.
    async fn handle(&mut self, request: &Incoming) -> Option<std::time::Instant> {
        let core = self.core.clone();
        core.status(request, "busy");
        let mut stop = None;
        let shell = &core.shell;
        match request.msg_type.as_str() {
            "kernel_info_request" => core.reply(shell, request, kernel_info()).await,
            "execute_request" => stop = self.execute(request).await,
            "complete_request" => match parse::<CompleteRequest>(request) {
                Ok(r) => {
                    let c = self.session.complete(&r.code, r.cursor_pos).await;
                    let types: Vec<Value> = c
                        .matches
                        .iter()
                        .map(|m| json!({ "text": m.text, "type": m.kind, "start": c.start, "end": c.end, "signature": "" }))
                        .collect();
                    let matches: Vec<&str> = c.matches.iter().map(|m| m.text.as_str()).collect();
                    core.reply(shell, request, json!({
                        "status": "ok", "matches": matches, "cursor_start": c.start, "cursor_end": c.end,
                        "metadata": { "_jupyter_types_experimental": types },
                    }))
                    .await
                }
                Err(e) => core.reply(shell, request, e).await,
            },
            "inspect_request" => match parse::<InspectRequest>(request) {
                Ok(r) => {
                    let content = match self.session.inspect(&r.code, r.cursor_pos).await {
                        Some(data) => json!({ "status": "ok", "found": true, "data": data, "metadata": {} }),
                        None => json!({ "status": "ok", "found": false, "data": {}, "metadata": {} }),
                    };
                    core.reply(shell, request, content).await
                }
                Err(e) => core.reply(shell, request, e).await,
            },
            "is_complete_request" => match parse::<IsCompleteRequest>(request) {
                Ok(r) => {
                    let (status, indent) = self.session.is_complete(&r.code);
                    let mut content = json!({ "status": status });
                    if status == "incomplete" {
                        content["indent"] = json!(indent);
                    }
                    core.reply(shell, request, content).await
                }
                Err(e) => core.reply(shell, request, e).await,
            },
            "history_request" => {
                let history = self.history.query_content(&request.content);
                core.reply(shell, request, json!({ "status": "ok", "history": history })).await
            }
            "comm_info_request" => core.reply(shell, request, json!({ "status": "ok", "comms": {} })).await,
            "comm_open" => {
                // No comm targets are registered: close it at once, as ipykernel does.
                let comm_id = request.content.get("comm_id").cloned().unwrap_or(Value::Null);
                core.publish(request, "comm_close", json!({ "comm_id": comm_id, "data": {} }));
            }
            "comm_msg" | "comm_close" => {}
            "shutdown_request" => core.shutdown(shell, request).await,
            other => tracing::warn!("shell: ignoring unknown message type {other}"),
        }
        core.status(request, "idle");
        stop
    }

    async fn execute(&mut self, request: &Incoming) -> Option<std::time::Instant> {
        let core = self.core.clone();
        let r = match parse::<ExecuteRequest>(request) {
            Ok(r) => r,
            Err(e) => {
                core.reply(&core.shell, request, e).await;
                return None;
            }
        };
        let silent = r.silent;
        let store = r.store_history && !silent;
        if store {
            self.execution_count += 1;
        }
        let count = self.execution_count;
        if !silent {
            core.publish(request, "execute_input", json!({ "code": r.code, "execution_count": count }));
        }
        let output = if silent { Output::discard() } else { iopub_output(core.clone(), request.clone()) };

        let interrupted = core.interrupt.notified();
        let result = tokio::select! {
            result = self.session.execute(&r.code, &output) => result,
            _ = interrupted => Err(CellError::interrupted()),
        };
        if store {
            self.history.record(count, &r.code);
        }
        let user_expressions = self.user_expressions(r.user_expressions.as_ref()).await;
        match result {
            Ok(outcome) => {
                if let (Some(value), false) = (outcome.value, silent) {
                    core.publish(request, "execute_result", json!({ "execution_count": count, "data": value, "metadata": {} }));
                }
                let payload: Vec<Value> = outcome
                    .pages
                    .into_iter()
                    .map(|page| json!({ "source": "page", "data": page, "start": 0 }))
                    .collect();
                let content = json!({
                    "status": "ok", "execution_count": count, "payload": payload, "user_expressions": user_expressions,
                });
                core.reply(&core.shell, request, content).await;
                None
            }
            Err(error) => {
                if !silent {
                    core.publish(request, "error", json!({
                        "ename": error.ename, "evalue": error.evalue, "traceback": error.traceback,
                    }));
                }
                let content = json!({
                    "status": "error", "execution_count": count, "ename": error.ename, "evalue": error.evalue,
                    "traceback": error.traceback, "payload": [], "user_expressions": user_expressions,
                });
                let failed_at = std::time::Instant::now();
                core.reply(&core.shell, request, content).await;
                r.stop_on_error.then_some(failed_at)
            }
        }
    }
}

impl ShellWorker {
    /// Evaluates `user_expressions` after the cell: each expression is a magic line run
    /// silently, its value returned as a mime bundle (or its error).
    async fn user_expressions(&mut self, expressions: Option<&std::collections::HashMap<String, String>>) -> Value {
        let mut results = serde_json::Map::new();
        for (name, expression) in expressions.into_iter().flatten() {
            let result = match self.session.execute(expression, &Output::discard()).await {
                Ok(outcome) => json!({ "status": "ok", "data": outcome.value.unwrap_or_default(), "metadata": {} }),
                Err(e) => json!({ "status": "error", "ename": e.ename, "evalue": e.evalue, "traceback": e.traceback }),
            };
            results.insert(name.clone(), result);
        }
        Value::Object(results)
    }
}

/// Publishes a cell's outputs on IOPub as children of its execute request.
fn iopub_output(core: std::sync::Arc<Core>, parent: Incoming) -> Output {
    Output::new(move |event| {
        let (msg_type, content) = match event {
            OutputEvent::Stream { stderr, text } => {
                ("stream", json!({ "name": if stderr { "stderr" } else { "stdout" }, "text": text }))
            }
            OutputEvent::Display { data, display_id } => {
                let transient = match display_id {
                    Some(id) => json!({ "display_id": id }),
                    None => json!({}),
                };
                ("display_data", json!({ "data": data, "metadata": {}, "transient": transient }))
            }
            OutputEvent::Update { data, display_id } => (
                "update_display_data",
                json!({ "data": data, "metadata": {}, "transient": { "display_id": display_id } }),
            ),
            OutputEvent::Clear { wait } => ("clear_output", json!({ "wait": wait })),
        };
        core.publish(&parent, msg_type, content);
    })
}

fn parse<T: serde::de::DeserializeOwned>(request: &Incoming) -> Result<T, Value> {
    serde_json::from_value(request.content.clone()).map_err(|e| {
        tracing::warn!("malformed {}: {e}", request.msg_type);
        json!({ "status": "error", "ename": "BadRequest", "evalue": format!("malformed {}: {e}", request.msg_type), "traceback": [] })
    })
}

fn reply_type(request_type: &str) -> String {
    match request_type.strip_suffix("_request") {
        Some(stem) => format!("{stem}_reply"),
        None => format!("{request_type}_reply"),
    }
}

/// IOPub topics as ipykernel names them (`kernel.<id>.<msg_type>`); subscribers use "".
fn topic(msg_type: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!("kernel.lakebook.{msg_type}"))
}

pub fn kernel_info() -> Value {
    json!({
        "status": "ok",
        "protocol_version": PROTOCOL_VERSION,
        "implementation": "lakebook",
        "implementation_version": env!("CARGO_PKG_VERSION"),
        "language_info": {
            "name": "rust",
            "version": "",
            "mimetype": "text/rust",
            "file_extension": ".rs",
            "pygments_lexer": "rust",
            "codemirror_mode": "rust",
            "nbconvert_exporter": "rust",
        },
        "banner": format!(
            "Lakebook {} — a cloud data-analytics stack in a notebook. %lsmagic lists the magics.",
            env!("CARGO_PKG_VERSION")
        ),
        "help_links": [],
        "debugger": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_types() {
        assert_eq!(reply_type("kernel_info_request"), "kernel_info_reply");
        assert_eq!(reply_type("execute_request"), "execute_reply");
    }
}
