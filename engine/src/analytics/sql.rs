//! An application's SQL, in Flink SQL's dialect as far as Lakebook runs it: `CREATE TABLE`
//! declarations of streams (the `kinesis` connector, read as a source or written as a sink),
//! files in the lake (`filesystem`: a sink, or reference data a query reads) and Firehose
//! sinks (`firehose`),
//! with an event-time `WATERMARK FOR ts AS ts - INTERVAL '5' SECOND` or a processing-time
//! `pt AS PROCTIME()` column, and `INSERT INTO sink SELECT …` statements whose FROM may use
//! the windowing table functions `TUMBLE`, `HOP`, `CUMULATE` and `SESSION`. The SELECT itself is run by
//! DataFusion; this module finds what DataFusion cannot read (the declarations and the window
//! calls) and cuts it out.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::service_err;

/// A parsed application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSql {
    pub tables: Vec<TableDecl>,
    pub inserts: Vec<Insert>,
}

/// `CREATE TABLE name (…) WITH (…)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDecl {
    pub name: String,
    /// Physical columns: (name, Flink type as written).
    pub columns: Vec<(String, String)>,
    pub watermark: Option<Watermark>,
    /// The processing-time column (`pt AS PROCTIME()`).
    pub proctime: Option<String>,
    pub connector: Connector,
}

/// `WATERMARK FOR column AS column - INTERVAL 'n' UNIT`: the watermark trails the largest
/// event time seen by `delay_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub column: String,
    pub delay_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Connector {
    /// A Kinesis data stream, records decoded as JSON.
    Kinesis { stream: String, initpos: Option<String> },
    /// Files under an `s3://` path, or one object (Flink's filesystem connector), in `json`,
    /// `csv` or `parquet`: a sink, or reference data when a query reads it.
    Filesystem { path: String, format: String },
    /// A Firehose stream (Flink's `firehose` sink connector): each row one JSON record.
    Firehose { delivery_stream: String },
}

/// `INSERT INTO target SELECT …`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insert {
    /// A declared sink, or `db.table` in the Data Catalog.
    pub target: String,
    /// The query with each window call replaced by its placeholder table's name.
    pub query: String,
    pub windows: Vec<WindowCall>,
}

/// One `TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), …))` in a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCall {
    pub placeholder: String,
    pub table: String,
    pub time_column: String,
    pub kind: WindowKind,
    /// `SESSION(TABLE t PARTITION BY a, b, …)`: sessions are kept apart per key.
    #[serde(default)]
    pub partition_by: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    Tumble { size_ms: i64 },
    /// Windows of `size_ms` starting every `slide_ms`.
    Hop { slide_ms: i64, size_ms: i64 },
    /// Windows growing by `step_ms` from each `size_ms` boundary.
    Cumulate { step_ms: i64, size_ms: i64 },
    /// A window per burst of activity: it closes once no record came for `gap_ms`.
    Session { gap_ms: i64 },
}

impl WindowKind {
    /// The end of the last window an event at `ts` falls in (Flink's last window end): the
    /// event is late once that window has fired.
    pub fn last_end(&self, ts: i64) -> i64 {
        match *self {
            WindowKind::Tumble { size_ms } | WindowKind::Cumulate { size_ms, .. } => ts.div_euclid(size_ms) * size_ms + size_ms,
            WindowKind::Hop { slide_ms, size_ms } => ts.div_euclid(slide_ms) * slide_ms + size_ms,
            WindowKind::Session { gap_ms } => ts.saturating_add(gap_ms),
        }
    }

    /// The windows `[start, end)` an event at `ts` falls in, by end (a session's: the one the
    /// event opens by itself, before merging).
    pub fn windows_of(&self, ts: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        self.each_window(ts, |start, end| out.push((start, end)));
        out
    }

