//! What the dashboards service keeps in `dashboards/dashboards.json`: datasets (with their
//! SPICE snapshots and ingestions), dashboards (their specs) and the SPICE capacity.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// QuickSight's SPICE allowance: 10 GB per paid user (the workspace is one user).
pub const DEFAULT_SPICE_CAPACITY: u64 = 10_000_000_000;
/// Ingestions kept per dataset.
pub const KEPT_INGESTIONS: usize = 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub datasets: BTreeMap<String, Dataset>,
    #[serde(default)]
    pub dashboards: BTreeMap<String, Dashboard>,
    #[serde(default = "default_capacity")]
    pub spice_capacity: u64,
    /// Numbers ingestions (ids are `ingestion-N`).
    #[serde(default)]
    pub ingestions: u64,
}

impl Default for State {
    fn default() -> Self {
        Self { datasets: BTreeMap::new(), dashboards: BTreeMap::new(), spice_capacity: DEFAULT_SPICE_CAPACITY, ingestions: 0 }
    }
}

fn default_capacity() -> u64 {
    DEFAULT_SPICE_CAPACITY
}

/// ≙ ImportMode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    #[default]
    #[serde(rename = "SPICE")]
    Spice,
    #[serde(rename = "DIRECT_QUERY")]
    DirectQuery,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

/// Where a dataset's rows come from (≙ its PhysicalTableMap: a custom SQL or a catalog table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    Sql { sql: String, database: String },
    Table { database: String, table: String },
}

impl Source {
    /// The source as one SELECT.
    pub fn query(&self) -> String {
        match self {
            Source::Sql { sql, .. } => sql.trim().trim_end_matches(';').to_string(),
            Source::Table { database, table } => format!("SELECT * FROM \"{}\".\"{}\"", database.replace('"', "\"\""), table.replace('"', "\"\"")),
        }
    }

    pub fn database(&self) -> &str {
        match self {
            Source::Sql { database, .. } | Source::Table { database, .. } => database,
        }
    }
}

/// ≙ CalculatedColumn: a SQL expression over the source's columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalculatedField {
    pub name: String,
    pub expression: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub source: Source,
    pub mode: Mode,
    #[serde(default)]
    pub fields: Vec<CalculatedField>,
    /// A refresh schedule (`rate(…)` / `cron(…)`), SPICE datasets only.
    pub refresh: Option<String>,
    pub created: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
    /// The SPICE rows now in use (SPICE datasets once ingested).
    pub snapshot: Option<Snapshot>,
    /// The next scheduled refresh on the engine clock.
    pub next_refresh: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ingestions: Vec<Ingestion>,
}

/// A dataset's rows in SPICE: a Parquet file under `dashboards/spice/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub file: String,
    pub rows: u64,
    /// SPICE's logical size: 8 bytes per number or date, 8 + UTF-8 length per text value.
    pub spice_bytes: u64,
    pub ingested: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IngestionStatus {
    Completed,
    Failed,
}

impl std::fmt::Display for IngestionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::serde_name(self))
    }
}

/// ≙ Ingestion: one SPICE refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ingestion {
    pub id: String,
    pub status: IngestionStatus,
    /// FULL_REFRESH when asked for, SCHEDULED when the schedule started it.
    pub request_source: String,
    pub created: DateTime<Utc>,
    pub rows: u64,
    pub spice_bytes: u64,
    pub elapsed_ms: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dashboard {
    pub name: String,
    pub spec: String,
    pub version: u32,
    pub created: DateTime<Utc>,
    pub last_updated: DateTime<Utc>,
}
