//! UNLOAD: a query's result written to the lake as text, CSV, JSON or Parquet, a file per
//! slice (or one), in PARTITION BY folders, with a manifest; recorded in `stl_unload_log`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::DataType;
use bytes::Bytes;
use datafusion::arrow::compute::{concat_batches, take};
use datafusion::sql::sqlparser::ast::{self, CopyLegacyOption};

use super::model::{LOAD_ERRORS_KEPT, Outcome, UnloadLog};
use super::parse::lower;
use super::storage::{Layout, parquet_bytes};
use super::{Redshift, find, message};
use crate::error::Result;
use crate::lake::S3Uri;
use crate::query::Watch;
use crate::{internal_err, service_err};

/// UNLOAD's Parquet: parquet's default row groups, pages and dictionary, in Snappy (the
/// UNLOAD docs' default codec).
const UNLOAD_LAYOUT: Layout = Layout { row_group: 1 << 20, page_rows: usize::MAX, dictionary_bytes: 1 << 20, codec: parquet::basic::Compression::SNAPPY };

impl Redshift {
    pub(super) async fn unload(&self, cluster: &str, sql: &str, to: &str, options: &[CopyLegacyOption], query_id: u64, watch: Option<&mut Watch<'_>>) -> Result<Outcome> {
        let started = self.clock.now();
        let target = S3Uri::parse(to)?;
        let mut parquet = false;
        let mut csv = false;
        let mut header = false;
        let mut delimiter = b'|';
        let mut allow_overwrite = false;
        let mut parallel = true;
        let mut partition: Option<ast::UnloadPartitionBy> = None;
        let mut extension: Option<String> = None;
        let mut json = false;
        let mut gzip = false;
        let mut manifest: Option<bool> = None;
        let mut add_quotes = false;
        let mut null_as = String::new();
        for option in options {
            match option {
                CopyLegacyOption::Parquet => parquet = true,
                CopyLegacyOption::Json(None) => json = true,
                CopyLegacyOption::Gzip => gzip = true,
                CopyLegacyOption::Manifest { verbose } => manifest = Some(*verbose),
                CopyLegacyOption::AddQuotes => add_quotes = true,
                CopyLegacyOption::Null(text) => null_as = text.clone(),
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    delimiter = b',';
                    header |= csv_options.contains(&ast::CopyLegacyCsvOption::Header);
                }
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Delimiter(d) => delimiter = *d as u8,
                CopyLegacyOption::AllowOverwrite => allow_overwrite = true,
                CopyLegacyOption::Parallel(on) => parallel = on.unwrap_or(true),
                CopyLegacyOption::PartitionBy(p) => partition = Some(p.clone()),
                CopyLegacyOption::Extension(e) => extension = Some(e.clone()),
                CopyLegacyOption::IamRole(_) | CopyLegacyOption::Region(_) | CopyLegacyOption::Credentials(_) | CopyLegacyOption::MaxFileSize(_) => {}
                other => return Err(service_err!(FeatureNotSupported, "UNLOAD option {other} is not supported")),
            }
        }
        if parquet && (header || csv) {
            return Err(service_err!(InvalidParameterValue, "PARQUET cannot be used with CSV or HEADER"));
        }
        if (parquet || json) && (csv || add_quotes || gzip && parquet || !null_as.is_empty()) {
            return Err(service_err!(InvalidParameterValue, "{} cannot be used with CSV, ADDQUOTES or NULL AS{}", if parquet { "PARQUET" } else { "JSON" }, if parquet { " or GZIP" } else { "" }));
        }
        if !allow_overwrite && !self.lake.list(&target, true).await?.objects.is_empty() {
            return Err(service_err!(InvalidParameterValue,
                "Specified unload destination on S3 is not empty. Consider using a different bucket / prefix, manually removing the target files in S3, or using the ALLOWOVERWRITE option."));
        }
        let c = self.describe(cluster)?;
        let result = self.query_watched(cluster, sql, watch).await?;
        let all = concat_batches(&result.schema, &result.batches).map_err(|e| internal_err!("{e}"))?;
        let rows = all.num_rows();
        let suffix = extension.map(|e| format!(".{}", e.trim_start_matches('.'))).unwrap_or_else(|| if parquet { ".parquet".into() } else { String::new() })
            + if gzip { ".gz" } else { "" };
        // (folder under the prefix, rows) per partition value
        let groups: Vec<(String, RecordBatch)> = match &partition {
            None => vec![(String::new(), all)],
            Some(p) => partition_rows(&all, p)?,
        };
        let mut files = 0;
        let mut written = Vec::new();
        for (folder, batch) in groups {
            let slices = if parallel { c.slices() as usize } else { 1 };
            let per = batch.num_rows().div_ceil(slices).max(1);
            for s in 0..slices {
                let start = s * per;
                if start >= batch.num_rows() && !(s == 0 && batch.num_rows() == 0) {
                    break;
                }
                let part = batch.slice(start.min(batch.num_rows()), per.min(batch.num_rows().saturating_sub(start)));
                let body = if parquet {
                    parquet_bytes(&part, UNLOAD_LAYOUT)?
                } else if json {
                    json_lines(&part)?
                } else if add_quotes || !null_as.is_empty() {
                    quoted_text(&part, delimiter, add_quotes, &null_as, header)?
                } else {
                    delimited(&part, delimiter, csv, header)?
                };
                let body = if gzip { gzipped(&body)? } else { body };
                let name = if parallel { format!("{s:04}_part_00{suffix}") } else { format!("000{suffix}") };
                let key = if folder.is_empty() { format!("{}{name}", target.key) } else { format!("{}{folder}{name}", folder_prefix(&target.key)) };
                let uri = S3Uri { bucket: target.bucket.clone(), key };
                let size = body.len() as u64;
                self.lake.put(&uri, body).await?;
                written.push(UnloadLog { query: query_id, path: uri.to_string(), start_time: started, end_time: self.clock.now(), line_count: part.num_rows() as u64, transfer_size: size });
                files += 1;
            }
        }
        if let Some(verbose) = manifest {
            // <prefix>manifest: the files written, as COPY … MANIFEST reads them (VERBOSE adds sizes).
            let entries: Vec<serde_json::Value> = written
                .iter()
                .map(|w| if verbose { serde_json::json!({ "url": w.path, "meta": { "content_length": w.transfer_size, "record_count": w.line_count } }) } else { serde_json::json!({ "url": w.path }) })
                .collect();
            let body = serde_json::to_vec_pretty(&serde_json::json!({ "entries": entries })).map_err(|e| internal_err!("{e}"))?;
            self.lake.put(&S3Uri { bucket: target.bucket.clone(), key: format!("{}manifest", target.key) }, Bytes::from(body)).await?;
        }
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let log = &mut state.clusters[i].unload_log;
            log.extend(written);
            let excess = log.len().saturating_sub(LOAD_ERRORS_KEPT);
            log.drain(..excess);
            Ok(())
        })?;
        Ok(Outcome {
            message: Some(format!("UNLOAD completed, {rows} record(s) unloaded successfully to {files} file(s) under {to}.")),
            local_bytes: result.local_bytes,
            spectrum_bytes: result.spectrum_bytes,
            ..message("")
        })
    }
}