    /// Calls `f(start, end)` for each window an event at `ts` falls in, by end, without
    /// allocating (the per-record path).
    pub fn each_window(&self, ts: i64, mut f: impl FnMut(i64, i64)) {
        match *self {
            WindowKind::Tumble { size_ms } => {
                let start = ts.div_euclid(size_ms) * size_ms;
                f(start, start + size_ms)
            }
            WindowKind::Hop { slide_ms, size_ms } => {
                let last = ts.div_euclid(slide_ms) * slide_ms;
                for k in (0..size_ms / slide_ms).rev() {
                    let start = last - k * slide_ms;
                    f(start, start + size_ms)
                }
            }
            WindowKind::Cumulate { step_ms, size_ms } => {
                let start = ts.div_euclid(size_ms) * size_ms;
                let first_end = ts.div_euclid(step_ms) * step_ms + step_ms;
                for end in (first_end..=start + size_ms).step_by(step_ms as usize) {
                    f(start, end)
                }
            }
            WindowKind::Session { gap_ms } => f(ts, ts + gap_ms),
        }
    }

    /// The end of the first window an event at `ts` falls in; never less for a later event.
    pub fn first_end(&self, ts: i64) -> i64 {
        let mut first = i64::MAX;
        self.each_window(ts, |_, end| first = first.min(end));
        first
    }
}

/// Parses an application's statements (separated by `;`).
pub fn parse(text: &str) -> Result<AppSql> {
    let mut app = AppSql { tables: Vec::new(), inserts: Vec::new() };
    for statement in split_statements(text) {
        let words: Vec<String> = statement.split_whitespace().take(3).map(|w| w.to_ascii_uppercase()).collect();
        match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["CREATE", "TABLE", ..] | ["CREATE", "TEMPORARY", "TABLE"] => app.tables.push(create_table(&statement)?),
            ["INSERT", "INTO", ..] => app.inserts.push(insert(&statement, app.inserts.len())?),
            _ => {
                let first: String = statement.chars().take(40).collect();
                return Err(service_err!(InvalidApplicationConfigurationException, "not supported in an application: {first}…")
                    .with_hint("an application is CREATE TABLE … WITH ('connector' = …) declarations and INSERT INTO sink SELECT … statements"));
            }
        }
    }
    if app.inserts.is_empty() {
        return Err(service_err!(InvalidApplicationConfigurationException, "the application has no INSERT INTO … SELECT …: nothing would run")
            .with_hint("end with INSERT INTO a_sink SELECT … FROM a_source"));
    }
    let mut names = std::collections::BTreeSet::new();
    for t in &app.tables {
        if !names.insert(t.name.clone()) {
            return Err(service_err!(InvalidApplicationConfigurationException, "table {} is declared twice", t.name));
        }
    }
    for insert in &app.inserts {
        for w in &insert.windows {
            let source = app.tables.iter().find(|t| t.name == w.table).ok_or_else(|| {
                service_err!(InvalidApplicationConfigurationException, "the window reads table {}, which the application does not declare", w.table)
            })?;
            if app.is_sink(&w.table) {
                return Err(service_err!(InvalidApplicationConfigurationException, "the window reads {}, which an INSERT of the application writes", w.table));
            }
            let event_time = source.watermark.as_ref().is_some_and(|m| m.column == w.time_column);
            if !event_time && source.proctime.as_deref() != Some(w.time_column.as_str()) {
                return Err(service_err!(
                    InvalidApplicationConfigurationException,
                    "DESCRIPTOR({}) is not a time attribute of {}: declare WATERMARK FOR {} AS … or {} AS PROCTIME()",
                    w.time_column,
                    w.table,
                    w.time_column,
                    w.time_column
                ));
            }
            if let Some(key) = w.partition_by.iter().find(|k| !source.columns.iter().any(|(c, _)| c == *k)) {
                return Err(service_err!(InvalidApplicationConfigurationException, "PARTITION BY {key}: {} has no such column", w.table));
            }
        }
    }
    Ok(app)
}

