//! Wires the sockets to the dispatcher, in one place (as xeus's `xkernel` does): the server
//! ([`crate::server`]) knows nothing of cells and the dispatcher ([`crate::dispatch`]) nothing of
//! sockets. Shell requests go to one worker in order; control requests are answered by their
//! own task, so interrupt and kernel_info work while a cell runs.

use std::sync::Arc;

use jupyter_protocol::ConnectionInfo;
use tokio::sync::mpsc;

use crate::dispatch::{Core, ShellWorker};
use crate::server;
use crate::session::Session;

/// Runs the kernel until a shutdown request; returns the exit code.
pub async fn run(info: ConnectionInfo, session: Session) -> Result<i32, String> {
    let channels = server::bind(info).await?;
    let (shutdown_tx, mut shutdown_rx) = mpsc::unbounded_channel::<bool>();
    let core = Arc::new(Core::new(channels.iopub.clone(), channels.shell_reply, channels.control_reply, shutdown_tx));
    tokio::spawn(ShellWorker::new(core.clone(), session).run(channels.shell_requests));
    let mut control = channels.control_requests;
    {
        let core = core.clone();
        tokio::spawn(async move {
            while let Some(request) = control.recv().await {
                core.handle_control(request).await;
            }
        });
    }
    let _restart = shutdown_rx.recv().await.unwrap_or(false);
    server::flush(&channels.iopub).await;
    Ok(0)
}