fn folder_prefix(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') { key.to_string() } else { format!("{key}/") }
}

/// Rows grouped by the PARTITION BY columns' values, as `col=value/` folders (Hive style);
/// the partition columns leave the files unless INCLUDE.
fn partition_rows(all: &RecordBatch, p: &ast::UnloadPartitionBy) -> Result<Vec<(String, RecordBatch)>> {
    let names: Vec<String> = p.columns.iter().map(|c| lower(&c.value)).collect();
    let mut indices = Vec::new();
    for n in &names {
        indices.push(all.schema().index_of(n).map_err(|_| service_err!(UndefinedColumn, "PARTITION BY column \"{n}\" is not in the query's result"))?);
    }
    let text: Vec<ArrayRef> = indices.iter().map(|i| datafusion::arrow::compute::cast(all.column(*i), &DataType::Utf8).map_err(|e| internal_err!("{e}"))).collect::<Result<_>>()?;
    let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in 0..all.num_rows() {
        let folder: String = names
            .iter()
            .zip(&text)
            .map(|(n, a)| {
                let s = a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
                let v = if s.is_null(row) { "__HIVE_DEFAULT_PARTITION__".to_string() } else { s.value(row).to_string() };
                format!("{n}={v}/")
            })
            .collect();
        groups.entry(folder).or_default().push(row as u64);
    }
    let keep: Vec<usize> = (0..all.num_columns()).filter(|i| p.include || !indices.contains(i)).collect();
    let schema = Arc::new(all.schema().project(&keep).map_err(|e| internal_err!("{e}"))?);
    groups
        .into_iter()
        .map(|(folder, rows)| {
            let idx = UInt64Array::from(rows);
            let columns = keep.iter().map(|i| take(all.column(*i).as_ref(), &idx, None)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| internal_err!("{e}"))?;
            Ok((folder, RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?))
        })
        .collect()
}