/// Statements split on `;` outside quotes, with `--` comments removed; empty ones dropped.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '`' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            current.push('\n');
                            break;
                        }
                    }
                }
                ';' => out.push(std::mem::take(&mut current)),
                c => current.push(c),
            },
        }
    }
    out.push(current);
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// The text inside the parenthesis that opens at byte `open` (which must be `(`), and the
/// byte just past its closing one. Quotes are skipped.
fn balanced(text: &str, open: usize) -> Option<(&str, usize)> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in text[open..].char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((&text[open + 1..open + i], open + i + 1));
                    }
                }
                _ => {}
            },
        }
    }
    None
}

/// `text` split at commas outside parentheses and quotes.
fn split_top(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                current.push(c);
            }
            None => match c {
                '\'' | '"' | '`' => {
                    quote = Some(c);
                    current.push(c);
                }
                '(' | '<' => {
                    depth += 1;
                    current.push(c);
                }
                ')' | '>' => {
                    depth -= 1;
                    current.push(c);
                }
                ',' if depth == 0 => out.push(std::mem::take(&mut current).trim().to_string()),
                c => current.push(c),
            },
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

fn ident(text: &str) -> String {
    text.trim().trim_matches(['`', '"']).to_lowercase()
}

fn create_table(statement: &str) -> Result<TableDecl> {
    let bad = |why: String| service_err!(InvalidApplicationConfigurationException, "{why}");
    let open = statement.find('(').ok_or_else(|| bad("CREATE TABLE needs a column list: CREATE TABLE t (c STRING, …) WITH (…)".into()))?;
    let head: Vec<&str> = statement[..open].split_whitespace().collect();
    let name = head.last().filter(|n| !n.eq_ignore_ascii_case("TABLE")).ok_or_else(|| bad("CREATE TABLE needs a name".into()))?;
    let name = ident(name);
    let (body, after) = balanced(statement, open).ok_or_else(|| bad(format!("the column list of {name} is not closed")))?;
    let mut decl = TableDecl { name: name.clone(), columns: Vec::new(), watermark: None, proctime: None, connector: Connector::Filesystem { path: String::new(), format: String::new() } };
    for item in split_top(body) {
        let first: Vec<String> = item.split_whitespace().take(2).map(|w| w.to_ascii_uppercase()).collect();
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        if first.first() == Some(&"WATERMARK") {
            decl.watermark = Some(watermark(&item)?);
        } else if first == ["PRIMARY", "KEY"] || first.first() == Some(&"CONSTRAINT") {
            return Err(bad(format!("{name}: primary keys are not supported (Lakebook's applications are append-only)")));
        } else {
            let words: Vec<&str> = item.split_whitespace().collect();
            match words.as_slice() {
                [column, as_, expr @ ..] if as_.eq_ignore_ascii_case("AS") => {
                    if expr.join("").eq_ignore_ascii_case("PROCTIME()") {
                        decl.proctime = Some(ident(column));
                    } else {
                        return Err(bad(format!("{name}: computed column {} AS {} is not supported; only PROCTIME()", ident(column), expr.join(" "))));
                    }
                }
                [column, data_type @ ..] if !data_type.is_empty() => {
                    let data_type = data_type.join(" ");
                    arrow_type(&data_type)?;
                    decl.columns.push((ident(column), data_type));
                }
                _ => return Err(bad(format!("{name}: cannot read the column {item}"))),
            }
        }
    }
    if let Some(w) = &decl.watermark {
        let typed = decl.columns.iter().find(|(c, _)| *c == w.column).map(|(_, t)| arrow_type(t));
        if !matches!(typed, Some(Ok(DataType::Timestamp(..)))) {
            return Err(bad(format!("{name}: the watermark column {} must be a TIMESTAMP(3) column of the table", w.column)));
        }
    }
    let rest = statement[after..].trim();
    let options = match rest.get(..4) {
        Some(w) if w.eq_ignore_ascii_case("WITH") => {
            let open = rest.find('(').ok_or_else(|| bad(format!("{name}: WITH takes ('key' = 'value', …)")))?;
            let (inside, end) = balanced(rest, open).ok_or_else(|| bad(format!("{name}: WITH (…) is not closed")))?;
            if !rest[end..].trim().is_empty() {
                return Err(bad(format!("{name}: unexpected text after WITH (…): {}", rest[end..].trim())));
            }
            with_options(inside)?
        }
        _ => return Err(bad(format!("{name} has no WITH ('connector' = …): say where its rows come from or go"))),
    };
    let option = |key: &str| options.get(key).cloned();
    decl.connector = match option("connector").as_deref() {
        Some("kinesis") => {
            let stream = option("stream").or_else(|| option("stream.arn").map(|arn| arn.rsplit('/').next().unwrap_or_default().to_string()));
            let stream = stream.ok_or_else(|| bad(format!("{name}: the kinesis connector needs 'stream' = 'NAME' (or 'stream.arn')")))?;
            if let Some(format) = option("format").filter(|f| f != "json") {
                return Err(bad(format!("{name}: 'format' = '{format}' is not supported on a stream; records are read as 'json'")));
            }
            Connector::Kinesis { stream, initpos: option("scan.stream.initpos") }
        }
        Some("filesystem") => {
            let path = option("path").ok_or_else(|| bad(format!("{name}: the filesystem connector needs 'path' = 's3://bucket/prefix/'")))?;
            crate::lake::S3Uri::parse(&path)?;
            let format = option("format").unwrap_or_else(|| "json".into());
            if !["json", "csv", "parquet"].contains(&format.as_str()) {
                return Err(bad(format!("{name}: 'format' = '{format}' is not supported; use 'json', 'csv' or 'parquet'")));
            }
            Connector::Filesystem { path, format }
        }
        Some("firehose") => {
            let delivery_stream = option("delivery-stream")
                .or_else(|| option("delivery-stream.arn").map(|arn| arn.rsplit('/').next().unwrap_or_default().to_string()))
                .ok_or_else(|| bad(format!("{name}: the firehose connector needs 'delivery-stream' = 'NAME'")))?;
            if let Some(format) = option("format").filter(|f| f != "json") {
                return Err(bad(format!("{name}: 'format' = '{format}' is not supported on a Firehose sink; rows are sent as 'json'")));
            }
            Connector::Firehose { delivery_stream }
        }
        Some(other) => {
            return Err(bad(format!("{name}: the connector '{other}' is not supported"))
                .with_hint("'connector' = 'kinesis' (a stream: source or sink), 'filesystem' (files in the lake: sink or reference data), 'firehose' (a sink); a catalog table is read or written as it is (db.table)"));
        }
        None => return Err(bad(format!("{name}: WITH (…) names no 'connector'"))),
    };
    Ok(decl)
}

