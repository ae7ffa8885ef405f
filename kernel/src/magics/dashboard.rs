//! `%dashboard`: QuickSight-style datasets (SPICE or direct query, calculated fields,
//! refreshes, the SPICE pool) and dashboards of sheets, visuals and controls, drawn inline
//! with Plotly (redrawn in place when their data changes) and published as one offline HTML
//! file.

use std::sync::Arc;

use arrow_array::{ArrayRef, UInt64Array};
use clap::{CommandFactory, Parser, Subcommand};
use lakebook_engine::S3Uri;
use lakebook_engine::dashboards::build::Built;
use lakebook_engine::dashboards::{CalculatedField, Dashboards, DatasetSpec, Mode, Source};

use super::{Body, Ctx, Form, MagicSpec, Units, parse_size};
use crate::error::CellError;
use crate::output::Output;
use crate::render::{self, Bundle, Footer, TableOptions, batch, dashboard, strings, times};

pub const SPEC: MagicSpec = MagicSpec {
    name: "dashboard",
    summary: "QuickSight-style dashboards: datasets (SPICE or direct), sheets of visuals with controls, redrawn in place, published as one offline HTML file",
    form: Form::LineAndCell,
    command: DashboardArgs::command,
    // ${NAME} is expanded in a spec (`%%dashboard create`) and a dataset's SQL body.
    body: Body::SqlFor(&["create", "dataset"]),
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "QuickSight-style dashboards: datasets (SPICE or direct), sheets of visuals with controls, redrawn in place, published as one offline HTML file",
    after_help = "A dataset is a SELECT (--sql, or the cell body of %%dashboard dataset create NAME) or a catalog table (--table),\n\
                  plus calculated fields (--field name=SQL expression). SPICE datasets are ingested on creation, on refresh and on\n\
                  their --refresh schedule (rate(…) or cron(…) on the engine clock); direct datasets are queried at every build.\n\
                  %%dashboard create NAME takes the spec as TOML: title, dataset, [[sheet]] (name, columns, filter),\n\
                  [[sheet.control]] (type = dropdown|multi_select|slider|date_range, field; a slider's op = \"<=\"|\">=\"|\"=\", a date\n\
                  range's granularity = day|week|month|quarter|year) and [[sheet.visual]] (type = bar|line|area|combo|pie|scatter|\n\
                  heatmap|treemap|histogram|box|kpi|gauge|table|pivot|funnel|waterfall; x, y, color, group, value, values, target,\n\
                  rows, columns, subtotals, orientation, mode, donut, sort, top, lines, size, bins, span, filter).\n\
                  Measures are agg(field): sum, count, count_distinct, avg, min, max, median, percentile(field, P); count(*) counts rows.\n\
                  Every choice of every control is aggregated in the engine, so controls re-filter with exact numbers and no server.\n\
                  Shown dashboards are redrawn in place when a later cell changes their data (a SPICE refresh, new files under a\n\
                  direct dataset's tables) or replaces their spec."
)]
pub struct DashboardArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Datasets: create, refresh, describe, list, delete
    #[command(subcommand)]
    Dataset(DatasetVerb),
    /// Create a dashboard from the TOML spec in the cell body, and show it (≙ CreateDashboard)
    Create {
        name: String,
        /// Replace the dashboard's spec if it exists (≙ UpdateDashboard)
        #[arg(long, conflicts_with = "if_not_exists")]
        replace: bool,
        /// If the dashboard exists already, keep its spec and show it (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Show a dashboard with its numbers now (≙ DescribeDashboard)
    Show { name: String },
    /// Write a dashboard as one self-contained HTML file to s3://bucket/key.html or a local path
    Publish { name: String, destination: String },
    /// List dashboards (≙ ListDashboards)
    List,
    /// Delete a dashboard (≙ DeleteDashboard)
    Delete { name: String },
    /// Show the SPICE pool, or set its size, e.g. `%dashboard capacity 1GB`
    Capacity { size: Option<String> },
}

