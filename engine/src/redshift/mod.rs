//! Redshift-style warehouse clusters: managed columnar tables on the cluster's own storage
//! (not in the lake), laid out across node slices by DISTSTYLE and sorted by SORTKEY, loaded
//! with COPY from the lake and written back with UNLOAD, and Spectrum: external schemas over
//! the Data Catalog, joinable with managed tables.
//!
//! A cluster of N nodes has 2·N slices. A table's rows are Parquet files under
//! `<workspace>/redshift/<cluster>/<schema>.<table>/v<version>/slice-<s>.parquet`: DISTSTYLE
//! EVEN deals rows round-robin, KEY(col) by a hash of the key, ALL keeps one full copy (the
//! copy every node holds; sizes count it once per node). Each slice is sorted by the SORTKEY
//! and written in small data pages (16 K rows) whose min/max in Parquet's page index act as
//! Redshift's zone maps (row groups are large: see storage.rs). Every write (INSERT, COPY,
//! DELETE, UPDATE) builds the table's next version and then commits it by rewriting
//! `clusters.json` (atomic rename); the old version is removed after.
//! Queries run on DataFusion with one partition per slice.
//!
//! Deviations, on purpose: clusters are `available` at once (no creating/resizing delay);
//! DISTSTYLE AUTO lays out as EVEN; DELETE and UPDATE rewrite the table (no tombstones, so
//! no VACUUM); there are no transactions — each statement commits on its own.
//!
//! Snapshots: automated ones every 8 hours on the engine clock (or once 5 GB per node has
//! changed since the last), kept for the cluster's retention period (1 day by default, 0–35;
//! 0 turns them off) and deleted with the cluster; manual ones are kept until deleted,
//! outlive the cluster, and can be taken as a final snapshot on delete. A snapshot is the
//! cluster's metadata plus hard links to its tables' immutable version files under
//! `<workspace>/redshift/snapshots/<id>/`; a restore builds a new cluster from it.
//!
//! COPY reads every object under the prefix, or with MANIFEST the files a manifest lists
//! (Firehose's Redshift destination COPYs each staged batch that way).
//!
//! Known gaps (next steps): Redshift's own `DESCRIBE`-style catalog views beyond `pg_table_def`
//! and `svv_*`, and COPY's less common options (ACCEPTINVCHARS, EXPLICIT_IDS, ENCRYPTED).

mod copy;
mod dml;
mod model;
mod parse;
mod snapshots;
mod storage;
mod system;
mod types;
mod unload;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_schema::Schema;

pub use model::{
    AUTOMATED_CHANGE_BYTES_PER_NODE, AUTOMATED_INTERVAL_HOURS, Cluster, Column, DATABASE, DEFAULT_SCHEMA, DistStyle, ExternalSchema, Identity, LoadError, Outcome,
    SLICES_PER_NODE, Snapshot, SnapshotType, TableMeta, UnloadLog,
};
pub use types::arrow_type;

use model::State;
use parse::{Parsed, parse, split_name, split_statements, validate_identifier};

use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::error::{Result, closest};
use crate::lake::Lake;
use crate::query::Watch;
use crate::service_err;
use crate::streams::Streams;
use crate::workspace::{Workspace, read_json, write_json};

#[derive(Debug)]
pub struct Redshift {
    dir: PathBuf,
    path: PathBuf,
    clock: Arc<Clock>,
    lake: Arc<Lake>,
    catalog: Arc<Catalog>,
    streams: Arc<Streams>,
    state: Mutex<State>,
}

