//! `%workspace`: the workspace a notebook's state lives in — what it holds, and a reset so a
//! notebook can start clean on purpose ("Restart kernel and run all" in the same folder).

use clap::{CommandFactory, Parser, Subcommand};

use super::lake::string_table;
use super::{Body, Ctx, Form, MagicSpec};
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "workspace",
    summary: "The workspace holding every service's state: what is in it, and a reset to start clean",
    form: Form::Line,
    command: WorkspaceArgs::command,
    body: Body::Data,
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "The workspace holding every service's state: what is in it, and a reset to start clean",
    after_help = "A notebook that creates buckets, streams or clusters fails on a second run in the same workspace\n\
                  (BucketAlreadyOwnedByYou, ResourceInUseException …). Put `%workspace reset --yes` in its first cell\n\
                  to start clean on every run, or use the creates' --if-not-exists flags to rerun cells one by one."
)]
pub struct WorkspaceArgs {
    #[command(subcommand)]
    verb: Option<Verb>,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Where the workspace is and what it holds, per service (the default)
    Info,
    /// Delete everything in the workspace (lake, catalog, streams, deliveries, clusters, query
    /// history, the clock) and start empty; the kernel's input history and %set variables stay
    Reset {
        /// Confirm: the workspace's data is deleted
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(args: WorkspaceArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    match args.verb.unwrap_or(Verb::Info) {
        Verb::Info => {
            let engine = ctx.engine()?;
            let s = engine.summary()?;
            let rows = [
                ("workspace", s.home.display().to_string()),
                ("held by", format!("process {}", std::process::id())),
                ("clock", s.clock),
                ("on disk", render::human_bytes(s.disk_bytes)),
                ("query memory", {
                    let (limit, source) = lakebook_engine::query::memory::limit();
                    format!("{} in use of a {} pool ({source})", render::human_bytes(lakebook_engine::query::memory::in_use() as u64), render::human_bytes(limit as u64))
                }),
                ("lake", format!("{} bucket(s), {} object(s), {}", s.buckets, s.objects, render::human_bytes(s.object_bytes))),
                ("catalog", format!("{} database(s), {} table(s), {} crawler(s)", s.databases, s.tables, s.crawlers)),
                ("sql", format!("{} query execution(s)", s.query_executions)),
                ("streams", format!("{} stream(s)", s.streams)),
                ("firehose", format!("{} delivery stream(s)", s.delivery_streams)),
                ("emr", format!("{} cluster(s) not terminated", s.emr_clusters)),
                ("redshift", format!("{} cluster(s)", s.redshift_clusters)),
                ("glue", format!("{} job(s)", s.glue_jobs)),
                ("dashboards", format!("{} dashboard(s), {} dataset(s)", s.dashboards, s.datasets)),
            ];
            let batch = string_table(&["item", "value"], rows.iter().map(|(k, v)| vec![k.to_string(), v.clone()]))?;
            Ok(Some(render::table(&batch, &TableOptions::default(), &Footer::default())))
        }
        Verb::Reset { yes: false } => Err(CellError::usage(
            "%workspace reset deletes everything in the workspace; confirm with `%workspace reset --yes`",
        )),
        Verb::Reset { yes: true } => {
            let engine = ctx.workspace.reset().await?;
            ctx.state.forget_workspace();
            ctx.out.stdout(&format!("workspace {} reset: empty, on the system clock\n", engine.home().display()));
            Ok(None)
        }
    }
}
