//! `%sql` / `%%sql`: Athena-style SQL on DataFusion over the Data Catalog. Each statement is
//! a query execution (UUID, state, data scanned, cost); the last statement's rows are shown
//! as a table whose footer gives rows × columns, engine time, data scanned and cost.

use clap::{CommandFactory, Parser, Subcommand};
use lakebook_engine::query::{QueryProgress, Watch};
use lakebook_engine::sql::QueryResult;
use lakebook_engine::sql::cluster::ClusterTarget;

use super::{Body, Ctx, Form, MagicSpec, Running};
use crate::render::Bundle;
use crate::render::chart::{self, ChartArgs};
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "sql",
    summary: "Athena-style SQL over the catalog's tables (DataFusion), with data scanned and cost",
    form: Form::LineAndCell,
    command: SqlArgs::command,
    body: Body::Sql,
    run: start,
};

#[derive(Debug, Parser)]
#[command(
    about = "Athena-style SQL over the catalog's tables (DataFusion), with data scanned and cost",
    after_help = "%sql SELECT … runs one line; a %%sql cell runs its statements (separated by ;) and shows the last result.\n%sql USE db sets the default database; %sql history lists past query executions (≙ ListQueryExecutions).\nEach statement ≙ StartQueryExecution + GetQueryResults; results are also written to s3://lakebook-query-results/<id>.csv."
)]
pub struct SqlArgs {
    /// Default database for unqualified table names (≙ QueryExecutionContext.Database)
    #[arg(long, short = 'd')]
    database: Option<String>,
    /// Show at most N rows (the query still returns all)
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Keep the result as a temporary view NAME for later queries
    #[arg(long, value_name = "NAME")]
    output: Option<String>,
    /// Show the query plan (partition and column pruning are visible in it)
    #[arg(long)]
    explain: bool,
    /// Run in this workgroup: its output location and per-query scan limit apply
    #[arg(long, short = 'w', value_name = "NAME")]
    workgroup: Option<String>,
    /// Run on this Redshift cluster instead of Athena (`%redshift connect NAME` makes it the default)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["workgroup", "database", "output"])]
    cluster: Option<String>,
    /// Run this query on a Ballista cluster (ballista://HOST:PORT) or on the local engine (local);
    /// `%sql engine connect ballista://HOST:PORT` makes a cluster the default
    #[arg(long, value_name = "ENGINE", conflicts_with = "cluster")]
    engine: Option<String>,
    #[command(flatten)]
    chart: ChartArgs,
    /// The SQL (line form)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    sql: Vec<String>,
    #[command(subcommand)]
    verb: Option<SqlVerb>,
}

/// The words after `%sql` that start a command instead of SQL.
pub const WORKGROUP: &str = "workgroup";
pub const ENGINE: &str = "engine";

#[derive(Debug, Subcommand)]
enum SqlVerb {
    /// Workgroups: where results go and how much one query may scan (`%sql --workgroup NAME …` runs in one)
    Workgroup {
        #[command(subcommand)]
        verb: Option<WorkgroupVerb>,
    },
    /// Where queries run: the local engine, or an Apache DataFusion Ballista cluster (`%sql engine` shows it)
    Engine {
        #[command(subcommand)]
        verb: Option<EngineVerb>,
    },
}

#[derive(Debug, Subcommand)]
enum EngineVerb {
    /// Run this kernel's queries on the Ballista scheduler at ballista://HOST:PORT (`lakebook cluster start` runs one here)
    Connect {
        url: String,
        /// Fail a query running longer (QueryTimeout) and cancel its job, e.g. 90s, 10m, 2h (default 30m, as Athena)
        #[arg(long)]
        timeout: Option<String>,
    },
    /// Run queries on the local engine again
    Local,
}

