//! What a magic works with: the workspace's engine (opened on first use), the state magics
//! keep from cell to cell, where its output goes, and the cell body. The session owns the
//! workspace and the state and lends them to each magic it runs; magics never see the session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use lakebook_engine::Lakebook;
use lakebook_engine::sql::cluster::ClusterTarget;

use crate::error::CellError;
use crate::output::Output;

/// What one magic run gets.
pub struct Ctx<'a> {
    pub workspace: &'a mut Workspace,
    pub state: &'a mut State,
    pub out: &'a Output,
    /// The cell body for `%%name` (None for a line magic).
    pub body: Option<&'a str>,
    /// The arguments as typed (before shell splitting).
    pub raw: &'a str,
}

impl Ctx<'_> {
    /// The engine, opening the workspace if this is the first use.
    pub fn engine(&mut self) -> Result<Arc<Lakebook>, CellError> {
        self.workspace.engine()
    }
}

/// The workspace a kernel works in. It is opened on first use so a kernel always starts,
/// even when another kernel holds the workspace.
pub struct Workspace {
    home: PathBuf,
    engine: Option<Arc<Lakebook>>,
    /// How many times it was reset: what lives beside the engine (the Rust worker, whose
    /// build directory a reset deletes) starts again when this moves.
    resets: u64,
    /// The Ballista cluster queries run on (`%sql engine connect`); None = the local engine.
    /// Kept here, not in the engine, so it outlives a reset or a `%lake connect`.
    cluster: Option<ClusterTarget>,
}

impl Workspace {
    pub fn new(home: PathBuf) -> Self {
        Self { home, engine: None, resets: 0, cluster: None }
    }

    /// Where queries run: a Ballista cluster, or None for the local engine.
    pub fn cluster(&self) -> Option<&ClusterTarget> {
        self.cluster.as_ref()
    }

    /// Sends queries (and EMR SQL steps) to `cluster`, or back to the local engine.
    pub fn use_cluster(&mut self, cluster: Option<ClusterTarget>) {
        if let Some(engine) = &self.engine {
            engine.sql().use_cluster(cluster.clone());
        }
        self.cluster = cluster;
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// How many times `%workspace reset` emptied it in this kernel.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// The engine if the workspace is open already (None: nothing has used it yet).
    pub fn opened(&self) -> Option<&Arc<Lakebook>> {
        self.engine.as_ref()
    }

    /// The engine, opening the workspace if this is the first use.
    pub fn engine(&mut self) -> Result<Arc<Lakebook>, CellError> {
        if let Some(engine) = &self.engine {
            return Ok(engine.clone());
        }
        let engine = Arc::new(Lakebook::open(self.home.clone())?);
        engine.sql().use_cluster(self.cluster.clone());
        self.engine = Some(engine.clone());
        spawn_system_clock_work(Arc::downgrade(&engine));
        Ok(engine)
    }

    /// Empties the workspace (`%workspace reset --yes`) and opens it again, empty.
    pub async fn reset(&mut self) -> Result<Arc<Lakebook>, CellError> {
        // Counted even if the reset fails midway: what lives beside the engine starts again.
        self.resets += 1;
        self.rebuild(Lakebook::reset).await
    }

    /// Closes every service and opens it again (after `%lake connect` moved the lake).
    pub async fn reopen(&mut self) -> Result<Arc<Lakebook>, CellError> {
        self.rebuild(Lakebook::reopen).await
    }

    /// Takes the engine back from the background work that shares it, rebuilds it, and
    /// starts that work again over the new one.
    async fn rebuild(&mut self, rebuild: impl FnOnce(Lakebook) -> lakebook_engine::Result<Lakebook>) -> Result<Arc<Lakebook>, CellError> {
        let mut engine = self.engine()?;
        self.engine = None;
        // The system-clock loop holds the engine while due work runs; wait for it to let go.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let owned = loop {
            match Arc::try_unwrap(engine) {
                Ok(owned) => break owned,
                Err(shared) if tokio::time::Instant::now() < deadline => {
                    engine = shared;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(shared) => {
                    self.engine = Some(shared);
                    return Err(CellError::new("WorkspaceBusy", "background work (a scheduled crawler, a delivery) kept the workspace busy for 30 s; try again"));
                }
            }
        };
        let engine = Arc::new(rebuild(owned)?);
        engine.sql().use_cluster(self.cluster.clone());
        self.engine = Some(engine.clone());
        spawn_system_clock_work(Arc::downgrade(&engine));
        Ok(engine)
    }
}

/// On the system clock, time-driven work (scheduled crawlers …) happens in the background
/// while the user works; the loop ends when the engine is dropped.
fn spawn_system_clock_work(engine: std::sync::Weak<Lakebook>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let Some(engine) = engine.upgrade() else { return };
            if engine.clock().mode() == lakebook_engine::ClockMode::System {
                for report in engine.run_due_work().await {
                    tracing::info!("{report}");
                }
            }
        }
    });
}

/// What magics remember between cells.
pub struct State {
    /// The database `%sql` uses when a cell names none (`%sql USE db` changes it).
    pub sql_database: String,
    /// The workgroup `%sql` runs in when a cell names none.
    pub sql_workgroup: String,
    /// The Redshift cluster `%sql` runs on (`%redshift connect NAME`); None = Athena.
    pub redshift_cluster: Option<String>,
    /// The last result shown as a table, which `%chart` draws.
    pub last_result: Option<RecordBatch>,
    /// Whether a chart's HTML has carried plotly.js yet in this kernel session.
    pub plotly_loaded: bool,
    /// `%set` variables, expanded as `${NAME}` in magic lines and SQL bodies.
    pub variables: BTreeMap<String, String>,
    /// `%set display.max_rows N`: query results longer than this show head and tail.
    pub display_max_rows: usize,
    /// `%set sql.progress_after 1s`: a query running longer shows a live progress display.
    pub sql_progress_after: std::time::Duration,
    /// Dashboards shown in this kernel, redrawn in place when their data or spec changes.
    pub shown_dashboards: Vec<super::dashboard::Shown>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            sql_database: lakebook_engine::catalog::DEFAULT_DATABASE.to_string(),
            sql_workgroup: lakebook_engine::sql::PRIMARY_WORKGROUP.to_string(),
            redshift_cluster: None,
            last_result: None,
            plotly_loaded: false,
            variables: BTreeMap::new(),
            display_max_rows: crate::render::TableOptions::default().max_rows,
            sql_progress_after: std::time::Duration::from_secs(1),
            shown_dashboards: Vec::new(),
        }
    }
}

impl State {
    /// After `%workspace reset`: forget what was known of the workspace (`USE` database,
    /// workgroup, connected cluster, the last result). `%set` variables are the notebook's,
    /// not the workspace's, and stay; so do display settings and plotly.js, already in the page.
    pub fn forget_workspace(&mut self) {
        let variables = std::mem::take(&mut self.variables);
        let (plotly_loaded, display_max_rows, sql_progress_after) = (self.plotly_loaded, self.display_max_rows, self.sql_progress_after);
        *self = Self { variables, plotly_loaded, display_max_rows, sql_progress_after, ..Self::default() };
    }

    /// How query results are shown: at most `display.max_rows` rows, else head and tail.
    pub fn result_table(&self) -> crate::render::TableOptions {
        let defaults = crate::render::TableOptions::default();
        let max_rows = self.display_max_rows;
        let head = defaults.head.min(max_rows.div_ceil(2));
        crate::render::TableOptions { max_rows, head, tail: defaults.tail.min(max_rows - head), ..defaults }
    }
}
