//! `%crawl`: Glue crawlers — crawl an s3:// path now, or define named crawlers (optionally
//! on a schedule driven by the engine clock) and run them. The summary says what changed in
//! the catalog and which files were skipped and why.

use std::sync::Arc;

use arrow_array::{ArrayRef, UInt32Array, UInt64Array};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use lakebook_engine::catalog::{CrawlSummary, CrawlerConfig, DeleteBehavior, TableAction, UpdateBehavior, sanitize_name};
use lakebook_engine::clock::format_time;

use crate::render::{batch, strings, times};
use super::{Body, Ctx, Form, MagicSpec};
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "crawl",
    summary: "Glue crawlers: find formats, schemas and partitions under s3:// and write tables to the catalog",
    form: Form::Line,
    command: CrawlArgs::command,
    body: Body::Data,
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "Glue crawlers: find formats, schemas and partitions under s3:// and write tables to the catalog",
    args_conflicts_with_subcommands = true,
    after_help = "`%crawl s3://bucket/path/ --database web` crawls now, through a crawler named after the path (so a re-crawl\nknows which tables it made). Classifiers: Parquet, JSON / JSON Lines, CSV (',' '|' tab ';'; gzip, bzip2, zstd read through).\nFolders key=value become named partition keys; others partition_0, partition_1 …"
)]
pub struct CrawlArgs {
    #[command(subcommand)]
    verb: Option<Verb>,
    /// The s3:// path to crawl now (≙ CreateCrawler + StartCrawler)
    target: Option<String>,
    #[command(flatten)]
    options: Options,
}

#[derive(Debug, Clone, Args)]
struct Options {
    /// The catalog database the tables go to
    #[arg(long, short = 'd', default_value = "default")]
    database: String,
    /// Prefix for the names of the tables created
    #[arg(long, default_value = "")]
    table_prefix: String,
    /// Glob of keys (relative to the path) to leave out: `*` within a folder, `**` across
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// What a schema change does to an existing table
    #[arg(long, value_enum, default_value_t = UpdateArg::Update)]
    update_behavior: UpdateArg,
    /// What happens to tables and partitions whose data is gone
    #[arg(long, value_enum, default_value_t = DeleteArg::Deprecate)]
    delete_behavior: DeleteArg,
    /// Read at most N files per folder (Glue's sample size)
    #[arg(long, value_name = "N")]
    sample_size: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum UpdateArg {
    Update,
    Log,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DeleteArg {
    Deprecate,
    Delete,
    Log,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Define a named crawler (≙ CreateCrawler)
    Create {
        name: String,
        /// The s3:// include path
        target: String,
        #[command(flatten)]
        options: Options,
        /// Run on the engine clock: Glue's "cron(15 12 * * ? *)" (six fields, UTC), or "rate(1 hour)"
        #[arg(long)]
        schedule: Option<String>,
        /// If it exists already, keep it as it is instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Run a crawler now (≙ StartCrawler)
    Run { name: String },
    /// List crawlers with their last run (≙ ListCrawlers)
    List,
    /// A crawler's definition and run history (≙ GetCrawler, GetCrawlerMetrics)
    Describe { name: String },
    /// Delete a crawler; its tables stay (≙ DeleteCrawler)
    Delete { name: String },
}

fn config(name: String, target: String, o: Options, schedule: Option<String>) -> CrawlerConfig {
    CrawlerConfig {
        name,
        target,
        database: o.database,
        table_prefix: o.table_prefix,
        exclusions: o.exclude,
        update_behavior: match o.update_behavior {
            UpdateArg::Update => UpdateBehavior::Update,
            UpdateArg::Log => UpdateBehavior::Log,
        },
        delete_behavior: match o.delete_behavior {
            DeleteArg::Deprecate => DeleteBehavior::Deprecate,
            DeleteArg::Delete => DeleteBehavior::Delete,
            DeleteArg::Log => DeleteBehavior::Log,
        },
        sample_size: o.sample_size,
        schedule,
    }
}

pub async fn run(args: CrawlArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let catalog = engine.catalog();
    let out = ctx.out;
    let name = match (args.verb, args.target) {
        (None, None) => {
            return Err(CellError::usage("%crawl needs an s3:// path or a verb")
                .with_detail("e.g. `%crawl s3://lake/web/ --database web`, or `%crawl list`"));
        }
        (None, Some(target)) => {
            let uri = lakebook_engine::S3Uri::parse(&target)?;
            let name = sanitize_name(&format!("{}_{}", uri.bucket, uri.key));
            catalog.upsert_crawler(config(name.clone(), target, args.options, None))?;
            name
        }
        (Some(Verb::Create { name, target, options, schedule, if_not_exists }), _) => {
            if if_not_exists && catalog.crawlers().iter().any(|c| c.config.name == name) {
                super::kept(out, &format!("crawler {name}"));
                return Ok(None);
            }
            catalog.create_crawler(config(name.clone(), target, options, schedule.clone()))?;
            let when = schedule.map(|s| format!(", scheduled {s}")).unwrap_or_default();
            out.stdout(&format!("created crawler {name}{when}; run it with `%crawl run {name}`\n"));
            return Ok(None);
        }
        (Some(Verb::Run { name }), _) => name,
        (Some(Verb::List), _) => {
            let crawlers = catalog.crawlers();
            let batch = batch(vec![
                ("crawler", strings(crawlers.iter().map(|c| c.config.name.clone()))),
                ("target", strings(crawlers.iter().map(|c| c.config.target.clone()))),
                ("database", strings(crawlers.iter().map(|c| c.config.database.clone()))),
                ("schedule", strings(crawlers.iter().map(|c| c.config.schedule.clone().unwrap_or_default()))),
                ("last_run", times(crawlers.iter().map(|c| c.last_run.map(|t| t.timestamp_millis())))),
                ("runs", Arc::new(UInt64Array::from_iter_values(crawlers.iter().map(|c| c.runs.len() as u64))) as ArrayRef),
            ])?;
            return Ok(Some(render::table(&batch, &TableOptions::plain(), &Footer::default())));
        }
        (Some(Verb::Describe { name }), _) => {
            let c = catalog.crawler(&name)?;
            let cfg = &c.config;
            out.stdout(&format!(
                "crawler {}\n  target       {}\n  database     {}\n  table prefix {}\n  exclusions   {}\n  on change    {:?}\n  on delete    {:?}\n  sample size  {}\n  schedule     {}\n  created      {}\n",
                cfg.name,
                cfg.target,
                cfg.database,
                if cfg.table_prefix.is_empty() { "-" } else { &cfg.table_prefix },
                if cfg.exclusions.is_empty() { "-".to_string() } else { cfg.exclusions.join(", ") },
                cfg.update_behavior,
                cfg.delete_behavior,
                cfg.sample_size.map_or("all files".into(), |n| format!("{n} per folder")),
                cfg.schedule.as_deref().unwrap_or("on demand"),
                format_time(c.created),
            ));
            let runs = &c.runs;
            let batch = batch(vec![
                ("started", times(runs.iter().map(|r| r.started.map(|t| t.timestamp_millis())))),
                ("files", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.files_seen as u64))) as ArrayRef),
                ("created", count(runs, TableAction::Created)),
                ("updated", count(runs, TableAction::Updated)),
                ("partitions_added", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.partitions_added() as u64)))),
                ("skipped", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.skipped.len() as u64)))),
                ("ms", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.elapsed_ms)))),
            ])?;
            return Ok(Some(render::table(&batch, &TableOptions::plain(), &Footer::default())));
        }
        (Some(Verb::Delete { name }), _) => {
            catalog.delete_crawler(&name)?;
            out.stdout(&format!("deleted crawler {name} (its tables stay in the catalog)\n"));
            return Ok(None);
        }
    };

    let target = catalog.crawler(&name)?.config.target;
    let progress = out.progress(render::progress(&format!("crawling {target}: listing"), 0.0));
    let mut last_update = std::time::Instant::now();
    let summary = catalog
        .run_crawler(engine.lake(), &name, &mut |done, total| {
            if done == total || last_update.elapsed() >= std::time::Duration::from_millis(100) {
                last_update = std::time::Instant::now();
                let fraction = done as f64 / total.max(1) as f64;
                progress.update(render::progress(&format!("crawling {target}: {done}/{total} files read"), fraction));
            }
        })
        .await?;
    progress.finish(&headline(&summary));
    Ok(Some(summary_bundle(&summary)?))
}

