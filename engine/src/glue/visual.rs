//! Running a visual job: every node becomes a named query over its inputs (`graph.rs`), each
//! checked against the engine before anything is read, then each target's rows are computed
//! (sources read through the run's bookmark) and written to the lake.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;

use super::graph::{self, Graph, Kind, ident};
use super::{Glue, JobRun, NodeMetrics};
use crate::error::{Error, Result};
use crate::query::{Bookmarks, QueryProgress, Watch};
use crate::service_err;
use crate::sql::TargetSpec;

/// The database a visual job's queries run in (its sources name theirs).
const DATABASE: &str = crate::catalog::DEFAULT_DATABASE;

impl Glue {
    pub(super) async fn execute_visual(&self, graph: &Graph, run: &JobRun, bookmarks: Arc<Bookmarks>) -> Result<()> {
        self.update(&run.id, |r| {
            r.nodes = graph.nodes.iter().map(|n| NodeMetrics { node: n.label(), state: "WAITING".into(), ..Default::default() }).collect();
        })?;
        // Every node's query, checked in order: a bad column fails here, naming its node.
        let mut schemas: BTreeMap<String, SchemaRef> = BTreeMap::new();
        let mut named: Vec<String> = Vec::new();
        for node in graph.nodes.iter().filter(|n| !n.is_target()) {
            let sql = graph::transform_sql(node, &schemas)?;
            named.push(format!("{} AS ({sql})", ident(&node.id)));
            let query = format!("WITH {} SELECT * FROM {}", named.join(", "), ident(&node.id));
            let schema = self.sql.query_schema(&query, DATABASE).await.map_err(|e| in_node(node.label(), e))?;
            schemas.insert(node.id.clone(), schema);
        }
        for (i, node) in graph.nodes.iter().enumerate() {
            let Kind::Target(target) = &node.kind else { continue };
            let started = Instant::now();
            let rows_before = bookmarks.rows_read();
            self.update(&run.id, |r| r.nodes[i].state = "RUNNING".into())?;
            let query = format!("WITH {} {}", named.join(", "), graph::transform_sql(node, &schemas)?);
            let mut report = |p: &QueryProgress| {
                let _ = self.update(&run.id, |r| {
                    r.nodes[i].records_read = bookmarks.rows_read() - rows_before;
                    r.nodes[i].bytes_read = p.bytes_scanned;
                    r.nodes[i].millis = p.elapsed.as_millis() as u64;
                });
            };
            let mut watch = Watch { after: Duration::ZERO, every: Duration::from_millis(200), report: &mut report };
            let outcome = async {
                let (schema, batches) = self.sql.collect_bookmarked(&query, DATABASE, Some(&mut watch), bookmarks.clone()).await?;
                let batch = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| crate::internal_err!("{e}"))?;
                let location = match (&target.path, &target.catalog) {
                    (Some(path), _) => path.clone(),
                    (None, Some((db, table))) => self.sql_table_location(db, table)?,
                    (None, None) => return Err(service_err!(InvalidInputException, "no Path to write to")),
                };
                let spec = TargetSpec {
                    location,
                    format: target.format.clone(),
                    compression: target.compression.clone(),
                    partition_keys: target.partition_keys.clone(),
                    catalog: target.catalog.clone(),
                };
                self.sql.write_target(&spec, &batch, &format!("{}-{}", run.id, node.id)).await
            }
            .await;
            let millis = started.elapsed().as_millis() as u64;
            match outcome {
                Ok(written) => self.update(&run.id, |r| {
                    let n = &mut r.nodes[i];
                    n.state = "SUCCEEDED".into();
                    n.records_written = written as u64;
                    n.records_read = bookmarks.rows_read() - rows_before;
                    n.millis = millis;
                })?,
                Err(e) => {
                    self.update(&run.id, |r| {
                        r.nodes[i].state = "FAILED".into();
                        r.nodes[i].millis = millis;
                    })?;
                    return Err(in_node(node.label(), e));
                }
            }
        }
        // Sources read what their table's scans produced; transforms ran inside the targets.
        self.update(&run.id, |r| {
            for (i, node) in graph.nodes.iter().enumerate() {
                if let Kind::CatalogSource { database, table } = &node.kind {
                    r.nodes[i].records_read = bookmarks.counter(&format!("{database}.{table}")).load(std::sync::atomic::Ordering::Relaxed);
                }
                if !node.is_target() {
                    r.nodes[i].state = "SUCCEEDED".into();
                }
            }
        })
    }

    fn sql_table_location(&self, db: &str, table: &str) -> Result<String> {
        Ok(self.catalog.table(db, table)?.definition.location)
    }
}

/// An error of a node's query, named by the node.
fn in_node(label: String, e: Error) -> Error {
    let hint = e.hint().map(str::to_string);
    let named = Error::service(e.code(), format!("{label}: {}", e.message()));
    match hint {
        Some(h) => named.with_hint(h),
        None => named,
    }
}