/// `'key' = 'value', …`.
fn with_options(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in split_top(text) {
        let (key, value) = pair.split_once('=').ok_or_else(|| service_err!(InvalidApplicationConfigurationException, "expected 'key' = 'value', found {pair}"))?;
        out.insert(unquote(key)?.to_lowercase(), unquote(value)?);
    }
    Ok(out)
}

fn unquote(text: &str) -> Result<String> {
    let t = text.trim();
    if t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'') {
        return Ok(t[1..t.len() - 1].replace("''", "'"));
    }
    Err(service_err!(InvalidApplicationConfigurationException, "expected a quoted string, found {t}"))
}

/// `WATERMARK FOR ts AS ts - INTERVAL '5' SECOND` (or `AS ts`: no delay).
fn watermark(item: &str) -> Result<Watermark> {
    let bad = || {
        service_err!(InvalidApplicationConfigurationException, "cannot read {item}")
            .with_hint("WATERMARK FOR ts AS ts - INTERVAL '5' SECOND (a bounded delay on the event-time column)")
    };
    let words: Vec<&str> = item.split_whitespace().collect();
    let [_, for_, column, as_, expr @ ..] = words.as_slice() else { return Err(bad()) };
    if !for_.eq_ignore_ascii_case("FOR") || !as_.eq_ignore_ascii_case("AS") {
        return Err(bad());
    }
    let column = ident(column);
    match expr {
        [c] if ident(c) == column => Ok(Watermark { column, delay_ms: 0 }),
        [c, "-", interval @ ..] if ident(c) == column => Ok(Watermark { column, delay_ms: interval_ms(&interval.join(" "))? }),
        _ => Err(bad()),
    }
}

