//! COPY: loading a table from the lake. Delimited text, CSV, fixed width, JSON (with
//! JSONPaths) and Parquet, compressed or not, from a prefix or a manifest; rows that do not
//! load become `stl_load_errors`.

use std::io::Read;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use datafusion::sql::sqlparser::ast::{self, CopyLegacyOption};
use serde::Deserialize;

use super::model::{LOAD_ERRORS_KEPT, LoadCommit, LoadError, Outcome, TableMeta};
use super::parse::quoted;
use super::types::{cast_column, char_length};
use super::{Redshift, find, message};
use crate::error::Result;
use crate::lake::S3Uri;
use crate::{internal_err, service_err};

impl Redshift {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn copy(&self, cluster: &str, name: &ast::ObjectName, columns: &[String], from: &str, options: &[CopyLegacyOption], maxerror: u64, query_id: u64) -> Result<Outcome> {
        let (c, t) = self.table_meta(cluster, name)?;
        let format = CopyFormat::of(options)?;
        let uri = S3Uri::parse(from)?;
        let objects: Vec<S3Uri> = if options.iter().any(|o| matches!(o, CopyLegacyOption::Manifest { .. })) {
            self.manifest_entries(&uri).await?
        } else {
            let listing = self.lake.list(&uri, true).await?;
            let objects: Vec<S3Uri> = listing
                .objects
                .into_iter()
                .filter(|o| o.size > 0 || format.kind == Kind::Parquet)
                .map(|o| S3Uri { bucket: uri.bucket.clone(), key: o.key })
                .collect();
            if objects.is_empty() {
                return Err(service_err!(S3ServiceException, "The specified S3 prefix '{}' does not exist", uri.key).with_hint(format!("`%lake ls {from}` shows what is there")));
            }
            objects
        };
        // Without a column list COPY loads every column but the IDENTITY ones, which it generates.
        let targets: Vec<String> =
            if columns.is_empty() { t.columns.iter().filter(|c| c.identity.is_none()).map(|c| c.name.clone()).collect() } else { columns.to_vec() };
        if let Some(bad) = targets.iter().find(|n| !t.columns.iter().any(|c| &c.name == *n)) {
            return Err(service_err!(UndefinedColumn, "column \"{bad}\" of relation \"{}\" does not exist", t.name));
        }
        let schema = t.arrow_schema()?;
        let json_paths = match &format.kind {
            Kind::Json { paths_file: Some(file), .. } => Some(self.json_paths(file, targets.len()).await?),
            _ => None,
        };
        let now = self.clock.now();
        let mut loaded = Vec::new();
        let mut errors = Vec::new();
        let mut commits = Vec::new();
        for object_uri in &objects {
            let filename = object_uri.to_string();
            let raw = self.lake.get(object_uri).await?;
            let raw = format.decompress(raw, &filename)?;
            let rows = match &format.kind {
                Kind::Parquet => {
                    let batches = parquet_rows(&raw, &schema, &targets, &filename)?;
                    let lines = batches.iter().map(|b| b.num_rows() as u64).sum();
                    commits.push(LoadCommit { query: query_id, tbl: format!("{}.{}", t.schema, t.name), filename, lines_scanned: lines, errors: 0, curtime: now });
                    loaded.extend(batches);
                    continue;
                }
                Kind::Text(text) => text_rows(&raw, text, targets.len()),
                Kind::Json { ignore_case, .. } => json_rows(&raw, &targets, *ignore_case, json_paths.as_deref()),
            };
            let (batch, bad) = rows_to_batch(&rows, &schema, &targets, &t, &format, &filename, query_id, now)?;
            let lines = (batch.num_rows() + bad.len()) as u64;
            commits.push(LoadCommit { query: query_id, tbl: format!("{}.{}", t.schema, t.name), filename, lines_scanned: lines, errors: bad.len() as u64, curtime: now });
            errors.extend(bad);
            loaded.push(batch);
        }
        // Columns the COPY does not load get their identity values, DEFAULT or NULL.
        let mut meta = t.clone();
        for batch in &mut loaded {
            let mut columns = batch.columns().to_vec();
            for (i, (f, column)) in schema.fields().iter().zip(meta.columns.iter_mut()).enumerate() {
                if !targets.contains(f.name()) && (column.identity.is_some() || column.default.is_some()) {
                    columns[i] = self.unnamed_values(cluster, column, f, batch.num_rows()).await?;
                }
            }
            *batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?;
        }
        let loaded_rows: usize = loaded.iter().map(RecordBatch::num_rows).sum();
        let error_count = errors.len() as u64;
        if !errors.is_empty() {
            self.mutate(|state| {
                let i = find(state, cluster)?;
            let cl = &mut state.clusters[i];
                cl.load_errors.extend(errors.clone());
                let excess = cl.load_errors.len().saturating_sub(LOAD_ERRORS_KEPT);
                cl.load_errors.drain(..excess);
                Ok(())
            })?;
        }
        if error_count > maxerror {
            let first = &errors[0];
            return Err(service_err!(LoadError, "Load into table '{}' failed. Check 'stl_load_errors' system table for details.", t.name).with_hint(format!(
                "{error_count} bad row(s), MAXERROR {maxerror}; the first: {} line {}, column {}: {}",
                first.filename, first.line_number, first.colname, first.err_reason
            )));
        }
        let mut all = self.rows_of(cluster, &format!("SELECT * FROM {}", quoted(&t))).await?;
        all.extend(loaded);
        self.commit_noting(&c, meta, Some(&t), &all, |cl| {
            cl.load_commits.extend(commits);
            let excess = cl.load_commits.len().saturating_sub(LOAD_ERRORS_KEPT);
            cl.load_commits.drain(..excess);
        })?;
        let skipped = if error_count > 0 { format!(" {error_count} record(s) could not be loaded (see stl_load_errors).") } else { String::new() };
        let mut outcome = message(&format!(
            "Load into table '{}' completed, {loaded_rows} record(s) loaded successfully from {} file(s).{skipped}",
            t.name,
            objects.len()
        ));
        outcome.rows_loaded = Some(loaded_rows as u64);
        Ok(outcome)
    }

