//! The Data Catalog's vocabulary, shaped like Glue's: databases hold tables; a table has a
//! location, a format with SerDe parameters, columns with Hive type names, partition keys,
//! partitions (values + location) and a version history; crawlers and their runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::service_err;

/// A column: a name and a Hive/Glue type string (`bigint`, `struct<a:string>` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

impl Column {
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> Self {
        Self { name: name.into(), data_type: data_type.into() }
    }
}

/// How a table's files are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "classification", rename_all = "lowercase")]
pub enum Format {
    Parquet,
    Json,
    /// Delimited text. `escape`: the character that makes the next one literal inside quoted
    /// fields (OpenCSVSerde's `escapeChar`); none for LazySimpleSerDe's plain text.
    Csv {
        delimiter: char,
        header: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        escape: Option<char>,
    },
    Avro,
    Orc,
}

impl Format {
    /// Hive's input format, output format and SerDe classes for the format, as Glue and
    /// Redshift Spectrum's `svv_external_tables` name them.
    pub fn hive_classes(&self) -> (&'static str, &'static str, &'static str) {
        const TEXT_IN: &str = "org.apache.hadoop.mapred.TextInputFormat";
        const TEXT_OUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
        match self {
            Format::Parquet => (
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
            ),
            Format::Json => (TEXT_IN, TEXT_OUT, "org.openx.data.jsonserde.JsonSerDe"),
            Format::Csv { escape: Some(_), .. } => (TEXT_IN, TEXT_OUT, "org.apache.hadoop.hive.serde2.OpenCSVSerde"),
            Format::Csv { .. } => (TEXT_IN, TEXT_OUT, "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"),
            Format::Avro => (
                "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat",
                "org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat",
                "org.apache.hadoop.hive.serde2.avro.AvroSerDe",
            ),
            Format::Orc => ("org.apache.hadoop.hive.ql.io.orc.OrcInputFormat", "org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat", "org.apache.hadoop.hive.ql.io.orc.OrcSerde"),
        }
    }

    /// Glue's `classification` parameter.
    pub fn classification(&self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Json => "json",
            Format::Csv { .. } => "csv",
            Format::Avro => "avro",
            Format::Orc => "orc",
        }
    }

    /// The SerDe parameters Glue records for the format.
    pub fn serde_parameters(&self) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        if let Format::Csv { delimiter, header, escape } = self {
            match escape {
                Some(escape) => {
                    params.insert("separatorChar".into(), delimiter.to_string());
                    params.insert("escapeChar".into(), escape.to_string());
                }
                None => {
                    params.insert("field.delim".into(), delimiter.to_string());
                }
            }
            params.insert("skip.header.line.count".into(), if *header { "1" } else { "0" }.into());
        }
        params
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Csv { delimiter, header, escape } => {
                let d = match delimiter {
                    '\t' => "\\t".to_string(),
                    d => d.to_string(),
                };
                write!(f, "csv (delimiter '{d}', {}", if *header { "header" } else { "no header" })?;
                match escape {
                    Some(e) => write!(f, ", escape '{e}')"),
                    None => f.write_str(")"),
                }
            }
            other => f.write_str(other.classification()),
        }
    }
}

/// One partition of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub values: Vec<String>,
    /// `s3://…/` of the partition's folder.
    pub location: String,
    pub created: DateTime<Utc>,
    /// Set when its data disappeared and the delete behaviour is `deprecate`.
    #[serde(default)]
    pub deprecated: bool,
}

/// The schema-bearing part of a table, saved for every version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDefinition {
    pub location: String,
    pub format: Format,
    /// `gzip`, `bzip2`, `zstd` when the files are compressed text.
    pub compression: Option<String>,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    /// Glue's BucketColumns and NumberOfBuckets: each partition's rows are spread over this
    /// many files by a hash of these columns (CTAS `bucketed_by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucketing: Option<Bucketing>,
}

