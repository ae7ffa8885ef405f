//! Lakebook's embedded engine: one workspace directory holding a data lake and the AWS-style
//! services over it, usable from plain Rust without Jupyter.
//!
//! Layout:
//! - [`error`]     typed errors: service error names (`NoSuchKey` …) with fix hints, or bugs.
//! - [`workspace`] the workspace directory, its exclusive lock, atomic file writes.
//! - [`clock`]     the engine clock: system time or a persisted manual (simulated) time.
//! - [`lake`]      `s3://bucket/key` objects on `<workspace>/lake` through `object_store`.
//! - [`catalog`]   the Glue-style Data Catalog and its crawler.
//! - [`query`]     the DataFusion toolkit SQL and Redshift share: catalog and stream tables,
//!   the engine-clock `now()`, bytes scanned, SQL error names.
//! - [`sql`]       Athena-style SQL executions on DataFusion over the catalog.
//! - [`streams`]   Kinesis-style data streams: shards, durable logs, limits, consumers.
//! - [`firehose`]  Firehose-style delivery streams: buffers, prefixes, transforms, formats.
//! - [`emr`]       EMR-style clusters and steps: Hadoop-streaming MapReduce, SQL steps, faults.
//! - [`redshift`]  Redshift-style warehouse clusters: managed tables, COPY/UNLOAD, Spectrum.
//! - [`dashboards`] QuickSight-style datasets (SPICE or direct) and dashboards.
//! - [`Lakebook`]  the façade owning all of the above.
//!
//! Time-driven work (what is due on the engine clock, the stream generator) is in `due.rs`,
//! small shared helpers in `util.rs`.

pub mod analytics;
pub mod catalog;
pub mod clock;
mod due;
pub mod emr;
pub mod error;
pub mod firehose;
pub mod dashboards;
pub mod glue;
pub mod lake;
pub mod query;
pub mod redshift;
pub mod schedule;
pub mod sql;
pub mod streams;
mod util;
pub mod workspace;

#[cfg(test)]
mod proptests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use catalog::Catalog;
pub use clock::{Clock, ClockMode};
pub use due::{GenerateReport, GenerateSpec};
pub use error::{Error, Result};
pub use lake::{Lake, S3Uri};
pub use util::{Unexpanded, Units, expand_vars, human_bytes, parse_size, serde_name};
pub use workspace::Workspace;

/// The environment variable naming the workspace directory.
pub const HOME_ENV: &str = "LAKEBOOK_HOME";
/// The workspace directory used when `LAKEBOOK_HOME` is not set, relative to the working dir.
pub const DEFAULT_HOME: &str = "lakebook-data";

/// The engine: owns the workspace and every service in it.
#[derive(Debug)]
pub struct Lakebook {
    workspace: Arc<Workspace>,
    clock: Arc<Clock>,
    lake: Arc<Lake>,
    catalog: Arc<Catalog>,
    sql: Arc<sql::SqlEngine>,
    streams: Arc<streams::Streams>,
    firehose: firehose::Firehose,
    emr: emr::Emr,
    redshift: Arc<redshift::Redshift>,
    analytics: analytics::Analytics,
    glue: Arc<glue::Glue>,
    dashboards: dashboards::Dashboards,
}

impl Lakebook {
    /// Opens (creating if needed) the workspace at `home` and takes its lock.
    pub fn open(home: impl Into<PathBuf>) -> Result<Self> {
        Self::open_in(Workspace::open(home.into())?)
    }