    /// A JSONPaths file: `{"jsonpaths": ["$['id']", "$.name", …]}`, one path per column loaded.
    async fn json_paths(&self, file: &str, columns: usize) -> Result<Vec<Vec<PathStep>>> {
        let uri = S3Uri::parse(file)?;
        let raw = self.lake.get(&uri).await?;
        #[derive(Deserialize)]
        struct Paths {
            jsonpaths: Vec<String>,
        }
        let parsed: Paths = serde_json::from_slice(&raw)
            .map_err(|e| service_err!(InvalidParameterValue, "Invalid JSONPath format: {file}: {e}").with_hint(r#"{"jsonpaths": ["$['id']", "$.name"]}"#))?;
        if parsed.jsonpaths.len() != columns {
            return Err(service_err!(
                InvalidParameterValue,
                "Number of jsonpaths and the number of columns should match. JSONPath size: {}, Number of columns in table or column list: {columns}",
                parsed.jsonpaths.len()
            ));
        }
        parsed.jsonpaths.iter().map(|p| json_path(p)).collect()
    }

    /// The files a COPY … MANIFEST loads: the manifest's `entries`, each `{"url": "s3://…",
    /// "mandatory": bool}`. A mandatory file that is missing fails the COPY; an optional one
    /// is skipped.
    /// Whether a COPY of `table` already committed every file `manifest` names (all or none
    /// are, a COPY commits whole), as `stl_load_commits` says; the rows it loaded if so. A
    /// loader that lost track of a COPY (Firehose killed between the commit and noting it)
    /// asks before running it again.
    pub async fn manifest_loaded(&self, cluster: &str, table: &str, manifest: &str) -> Result<Option<u64>> {
        let files = self.manifest_entries(&S3Uri::parse(manifest)?).await?;
        let c = self.describe(cluster)?;
        let (schema, name) = match table.split_once('.') {
            Some((schema, name)) => (schema.to_lowercase(), name.to_lowercase()),
            None => ("public".to_string(), table.to_lowercase()),
        };
        let tbl = format!("{schema}.{name}");
        let mut rows = 0;
        for file in &files {
            let file = file.to_string();
            match c.load_commits.iter().rev().find(|l| l.tbl == tbl && l.filename == file) {
                Some(commit) => rows += commit.lines_scanned - commit.errors,
                None => return Ok(None),
            }
        }
        Ok((!files.is_empty()).then_some(rows))
    }

    async fn manifest_entries(&self, manifest: &S3Uri) -> Result<Vec<S3Uri>> {
        #[derive(Deserialize)]
        struct Manifest {
            entries: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            url: String,
            #[serde(default)]
            mandatory: bool,
        }
        let raw = self.lake.get(manifest).await.map_err(|e| {
            if e.code() == "NoSuchKey" {
                service_err!(S3ServiceException, "the manifest {manifest} does not exist").with_hint("COPY … MANIFEST names the manifest file itself, not a prefix")
            } else {
                e
            }
        })?;
        let parsed: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| service_err!(InvalidParameterValue, "Manifest file is not in correct json format: {manifest}: {e}").with_hint(r#"{"entries": [{"url": "s3://bucket/key", "mandatory": true}]}"#))?;
        let mut files = Vec::new();
        for entry in parsed.entries {
            let uri = S3Uri::parse(&entry.url)?;
            match self.lake.head(&uri).await {
                Ok(_) => files.push(uri),
                Err(e) if e.code() == "NoSuchKey" && !entry.mandatory => {}
                Err(e) if e.code() == "NoSuchKey" => {
                    return Err(service_err!(S3ServiceException, "the manifest {manifest} lists the mandatory file {uri}, which does not exist"));
                }
                Err(e) => return Err(e),
            }
        }
        if files.is_empty() {
            return Err(service_err!(S3ServiceException, "the manifest {manifest} lists no file that exists"));
        }
        Ok(files)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Text(TextFormat),
    /// `JSON 'auto'`, `JSON 'auto ignorecase'`, or `JSON 's3://…/jsonpaths.json'`.
    Json { ignore_case: bool, paths_file: Option<String> },
    Parquet,
}

/// How COPY splits a text file into records and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextFormat {
    delimiter: u8,
    csv: bool,
    /// CSV's quote character (`QUOTE AS '%'`; `"` by default).
    quote: u8,
    ignore_header: u64,
    /// ESCAPE: a backslash takes the next character literally (a delimiter, a newline, a quote, a backslash).
    escape: bool,
    /// REMOVEQUOTES: a field in double quotes loses them and keeps any delimiter inside.
    remove_quotes: bool,
    /// FIXEDWIDTH 'label:width,…': fields are character ranges of each line.
    fixed_widths: Option<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CopyFormat {
    kind: Kind,
    gzip: bool,
    bzip2: bool,
    zstd: bool,
    null_as: Option<String>,
    empty_as_null: bool,
    blanks_as_null: bool,
    truncate: bool,
}

impl CopyFormat {
    fn of(options: &[CopyLegacyOption]) -> Result<Self> {
        let mut delimiter = None;
        let mut csv = false;
        let mut json = false;
        let mut parquet = false;
        let mut ignore_header = 0;
        let mut quote = b'"';
        let mut escape = false;
        let mut remove_quotes = false;
        let mut fixed_widths = None;
        let mut json_mode = (false, None::<String>);
        let mut f = CopyFormat { kind: Kind::Json { ignore_case: false, paths_file: None }, gzip: false, bzip2: false, zstd: false, null_as: None, empty_as_null: false, blanks_as_null: false, truncate: false };
        for option in options {
            match option {
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for o in csv_options {
                        match o {
                            ast::CopyLegacyCsvOption::Quote(q) if q.is_ascii() => quote = *q as u8,
                            ast::CopyLegacyCsvOption::Quote(q) => return Err(service_err!(InvalidParameterValue, "QUOTE AS {q:?}: the quote is one ASCII character")),
                            other => return Err(service_err!(FeatureNotSupported, "COPY … CSV {other} is not supported")),
                        }
                    }
                }
                CopyLegacyOption::Escape => escape = true,
                CopyLegacyOption::RemoveQuotes => remove_quotes = true,
                CopyLegacyOption::FixedWidth(spec) => {
                    let widths = spec
                        .split(',')
                        .map(|part| part.rsplit_once(':').and_then(|(_, w)| w.trim().parse::<usize>().ok()).filter(|w| *w > 0))
                        .collect::<Option<Vec<usize>>>()
                        .ok_or_else(|| service_err!(InvalidParameterValue, "FIXEDWIDTH '{spec}': write 'label:width,label:width,…' with widths of at least 1"))?;
                    fixed_widths = Some(widths);
                }
                CopyLegacyOption::Json(path) => {
                    json_mode = match path.as_deref().map(str::trim) {
                        None => (false, None),
                        Some(p) if p.eq_ignore_ascii_case("auto") => (false, None),
                        Some(p) if p.eq_ignore_ascii_case("auto ignorecase") => (true, None),
                        Some(p) if p.starts_with("s3://") => (false, Some(p.to_string())),
                        Some(p) => {
                            return Err(service_err!(InvalidParameterValue, "JSON '{p}': write JSON 'auto', JSON 'auto ignorecase' or JSON 's3://bucket/jsonpaths.json'"));
                        }
                    };
                    json = true;
                }
                CopyLegacyOption::Parquet => parquet = true,
                CopyLegacyOption::Delimiter(d) => delimiter = Some(*d as u8),
                CopyLegacyOption::IgnoreHeader(n) => ignore_header = *n,
                CopyLegacyOption::Gzip => f.gzip = true,
                CopyLegacyOption::Bzip2 => f.bzip2 = true,
                CopyLegacyOption::Zstd => f.zstd = true,
                CopyLegacyOption::Null(s) => f.null_as = Some(s.clone()),
                CopyLegacyOption::EmptyAsNull => f.empty_as_null = true,
                CopyLegacyOption::BlankAsNull => f.blanks_as_null = true,
                CopyLegacyOption::TruncateColumns => f.truncate = true,
                CopyLegacyOption::IamRole(_)
                | CopyLegacyOption::Region(_)
                | CopyLegacyOption::Credentials(_)
                | CopyLegacyOption::DateFormat(_)
                | CopyLegacyOption::TimeFormat(_)
                | CopyLegacyOption::AcceptAnyDate
                | CopyLegacyOption::CompUpdate { .. }
                | CopyLegacyOption::StatUpdate(_)
                | CopyLegacyOption::Manifest { .. } => {}
                other => return Err(service_err!(FeatureNotSupported, "COPY option {other} is not supported")),
            }
        }
        if [csv, json, parquet].iter().filter(|x| **x).count() > 1 {
            return Err(service_err!(InvalidParameterValue, "COPY takes one of CSV, JSON or PARQUET"));
        }
        if csv && (escape || remove_quotes || fixed_widths.is_some()) {
            return Err(service_err!(InvalidParameterValue, "CSV cannot be used with ESCAPE, REMOVEQUOTES or FIXEDWIDTH"));
        }
        if fixed_widths.is_some() && delimiter.is_some() {
            return Err(service_err!(InvalidParameterValue, "FIXEDWIDTH cannot be used with DELIMITER"));
        }
        f.kind = if parquet {
            if delimiter.is_some() || ignore_header > 0 {
                return Err(service_err!(InvalidParameterValue, "DELIMITER and IGNOREHEADER are not valid with FORMAT PARQUET"));
            }
            Kind::Parquet
        } else if json {
            Kind::Json { ignore_case: json_mode.0, paths_file: json_mode.1 }
        } else {
            Kind::Text(TextFormat { delimiter: delimiter.unwrap_or(if csv { b',' } else { b'|' }), csv, quote, ignore_header, escape, remove_quotes, fixed_widths })
        };
        Ok(f)
    }

    fn decompress(&self, raw: Bytes, filename: &str) -> Result<Bytes> {
        let failed = |e: std::io::Error| service_err!(LoadError, "{filename}: could not decompress: {e}");
        let mut out = Vec::new();
        if self.gzip {
            flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(failed)?;
        } else if self.bzip2 {
            bzip2::read::MultiBzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(failed)?;
        } else if self.zstd {
            zstd::stream::read::Decoder::new(&raw[..]).map_err(failed)?.read_to_end(&mut out).map_err(failed)?;
        } else {
            return Ok(raw);
        }
        Ok(Bytes::from(out))
    }
}

/// One input record: its line, raw text and fields (None = no value), or why it has none.
struct RawRow {
    line: u64,
    raw: String,
    fields: std::result::Result<Vec<Option<String>>, (u32, String)>,
}

fn text_rows(raw: &[u8], format: &TextFormat, width: usize) -> Vec<RawRow> {
    let delimiter = format.delimiter;
    let records: Vec<(u64, std::result::Result<Vec<String>, String>)> = if format.csv {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).quote(format.quote).from_reader(raw);
        let mut records = Vec::new();
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    records.push((line, Ok(record.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())));
                }
                Err(e) => records.push((e.position().map_or(0, |p| p.line()), Err(format!("Bad record: {e}")))),
            }
        }
        records
    } else if let Some(widths) = &format.fixed_widths {
        let text = String::from_utf8_lossy(raw);
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, l)| {
                let chars: Vec<char> = l.chars().collect();
                let mut at = 0;
                let fields = widths
                    .iter()
                    .map(|w| {
                        let field: String = chars.iter().skip(at).take(*w).collect();
                        at += w;
                        field
                    })
                    .collect();
                (i as u64 + 1, Ok(fields))
            })
            .collect()
    } else {
        delimited_records(raw, delimiter, format.escape, format.remove_quotes)
    };
    let mut rows = Vec::new();
    for (line, fields) in records {
        if line <= format.ignore_header {
            continue;
        }
        let mut text = match fields {
            Ok(text) => text,
            Err(reason) => {
                rows.push(RawRow { line, raw: String::new(), fields: Err((1214, reason)) });
                continue;
            }
        };
        let raw_line = text.join(&(delimiter as char).to_string());
        // A trailing delimiter ends the line with one empty field more than the columns.
        if text.len() == width + 1 && text.last().is_some_and(String::is_empty) {
            text.pop();
        }
        let fields = if text.len() < width {
            Err((1214, "Delimiter not found".to_string()))
        } else if text.len() > width {
            Err((1202, "Extra column(s) found".to_string()))
        } else {
            Ok(text.into_iter().map(Some).collect())
        };
        rows.push(RawRow { line, raw: raw_line, fields });
    }
    rows
}

