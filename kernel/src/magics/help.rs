//! `%lsmagic` and `%help`: what magics exist and how each is used (`%name?` shows the same
//! help through the pager).

use clap::{CommandFactory, Parser};

use super::{Body, Ctx, Form, MAGICS, MagicSpec, Running};
use crate::render::Bundle;
use crate::render;
use crate::error::CellError;

pub const LSMAGIC: MagicSpec = MagicSpec {
    name: "lsmagic",
    summary: "List the available magics",
    form: Form::Line,
    body: Body::Data,
    command: LsmagicArgs::command,
    run: |_, _| Box::pin(async { Ok(Some(lsmagic())) }),
};

pub const HELP: MagicSpec = MagicSpec {
    name: "help",
    summary: "Show how a magic is used (also `%name?`)",
    form: Form::Line,
    body: Body::Data,
    command: HelpArgs::command,
    run: help,
};

pub const ALLOW_ERROR_SPEC: MagicSpec = MagicSpec {
    name: super::ALLOW_ERROR,
    summary: "Run the cell below; an error is shown but does not fail the cell (teaching cells in batch runs)",
    form: Form::Cell,
    body: Body::Data,
    command: AllowErrorArgs::command,
    // The session runs `%%lakebook-allow-error` cells itself; here it is only misplaced.
    run: |_, _| {
        Box::pin(async {
            Err(CellError::usage(format!(
                "%%{} starts a cell: write it on the cell's first line, with the cell to run below it",
                super::ALLOW_ERROR
            )))
        })
    },
};

/// Run the cell below; an error is shown but does not fail the cell (teaching cells in batch runs)
#[derive(Debug, Parser)]
#[command(after_help = "papermill stops at any error output, even in a cell tagged raises-exception; this cell magic shows the\nerror on stderr and lets the run go on. nbconvert and nbclient honour the raises-exception tag as well.")]
pub struct AllowErrorArgs {}

/// List the available magics
#[derive(Debug, Parser)]
pub struct LsmagicArgs {}

/// Show how a magic is used (also `%name?`)
#[derive(Debug, Parser)]
pub struct HelpArgs {
    /// The magic to explain, e.g. lake; none lists them all
    name: Option<String>,
}

pub fn lsmagic() -> Bundle {
    let line: Vec<String> = MAGICS.iter().filter(|m| m.form.line()).map(|m| format!("%{}", m.name)).collect();
    let cell: Vec<String> = MAGICS.iter().filter(|m| m.form.cell()).map(|m| format!("%%{}", m.name)).collect();
    let mut text = format!("Available line magics:\n{}\n\nAvailable cell magics:\n{}\n\n", line.join("  "), cell.join("  "));
    for m in MAGICS {
        let prefix = if m.form.line() { "%" } else { "%%" };
        text.push_str(&format!("  {prefix}{:<10} {}\n", m.name, m.summary));
    }
    text.push_str("\n%help NAME or %NAME? shows a magic's help.");
    render::text(&text)
}

fn help<'a>(args: &'a [String], _: Ctx<'a>) -> Running<'a> {
    Box::pin(async move { run(super::parse(&HELP, args)?) })
}

pub fn run(args: HelpArgs) -> Result<Option<Bundle>, CellError> {
    match args.name {
        None => Ok(Some(lsmagic())),
        Some(name) => {
            let name = name.trim_start_matches('%');
            let spec = super::find(name).ok_or_else(|| super::unknown_magic(name, false))?;
            Ok(Some(render::text(&super::help_text(spec))))
        }
    }
}