/// `INTERVAL '5' SECOND` (SECOND(S), MINUTE(S), HOUR(S), DAY(S), MILLISECOND(S)) in ms.
pub fn interval_ms(text: &str) -> Result<i64> {
    let bad = || {
        service_err!(InvalidApplicationConfigurationException, "cannot read the interval {text}")
            .with_hint("write INTERVAL '10' SECOND, INTERVAL '1' MINUTE, INTERVAL '1' HOUR or INTERVAL '1' DAY")
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let [interval, amount, unit] = words.as_slice() else { return Err(bad()) };
    if !interval.eq_ignore_ascii_case("INTERVAL") {
        return Err(bad());
    }
    let amount: i64 = amount.trim_matches('\'').trim().parse().map_err(|_| bad())?;
    let unit_ms = match unit.to_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return Err(bad()),
    };
    if amount <= 0 {
        return Err(bad());
    }
    amount.checked_mul(unit_ms).ok_or_else(bad)
}

/// A Flink SQL type as Arrow's.
pub fn arrow_type(flink: &str) -> Result<DataType> {
    let upper = flink.trim().to_uppercase();
    let base = upper.split(['(', ' ']).next().unwrap_or_default();
    Ok(match base {
        "STRING" | "VARCHAR" | "CHAR" => DataType::Utf8,
        "BOOLEAN" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "FLOAT" => DataType::Float32,
        "DOUBLE" => DataType::Float64,
        "DATE" => DataType::Date32,
        "TIMESTAMP" | "TIMESTAMP_LTZ" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "DECIMAL" | "NUMERIC" => {
            let args = upper.split_once('(').and_then(|(_, r)| r.split_once(')')).map(|(a, _)| a.to_string()).unwrap_or_else(|| "10,0".into());
            let mut parts = args.split(',').map(|p| p.trim().parse::<i64>());
            match (parts.next(), parts.next()) {
                (Some(Ok(p)), Some(Ok(s))) if (1..=38).contains(&p) && (0..=p).contains(&s) => DataType::Decimal128(p as u8, s as i8),
                (Some(Ok(p)), None) if (1..=38).contains(&p) => DataType::Decimal128(p as u8, 0),
                _ => return Err(service_err!(InvalidApplicationConfigurationException, "cannot read the type {flink}")),
            }
        }
        _ => {
            return Err(service_err!(InvalidApplicationConfigurationException, "the type {flink} is not supported")
                .with_hint("STRING, BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), DATE, TIMESTAMP(3)"));
        }
    })
}

impl AppSql {
    /// Whether some INSERT writes the table.
    pub fn is_sink(&self, table: &str) -> bool {
        self.inserts.iter().any(|i| i.target == table)
    }

    /// The streams read as sources: kinesis tables no INSERT writes.
    pub fn sources(&self) -> impl Iterator<Item = &TableDecl> {
        self.tables.iter().filter(|t| matches!(t.connector, Connector::Kinesis { .. }) && !self.is_sink(&t.name))
    }

    /// Reference data: filesystem tables no INSERT writes.
    pub fn references(&self) -> impl Iterator<Item = &TableDecl> {
        self.tables.iter().filter(|t| matches!(t.connector, Connector::Filesystem { .. }) && !self.is_sink(&t.name))
    }
}

impl TableDecl {
    /// The physical columns as an Arrow schema (what records are decoded into).
    pub fn schema(&self) -> Result<Schema> {
        let fields = self.columns.iter().map(|(n, t)| Ok(Field::new(n, arrow_type(t)?, true))).collect::<Result<Vec<_>>>()?;
        Ok(Schema::new(fields))
    }
}