/// Redshift's delimited text (not CSV): a record per line, fields split at the delimiter;
/// with ESCAPE a backslash takes the next character as data (also a newline, which then
/// continues the record), with REMOVEQUOTES a field in double quotes keeps delimiters and
/// loses the quotes. Returns each record's first line number and its fields.
fn delimited_records(raw: &[u8], delimiter: u8, escape: bool, remove_quotes: bool) -> Vec<(u64, std::result::Result<Vec<String>, String>)> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let mut line = 1u64;
    let mut start_line = 1u64;
    let mut in_quotes = false;
    let mut at_field_start = true;
    let mut i = 0;
    let finish = |field: &mut Vec<u8>| String::from_utf8_lossy(&std::mem::take(field)).into_owned();
    while i < raw.len() {
        let b = raw[i];
        if escape && b == b'\\' && i + 1 < raw.len() {
            if raw[i + 1] == b'\n' {
                line += 1;
            }
            field.push(raw[i + 1]);
            at_field_start = false;
            i += 2;
            continue;
        }
        if remove_quotes && b == b'"' && (at_field_start || in_quotes) {
            in_quotes = !in_quotes;
            at_field_start = false;
            i += 1;
            continue;
        }
        if b == b'\n' && !in_quotes {
            if field.last() == Some(&b'\r') {
                field.pop();
            }
            fields.push(finish(&mut field));
            let done = std::mem::take(&mut fields);
            if !(done.len() == 1 && done[0].is_empty()) {
                records.push((start_line, Ok(done)));
            }
            line += 1;
            start_line = line;
            at_field_start = true;
            i += 1;
            continue;
        }
        if b == b'\n' {
            line += 1;
        }
        if b == delimiter && !in_quotes {
            fields.push(finish(&mut field));
            at_field_start = true;
        } else {
            field.push(b);
            at_field_start = false;
        }
        i += 1;
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(finish(&mut field));
        if in_quotes {
            records.push((start_line, Err("Missing newline: Unexpected character found at the end of the quoted field".to_string())));
        } else {
            records.push((start_line, Ok(fields)));
        }
    }
    records
}