#[derive(Debug, Subcommand)]
enum WorkgroupVerb {
    /// List the workgroups (≙ ListWorkGroups; also `%sql workgroup`)
    List,
    /// Create a workgroup (≙ CreateWorkGroup)
    Create {
        name: String,
        /// Cancel a query once it has scanned this much: 10MB at least (≙ BytesScannedCutoffPerQuery)
        #[arg(long, value_name = "SIZE")]
        bytes_scanned_cutoff: Option<String>,
        /// Where its results go, s3://bucket/prefix/ (≙ ResultConfiguration.OutputLocation)
        #[arg(long, value_name = "S3_URI")]
        output_location: Option<String>,
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// If it exists already, keep it as it is instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Delete a workgroup (≙ DeleteWorkGroup)
    Delete { name: String },
}

/// `%sql` splits its line itself: flags first, then SQL that clap must not see.
fn start<'a>(_: &'a [String], ctx: Ctx<'a>) -> Running<'a> {
    Box::pin(run(ctx))
}

pub async fn run(mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let (flag_text, sql) = match ctx.body {
        Some(body) => (ctx.raw.to_string(), body.to_string()),
        None => split_flags(ctx.raw),
    };
    let mut flags: Vec<String> = shlex::split(&flag_text).ok_or_else(|| CellError::usage("unbalanced quotes in the %sql flags"))?;
    // `%sql workgroup …` is a command, parsed with the flags by clap.
    let first = sql.split_whitespace().next().unwrap_or("");
    let command = ctx.body.is_none() && (first.eq_ignore_ascii_case(WORKGROUP) || first.eq_ignore_ascii_case(ENGINE));
    if command {
        let words = shlex::split(sql.trim_start()[first.len()..].trim()).ok_or_else(|| CellError::usage(format!("unbalanced quotes in the %sql {first} command")))?;
        flags.push(first.to_lowercase());
        flags.extend(words);
    }
    let args: SqlArgs = super::parse(&SPEC, &flags)?;
    if !args.sql.is_empty() {
        return Err(CellError::usage(format!("%%sql takes its SQL from the cell body, not {:?}", args.sql.join(" "))));
    }
    if args.verb.is_some() && !command {
        return Err(CellError::usage("`%sql workgroup …` and `%sql engine …` are lines of their own, not a %%sql cell's first line"));
    }
    if let Some(SqlVerb::Engine { verb }) = args.verb {
        return engine_command(verb, ctx);
    }
    let engine = ctx.engine()?;
    if let Some(SqlVerb::Workgroup { verb }) = args.verb {
        return workgroup(&engine, verb.unwrap_or(WorkgroupVerb::List), ctx.out);
    }
    let sql = sql.trim();
    if sql.is_empty() {
        return Err(CellError::usage("no SQL to run").with_detail("write `%sql SELECT …`, or a %%sql cell with the SQL below"));
    }
    let words: Vec<&str> = sql.split_whitespace().collect();
    if words.len() == 1 && words[0].eq_ignore_ascii_case("history") {
        return history(&engine);
    }
    if words.len() == 2 && words[0].eq_ignore_ascii_case("use") {
        let db = words[1].trim_end_matches(';');
        engine.catalog().tables(db)?;
        ctx.state.sql_database = db.to_string();
        ctx.out.stdout(&format!("default database: {db}\n"));
        return Ok(None);
    }
    let sql = if args.explain { format!("EXPLAIN {sql}") } else { sql.to_string() };
    let on_athena = args.workgroup.is_some() || args.database.is_some() || args.output.is_some() || args.engine.is_some();
    if let Some(cluster) = args.cluster.clone().or_else(|| ctx.state.redshift_cluster.clone().filter(|_| !on_athena)) {
        return super::redshift::sql(&engine, &cluster, &sql, args.view(), ctx).await;
    }
    let database = args.database.clone().unwrap_or_else(|| ctx.state.sql_database.clone());
    let workgroup = args.workgroup.clone().unwrap_or_else(|| ctx.state.sql_workgroup.clone());
    let ballista = match args.engine.as_deref() {
        Some("local") => None,
        // The connected cluster's timeout holds for a `--engine` naming it; another gets the default.
        Some(url) => Some(match ctx.workspace.cluster() {
            Some(target) if Some(&target.scheduler) == ballista_address(url).ok().as_ref() => target.clone(),
            _ => cluster_target(url, None)?,
        }),
        None => ctx.workspace.cluster().cloned(),
    };
    if let Some(target) = ballista {
        let result = engine.sql().run_on_cluster(&target, &sql, &database, &workgroup).await?;
        if let Some(name) = &args.output {
            engine.sql().keep_as_view(name, &result)?;
        }
        let mut footer = footer(&result);
        footer.extra.push(format!("on Ballista at {}", target.scheduler));
        return show(concat(&result), footer, args.view(), ctx);
    }
    // A query running longer than `sql.progress_after` shows its progress, updated in place.
    let mut live = LiveProgress::new(ctx.out);
    let mut report = |p: &QueryProgress| live.report(p);
    let mut watch = Watch { after: ctx.state.sql_progress_after, every: PROGRESS_EVERY, report: &mut report };
    let ran = engine.sql().run_watched(&sql, &database, &workgroup, Some(&mut watch)).await;
    let mut results = match ran {
        Ok(results) => results,
        Err(e) => {
            live.finish(&format!("query failed: {}", e.code()));
            return Err(e.into());
        }
    };
    let last = results.pop().ok_or_else(|| CellError::bug("a query ran but returned no result"))?;
    let mut text = String::new();
    for (i, earlier) in results.iter().enumerate() {
        text.push_str(&format!("statement {}: {} row(s), {} ms\n", i + 1, earlier.execution.rows, earlier.execution.engine_ms));
    }
    if let Some(name) = &args.output {
        engine.sql().keep_as_view(name, &last)?;
    }
    let batch = concat(&last);
    if last.messages {
        // What a DDL/DML statement did is sentences, not data: print them and the footer
        // (in place of the progress display, if one was shown). The shape of a list of
        // sentences says nothing: keep time, data scanned and cost.
        text.push_str(&format!("{}\n{}\n", render::column_text(&batch, 0), footer(&last).facts()));
        live.finish_or_print(&text);
        return Ok(None);
    }
    // The display ends as the footer the result carries.
    live.finish(&footer(&last).text(last.execution.rows as usize, last.schema.fields().len()));
    if !text.is_empty() {
        ctx.out.stdout(&text);
    }
    show(batch, footer(&last), args.view(), ctx)
}

/// How a result is shown: the flags of `%sql` that do not change what runs.
pub struct View {
    pub limit: Option<usize>,
    pub chart: ChartArgs,
}

impl SqlArgs {
    fn view(&self) -> View {
        View { limit: self.limit, chart: self.chart.clone() }
    }
}

/// Shows a query's rows as a table (or a chart with `--chart`) and keeps them for `%chart`.
pub fn show(batch: arrow_array::RecordBatch, footer: Footer, view: View, ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    ctx.state.last_result = Some(batch.clone());
    if let Some(spec) = view.chart.spec(None)? {
        let bundle = chart::chart(&spec, &batch, !ctx.state.plotly_loaded)?;
        ctx.state.plotly_loaded = true;
        ctx.out.stdout(&format!("{}\n", footer.text(batch.num_rows(), batch.num_columns())));
        return Ok(Some(bundle));
    }
    let mut options = ctx.state.result_table();
    if let Some(n) = view.limit {
        options = TableOptions { max_rows: n, head: n, tail: 0, ..options };
    }
    Ok(Some(render::table(&batch, &options, &footer)))
}

/// `%sql --limit 5 --title "a b" SELECT …` → ("--limit 5 --title \"a b\"", "SELECT …").
fn split_flags(raw: &str) -> (String, String) {
    let value_flags = super::value_flags(&SPEC);
    let mut rest = raw.trim_start();
    let mut flags = Vec::new();
    while rest.starts_with('-') {
        let (flag, after) = next_word(rest);
        let name = flag.split('=').next().unwrap_or(flag);
        flags.push(flag.to_string());
        rest = after.trim_start();
        if value_flags.iter().any(|f| f == name) && !flag.contains('=') {
            let (value, after) = next_word(rest);
            flags.push(value.to_string());
            rest = after.trim_start();
        }
    }
    (flags.join(" "), rest.to_string())
}

/// The first shell word of `text` (quotes kept, for shlex) and what follows it.
fn next_word(text: &str) -> (&str, &str) {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => return (&text[..i], &text[i..]),
            _ => {}
        }
    }
    (text, "")
}

