//! Where an application's results go: files in the lake, rows appended to a catalog table,
//! or the outbox of a stream or Firehose sink; and the reference data its queries join.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;

use super::sql::{AppSql, Connector};
use super::decode::json_rows;
use super::{Analytics, Application, lock};
use crate::error::Result;
use crate::lake::S3Uri;
use crate::{internal_err, service_err};

/// The services an application writes to besides the lake.
#[derive(Clone, Copy)]
pub struct Sinks<'a> {
    pub sql: &'a crate::sql::SqlEngine,
    pub firehose: &'a crate::firehose::Firehose,
}

impl Analytics {
    /// Writes one INSERT's results: files in the lake (named by the step and the INSERT, so
    /// a step run again rewrites them) or rows appended to a catalog table; rows for a stream
    /// or a Firehose sink go to the outbox, sent once the state holding them is saved.
    pub(super) async fn write_sink(&self, app: &mut Application, parsed: &AppSql, index: usize, target: &str, batch: RecordBatch, sql_engine: &crate::sql::SqlEngine) -> Result<()> {
        let stem = format!("{}-{:08}-{index}", app.name, app.steps);
        let Some(t) = parsed.tables.iter().find(|t| t.name == target) else {
            let (db, table) = target.split_once('.').ok_or_else(|| internal_err!("checked at create"))?;
            sql_engine.append(db, table, &batch, &stem).await?;
            return Ok(());
        };
        let schema = Arc::new(t.schema()?);
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()).map_err(|e| service_err!(InvalidApplicationConfigurationException, "column {}: {e}", f.name())))
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(schema, columns).map_err(|e| internal_err!("{e}"))?;
        let format = match &t.connector {
            // Files as the lake's tables hold them (Parquet with Snappy, CSV without a header).
            Connector::Filesystem { format, .. } if format == "csv" => crate::catalog::Format::Csv { delimiter: ',', header: false, escape: None },
            Connector::Filesystem { format, .. } if format == "parquet" => crate::catalog::Format::Parquet,
            _ => crate::catalog::Format::Json,
        };
        let (bytes, extension) = crate::sql::ddl::encode(&batch, &format, None)?;
        match &t.connector {
            Connector::Filesystem { path, .. } => {
                app.files_written += 1;
                let uri = S3Uri::parse(path)?.folder().join(&format!("part-{stem}{extension}"));
                self.lake.put(&uri, bytes).await?;
            }
            Connector::Kinesis { .. } | Connector::Firehose { .. } => {
                let rows = String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect::<Vec<_>>();
                app.outbox.entry(t.name.clone()).or_default().extend(rows);
            }
        }
        Ok(())
    }

    /// Sends the outbox: each stream sink's rows as PutRecords calls, each Firehose sink's as
    /// PutRecordBatch calls, a row one JSON object sent verbatim as Flink's JSON format does
    /// (create the Firehose stream with `--newline` for JSON lines in S3). Rows refused
    /// (throttled) stay for the next step. Returns whether anything was sent.
    pub(super) async fn flush(&self, app: &mut Application, parsed: &AppSql, sinks: Sinks<'_>) -> bool {
        let mut sent_any = false;
        for (target, rows) in std::mem::take(&mut app.outbox) {
            let connector = parsed.tables.iter().find(|t| t.name == target).map(|t| t.connector.clone());
            let total = rows.len();
            let mut kept = Vec::new();
            match connector {
                Some(Connector::Kinesis { stream, .. }) => {
                    let entries = rows
                        .iter()
                        .enumerate()
                        .map(|(i, row)| crate::streams::PutEntry { partition_key: format!("{}-{}-{i}", app.name, app.steps), data: bytes::Bytes::from(row.clone()), explicit_hash_key: None })
                        .collect();
                    match self.streams.put_records_in_calls(&stream, entries) {
                        Ok(results) => kept.extend(rows.into_iter().zip(&results).filter(|(_, r)| r.is_err()).map(|(row, _)| row)),
                        Err(_) => kept = rows,
                    }
                }
                Some(Connector::Firehose { delivery_stream }) => {
                    let mut rest = rows.into_iter().peekable();
                    while rest.peek().is_some() {
                        let chunk: Vec<String> = rest.by_ref().take(500).collect();
                        let records = chunk.iter().map(|row| bytes::Bytes::from(row.clone())).collect();
                        match sinks.firehose.put(&delivery_stream, records).await {
                            Ok(out) => kept.extend(chunk.into_iter().zip(&out.results).filter(|(_, r)| r.is_err()).map(|(row, _)| row)),
                            Err(_) => {
                                kept.extend(chunk);
                                kept.extend(rest.by_ref());
                            }
                        }
                    }
                }
                _ => {}
            }
            sent_any |= kept.len() < total;
            if !kept.is_empty() {
                app.outbox.insert(target, kept);
            }
        }
        sent_any
    }

    /// The application's reference data, loaded on its first step after a restart.
    pub(super) async fn references_of(&self, app: &Application, parsed: &AppSql) -> Result<Arc<BTreeMap<String, RecordBatch>>> {
        if let Some(loaded) = lock(&self.references).get(&app.name) {
            return Ok(loaded.clone());
        }
        let loaded = Arc::new(self.load_references(parsed).await?);
        lock(&self.references).insert(app.name.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Reads each reference table whole: the object its path names, or every object under
    /// it as a folder (KDA's reference data source is an S3 object, held in memory).
    pub(super) async fn load_references(&self, parsed: &AppSql) -> Result<BTreeMap<String, RecordBatch>> {
        let mut out = BTreeMap::new();
        for table in parsed.references() {
            let Connector::Filesystem { path, format } = &table.connector else { continue };
            let uri = S3Uri::parse(path)?;
            let objects = if !uri.key.is_empty() && !uri.key.ends_with('/') && self.lake.head(&uri).await.is_ok() {
                vec![uri.clone()]
            } else {
                let listing = self.lake.list(&uri.clone().folder(), true).await?;
                listing.objects.iter().map(|o| S3Uri { bucket: uri.bucket.clone(), key: o.key.clone() }).collect()
            };
            if objects.is_empty() {
                return Err(service_err!(ResourceNotFoundException, "reference data {}: nothing at {path}", table.name)
                    .with_hint("put the object first, e.g. `%lake put s3://bucket/ref/companies.csv --from companies.csv`"));
            }
            let schema = Arc::new(table.schema()?);
            let mut batches = Vec::new();
            for object in objects {
                let bytes = self.lake.get(&object).await?;
                let bad = |e: &dyn std::fmt::Display| service_err!(InvalidApplicationConfigurationException, "reference data {}: cannot read s3://{}/{} as {format}: {e}", table.name, object.bucket, object.key);
                match format.as_str() {
                    "csv" => {
                        let reader = arrow_csv::ReaderBuilder::new(schema.clone()).with_header(false).build(std::io::Cursor::new(bytes)).map_err(|e| bad(&e))?;
                        for batch in reader {
                            batches.push(batch.map_err(|e| bad(&e))?);
                        }
                    }
                    "parquet" => {
                        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| bad(&e))?.build().map_err(|e| bad(&e))?;
                        for batch in reader {
                            let batch = batch.map_err(|e| bad(&e))?;
                            let columns = schema
                                .fields()
                                .iter()
                                .map(|f| {
                                    let column = batch.column_by_name(f.name()).ok_or_else(|| bad(&format!("no column {}", f.name())))?;
                                    datafusion::arrow::compute::cast(column, f.data_type()).map_err(|e| bad(&e))
                                })
                                .collect::<Result<Vec<_>>>()?;
                            batches.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| bad(&e))?);
                        }
                    }
                    _ => {
                        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).collect();
                        if let Some(batch) = json_rows(&schema, &lines).map_err(|e| bad(&e))? {
                            batches.push(batch);
                        }
                    }
                }
            }
            let all = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| internal_err!("{e}"))?;
            out.insert(table.name.clone(), all);
        }
        Ok(out)
    }
}