/// One step of a JSONPath: a member name or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// Redshift's JSONPath expressions: `$`, then `.name`, `['name']` / `["name"]` and `[n]`.
fn json_path(path: &str) -> Result<Vec<PathStep>> {
    let bad = || service_err!(InvalidParameterValue, "Invalid JSONPath format: {path}").with_hint("write $.name, $['name'] or $.list[0]");
    let rest = path.trim().strip_prefix('$').ok_or_else(bad)?;
    let mut steps = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    name.push(n);
                    chars.next();
                }
                if name.is_empty() {
                    return Err(bad());
                }
                steps.push(PathStep::Key(name));
            }
            '[' => {
                let mut inner = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    inner.push(n);
                }
                let inner = inner.trim();
                if let Some(q) = inner.strip_prefix('\'').and_then(|i| i.strip_suffix('\'')).or_else(|| inner.strip_prefix('"').and_then(|i| i.strip_suffix('"'))) {
                    steps.push(PathStep::Key(q.to_string()));
                } else {
                    steps.push(PathStep::Index(inner.parse().map_err(|_| bad())?));
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(steps)
}

/// The value a JSONPath names in a record (its first step is a member of the record).
fn follow<'a>(record: &'a serde_json::Map<String, serde_json::Value>, steps: &[PathStep]) -> Option<&'a serde_json::Value> {
    let (PathStep::Key(first), rest) = steps.split_first()? else { return None };
    rest.iter().try_fold(record.get(first)?, |v, step| match step {
        PathStep::Key(k) => v.get(k),
        PathStep::Index(i) => v.get(*i),
    })
}

