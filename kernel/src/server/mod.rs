//! Sockets: binds the five Jupyter channels from a connection file and runs their loops.
//! The only code that touches ZeroMQ. Shell requests go to one worker in order; control
//! requests are answered by their own worker, so interrupt and kernel_info work while a cell
//! runs. A read error never ends a loop: the message is logged and dropped.

pub mod wire;

use std::sync::Arc;

use jupyter_protocol::ConnectionInfo;
use tokio::sync::mpsc;
use zeromq::{PubSocket, RepSocket, RouterSocket, Socket, SocketRecv, SocketSend};

use crate::dispatch::{Core, ShellWorker};
use crate::session::Session;
use wire::{Incoming, Outgoing, ReplayGuard, Signer};

/// How many recent signatures the replay guard remembers.
const REPLAY_MEMORY: usize = 65_536;

/// Runs the kernel until a shutdown request; returns the exit code.
pub async fn serve(info: ConnectionInfo, session: Session) -> Result<i32, String> {
    let signer = Arc::new(Signer::new(&info.signature_scheme, &info.key)?);
    if !signer.is_signing() {
        tracing::warn!("the connection file has no key: messages are not signed");
    }
    let kernel_session = uuid::Uuid::new_v4().to_string();

    let bind_err = |what: &str, url: &str, e: zeromq::ZmqError| format!("cannot bind the {what} socket to {url}: {e}");
    let mut shell = RouterSocket::new();
    shell.bind(&info.shell_url()).await.map_err(|e| bind_err("shell", &info.shell_url(), e))?;
    let mut control = RouterSocket::new();
    control.bind(&info.control_url()).await.map_err(|e| bind_err("control", &info.control_url(), e))?;
    let mut stdin = RouterSocket::new();
    stdin.bind(&info.stdin_url()).await.map_err(|e| bind_err("stdin", &info.stdin_url(), e))?;
    let mut iopub = PubSocket::new();
    iopub.bind(&info.iopub_url()).await.map_err(|e| bind_err("iopub", &info.iopub_url(), e))?;
    let mut heartbeat = RepSocket::new();
    heartbeat.bind(&info.hb_url()).await.map_err(|e| bind_err("heartbeat", &info.hb_url(), e))?;

    // IOPub: one task owns the socket; everyone publishes through the channel, in order.
    let (iopub_tx, mut iopub_rx) = mpsc::unbounded_channel::<IopubCommand>();
    {
        let signer = signer.clone();
        let kernel_session = kernel_session.clone();
        tokio::spawn(async move {
            while let Some(command) = iopub_rx.recv().await {
                match command {
                    IopubCommand::Publish(message) => {
                        if let Err(e) = iopub.send(message.encode(&signer, &kernel_session)).await {
                            tracing::error!("iopub send failed: {e}");
                        }
                    }
                    IopubCommand::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
    }

    tokio::spawn(async move {
        loop {
            match heartbeat.recv().await {
                Ok(ping) => {
                    if let Err(e) = heartbeat.send(ping).await {
                        tracing::warn!("heartbeat reply failed: {e}");
                    }
                }
                // A client going away (connection reset) is routine, not a warning.
                Err(e) => tracing::debug!("heartbeat receive failed: {e}"),
            }
        }
    });
    // Nothing reads stdin (we never ask for input), but the socket must exist and be bound.
    let _stdin = stdin;

    let (shell_send, shell_recv) = shell.split();
    let (control_send, control_recv) = control.split();
    let (shutdown_tx, mut shutdown_rx) = mpsc::unbounded_channel::<bool>();
    let core = Arc::new(Core::new(
        iopub_tx.clone(),
        Replier::new(shell_send, signer.clone(), kernel_session.clone()),
        Replier::new(control_send, signer.clone(), kernel_session.clone()),
        shutdown_tx,
    ));

    let (shell_tx, shell_rx) = mpsc::unbounded_channel::<Incoming>();
    tokio::spawn(read_loop("shell", shell_recv, signer.clone(), shell_tx));
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<Incoming>();
    tokio::spawn(read_loop("control", control_recv, signer.clone(), control_tx));

    tokio::spawn(ShellWorker::new(core.clone(), session).run(shell_rx));
    {
        let core = core.clone();
        tokio::spawn(async move {
            while let Some(request) = control_rx.recv().await {
                core.handle_control(request).await;
            }
        });
    }

    let _restart = shutdown_rx.recv().await.unwrap_or(false);
    // Let the reply and the final idle reach the wire before the process ends.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    if iopub_tx.send(IopubCommand::Flush(done_tx)).is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), done_rx).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    Ok(0)
}

/// What the IOPub task is asked to do.
pub enum IopubCommand {
    Publish(Box<Outgoing>),
    /// Answered once everything queued before it has been handed to the socket.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Sends signed replies on a ROUTER socket (shell or control).
#[derive(Clone)]
pub struct Replier {
    socket: Arc<tokio::sync::Mutex<zeromq::RouterSendHalf>>,
    signer: Arc<Signer>,
    session: String,
}

impl Replier {
    fn new(socket: zeromq::RouterSendHalf, signer: Arc<Signer>, session: String) -> Self {
        Self { socket: Arc::new(tokio::sync::Mutex::new(socket)), signer, session }
    }

    pub async fn send(&self, message: Outgoing) {
        let frames = message.encode(&self.signer, &self.session);
        match self.socket.lock().await.send(frames).await {
            Ok(()) => {}
            // A client that asked and left (Jupyter Server's kernel_info probe does) is no error.
            Err(zeromq::ZmqError::Other("Destination client not found by identity")) => tracing::debug!("reply {} not sent: its client has gone", message.msg_type),
            Err(e) => tracing::error!("reply {} not sent: {e}", message.msg_type),
        }
    }
}

async fn read_loop(
    channel: &'static str,
    mut socket: zeromq::RouterRecvHalf,
    signer: Arc<Signer>,
    requests: mpsc::UnboundedSender<Incoming>,
) {
    let mut replays = ReplayGuard::new(REPLAY_MEMORY);
    loop {
        let message = match socket.recv().await {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!("{channel}: receive failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        match wire::decode(message, &signer, &mut replays) {
            Ok(request) => {
                if requests.send(request).is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!("{channel}: dropped a message: {e}"),
        }
    }
}

