//! The interpreter: turns a cell into magic runs (and, later, Rust). It publishes through an
//! [`Output`] and never sees a socket or a protocol message. Completion, inspection and
//! is-complete answers are in `assist`.

mod assist;
mod bridge;
pub mod rust;
mod sql;

use std::path::{Path, PathBuf};

pub use assist::{Completion, Match};
use crate::cell::{self, Cell, MagicCall};
pub use crate::error::CellError;
use crate::magics::{self, Ctx, State, Workspace};
use crate::output::Output;
use crate::render;
use crate::render::Bundle;

/// What a successful cell leaves: its value (an `execute_result`) and help pages.
#[derive(Debug, Default)]
pub struct Outcome {
    pub value: Option<Bundle>,
    pub pages: Vec<Bundle>,
}

/// A kernel's interpreter: the workspace it works in and what its magics remember.
pub struct Session {
    pub workspace: Workspace,
    pub state: State,
    /// Plain cells: Rust, in the worker process.
    rust: rust::RustCells,
}

impl Session {
    /// A session on the workspace at `home`; the workspace is opened on first use so a kernel
    /// always starts, even when another kernel holds the workspace.
    pub fn new(home: PathBuf) -> Self {
        Self { workspace: Workspace::new(home), state: State::default(), rust: rust::RustCells::default() }
    }

    pub fn home(&self) -> &Path {
        self.workspace.home()
    }

    pub async fn execute(&mut self, code: &str, out: &Output) -> Result<Outcome, CellError> {
        let outcome = self.execute_cell(code, out).await;
        // Dashboards shown earlier whose data this cell (or the schedules it reached) changed.
        if !self.state.shown_dashboards.is_empty() {
            magics::dashboard::redraw_shown(&self.workspace, &mut self.state, out).await;
        }
        // Counters the services batch in memory are on disk at every cell boundary, so a
        // kernel that is shut down (or killed) between cells loses none of them.
        if let Some(engine) = self.workspace.opened()
            && let Err(e) = engine.persist()
        {
            out.stderr(&format!("warning: could not save the workspace state: {e}\n"));
        }
        outcome
    }

    async fn execute_cell(&mut self, code: &str, out: &Output) -> Result<Outcome, CellError> {
        let cell = cell::parse(code).map_err(|e| CellError::usage(e.to_string()))?;
        let mut outcome = Outcome::default();
        match cell {
            Cell::Empty => {}
            Cell::Code { magics, code, .. } => {
                // Magic lines stacked above the Rust run first, their values displayed.
                for call in &magics {
                    out.set_last_call(false);
                    if let Some(v) = self.run_call(call, None, out, &mut outcome).await? {
                        out.display(v);
                    }
                }
                out.set_last_call(true);
                let home = self.home().to_path_buf();
                let Session { workspace, state, rust } = self;
                outcome.value = rust.eval(&code, &home, out, &mut bridge::Answers { workspace, state }).await?;
            }
            Cell::Lines(calls) => {
                let last = calls.len() - 1;
                for (i, call) in calls.iter().enumerate() {
                    out.set_last_call(i == last);
                    let value = self.run_call(call, None, out, &mut outcome).await?;
                    match value {
                        Some(v) if i == last => outcome.value = Some(v),
                        Some(v) => out.display(v),
                        None => {}
                    }
                }
            }
            Cell::CellMagic { call, body } if call.name == magics::ALLOW_ERROR && !call.help => {
                // A teaching cell: its error is shown (on stderr) but the cell succeeds, so
                // batch runners (papermill, nbconvert) go on.
                if !call.args.is_empty() {
                    return Err(CellError::usage(format!("%%{} takes no arguments; the cell below it is run", magics::ALLOW_ERROR)));
                }
                match Box::pin(self.execute_cell(&body, out)).await {
                    Ok(inner) => outcome = inner,
                    Err(e) => out.stderr(&format!("{}\n", e.traceback.join("\n"))),
                }
            }
            Cell::CellMagic { call, body } => {
                outcome.value = self.run_call(&call, Some(&body), out, &mut outcome).await?;
            }
        }
        Ok(outcome)
    }

    async fn run_call(
        &mut self,
        call: &MagicCall,
        body: Option<&str>,
        out: &Output,
        outcome: &mut Outcome,
    ) -> Result<Option<Bundle>, CellError> {
        if call.help {
            let spec = magics::find(&call.name).ok_or_else(|| magics::unknown_magic(&call.name, body.is_some()))?;
            outcome.pages.push(render::text(&magics::help_text(spec)));
            return Ok(None);
        }
        // `${NAME}` in the line, and in a body that is SQL (not in data a cell puts)
        let expand = |text: &str| magics::set::expand(text, &self.state.variables);
        let args = call.args.iter().map(|a| expand(a)).collect::<Result<Vec<_>, _>>()?;
        let raw = expand(&call.raw)?;
        let sql_body = magics::find(&call.name).is_some_and(|spec| spec.body.is_sql(args.first().map(String::as_str)));
        let body = match body {
            Some(b) if sql_body => Some(expand(b)?),
            other => other.map(str::to_string),
        };
        let ctx = Ctx { workspace: &mut self.workspace, state: &mut self.state, out, body: body.as_deref(), raw: &raw };
        let result = magics::run(&call.name, &args, ctx).await;
        self.rust.follow_resets(self.workspace.resets());
        match result {
            Err(CellError { help: Some(text), .. }) => Ok(Some(render::text(&text))),
            other => other,
        }
    }
}