/// `INSERT INTO target <query>`, window calls cut out.
fn insert(statement: &str, index: usize) -> Result<Insert> {
    // `parse` saw INSERT INTO (ASCII) as the first two words.
    let rest = statement.trim().get(6..).unwrap_or_default().trim_start();
    let rest = rest.get(4..).unwrap_or_default().trim_start();
    let end = rest.find(char::is_whitespace).ok_or_else(|| service_err!(InvalidApplicationConfigurationException, "INSERT INTO needs a SELECT"))?;
    let target = ident(&rest[..end]);
    let query = rest[end..].trim();
    let first = query.split_whitespace().next().unwrap_or_default().to_uppercase();
    if first != "SELECT" && first != "WITH" {
        return Err(service_err!(InvalidApplicationConfigurationException, "INSERT INTO {target} takes a SELECT, not {first}")
            .with_hint("INSERT INTO a_sink SELECT … (column lists and VALUES are not supported)"));
    }
    let (query, windows) = cut_windows(query, index)?;
    Ok(Insert { target, query, windows })
}

/// Replaces each `TABLE(TUMBLE|HOP|CUMULATE|SESSION(TABLE t, DESCRIPTOR(c), …))` with a
/// placeholder table name; other table functions are refused by name.
fn cut_windows(query: &str, index: usize) -> Result<(String, Vec<WindowCall>)> {
    let bad = |why: String| service_err!(InvalidApplicationConfigurationException, "{why}");
    let mut out = String::new();
    let mut windows = Vec::new();
    let mut rest = query;
    loop {
        // ASCII upper case keeps every byte where it was, so positions found in `upper`
        // are positions in `rest`.
        let upper = rest.to_ascii_uppercase();
        let Some(at) = find_table_call(&upper) else {
            out.push_str(rest);
            break;
        };
        let open = at + upper[at..].find('(').expect("find_table_call saw it");
        let (inside, after) = balanced(rest, open).ok_or_else(|| bad("TABLE( … ) is not closed".into()))?;
        let inner_open = inside.find('(').ok_or_else(|| bad(format!("cannot read TABLE({inside})")))?;
        let function = inside[..inner_open].trim().to_ascii_uppercase();
        let (args, _) = balanced(inside, inner_open).ok_or_else(|| bad(format!("{function}( … ) is not closed")))?;
        let descriptor = find_word(&args.to_ascii_uppercase(), "DESCRIPTOR", true).ok_or_else(|| bad(format!("{function} needs DESCRIPTOR(time_column)")))?;
        let table_part = args[..descriptor].trim().trim_end_matches(',').trim();
        let words: Vec<&str> = table_part.split_whitespace().collect();
        let (table, partition_by) = match words.as_slice() {
            [t, name] if t.eq_ignore_ascii_case("TABLE") => (ident(name), Vec::new()),
            [t, name, p, b, _, ..] if t.eq_ignore_ascii_case("TABLE") && p.eq_ignore_ascii_case("PARTITION") && b.eq_ignore_ascii_case("BY") => {
                if function != "SESSION" {
                    return Err(bad(format!("{function}(TABLE … PARTITION BY …) is not supported; only SESSION windows take PARTITION BY")));
                }
                let upper = table_part.to_ascii_uppercase();
                let partition = find_word(&upper, "PARTITION", false).unwrap_or(0);
                let by_at = find_word(&upper[partition..], "BY", false).map(|i| partition + i + 2).unwrap_or(table_part.len());
                let keys: Vec<String> = table_part[by_at..].split(',').map(ident).filter(|k| !k.is_empty()).collect();
                if keys.is_empty() {
                    return Err(bad(format!("{function}(TABLE {name} PARTITION BY …) names no column")));
                }
                (ident(name), keys)
            }
            _ => return Err(bad(format!("{function}'s first argument is TABLE name [PARTITION BY columns], not {table_part}"))),
        };
        let d_open = descriptor + args[descriptor..].find('(').ok_or_else(|| bad("DESCRIPTOR needs (time_column)".into()))?;
        let (column, d_after) = balanced(args, d_open).ok_or_else(|| bad("DESCRIPTOR( … ) is not closed".into()))?;
        let intervals = split_top(args[d_after..].trim().trim_start_matches(','));
        let sizes = intervals.iter().map(|i| interval_ms(i)).collect::<Result<Vec<_>>>()?;
        let kind = match (function.as_str(), sizes.as_slice()) {
            ("TUMBLE", [size]) => WindowKind::Tumble { size_ms: *size },
            ("HOP", [slide, size]) => {
                if size % slide != 0 {
                    return Err(bad(format!("HOP's size ({size} ms) must be a whole multiple of its slide ({slide} ms)")));
                }
                WindowKind::Hop { slide_ms: *slide, size_ms: *size }
            }
            ("CUMULATE", [step, size]) => {
                if size % step != 0 {
                    return Err(bad(format!("CUMULATE's max size ({size} ms) must be a whole multiple of its step ({step} ms)")));
                }
                WindowKind::Cumulate { step_ms: *step, size_ms: *size }
            }
            ("TUMBLE" | "HOP" | "CUMULATE", _) => {
                return Err(bad(format!("{function} takes {} interval(s); an offset is not supported", if function == "TUMBLE" { 1 } else { 2 })));
            }
            ("SESSION", [gap]) => WindowKind::Session { gap_ms: *gap },
            ("SESSION", _) => return Err(bad("SESSION takes one interval, the gap: SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '5' MINUTE)".into())),
            (other, _) => return Err(bad(format!("the table function {other} is not supported; use TUMBLE, HOP, CUMULATE or SESSION"))),
        };
        let placeholder = format!("__window_{index}_{}", windows.len());
        out.push_str(&rest[..at]);
        out.push_str(&placeholder);
        windows.push(WindowCall { placeholder, table, time_column: ident(column), kind, partition_by });
        rest = &rest[after..];
    }
    Ok((out, windows))
}