    /// Opens every service in a workspace whose lock is already held.
    fn open_in(workspace: Workspace) -> Result<Self> {
        let workspace = Arc::new(workspace);
        let clock = Arc::new(Clock::open(&workspace)?);
        let lake = Arc::new(Lake::open(&workspace, clock.clone())?);
        let catalog = Arc::new(Catalog::open(&workspace, clock.clone())?);
        let streams = Arc::new(streams::Streams::open(&workspace, clock.clone())?);
        let sql = Arc::new(sql::SqlEngine::open(&workspace, catalog.clone(), lake.clone(), clock.clone(), streams.clone())?);
        let redshift = Arc::new(redshift::Redshift::open(&workspace, clock.clone(), lake.clone(), catalog.clone(), streams.clone())?);
        let firehose = firehose::Firehose::open(&workspace, clock.clone(), lake.clone(), catalog.clone(), streams.clone(), redshift.clone())?;
        let emr = emr::Emr::open(&workspace, clock.clone(), lake.clone())?;
        let analytics = analytics::Analytics::open(&workspace, clock.clone(), lake.clone(), streams.clone(), sql.glue_catalog()?)?;
        let glue = Arc::new(glue::Glue::open(&workspace, clock.clone(), lake.clone(), catalog.clone(), sql.clone())?);
        let dashboards = dashboards::Dashboards::open(&workspace, clock.clone(), sql.clone())?;
        Ok(Self { workspace, clock, lake, catalog, sql, streams, firehose, emr, redshift, analytics, glue, dashboards })
    }

    /// Empties the workspace on purpose, so a notebook can start clean: every service is
    /// closed (saving what it batches), everything under the workspace except its lock and
    /// the kernel's input history is deleted, and the services are opened again, empty. The
    /// lock is held throughout, so no other kernel can step in. The clock goes back to the
    /// system clock, as in a new workspace. A lake on S3 (`%lake connect`) stays connected and
    /// its objects stay: they are not the workspace's to delete.
    pub fn reset(self) -> Result<Self> {
        let workspace = self.close()?;
        // A lake on S3 is not the workspace's to empty: its setting and its objects stay.
        workspace.clear(&[workspace::KERNEL_DIR, lake::SETTING_FILE, lake::RECORDS_FILE])?;
        Self::open_in(workspace)
    }

    /// Closes every service and opens it again: what follows `Lake::connect` (`%lake
    /// connect`), so every service works over the lake now configured. Catalog, streams and
    /// the rest stay as they were; their tables' locations now name objects in that lake.
    pub fn reopen(self) -> Result<Self> {
        let workspace = self.close()?;
        Self::open_in(workspace)
    }

    /// Closes every service (saving what it batches) and hands back the workspace, still
    /// locked.
    fn close(self) -> Result<Workspace> {
        let Self { workspace, clock, lake, catalog, sql, streams, firehose, emr, redshift, analytics, glue, dashboards } = self;
        glue.close();
        drop((dashboards, glue, analytics, sql, firehose, emr, redshift, streams, catalog, lake, clock));
        Arc::try_unwrap(workspace).map_err(|_| crate::internal_err!("a service still holds the workspace while it is being closed"))
    }

    /// What the workspace holds, per service (`%workspace info`).
    pub fn summary(&self) -> Result<WorkspaceSummary> {
        let lake = self.lake.info()?;
        let catalog_databases = self.catalog.databases();
        let mut tables = 0;
        for db in &catalog_databases {
            tables += self.catalog.tables(&db.name)?.len();
        }
        Ok(WorkspaceSummary {
            home: self.home().to_path_buf(),
            disk_bytes: workspace::disk_usage(self.home()),
            clock: format!("{} ({})", clock::format_time(self.clock.now()), self.clock.mode()),
            buckets: lake.buckets,
            objects: lake.objects as usize,
            object_bytes: lake.bytes,
            databases: catalog_databases.len(),
            tables,
            crawlers: self.catalog.crawlers().len(),
            query_executions: self.sql.history().len(),
            streams: self.streams.list().len(),
            delivery_streams: self.firehose.list().len(),
            emr_clusters: self.emr.clusters().iter().filter(|c| !c.state.is_terminated()).count(),
            redshift_clusters: self.redshift.clusters().len(),
            glue_jobs: self.glue.jobs().len(),
            dashboards: self.dashboards.dashboards().len(),
            datasets: self.dashboards.datasets().len(),
        })
    }

    /// The workspace directory named by `LAKEBOOK_HOME`, else `./lakebook-data`.
    pub fn default_home() -> PathBuf {
        match std::env::var_os(HOME_ENV) {
            Some(home) if !home.is_empty() => PathBuf::from(home),
            _ => PathBuf::from(DEFAULT_HOME),
        }
    }