/// How a bucketed table spreads its rows over files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucketing {
    pub columns: Vec<String>,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableVersion {
    pub version: u32,
    pub created: DateTime<Utc>,
    pub definition: TableDefinition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub database: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub definition: TableDefinition,
    /// Partition values joined with `/` → partition.
    pub partitions: BTreeMap<String, Partition>,
    /// Every version, oldest first; the last is the current definition.
    pub versions: Vec<TableVersion>,
    /// The crawler that made it, if any.
    pub crawler: Option<String>,
    /// Set when the crawler no longer finds its data and the delete behaviour is `deprecate`.
    #[serde(default)]
    pub deprecated: bool,
    /// Free-form parameters (`recordCount`, `objectCount`, `sizeKey` …).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

impl Table {
    /// Where its files are: its location, then each partition's that lies outside it.
    pub fn locations(&self) -> Vec<String> {
        let root = &self.definition.location;
        let mut locations = vec![root.clone()];
        for location in self.partitions.values().map(|p| &p.location).filter(|l| !l.starts_with(root.as_str())) {
            if !locations.contains(location) {
                locations.push(location.clone());
            }
        }
        locations
    }

    pub fn version(&self) -> u32 {
        self.versions.last().map_or(1, |v| v.version)
    }

    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }

    /// Live (not deprecated) partitions.
    pub fn live_partitions(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.values().filter(|p| !p.deprecated)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    pub name: String,
    pub description: String,
    pub created: DateTime<Utc>,
    pub tables: BTreeMap<String, Table>,
    /// ≙ LocationUri (`CREATE DATABASE … LOCATION 's3://…'`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// ≙ Parameters (`WITH DBPROPERTIES (…)`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// What a re-crawl does with a changed schema (Glue's SchemaChangePolicy.UpdateBehavior).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateBehavior {
    /// UPDATE_IN_DATABASE (default)
    Update,
    /// LOG
    Log,
}

/// What a re-crawl does when data disappeared (Glue's SchemaChangePolicy.DeleteBehavior).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteBehavior {
    /// DEPRECATE_IN_DATABASE (default)
    Deprecate,
    /// DELETE_FROM_DATABASE
    Delete,
    /// LOG
    Log,
}

/// A crawler's definition (≙ CreateCrawler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrawlerConfig {
    pub name: String,
    /// The include path, `s3://bucket/prefix/`.
    pub target: String,
    pub database: String,
    pub table_prefix: String,
    pub exclusions: Vec<String>,
    pub update_behavior: UpdateBehavior,
    pub delete_behavior: DeleteBehavior,
    /// At most this many files are read per folder (Glue's sample size); None reads all.
    pub sample_size: Option<usize>,
    /// Glue's `cron(…)` (or `rate(…)`) schedule, on the engine clock.
    pub schedule: Option<String>,
}

impl CrawlerConfig {
    /// A crawler with Glue's defaults: update the schema, deprecate what is gone, read every
    /// file, no prefix, exclusions or schedule.
    pub fn new(name: impl Into<String>, target: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            target: target.into(),
            database: database.into(),
            table_prefix: String::new(),
            exclusions: Vec::new(),
            update_behavior: UpdateBehavior::Update,
            delete_behavior: DeleteBehavior::Deprecate,
            sample_size: None,
            schedule: None,
        }
    }
}

/// One run's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrawlSummary {
    pub crawler: String,
    pub started: Option<DateTime<Utc>>,
    pub elapsed_ms: u64,
    pub files_seen: usize,
    pub files_read: usize,
    pub tables: Vec<TableChange>,
    pub skipped: Vec<SkippedFile>,
}

impl CrawlSummary {
    pub fn count(&self, action: TableAction) -> usize {
        self.tables.iter().filter(|t| t.action == action).count()
    }

    pub fn partitions_added(&self) -> usize {
        self.tables.iter().map(|t| t.partitions_added).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableAction {
    Created,
    Updated,
    Unchanged,
    /// A schema change found but only logged (update behaviour `log`).
    Logged,
    Deprecated,
    Deleted,
}

impl std::fmt::Display for TableAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChange {
    pub table: String,
    pub action: TableAction,
    pub version: u32,
    pub partitions_added: usize,
    pub partitions_removed: usize,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub key: String,
    pub reason: String,
}

/// A crawler with its run history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crawler {
    pub config: CrawlerConfig,
    pub created: DateTime<Utc>,
    pub last_run: Option<DateTime<Utc>>,
    pub runs: Vec<CrawlSummary>,
}

/// Glue's naming rule for databases and tables: lowercase letters, digits, `_`.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(service_err!(InvalidInputException, "{name:?} is not a valid {kind} name")
            .with_hint(format!("{kind} names are lowercase letters, digits and _ (e.g. {})", sanitize_name(name))))
    }
}

/// Turns a folder name into a valid table name, as the crawler does.
pub fn sanitize_name(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    let name = name.trim_matches('_').to_string();
    if name.is_empty() { "table".to_string() } else { name }
}

/// Parses `DB.TABLE` (or `TABLE` with a default database).
pub fn split_table_name<'a>(name: &'a str, default_db: Option<&'a str>) -> Result<(&'a str, &'a str)> {
    match name.split_once('.') {
        Some((db, table)) => Ok((db, table)),
        None => match default_db {
            Some(db) => Ok((db, name)),
            None => Err(service_err!(InvalidInputException, "{name:?} does not name a database")
                .with_hint("write tables as DATABASE.TABLE")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(sanitize_name("Web-Logs 2026"), "web_logs_2026");
        assert!(validate_name("table", "web_logs").is_ok());
        assert_eq!(validate_name("table", "Web").unwrap_err().code(), "InvalidInputException");
    }
}
