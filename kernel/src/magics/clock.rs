//! `%clock`: the engine clock every service asks for the time — the wall clock, or a manual
//! (simulated) clock that stands still until advanced, for deterministic notebooks.

use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use lakebook_engine::ClockMode;
use lakebook_engine::clock::{format_duration, format_time, parse_duration, parse_time};

use super::{Body, Ctx, Form, MagicSpec};
use crate::render::Bundle;
use crate::render;
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "clock",
    summary: "The engine clock: real (system) time, or a manual clock that moves only when told",
    form: Form::Line,
    command: ClockArgs::command,
    body: Body::Data,
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "The engine clock: real (system) time, or a manual clock that moves only when told",
    after_help = "Everything time-dependent (buffer intervals, retention, iterator expiry, step states) follows this clock.\nThe mode and the manual time are saved in the workspace and survive a kernel restart."
)]
pub struct ClockArgs {
    #[command(subcommand)]
    verb: Option<Verb>,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Show the engine time and mode (the default)
    Show,
    /// Freeze time, at --at or at the current second; it moves only with advance/wait
    Manual {
        /// The time to freeze at (RFC 3339 UTC, e.g. 2026-01-01T00:00:00Z)
        #[arg(long)]
        at: Option<String>,
    },
    /// Follow the wall clock again
    System,
    /// Move a manual clock forward, e.g. `%clock advance 90s`
    Advance {
        /// How far: 90s, 1m30s, 2h, 500ms
        duration: String,
    },
    /// Let time pass in either mode: advances a manual clock, sleeps (interruptibly) on the system clock
    Wait {
        /// How long: 90s, 1m30s, 2h, 500ms
        duration: String,
    },
}

pub async fn run(args: ClockArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let clock = engine.clock();
    let out = ctx.out;
    let describe = |t, mode: ClockMode| format!("{} ({mode})", format_time(t));
    match args.verb.unwrap_or(Verb::Show) {
        Verb::Show => Ok(Some(render::text(&describe(clock.now(), clock.mode())))),
        Verb::Manual { at } => {
            let at = at.as_deref().map(parse_time).transpose()?;
            let t = clock.set_manual(at)?;
            out.stdout(&format!("clock: manual, stopped at {}\n", format_time(t)));
            Ok(None)
        }
        Verb::System => {
            let t = clock.set_system()?;
            out.stdout(&format!("clock: system, now {}\n", format_time(t)));
            Ok(None)
        }
        Verb::Advance { duration } => {
            let d = parse_duration(&duration)?;
            let t = clock.advance(d)?;
            out.stdout(&format!("clock: advanced {}, now {}\n", format_duration(d), format_time(t)));
            report_due_work(&engine, out).await;
            Ok(None)
        }
        Verb::Wait { duration } => {
            let d = parse_duration(&duration)?;
            if clock.mode() == ClockMode::Manual {
                let t = clock.wait(d, |_| {}).await?;
                out.stdout(&format!("clock: advanced {}, now {}\n", format_duration(d), format_time(t)));
                report_due_work(&engine, out).await;
                return Ok(None);
            }
            let label = |left: Duration| format!("waiting {} (system clock), {} left", format_duration(d), format_duration(left));
            let progress = out.progress(render::progress(&label(d), 0.0));
            let t = clock
                .wait(d, |elapsed| {
                    let fraction = if d.is_zero() { 1.0 } else { elapsed.as_secs_f64() / d.as_secs_f64() };
                    progress.update(render::progress(&label(d.saturating_sub(elapsed)), fraction));
                })
                .await?;
            progress.finish(&format!("clock: waited {}, now {}", format_duration(d), describe(t, ClockMode::System)));
            Ok(None)
        }
    }
}

/// Runs what became due when manual time moved (scheduled crawlers …), before the cell
/// ends, so a manual-clock notebook prints the same thing every run.
async fn report_due_work(engine: &lakebook_engine::Lakebook, out: &crate::output::Output) {
    for report in engine.run_due_work().await {
        out.stdout(&format!("{report}\n"));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::output::{Output, OutputEvent};
    use crate::magics::{State, Workspace};

    async fn run_line(workspace: &mut Workspace, line: &str) -> (Result<Option<Bundle>, CellError>, Vec<OutputEvent>) {
        let (out, events) = Output::recording();
        let args: Vec<String> = shlex::split(line).unwrap();
        let mut state = State::default();
        let result = super::super::run("clock", &args, Ctx { workspace, state: &mut state, out: &out, body: None, raw: line }).await;
        let events = events.lock().unwrap().clone();
        (result, events)
    }

    #[tokio::test]
    async fn manual_clock_show_advance_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = Workspace::new(PathBuf::from(dir.path()));
        run_line(&mut session, "manual --at 2026-01-01T00:00:00Z").await.0.unwrap();
        let (value, _) = run_line(&mut session, "").await;
        assert_eq!(value.unwrap().unwrap()["text/plain"], "2026-01-01T00:00:00Z (manual)");
        let (_, events) = run_line(&mut session, "advance 90s").await;
        assert_eq!(events, vec![OutputEvent::Stream { stderr: false, text: "clock: advanced 1m 30s, now 2026-01-01T00:01:30Z\n".into() }]);
        run_line(&mut session, "system").await.0.unwrap();
        let (err, _) = run_line(&mut session, "advance 1s").await;
        assert_eq!(err.unwrap_err().ename, "InvalidClockMode");
        let (err, _) = run_line(&mut session, "advance soon").await;
        assert_eq!(err.unwrap_err().ename, "InvalidArgument");
    }
}