    pub fn home(&self) -> &Path {
        self.workspace.root()
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn streams(&self) -> &Arc<streams::Streams> {
        &self.streams
    }

    pub fn firehose(&self) -> &firehose::Firehose {
        &self.firehose
    }

    pub fn sql(&self) -> &sql::SqlEngine {
        &self.sql
    }

    /// Saves what the services keep in memory between saves (Firehose's metrics); the
    /// kernel calls it after every cell.
    pub fn persist(&self) -> Result<()> {
        self.firehose.persist()
    }

    pub fn emr(&self) -> &emr::Emr {
        &self.emr
    }

    pub fn redshift(&self) -> &redshift::Redshift {
        &self.redshift
    }

    pub fn glue(&self) -> &Arc<glue::Glue> {
        &self.glue
    }

    pub fn dashboards(&self) -> &dashboards::Dashboards {
        &self.dashboards
    }

    pub fn analytics(&self) -> &analytics::Analytics {
        &self.analytics
    }

    /// ≙ CreateApplication; catalog-table sinks are checked against the Data Catalog.
    pub async fn create_analytics_application(&self, name: &str, sql: &str) -> Result<analytics::Application> {
        self.analytics.create(name, sql, &self.catalog, &self.firehose).await
    }

    fn analytics_sinks(&self) -> analytics::Sinks<'_> {
        analytics::Sinks { sql: &self.sql, firehose: &self.firehose }
    }

    /// ≙ StopApplication (`drain`: every open window fires first).
    pub async fn stop_analytics_application(&self, name: &str, drain: bool) -> Result<analytics::Application> {
        self.analytics.stop(name, drain, self.analytics_sinks()).await
    }
}

/// What a workspace holds ([`Lakebook::summary`]).
#[derive(Debug, Clone)]
pub struct WorkspaceSummary {
    pub home: PathBuf,
    /// Every file under the workspace, in bytes.
    pub disk_bytes: u64,
    /// The engine time and the clock's mode, as `%clock` shows them.
    pub clock: String,
    pub buckets: usize,
    pub objects: usize,
    pub object_bytes: u64,
    pub databases: usize,
    pub tables: usize,
    pub crawlers: usize,
    pub query_executions: usize,
    pub streams: usize,
    pub delivery_streams: usize,
    /// Clusters not terminated.
    pub emr_clusters: usize,
    pub redshift_clusters: usize,
    pub glue_jobs: usize,
    pub dashboards: usize,
    pub datasets: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reset_empties_every_service_and_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lb = Lakebook::open(dir.path()).unwrap();
        lb.clock().set_manual(Some(chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().into())).unwrap();
        lb.lake().create_bucket("bkt").unwrap();
        lb.lake().put(&S3Uri::parse("s3://bkt/k.csv").unwrap(), bytes::Bytes::from_static(b"a\n1\n")).await.unwrap();
        lb.catalog().create_database("db", "").unwrap();
        lb.streams().create("s", Some(1), None).unwrap();
        lb.redshift().create_cluster("wh", 1, 1).unwrap();
        lb.sql().run("SELECT 1", "default").await.unwrap();
        std::fs::create_dir_all(dir.path().join(workspace::KERNEL_DIR)).unwrap();
        std::fs::write(dir.path().join(workspace::KERNEL_DIR).join("history.jsonl"), b"{}\n").unwrap();
        let before = lb.summary().unwrap();
        assert_eq!((before.buckets, before.objects, before.databases, before.streams, before.redshift_clusters), (2, 3, 2, 1, 1), "{before:?}");

        let lb = lb.reset().unwrap();
        let after = lb.summary().unwrap();
        assert_eq!((after.buckets, after.objects, after.databases, after.tables, after.streams, after.redshift_clusters, after.query_executions), (0, 0, 1, 0, 0, 0, 0), "{after:?}");
        assert_eq!(lb.clock().mode(), ClockMode::System);
        assert!(dir.path().join(workspace::KERNEL_DIR).join("history.jsonl").exists(), "the input history stays");
        assert_eq!(Lakebook::open(dir.path()).unwrap_err().code(), "WorkspaceLocked", "the lock was held throughout");
        // the same names can be created again
        lb.lake().create_bucket("bkt").unwrap();
        lb.streams().create("s", Some(1), None).unwrap();
        lb.redshift().create_cluster("wh", 1, 1).unwrap();
    }
}