/// How often a running query's progress display is updated.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// A running query's progress, shown once the engine first reports it and updated in place;
/// it ends as the result's footer.
pub struct LiveProgress<'o> {
    out: &'o crate::output::Output,
    shown: Option<crate::output::Progress>,
}

impl<'o> LiveProgress<'o> {
    pub fn new(out: &'o crate::output::Output) -> Self {
        LiveProgress { out, shown: None }
    }

    /// "running 3.2 s · 1,204,000 rows · 84.1 MB scanned · 3/12 files", with a bar when the
    /// scans read files.
    pub fn report(&mut self, p: &QueryProgress) {
        let mut label = format!(
            "running {} · {} rows · {} scanned",
            lakebook_engine::clock::format_duration(p.elapsed),
            p.rows_scanned,
            render::human_bytes(p.bytes_scanned)
        );
        let bundle = if p.files_total > 0 {
            label.push_str(&format!(" · {}/{} files", p.files_done, p.files_total));
            render::progress(&label, p.files_done as f64 / p.files_total as f64)
        } else {
            render::text(&label)
        };
        match &self.shown {
            Some(progress) => progress.update(bundle),
            None => self.shown = Some(self.out.progress(bundle)),
        }
    }

    /// Replaces the display (if one was shown) with `last`, a line.
    pub fn finish(self, last: &str) {
        if let Some(progress) = self.shown {
            progress.finish(last);
        }
    }

