//! Sockets: binds the five Jupyter channels from a connection file and runs their loops.
//! The only code that touches ZeroMQ, and it knows nothing of what answers the messages:
//! [`bind`] hands back [`Channels`] (requests in, replies and IOPub out), and `crate::kernel`
//! connects them to the dispatcher. A read error never ends a loop: the message is logged and
//! dropped.

pub mod wire;

use std::sync::Arc;

use jupyter_protocol::ConnectionInfo;
use tokio::sync::mpsc;
use zeromq::{PubSocket, RepSocket, RouterSocket, Socket, SocketRecv, SocketSend};

use wire::{Incoming, Outgoing, ReplayGuard, Signer};

/// How many recent signatures the replay guard remembers.
const REPLAY_MEMORY: usize = 65_536;

/// The bound channels, ready for a dispatcher: shell and control requests (decoded, signature
/// checked) come in on their receivers; replies go out through the repliers and IOPub
/// messages through `iopub`, in order.
pub struct Channels {
    pub iopub: mpsc::UnboundedSender<IopubCommand>,
    pub shell_reply: Replier,
    pub control_reply: Replier,
    pub shell_requests: mpsc::UnboundedReceiver<Incoming>,
    pub control_requests: mpsc::UnboundedReceiver<Incoming>,
}

/// Binds the five sockets of `info` and starts their loops (IOPub, heartbeat, the shell and
/// control readers); stdin is bound and never read (the kernel asks for no input).
pub async fn bind(info: ConnectionInfo) -> Result<Channels, String> {
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
    // Nothing reads stdin (we never ask for input), but the socket must exist and be bound;
    // its task keeps it open for the life of the process.
    tokio::spawn(async move {
        let _stdin = stdin;
        std::future::pending::<()>().await;
    });

    let (shell_send, shell_recv) = shell.split();
    let (control_send, control_recv) = control.split();
    let (shell_tx, shell_rx) = mpsc::unbounded_channel::<Incoming>();
    tokio::spawn(read_loop("shell", shell_recv, signer.clone(), shell_tx));
    let (control_tx, control_rx) = mpsc::unbounded_channel::<Incoming>();
    tokio::spawn(read_loop("control", control_recv, signer.clone(), control_tx));
    Ok(Channels {
        iopub: iopub_tx,
        shell_reply: Replier::new(shell_send, signer.clone(), kernel_session.clone()),
        control_reply: Replier::new(control_send, signer, kernel_session),
        shell_requests: shell_rx,
        control_requests: control_rx,
    })
}

/// Waits (at most half a second) until everything queued on IOPub has reached the socket, so
/// the last reply and idle status go out before the process ends.
pub async fn flush(iopub: &mpsc::UnboundedSender<IopubCommand>) {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    if iopub.send(IopubCommand::Flush(done_tx)).is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), done_rx).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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