fn count(runs: &[CrawlSummary], action: TableAction) -> ArrayRef {
    Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.count(action) as u64)))
}

fn headline(s: &CrawlSummary) -> String {
    format!(
        "crawler {}: {} table(s) created, {} updated, {} unchanged, {} partition(s) added, {} file(s) skipped — {} files in {} ms",
        s.crawler,
        s.count(TableAction::Created),
        s.count(TableAction::Updated),
        s.count(TableAction::Unchanged),
        s.partitions_added(),
        s.skipped.len(),
        s.files_seen,
        s.elapsed_ms
    )
}

/// The tables the crawl touched and, below, the files it skipped with the reason.
fn summary_bundle(s: &CrawlSummary) -> Result<Bundle, CellError> {
    let t = &s.tables;
    let tables = batch(vec![
        ("table", strings(t.iter().map(|c| c.table.clone()))),
        ("action", strings(t.iter().map(|c| c.action.to_string()))),
        ("version", Arc::new(UInt32Array::from_iter_values(t.iter().map(|c| c.version))) as ArrayRef),
        ("partitions_added", Arc::new(UInt64Array::from_iter_values(t.iter().map(|c| c.partitions_added as u64)))),
        ("partitions_removed", Arc::new(UInt64Array::from_iter_values(t.iter().map(|c| c.partitions_removed as u64)))),
        ("detail", strings(t.iter().map(|c| c.detail.clone()))),
    ])?;
    let footer = Footer {
        elapsed: Some(std::time::Duration::from_millis(s.elapsed_ms)),
        bytes_scanned: None,
        extra: vec![format!("{} files seen, {} read, {} skipped", s.files_seen, s.files_read, s.skipped.len())],
    };
    let options = TableOptions::plain();
    let mut bundle = render::table(&tables, &options, &footer);
    if !s.skipped.is_empty() {
        let skipped = batch(vec![
            ("skipped file", strings(s.skipped.iter().map(|f| f.key.clone()))),
            ("reason", strings(s.skipped.iter().map(|f| f.reason.clone()))),
        ])?;
        bundle = render::concat(bundle, render::table(&skipped, &options, &Footer::default()));
    }
    Ok(bundle)
}