    /// Ends with what the cell prints (a DDL or DML statement's sentences and footer): in
    /// place of the display if one was shown, as output otherwise.
    pub fn finish_or_print(self, text: &str) {
        match self.shown {
            Some(progress) => progress.finish(text.trim_end_matches('\n')),
            None => self.out.stdout(text),
        }
    }
}

/// `ballista://HOST:PORT` → `HOST:PORT`.
fn ballista_address(url: &str) -> Result<String, CellError> {
    let address = url.strip_prefix("ballista://").or_else(|| url.strip_prefix("df://")).unwrap_or("");
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(address.trim_end_matches('/').to_string()),
        _ => Err(CellError::usage(format!("{url:?} is not an engine: write ballista://HOST:PORT (a Ballista scheduler) or local"))),
    }
}

/// A Ballista cluster to send queries to: `ballista://HOST:PORT`, the client program, and
/// how long a query may run there.
fn cluster_target(url: &str, timeout: Option<&str>) -> Result<ClusterTarget, CellError> {
    let scheduler = ballista_address(url)?;
    let timeout = match timeout {
        Some(text) => {
            let timeout = lakebook_engine::clock::parse_duration(text)?;
            if timeout < std::time::Duration::from_secs(1) {
                return Err(CellError::usage(format!("--timeout {text}: a query needs at least 1s")));
            }
            timeout
        }
        None => lakebook_engine::sql::cluster::DEFAULT_TIMEOUT,
    };
    let client = crate::cluster::binary().map_err(|e| CellError::new("ClusterUnavailable", e))?;
    Ok(ClusterTarget { scheduler, client, timeout })
}

/// `%sql engine [connect ballista://HOST:PORT | local]`.
fn engine_command(verb: Option<EngineVerb>, ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    match verb {
        Some(EngineVerb::Connect { url, timeout }) => {
            let target = cluster_target(&url, timeout.as_deref())?;
            ctx.out.stdout(&format!(
                "queries and EMR SQL steps run on the Ballista cluster at {} (timeout {}; `%sql engine local` to go back)\n",
                target.scheduler,
                lakebook_engine::clock::format_duration(target.timeout)
            ));
            ctx.workspace.use_cluster(Some(target));
        }
        Some(EngineVerb::Local) => {
            ctx.workspace.use_cluster(None);
            ctx.out.stdout("queries run on the local engine\n");
        }
        None => match ctx.workspace.cluster() {
            Some(target) => ctx.out.stdout(&format!(
                "queries and EMR SQL steps run on the Ballista cluster at {} (timeout {})\n",
                target.scheduler,
                lakebook_engine::clock::format_duration(target.timeout)
            )),
            None => ctx.out.stdout("queries run on the local engine\n"),
        },
    }
    Ok(None)
}

fn footer(result: &QueryResult) -> Footer {
    let e = &result.execution;
    Footer {
        elapsed: Some(std::time::Duration::from_millis(e.engine_ms)),
        bytes_scanned: Some(e.bytes_scanned),
        extra: vec![format!("{} at Athena's price", usd(e.cost_usd()))],
    }
}

/// Dollars with the digits that matter: $0.00005, $1.25, $0.00.
fn usd(amount: f64) -> String {
    if amount == 0.0 {
        return "$0.00".into();
    }
    let text = format!("{amount:.8}");
    let text = text.trim_end_matches('0');
    let text = if text.split('.').nth(1).is_some_and(|f| f.len() < 2) { format!("{amount:.2}") } else { text.to_string() };
    format!("${text}")
}

fn concat(result: &QueryResult) -> arrow_array::RecordBatch {
    arrow_select::concat::concat_batches(&result.schema, &result.batches)
        .unwrap_or_else(|_| arrow_array::RecordBatch::new_empty(result.schema.clone()))
}