impl Redshift {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>, lake: Arc<Lake>, catalog: Arc<Catalog>, streams: Arc<Streams>) -> Result<Self> {
        let dir = workspace.dir("redshift")?;
        let path = dir.join("clusters.json");
        let state = read_json(&path)?.unwrap_or_default();
        Ok(Self { dir, path, clock, lake, catalog, streams, state: Mutex::new(state) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to the state and saves it; nothing changes when either fails.
    fn mutate<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        let mut next = State { clusters: state.clusters.clone(), snapshots: state.snapshots.clone() };
        let value = change(&mut next)?;
        write_json(&self.path, &next)?;
        *state = next;
        Ok(value)
    }

    /// ≙ CreateCluster.
    pub fn create_cluster(&self, name: &str, nodes: u32, retention_days: u32) -> Result<Cluster> {
        validate_identifier("cluster", name)?;
        if !(1..=32).contains(&nodes) {
            return Err(service_err!(InvalidParameterValue, "--nodes {nodes}: a cluster has 1 to 32 nodes"));
        }
        if retention_days > 35 {
            return Err(service_err!(InvalidRetentionPeriod, "automated snapshot retention is 0 to 35 days, not {retention_days}"));
        }
        let now = self.clock.now();
        self.mutate(|state| {
            if state.clusters.iter().any(|c| c.name == name) {
                return Err(service_err!(ClusterAlreadyExists, "cluster {name} already exists"));
            }
            let cluster = Cluster {
                name: name.to_string(),
                nodes,
                created: now,
                schemas: vec![DEFAULT_SCHEMA.to_string()],
                external_schemas: Vec::new(),
                tables: Vec::new(),
                load_errors: Vec::new(),
                last_query: 0,
                unload_log: Vec::new(),
                load_commits: Vec::new(),
                automated_retention_days: retention_days,
                last_automated: Some(now),
                changed_bytes: 0,
            };
            state.clusters.push(cluster.clone());
            Ok(cluster)
        })
    }

    /// ≙ DescribeClusters.
    pub fn clusters(&self) -> Vec<Cluster> {
        self.lock().clusters.clone()
    }

    pub fn describe(&self, name: &str) -> Result<Cluster> {
        let state = self.lock();
        find(&state, name).map(|i| state.clusters[i].clone())
    }

    /// ≙ DeleteCluster: the cluster, its managed storage and its automated snapshots are
    /// gone; a final snapshot (manual) is taken first when asked for.
    pub fn delete_cluster(&self, name: &str, final_snapshot: Option<&str>) -> Result<Cluster> {
        if let Some(id) = final_snapshot {
            self.create_snapshot(name, id)?;
        }
        let (removed, automated) = self.mutate(|state| {
            let i = find(state, name)?;
            let c = state.clusters.remove(i);
            let automated: Vec<Snapshot> = state.snapshots.iter().filter(|s| s.cluster == c.name && s.snapshot_type == SnapshotType::Automated).cloned().collect();
            state.snapshots.retain(|s| !(s.cluster == c.name && s.snapshot_type == SnapshotType::Automated));
            Ok((c, automated))
        })?;
        for s in automated {
            let _ = std::fs::remove_dir_all(self.snapshot_dir(&s.id));
        }
        let dir = self.dir.join(&removed.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        }
        Ok(removed)
    }

    /// Runs each statement of `sql` on the cluster in order; stops at the first failure.
    pub async fn run(&self, cluster: &str, sql: &str) -> Result<Vec<Outcome>> {
        self.run_watched(cluster, sql, None).await
    }

    /// [`run`](Self::run), reporting each query's progress to `watch` while it runs longer
    /// than `watch.after`.
    pub async fn run_watched(&self, cluster: &str, sql: &str, mut watch: Option<&mut Watch<'_>>) -> Result<Vec<Outcome>> {
        let statements = split_statements(sql)?;
        if statements.is_empty() {
            return Err(service_err!(ValidationException, "there is no SQL statement to run"));
        }
        let mut outcomes = Vec::new();
        for text in statements {
            outcomes.push(self.run_one(cluster, &text, watch.as_deref_mut()).await?);
        }
        Ok(outcomes)
    }

    async fn run_one(&self, cluster: &str, text: &str, watch: Option<&mut Watch<'_>>) -> Result<Outcome> {
        let started = Instant::now();
        let query_id = self.mutate(|state| {
            let i = find(state, cluster)?;
            state.clusters[i].last_query += 1;
            Ok(state.clusters[i].last_query)
        })?;
        let mut outcome = match parse(text)? {
            Parsed::ExternalSchema { name, database, if_not_exists, create_database } => {
                if create_database && self.catalog.tables(&database).is_err() {
                    self.catalog.create_database(&database, "")?;
                }
                self.create_external_schema(cluster, &name, &database, if_not_exists)?
            }
            Parsed::ExternalTable(hive) => self.create_external_table(cluster, &hive)?,
            Parsed::AddPartitions(add) => {
                let (schema, table) = split_name(&add.table);
                let database = self.external_database(cluster, &schema)?;
                add.apply(&self.catalog, &database, &table)?;
                message("ALTER TABLE ADD PARTITION")
            }
            Parsed::Statement(statement, maxerror) => self.statement(cluster, *statement, maxerror, query_id, watch).await?,
        };
        outcome.query_id = query_id;
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }
}

fn find(state: &State, name: &str) -> Result<usize> {
    state.clusters.iter().position(|c| c.name == name).ok_or_else(|| {
        let names: Vec<&str> = state.clusters.iter().map(|c| c.name.as_str()).collect();
        let mut err = service_err!(ClusterNotFound, "cluster {name} not found");
        err = match closest(name, &names) {
            Some(n) => err.with_hint(format!("did you mean {n}?")),
            None => err.with_hint("create one with `%redshift create NAME --nodes 2`"),
        };
        err
    })
}

fn missing_table(c: &Cluster, schema: &str, table: &str) -> crate::Error {
    let names: Vec<String> = c.tables.iter().map(TableMeta::qualified).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut err = service_err!(UndefinedTable, "relation \"{schema}.{table}\" does not exist");
    if let Some(n) = closest(&format!("{schema}.{table}"), &names) {
        err = err.with_hint(format!("did you mean {n}?"));
    }
    err
}

fn message(text: &str) -> Outcome {
    Outcome {
        query_id: 0,
        schema: Arc::new(Schema::empty()),
        batches: Vec::new(),
        message: Some(text.to_string()),
        local_bytes: 0,
        spectrum_bytes: 0,
        rows_loaded: None,
        elapsed: Duration::ZERO,
    }
}
