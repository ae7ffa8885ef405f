//! `%sql` / `%%sql`: Athena-style SQL on DataFusion over the Data Catalog. Each statement is
//! a query execution (UUID, state, data scanned, cost); the last statement's rows are shown
//! as a table whose footer gives rows × columns, engine time, data scanned and cost.

use clap::{CommandFactory, Parser};
use lakebook_engine::sql::QueryResult;

use super::{Ctx, Form, MagicSpec};
use crate::output::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::session::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "sql",
    summary: "Athena-style SQL over the catalog's tables (DataFusion), with data scanned and cost",
    form: Form::LineAndCell,
    command: SqlArgs::command,
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
    /// The SQL (line form)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    sql: Vec<String>,
}

/// Flags that take a value, for splitting `%sql --limit 5 SELECT …` into flags and SQL.
const VALUE_FLAGS: &[&str] = &["--database", "-d", "--limit", "--output"];

pub async fn run(ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let (flag_text, sql) = match ctx.body {
        Some(body) => (ctx.raw.to_string(), body.to_string()),
        None => split_flags(ctx.raw),
    };
    let flags: Vec<String> = shlex::split(&flag_text).ok_or_else(|| CellError::usage("unbalanced quotes in the %sql flags"))?;
    let args: SqlArgs = super::parse(&SPEC, &flags)?;
    if !args.sql.is_empty() {
        return Err(CellError::usage(format!("%%sql takes its SQL from the cell body, not {:?}", args.sql.join(" "))));
    }
    let sql = sql.trim();
    if sql.is_empty() {
        return Err(CellError::usage("no SQL to run").with_detail("write `%sql SELECT …`, or a %%sql cell with the SQL below"));
    }
    let engine = ctx.session.engine()?;
    let words: Vec<&str> = sql.split_whitespace().collect();
    if words.len() == 1 && words[0].eq_ignore_ascii_case("history") {
        return history(&engine);
    }
    if words.len() == 2 && words[0].eq_ignore_ascii_case("use") {
        let db = words[1].trim_end_matches(';');
        engine.catalog().tables(db)?;
        ctx.session.sql_database = db.to_string();
        ctx.out.stdout(&format!("default database: {db}\n"));
        return Ok(None);
    }
    let database = args.database.clone().unwrap_or_else(|| ctx.session.sql_database.clone());
    let sql = if args.explain { format!("EXPLAIN {sql}") } else { sql.to_string() };
    let mut results = engine.sql().run(&sql, &database).await?;
    let last = results.pop().ok_or_else(|| CellError::bug("a query ran but returned no result"))?;
    for (i, earlier) in results.iter().enumerate() {
        ctx.out.stdout(&format!("statement {}: {} row(s), {} ms\n", i + 1, earlier.execution.rows, earlier.execution.engine_ms));
    }
    if let Some(name) = &args.output {
        engine.sql().keep_as_view(name, &last)?;
    }
    Ok(Some(result_table(&last, args.limit)))
}

/// `%sql --limit 5 SELECT …` → ("--limit 5", "SELECT …").
fn split_flags(raw: &str) -> (String, String) {
    let mut rest = raw.trim_start();
    let mut flags = Vec::new();
    while rest.starts_with('-') {
        let (flag, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let name = flag.split('=').next().unwrap_or(flag);
        flags.push(flag.to_string());
        rest = after.trim_start();
        if VALUE_FLAGS.contains(&name) && !flag.contains('=') {
            let (value, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            flags.push(value.to_string());
            rest = after.trim_start();
        }
    }
    (flags.join(" "), rest.to_string())
}

pub fn result_table(result: &QueryResult, limit: Option<usize>) -> Bundle {
    let batch = arrow_select_concat(result);
    let e = &result.execution;
    let footer = Footer {
        elapsed: Some(std::time::Duration::from_millis(e.engine_ms)),
        bytes_scanned: Some(e.bytes_scanned),
        extra: vec![format!("{} at Athena's price", usd(e.cost_usd()))],
    };
    let mut options = TableOptions::default();
    if let Some(n) = limit {
        options = TableOptions { max_rows: n, head: n, tail: 0, ..options };
    }
    render::table(&batch, &options, &footer)
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

fn arrow_select_concat(result: &QueryResult) -> arrow_array::RecordBatch {
    arrow_select::concat::concat_batches(&result.schema, &result.batches)
        .unwrap_or_else(|_| arrow_array::RecordBatch::new_empty(result.schema.clone()))
}

fn history(engine: &lakebook_engine::Lakebook) -> Result<Option<Bundle>, CellError> {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, UInt64Array};

    use super::catalog::{batch, strings, times};
    let runs = engine.sql().history();
    let batch = batch(vec![
        ("execution_id", strings(runs.iter().map(|r| r.id.clone()))),
        ("state", strings(runs.iter().map(|r| r.state.to_string()))),
        ("query", strings(runs.iter().map(|r| r.query.clone()))),
        ("database", strings(runs.iter().map(|r| r.database.clone()))),
        ("submitted", times(runs.iter().map(|r| Some(r.submitted.timestamp_millis())))),
        ("rows", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.rows))) as ArrayRef),
        ("bytes_scanned", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.bytes_scanned)))),
        ("engine_ms", Arc::new(UInt64Array::from_iter_values(runs.iter().map(|r| r.engine_ms)))),
        ("output", strings(runs.iter().map(|r| r.output_location.clone().unwrap_or_default()))),
        ("error", strings(runs.iter().map(|r| r.error.clone().unwrap_or_default()))),
    ])?;
    Ok(Some(render::table(&batch, &TableOptions { null: "", ..TableOptions::default() }, &Footer::default())))
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
    }
}