/// `%sql workgroup list | create NAME [--bytes-scanned-cutoff 10MB] [--output-location s3://…]
/// [--description TEXT] [--if-not-exists] | delete NAME`.
fn workgroup(engine: &lakebook_engine::Lakebook, verb: WorkgroupVerb, out: &crate::output::Output) -> Result<Option<Bundle>, CellError> {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, UInt64Array};

    use crate::render::{batch, strings, times};
    match verb {
        WorkgroupVerb::List => {
            let groups = engine.sql().workgroups();
            let batch = batch(vec![
                ("name", strings(groups.iter().map(|g| g.name.clone()))),
                ("output_location", strings(groups.iter().map(|g| g.output_location.clone()))),
                (
                    "bytes_scanned_cutoff",
                    Arc::new(UInt64Array::from(groups.iter().map(|g| g.bytes_scanned_cutoff).collect::<Vec<_>>())) as ArrayRef,
                ),
                ("description", strings(groups.iter().map(|g| g.description.clone()))),
                ("created", times(groups.iter().map(|g| (g.name != lakebook_engine::sql::PRIMARY_WORKGROUP).then(|| g.created.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&batch, &TableOptions::plain(), &Footer::default())))
        }
        WorkgroupVerb::Create { name, bytes_scanned_cutoff, output_location, description, if_not_exists } => {
            if if_not_exists && engine.sql().workgroups().iter().any(|g| g.name == name) {
                super::kept(out, &format!("workgroup {name}"));
                return Ok(None);
            }
            let cutoff = bytes_scanned_cutoff.map(|v| super::parse_size(&v, super::Units::Si)).transpose()?;
            let group = engine.sql().create_workgroup(&name, output_location.as_deref(), cutoff, &description)?;
            let limit = group.bytes_scanned_cutoff.map_or("no scan limit".to_string(), |b| format!("queries cancelled past {}", render::human_bytes(b)));
            out.stdout(&format!("workgroup {} created: results to {}, {limit}\n", group.name, group.output_location));
            Ok(None)
        }
        WorkgroupVerb::Delete { name } => {
            engine.sql().delete_workgroup(&name)?;
            out.stdout(&format!("workgroup {name} deleted\n"));
            Ok(None)
        }
    }
}

fn history(engine: &lakebook_engine::Lakebook) -> Result<Option<Bundle>, CellError> {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, UInt64Array};

    use crate::render::{batch, strings, times};
    let runs = engine.sql().history();
    let batch = batch(vec![
        ("execution_id", strings(runs.iter().map(|r| r.id.clone()))),
        ("state", strings(runs.iter().map(|r| r.state.to_string()))),
        ("type", strings(runs.iter().map(|r| r.statement_type.to_string()))),
        ("workgroup", strings(runs.iter().map(|r| r.workgroup.clone()))),
        ("query", strings(runs.iter().map(|r| r.query.clone()))),
        ("database", strings(runs.iter().map(|r| r.database.clone()))),
        ("submitted", times(runs.iter().map(|r| Some(r.submitted.timestamp_millis())))),
        ("rows", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.rows))) as ArrayRef),
        ("bytes_scanned", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.bytes_scanned)))),
        ("engine_ms", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.engine_ms)))),
        ("output", strings(runs.iter().map(|r| r.output_location.clone().unwrap_or_default()))),
        ("engine", strings(runs.iter().map(|r| r.engine.clone().unwrap_or_else(|| "local".into())))),
        ("error", strings(runs.iter().map(|r| r.error.clone().unwrap_or_default()))),
    ])?;
    Ok(Some(render::table(&batch, &TableOptions::plain(), &Footer::default())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(0.00005), "$0.00005");
        assert_eq!(usd(1.25), "$1.25");
        assert_eq!(usd(2.0), "$2.00");
    }

    #[test]
    fn flags_are_split_from_the_sql() {
        assert_eq!(split_flags("--limit 5 -d web SELECT 'a -b' FROM t"), ("--limit 5 -d web".into(), "SELECT 'a -b' FROM t".into()));
        assert_eq!(split_flags("--explain SELECT 1"), ("--explain".into(), "SELECT 1".into()));
        assert_eq!(split_flags("SELECT -1"), (String::new(), "SELECT -1".into()));
        assert_eq!(
            split_flags("--chart bar --title \"Clicks by day\" --x day SELECT 1"),
            ("--chart bar --title \"Clicks by day\" --x day".into(), "SELECT 1".into())
        );
    }
}
