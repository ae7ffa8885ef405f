//! Lakebook's Jupyter kernel: the messaging protocol over ZeroMQ, cells and magics, and
//! rendering of results, over the `lakebook-engine` crate.
//!
//! Layout (outside in):
//! - [`kernel`]   wires the server's channels to the dispatcher (neither names the other).
//! - [`server`]   sockets, framing, signing; the only code that touches ZeroMQ.
//! - [`dispatch`] msg_type → handler, busy/idle, execution count, aborts, interrupt, shutdown.
//! - [`session`]  the interpreter: cell → magics; completion, inspection, is_complete.
//! - [`error`]    the error a cell fails with.
//! - [`cell`]     cell syntax (stacked `%line` magics, `%%cell` magics, shell quoting).
//! - [`magics`]   one file per magic (clap definition, help, run against the engine).
//! - [`render`]   tables, progress and text as mime bundles.
//! - [`output`]   the handle a running cell publishes through.
//! - [`history`]  persisted input history.
//! - [`install`]  the kernelspec.

pub mod cell;
pub mod cluster;
pub mod dispatch;
pub mod error;
pub mod history;
pub mod install;
pub mod kernel;
pub mod magics;
pub mod output;
#[cfg(test)]
mod proptests;
pub mod render;
pub mod server;
pub mod session;