fn json_rows(raw: &[u8], targets: &[String], ignore_case: bool, paths: Option<&[Vec<PathStep>]>) -> Vec<RawRow> {
    let mut rows = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(raw).into_iter::<serde_json::Value>();
    loop {
        let start = stream.byte_offset();
        let Some(next) = stream.next() else { break };
        let line = raw[..start.min(raw.len())].iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let end = stream.byte_offset();
        let raw_text = String::from_utf8_lossy(&raw[start..end]).trim().to_string();
        let fields = match next {
            Ok(serde_json::Value::Object(map)) => {
                let text = |v: Option<&serde_json::Value>| match v {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                };
                Ok(match paths {
                    Some(paths) => paths.iter().map(|steps| text(follow(&map, steps))).collect(),
                    None => targets
                        .iter()
                        .map(|t| text(if ignore_case { map.iter().find(|(k, _)| k.eq_ignore_ascii_case(t)).map(|(_, v)| v) } else { map.get(t) }))
                        .collect(),
                })
            }
            Ok(_) => Err((1224, "Invalid JSON: a record must be an object".to_string())),
            Err(e) => {
                rows.push(RawRow { line, raw: raw_text, fields: Err((1224, format!("Invalid JSON: {e}"))) });
                break;
            }
        };
        rows.push(RawRow { line, raw: raw_text, fields });
    }
    rows
}