#[derive(Debug, Subcommand)]
enum DatasetVerb {
    /// Create a dataset; %%dashboard dataset create NAME takes its SELECT as the cell body (≙ CreateDataSet)
    Create {
        name: String,
        /// The dataset's SELECT (Athena SQL)
        #[arg(long, conflicts_with = "table")]
        sql: Option<String>,
        /// A catalog table, TABLE or DATABASE.TABLE
        #[arg(long)]
        table: Option<String>,
        /// The database the SQL's unqualified tables are in (default: %sql's database)
        #[arg(long)]
        database: Option<String>,
        /// spice (ingested, refreshed) or direct (queried at every build) (≙ ImportMode)
        #[arg(long, default_value = "spice", value_parser = ["spice", "direct"])]
        mode: String,
        /// A calculated field, NAME=SQL expression; repeat for several
        #[arg(long = "field")]
        fields: Vec<String>,
        /// A refresh schedule, "rate(1 hour)" or "cron(0 6 * * ? *)" (≙ CreateRefreshSchedule)
        #[arg(long)]
        refresh: Option<String>,
        /// If the dataset exists already, keep it instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Ingest the source into SPICE again (≙ CreateIngestion)
    Refresh { name: String },
    /// Columns, rows, SPICE size and capacity, refreshes (≙ DescribeDataSet, ListIngestions)
    Describe { name: String },
    /// List datasets (≙ ListDataSets)
    List,
    /// Delete a dataset and its SPICE rows (≙ DeleteDataSet)
    Delete { name: String },
}

pub async fn run(args: DashboardArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let dashboards = engine.dashboards();
    let body = ctx.body.map(str::trim).filter(|b| !b.is_empty());
    let takes_body = matches!(args.verb, Verb::Create { .. } | Verb::Dataset(DatasetVerb::Create { .. }));
    if ctx.body.is_some() && !takes_body {
        return Err(CellError::usage("only `%%dashboard create NAME` (the spec) and `%%dashboard dataset create NAME` (the SELECT) take a cell body"));
    }
    match args.verb {
        Verb::Dataset(verb) => dataset(dashboards, verb, body, &mut ctx).await,
        Verb::Create { name, replace, if_not_exists } => {
            let spec = body.ok_or_else(|| CellError::usage("%%dashboard create NAME takes the dashboard's TOML spec as the cell body (see `%dashboard?`)"))?;
            let built = if if_not_exists && dashboards.dashboard(&name).is_ok() {
                super::kept(ctx.out, &format!("dashboard {name}"));
                dashboards.build(&name).await?
            } else {
                dashboards.create_dashboard(&name, spec, replace).await.map_err(in_cell_lines)?.1
            };
            show(dashboards, &built, &mut ctx).await?;
            Ok(None)
        }
        Verb::Show { name } => {
            let built = dashboards.build(&name).await?;
            show(dashboards, &built, &mut ctx).await?;
            Ok(None)
        }
        Verb::Publish { name, destination } => {
            let built = dashboards.build(&name).await?;
            let html = dashboard::page(&built);
            let size = html.len() as u64;
            let place = if destination.starts_with("s3://") {
                let uri = S3Uri::parse(&destination)?;
                engine.lake().put(&uri, bytes::Bytes::from(html)).await?;
                uri.to_string()
            } else {
                let path = std::path::PathBuf::from(&destination);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| CellError::new("WorkspaceIOError", format!("cannot create {}: {e}", dir.display())))?;
                }
                lakebook_engine::workspace::atomic_write(&path, html.as_bytes())?;
                path.display().to_string()
            };
            ctx.out.stdout(&format!(
                "Published dashboard {name} to {place}: {} ({} sheet(s), plotly.js embedded, no network needed)\n",
                render::human_bytes(size),
                built.sheets.len()
            ));
            Ok(None)
        }
        Verb::List => {
            let list = dashboards.dashboards();
            let table = batch(vec![
                ("name", strings(list.iter().map(|d| d.name.clone()))),
                ("version", Arc::new(UInt64Array::from_iter_values(list.iter().map(|d| d.version as u64))) as ArrayRef),
                ("created", times(list.iter().map(|d| Some(d.created.timestamp_millis())))),
                ("last_updated", times(list.iter().map(|d| Some(d.last_updated.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
        Verb::Delete { name } => {
            dashboards.delete_dashboard(&name)?;
            ctx.out.stdout(&format!("Deleted dashboard {name}.\n"));
            Ok(None)
        }
        Verb::Capacity { size } => {
            if let Some(size) = size {
                dashboards.set_spice_capacity(parse_size(&size, Units::Si)?)?;
            }
            let (used, capacity) = dashboards.spice();
            Ok(Some(render::text(&format!(
                "SPICE: {} used of {}, {} free",
                render::human_bytes(used),
                render::human_bytes(capacity),
                render::human_bytes(capacity.saturating_sub(used))
            ))))
        }
    }
}

/// The engine numbers a spec's lines from its first; in the cell the magic's line comes
/// first, so `line 22` of the spec is the cell's line 23 (what JupyterLab's gutter shows).
fn in_cell_lines(err: lakebook_engine::Error) -> CellError {
    let message = err.message();
    let shifted = message
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(n, rest)| n.parse::<usize>().ok().map(|n| format!("line {}:{rest}", n + 1)));
    match shifted {
        Some(message) => {
            let cell = CellError::new(err.code(), message);
            match err.hint() {
                Some(hint) => cell.with_detail(hint),
                None => cell,
            }
        }
        None => CellError::from(err),
    }
}

/// A dashboard shown in this kernel: one display per sheet, and the spec and data version it
/// shows, so a later change redraws it in place.
pub struct Shown {
    name: String,
    displays: Vec<String>,
    version: u32,
    data: u64,
}

/// Every sheet of a built dashboard as a display that later cells redraw in place.
async fn show(dashboards: &Dashboards, built: &Built, ctx: &mut Ctx<'_>) -> Result<(), CellError> {
    let dashboard = dashboards.dashboard(&built.name)?;
    let data = match dashboards.built_data_version(&built.name) {
        Some(data) => data,
        None => dashboards.data_version(&built.name).await?,
    };
    let mut displays = Vec::new();
    for sheet in &built.sheets {
        let bundle = dashboard::sheet_bundle(built, sheet, !ctx.state.plotly_loaded);
        ctx.state.plotly_loaded = true;
        let id = uuid::Uuid::new_v4().simple().to_string();
        ctx.out.display_as(bundle, &id);
        displays.push(id);
    }
    ctx.state.shown_dashboards.push(Shown { name: built.name.clone(), displays, version: dashboard.version, data });
    Ok(())
}

/// After every cell: each dashboard shown in this kernel whose spec was replaced or whose
/// data changed — a SPICE dataset refreshed (by the cell, or by a schedule the clock
/// reached), new or changed files under a direct dataset's tables (an application's sink, a
/// delivery) — is built again and every display of it redrawn in place, in JupyterLab,
/// Notebook 7, VS Code and a batch run alike (`update_display_data`).
pub async fn redraw_shown(workspace: &super::Workspace, state: &mut super::State, out: &Output) {
    let Some(engine) = workspace.opened() else { return };
    let dashboards = engine.dashboards();
    state.shown_dashboards.retain(|shown| dashboards.dashboard(&shown.name).is_ok());
    let mut names: Vec<String> = state.shown_dashboards.iter().map(|s| s.name.clone()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (Ok(dashboard), Ok(data)) = (dashboards.dashboard(&name), dashboards.data_version(&name).await) else { continue };
        let stale: Vec<&mut Shown> = state.shown_dashboards.iter_mut().filter(|s| s.name == name && (s.version != dashboard.version || s.data != data)).collect();
        if stale.is_empty() {
            continue;
        }
        match dashboards.build(&name).await {
            Ok(built) => {
                let mut redrawn = 0;
                for shown in stale {
                    for (sheet, id) in built.sheets.iter().zip(&shown.displays) {
                        out.update_display(dashboard::sheet_bundle(&built, sheet, false), id);
                        redrawn += 1;
                    }
                    (shown.version, shown.data) = (dashboard.version, data);
                }
                out.stdout(&format!("Redrew dashboard {name} in place ({redrawn} display(s)).\n"));
            }
            Err(e) => {
                for shown in stale {
                    (shown.version, shown.data) = (dashboard.version, data);
                }
                out.stderr(&format!("warning: dashboard {name} could not be redrawn: {e}\n"));
            }
        }
    }
}

async fn dataset(dashboards: &Dashboards, verb: DatasetVerb, body: Option<&str>, ctx: &mut Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    match verb {
        DatasetVerb::Create { name, sql, table, database, mode, fields, refresh, if_not_exists } => {
            if if_not_exists && dashboards.dataset(&name).is_ok() {
                super::kept(ctx.out, &format!("dataset {name}"));
                return Ok(None);
            }
            let database = database.unwrap_or_else(|| ctx.state.sql_database.clone());
            let source = match (sql.as_deref().or(body), table) {
                (Some(_), Some(_)) => return Err(CellError::usage("a dataset reads a SELECT (--sql or the cell body) or a --table, not both")),
                (Some(sql), None) => Source::Sql { sql: sql.to_string(), database },
                (None, Some(table)) => match table.split_once('.') {
                    Some((db, t)) => Source::Table { database: db.to_string(), table: t.to_string() },
                    None => Source::Table { database, table },
                },
                (None, None) => return Err(CellError::usage("which rows? give --sql \"SELECT …\", --table TABLE, or the SELECT as the cell body of %%dashboard dataset create NAME")),
            };
            let fields = fields
                .iter()
                .map(|f| match f.split_once('=') {
                    Some((n, e)) if !n.trim().is_empty() && !e.trim().is_empty() => Ok(CalculatedField { name: n.trim().to_string(), expression: e.trim().to_string() }),
                    _ => Err(CellError::usage(format!("--field {f:?}: write NAME=SQL expression, e.g. --field \"hour=extract(hour FROM ts)\""))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mode = if mode == "direct" { Mode::DirectQuery } else { Mode::Spice };
            let created = dashboards.create_dataset(DatasetSpec { name, source, mode, fields, refresh }).await?;
            let what = match &created.snapshot {
                Some(s) => format!("{} rows in SPICE ({})", s.rows, render::human_bytes(s.spice_bytes)),
                None => "direct query: read at every build".to_string(),
            };
            ctx.out.stdout(&format!("Created dataset {} ({}): {what}\n", created.name, created.mode));
            Ok(None)
        }
        DatasetVerb::Refresh { name } => {
            let ingestion = dashboards.refresh_dataset(&name).await?;
            if let Some(error) = &ingestion.error {
                return Err(CellError::new("LimitExceededException", format!("the ingestion of {name} failed: {error}"))
                    .with_detail("the rows already in SPICE are kept; `%dashboard capacity SIZE` sets the pool"));
            }
            ctx.out.stdout(&format!(
                "Refreshed dataset {name} ({}): {} rows, {} in SPICE, {} ms\n",
                ingestion.id,
                ingestion.rows,
                render::human_bytes(ingestion.spice_bytes),
                ingestion.elapsed_ms
            ));
            Ok(None)
        }
        DatasetVerb::Describe { name } => {
            let info = dashboards.describe_dataset(&name).await?;
            let d = &info.dataset;
            let source = match &d.source {
                Source::Sql { sql, database } => format!("SQL in {database}: {}", sql.split_whitespace().collect::<Vec<_>>().join(" ")),
                Source::Table { database, table } => format!("table {database}.{table}"),
            };
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(lakebook_engine::clock::format_time).unwrap_or_default();
            let mut rows = vec![
                ("mode".to_string(), d.mode.to_string()),
                ("source".to_string(), source),
                ("rows".to_string(), d.snapshot.as_ref().map(|s| s.rows.to_string()).unwrap_or_else(|| "read at every build".into())),
                ("spice_size".to_string(), render::human_bytes(d.snapshot.as_ref().map_or(0, |s| s.spice_bytes))),
                ("spice_free".to_string(), format!("{} of {}", render::human_bytes(info.spice_capacity.saturating_sub(info.spice_used)), render::human_bytes(info.spice_capacity))),
                ("last_refresh".to_string(), time(d.snapshot.as_ref().map(|s| s.ingested))),
                ("refresh_schedule".to_string(), d.refresh.clone().unwrap_or_default()),
                ("next_refresh".to_string(), time(d.next_refresh)),
            ];
            for field in info.columns.fields() {
                let calculated = d.fields.iter().find(|f| &f.name == field.name()).map(|f| format!(" = {}", f.expression)).unwrap_or_default();
                rows.push((format!("field {}", field.name()), format!("{}{calculated}", lakebook_engine::catalog::types::glue_type(field.data_type()))));
            }
            for ingestion in d.ingestions.iter().rev().take(5) {
                rows.push((
                    format!("ingestion {}", ingestion.id),
                    format!(
                        "{} {} at {}: {} rows{}",
                        ingestion.request_source,
                        ingestion.status,
                        lakebook_engine::clock::format_time(ingestion.created),
                        ingestion.rows,
                        ingestion.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
                    ),
                ));
            }
            let table = batch(vec![("item", strings(rows.iter().map(|r| r.0.clone()))), ("value", strings(rows.iter().map(|r| r.1.clone())))])?;
            Ok(Some(render::table(&table, &TableOptions { max_rows: 200, ..TableOptions::plain() }, &Footer::default())))
        }
        DatasetVerb::List => {
            let list = dashboards.datasets();
            let table = batch(vec![
                ("name", strings(list.iter().map(|d| d.name.clone()))),
                ("mode", strings(list.iter().map(|d| d.mode.to_string()))),
                ("rows", Arc::new(UInt64Array::from(list.iter().map(|d| d.snapshot.as_ref().map(|s| s.rows)).collect::<Vec<_>>())) as ArrayRef),
                ("spice_bytes", Arc::new(UInt64Array::from(list.iter().map(|d| d.snapshot.as_ref().map(|s| s.spice_bytes)).collect::<Vec<_>>())) as ArrayRef),
                ("refresh", strings(list.iter().map(|d| d.refresh.clone().unwrap_or_default()))),
                ("last_refresh", times(list.iter().map(|d| d.snapshot.as_ref().map(|s| s.ingested.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
        DatasetVerb::Delete { name } => {
            dashboards.delete_dataset(&name)?;
            ctx.out.stdout(&format!("Deleted dataset {name}.\n"));
            Ok(None)
        }
    }
}