/// Where `word` (upper case, ASCII) first stands as a whole word in ASCII-upper-cased text
/// (not inside a longer name such as `descriptors` or `by_day`); with `call`, only where a
/// `(` follows it.
fn find_word(upper: &str, word: &str, call: bool) -> Option<usize> {
    let bytes = upper.as_bytes();
    let part_of_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || !b.is_ascii();
    upper.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + word.len()).copied();
        !before.is_some_and(part_of_name) && !after.is_some_and(part_of_name) && (!call || upper[i + word.len()..].trim_start().starts_with('('))
    })
}

/// Where `TABLE (` starts in upper-case text, outside quotes, as a whole word.
fn find_table_call(upper: &str) -> Option<usize> {
    let bytes = upper.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' || c == b'`' => quote = Some(c),
            None if bytes[i..].starts_with(b"TABLE") && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) => {
                let after = upper[i + 5..].trim_start();
                if after.starts_with('(') {
                    return Some(i);
                }
            }
            None => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "
        CREATE TABLE clicks (
            user_id STRING,
            page STRING,
            ts TIMESTAMP(3),
            WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
        ) WITH ('connector' = 'kinesis', 'stream' = 'clickstream', 'format' = 'json');
        CREATE TABLE per_minute (page STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), views BIGINT)
        WITH ('connector' = 'filesystem', 'path' = 's3://lake/metrics/', 'format' = 'json');
        -- one row per page and minute
        INSERT INTO per_minute
        SELECT page, window_start, window_end, COUNT(*) AS views
        FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
        GROUP BY page, window_start, window_end;";

    #[test]
    fn reads_sources_sinks_watermarks_and_window_calls() {
        let app = parse(APP).unwrap();
        assert_eq!(app.tables.len(), 2);
        assert_eq!(app.tables[0].watermark, Some(Watermark { column: "ts".into(), delay_ms: 5_000 }));
        assert_eq!(app.tables[0].connector, Connector::Kinesis { stream: "clickstream".into(), initpos: None });
        assert_eq!(app.tables[1].connector, Connector::Filesystem { path: "s3://lake/metrics/".into(), format: "json".into() });
        let insert = &app.inserts[0];
        assert_eq!(insert.target, "per_minute");
        assert!(insert.query.contains("FROM __window_0_0\n") && !insert.query.contains("TUMBLE"), "{}", insert.query);
        assert_eq!(insert.windows[0], WindowCall { placeholder: "__window_0_0".into(), table: "clicks".into(), time_column: "ts".into(), kind: WindowKind::Tumble { size_ms: 60_000 }, partition_by: vec![] });
    }

    #[test]
    fn session_windows_take_a_gap_and_keys() {
        let app = parse(&APP.replace("TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)", "SESSION(TABLE clicks PARTITION BY user_id, page, DESCRIPTOR(ts), INTERVAL '30' SECOND)")).unwrap();
        let call = &app.inserts[0].windows[0];
        assert_eq!(call.kind, WindowKind::Session { gap_ms: 30_000 });
        assert_eq!(call.partition_by, ["user_id", "page"]);
        let global = parse(&APP.replace("TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)", "SESSION(TABLE clicks, DESCRIPTOR(ts), INTERVAL '30' SECOND)")).unwrap();
        assert!(global.inserts[0].windows[0].partition_by.is_empty());
    }

    #[test]
    fn windows_of_an_event() {
        assert_eq!(WindowKind::Tumble { size_ms: 10 }.windows_of(17), vec![(10, 20)]);
        assert_eq!(WindowKind::Tumble { size_ms: 10 }.windows_of(-3), vec![(-10, 0)]);
        assert_eq!(WindowKind::Hop { slide_ms: 5, size_ms: 10 }.windows_of(7), vec![(0, 10), (5, 15)]);
        assert_eq!(WindowKind::Cumulate { step_ms: 5, size_ms: 15 }.windows_of(7), vec![(0, 10), (0, 15)]);
        for kind in [WindowKind::Tumble { size_ms: 10 }, WindowKind::Hop { slide_ms: 5, size_ms: 15 }, WindowKind::Cumulate { step_ms: 5, size_ms: 15 }] {
            for ts in [-7, 0, 7, 14, 15] {
                assert_eq!(kind.last_end(ts), kind.windows_of(ts).last().unwrap().1, "{kind:?} at {ts}");
                assert_eq!(kind.first_end(ts), kind.windows_of(ts)[0].1, "{kind:?} at {ts}");
                assert!(kind.first_end(ts) <= kind.first_end(ts + 1), "{kind:?} at {ts}");
            }
        }
    }

    #[test]
    fn bad_sql_is_named() {
        let no_insert = parse("CREATE TABLE t (a STRING) WITH ('connector' = 'kinesis', 'stream' = 's')").unwrap_err();
        assert!(no_insert.message().contains("no INSERT INTO"), "{no_insert}");
        let session = parse(&APP.replace("TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)", "SESSION(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' MINUTE)")).unwrap_err();
        assert!(session.message().contains("SESSION takes one interval"), "{session}");
        let keyed = parse(&APP.replace("TABLE clicks,", "TABLE clicks PARTITION BY page,")).unwrap_err();
        assert!(keyed.message().contains("only SESSION windows take PARTITION BY"), "{keyed}");
        let no_column = parse(&APP.replace("TUMBLE(TABLE clicks,", "SESSION(TABLE clicks PARTITION BY user,")).unwrap_err();
        assert!(no_column.message().contains("PARTITION BY user"), "{no_column}");
        let hop = parse(&APP.replace("TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)", "HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '7' SECOND, INTERVAL '1' MINUTE)")).unwrap_err();
        assert!(hop.message().contains("multiple"), "{hop}");
        let not_time = parse(&APP.replace("DESCRIPTOR(ts)", "DESCRIPTOR(page)")).unwrap_err();
        assert!(not_time.message().contains("not a time attribute"), "{not_time}");
        let connector = parse(&APP.replace("'kinesis'", "'kafka'")).unwrap_err();
        assert!(connector.message().contains("'kafka' is not supported"), "{connector}");
        let update = parse("UPDATE t SET a = 1").unwrap_err();
        assert_eq!(update.code(), "InvalidApplicationConfigurationException");
    }
}