/// UNLOAD … JSON: one object per row, keys the column names, NULLs left out.
fn json_lines(batch: &RecordBatch) -> Result<Bytes> {
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    writer.write(batch).map_err(|e| internal_err!("{e}"))?;
    writer.finish().map_err(|e| internal_err!("{e}"))?;
    Ok(Bytes::from(writer.into_inner()))
}

/// UNLOAD … GZIP.
fn gzipped(body: &[u8]) -> Result<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body).and_then(|_| encoder.finish()).map(Bytes::from).map_err(|e| internal_err!("gzip: {e}"))
}

/// Delimited text with ADDQUOTES (every field in double quotes) and/or NULL AS 'text'.
fn quoted_text(batch: &RecordBatch, delimiter: u8, add_quotes: bool, null_as: &str, header: bool) -> Result<Bytes> {
    let options = datafusion::arrow::util::display::FormatOptions::new().with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    let formatters = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| internal_err!("{e}"))?;
    let field = |text: String| if add_quotes { format!("\"{}\"", text.replace('"', "\"\"")) } else { text };
    let separator = (delimiter as char).to_string();
    let mut out = String::new();
    if header {
        out.push_str(&batch.schema().fields().iter().map(|f| field(f.name().clone())).collect::<Vec<_>>().join(&separator));
        out.push('\n');
    }
    for row in 0..batch.num_rows() {
        let values: Vec<String> = batch
            .columns()
            .iter()
            .zip(&formatters)
            .map(|(column, f)| if column.is_null(row) { null_as.to_string() } else { field(f.value(row).to_string()) })
            .collect();
        out.push_str(&values.join(&separator));
        out.push('\n');
    }
    Ok(Bytes::from(out))
}

/// Text or CSV, as UNLOAD writes it (`|` by default; nulls as empty fields).
fn delimited(batch: &RecordBatch, delimiter: u8, csv: bool, header: bool) -> Result<Bytes> {
    let mut out = Vec::new();
    {
        let mut writer = arrow_csv::WriterBuilder::new()
            .with_header(header)
            .with_delimiter(delimiter)
            .with_quote_style(if csv { arrow_csv::QuoteStyle::Necessary } else { arrow_csv::QuoteStyle::Never })
            .with_timestamp_format("%Y-%m-%d %H:%M:%S%.f".to_string())
            .build(&mut out);
        writer.write(batch).map_err(|e| internal_err!("{e}"))?;
    }
    Ok(Bytes::from(out))
}