fn parquet_rows(raw: &Bytes, schema: &SchemaRef, targets: &[String], filename: &str) -> Result<Vec<RecordBatch>> {
    let failed = |e: &dyn std::fmt::Display| service_err!(LoadError, "{filename}: not a Parquet file the table can load: {e}");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(raw.clone()).map_err(|e| failed(&e))?.build().map_err(|e| failed(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| failed(&e))?;
        if batch.num_columns() != targets.len() {
            return Err(service_err!(LoadError, "{filename}: the file has {} column(s), the COPY loads {}; Parquet columns are matched by position", batch.num_columns(), targets.len()));
        }
        let columns = schema
            .fields()
            .iter()
            .map(|f| match targets.iter().position(|n| n == f.name()) {
                Some(i) => cast_column(batch.column(i), f.data_type(), f.name()).map_err(|e| service_err!(LoadError, "{filename}: {}", e.message())),
                None => Ok(new_null_array(f.data_type(), batch.num_rows())),
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?);
    }
    Ok(out)
}

/// Converts text rows to the table's types; rows that do not convert become load errors.
#[allow(clippy::too_many_arguments)]
fn rows_to_batch(
    rows: &[RawRow],
    schema: &SchemaRef,
    targets: &[String],
    t: &TableMeta,
    format: &CopyFormat,
    filename: &str,
    query: u64,
    now: DateTime<Utc>,
) -> Result<(RecordBatch, Vec<LoadError>)> {
    let mut bad: Vec<Option<LoadError>> = vec![None; rows.len()];
    let error = |row: &RawRow, colname: &str, col_type: &str, value: &str, code: u32, reason: String| LoadError {
        query,
        starttime: now,
        tbl: t.qualified(),
        filename: filename.to_string(),
        line_number: row.line,
        colname: colname.to_string(),
        col_type: col_type.to_string(),
        raw_line: row.raw.chars().take(1024).collect(),
        raw_field_value: value.chars().take(1024).collect(),
        err_code: code,
        err_reason: reason,
    };
    for (i, row) in rows.iter().enumerate() {
        if let Err((code, reason)) = &row.fields {
            bad[i] = Some(error(row, "", "", "", *code, reason.clone()));
        }
    }
    let mut columns = Vec::new();
    for field in schema.fields() {
        let column = t.columns.iter().find(|c| &c.name == field.name()).expect("schema from the table");
        let Some(pos) = targets.iter().position(|n| n == field.name()) else {
            columns.push(new_null_array(field.data_type(), rows.len()));
            continue;
        };
        let is_text = field.data_type() == &DataType::Utf8;
        let values: Vec<Option<String>> = rows
            .iter()
            .map(|r| {
                let v = r.fields.as_ref().ok().and_then(|f| f[pos].clone())?;
                if format.null_as.as_deref() == Some(v.as_str()) {
                    return None;
                }
                if v.is_empty() && (!is_text || format.empty_as_null) {
                    return None;
                }
                if v.trim().is_empty() && format.blanks_as_null {
                    return None;
                }
                Some(if is_text { v } else { v.trim().to_string() })
            })
            .collect();
        let mut values = values;
        if let Some(limit) = char_length(&column.data_type) {
            for (i, v) in values.iter_mut().enumerate() {
                if let Some(text) = v
                    && text.len() > limit
                {
                    if format.truncate {
                        let mut end = limit;
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.truncate(end);
                    } else if bad[i].is_none() {
                        bad[i] = Some(error(&rows[i], &column.name, &column.data_type, text, 1204, format!("String length exceeds DDL length ({} > {limit})", text.len())));
                    }
                }
            }
        }
        let strings: ArrayRef = Arc::new(StringArray::from(values.clone()));
        let converted = cast_with_options(strings.as_ref(), field.data_type(), &CastOptions { safe: true, ..CastOptions::default() }).map_err(|e| internal_err!("{e}"))?;
        for (i, v) in values.iter().enumerate() {
            if let Some(text) = v
                && converted.is_null(i)
                && bad[i].is_none()
            {
                let (code, kind) = match field.data_type() {
                    DataType::Date32 => (1205, "Invalid Date Format - length must be 10 or more"),
                    DataType::Timestamp(_, _) => (1206, "Invalid timestamp format or value"),
                    DataType::Boolean => (1218, "Invalid boolean value"),
                    _ => (1207, "Invalid digit"),
                };
                bad[i] = Some(error(&rows[i], &column.name, &column.data_type, text, code, format!("{kind}, Value '{text}', Type: {}", column.data_type)));
            }
        }
        columns.push(converted);
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?;
    let keep = BooleanArray::from(bad.iter().map(Option::is_none).collect::<Vec<_>>());
    let batch = filter_record_batch(&batch, &keep).map_err(|e| internal_err!("{e}"))?;
    Ok((batch, bad.into_iter().flatten().collect()))
}

#[cfg(test)]
mod token_tests {
    use super::*;

    fn fields(raw: &str, escape: bool, remove_quotes: bool) -> Vec<Vec<String>> {
        delimited_records(raw.as_bytes(), b'|', escape, remove_quotes).into_iter().map(|(_, f)| f.unwrap()).collect()
    }

    #[test]
    fn delimited_text_with_escape_and_removequotes() {
        assert_eq!(fields("1|a\\|b|c\n2|d\n", true, false), vec![vec!["1", "a|b", "c"], vec!["2", "d"]]);
        assert_eq!(fields("1|\"x|y\"|\"\"\n\n2|z", false, true), vec![vec!["1", "x|y", ""], vec!["2", "z"]]);
        // without the options quotes and backslashes are data
        assert_eq!(fields("1|\"q\"|a\\b\r\n", false, false), vec![vec!["1", "\"q\"", "a\\b"]]);
        let lines: Vec<u64> = delimited_records(b"1|a\\\nb\n2|c\n", b'|', true, false).into_iter().map(|(l, _)| l).collect();
        assert_eq!(lines, vec![1, 3], "an escaped newline continues the record");
    }
}
