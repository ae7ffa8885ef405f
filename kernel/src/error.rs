//! The error a cell fails with, as Jupyter shows it (name, value, traceback lines), and
//! the conversion from the engine's errors. Every magic returns it; it depends on nothing
//! else in the kernel.

/// A failed cell, as Jupyter shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CellError {
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
    /// Not an error at all: `--help` was asked for (shown as output).
    pub help: Option<String>,
}

impl CellError {
    pub fn new(ename: &str, evalue: impl Into<String>) -> Self {
        let evalue = evalue.into();
        let traceback = vec![format!("\x1b[0;31m{ename}\x1b[0m: {evalue}")];
        Self { ename: ename.to_string(), evalue, traceback, help: None }
    }

    pub fn usage(evalue: impl Into<String>) -> Self {
        Self::new("UsageError", evalue)
    }

    pub fn bug(evalue: impl Into<String>) -> Self {
        Self::new("InternalError", format!("{} (a bug in Lakebook, please report it)", evalue.into()))
    }

    pub fn interrupted() -> Self {
        Self::new("KeyboardInterrupt", "the cell was interrupted; the kernel is still running")
    }

    pub(crate) fn help(text: String) -> Self {
        Self { help: Some(text), ..Self::new("Help", "") }
    }

    /// Adds a line under the message (a hint).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.traceback.push(format!("\x1b[0;36mhint\x1b[0m: {}", detail.into()));
        self
    }
}

impl From<lakebook_engine::Error> for CellError {
    fn from(err: lakebook_engine::Error) -> Self {
        let cell = CellError::new(err.code(), err.message());
        match err.hint() {
            Some(hint) => cell.with_detail(hint),
            None => cell,
        }
    }
}
