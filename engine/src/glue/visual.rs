//! Running a visual job: every node becomes a named query over its inputs (`graph.rs`), each
//! checked against the engine before anything is read, then each target's rows are computed
//! (sources read through the run's bookmark) and written to the lake.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;

use super::dynamic;
use super::graph::{self, Graph, Kind, ident};
use super::{Glue, JobRun, NodeMetrics};
use crate::error::{Error, Result};
use crate::query::{Bookmarks, QueryProgress, Watch};
use crate::service_err;
use crate::sql::{StagedWrite, TargetSpec};

/// The database a visual job's queries run in (its sources name theirs).
const DATABASE: &str = crate::catalog::DEFAULT_DATABASE;

impl Glue {
    /// Runs the graph; each target's rows are staged, to be committed with the run's end.
    pub(super) async fn execute_visual(&self, graph: &Graph, run: &JobRun, bookmarks: Arc<Bookmarks>) -> Result<Vec<StagedWrite>> {
        self.update(&run.id, |r| {
            r.nodes = graph.nodes.iter().map(|n| NodeMetrics { node: n.label(), state: "WAITING".into(), ..Default::default() }).collect();
        })?;
        // S3 sources are read first (their files, typed value by value, become the run's frames).
        let mut choices = graph::Choices::new();
        for node in &graph.nodes {
            if let Kind::S3Source { paths, format } = &node.kind {
                let rows = dynamic::read(&self.lake, paths, format, &node.id, &bookmarks).await.map_err(|e| in_node(node.label(), e))?;
                let table = datafusion::datasource::MemTable::try_new(rows.batch.schema(), vec![vec![rows.batch]]).map_err(|e| crate::internal_err!("{e}"))?;
                bookmarks.frames.lock().unwrap_or_else(|p| p.into_inner()).insert(node.id.clone(), Arc::new(table));
                choices.insert(node.id.clone(), rows.choices);
            }
        }
        // Every node's query, checked in order: a bad column fails here, naming its node.
        let mut schemas: BTreeMap<String, SchemaRef> = BTreeMap::new();
        let mut named: Vec<String> = Vec::new();
        let mut roots: BTreeMap<String, String> = BTreeMap::new();
        for node in graph.nodes.iter().filter(|n| !n.is_target()) {
            if let Kind::Relationalize { root } = &node.kind {
                // Its input is read once and numbered, so every frame gets the same join keys.
                let input = &node.inputs[0];
                let query = format!("WITH {} SELECT * FROM {}", named.join(", "), ident(input));
                let (schema, batches) = self.sql.collect_bookmarked(&query, DATABASE, None, bookmarks.clone()).await.map_err(|e| in_node(node.label(), e))?;
                let rows = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| crate::internal_err!("{e}"))?;
                let numbered = dynamic::with_ids(&rows)?;
                let table = datafusion::datasource::MemTable::try_new(numbered.schema(), vec![vec![numbered.clone()]]).map_err(|e| crate::internal_err!("{e}"))?;
                bookmarks.frames.lock().unwrap_or_else(|p| p.into_inner()).insert(node.id.clone(), Arc::new(table));
                schemas.insert(node.id.clone(), numbered.schema());
                roots.insert(node.id.clone(), root.clone());
                continue;
            }
            if let Kind::DropNullFields(nulls) = &node.kind {
                // Which fields are all null depends on the rows: the input is read once, and
                // the node's rows are it without those fields.
                let input = &node.inputs[0];
                let query = format!("WITH {} SELECT * FROM {}", named.join(", "), ident(input));
                let (schema, batches) = self.sql.collect_bookmarked(&query, DATABASE, None, bookmarks.clone()).await.map_err(|e| in_node(node.label(), e))?;
                let rows = datafusion::arrow::compute::concat_batches(&schema, &batches).map_err(|e| crate::internal_err!("{e}"))?;
                let keep = dynamic::non_null_columns(&rows, nulls)?;
                let kept = rows.project(&keep).map_err(|e| crate::internal_err!("{e}"))?;
                let table = datafusion::datasource::MemTable::try_new(kept.schema(), vec![vec![kept.clone()]]).map_err(|e| crate::internal_err!("{e}"))?;
                bookmarks.frames.lock().unwrap_or_else(|p| p.into_inner()).insert(node.id.clone(), Arc::new(table));
                if let Some(input) = choices.get(input).cloned() {
                    let kept_choices = input.into_iter().filter(|(name, _)| kept.schema().column_with_name(name).is_some()).collect();
                    choices.insert(node.id.clone(), kept_choices);
                }
                named.push(format!("{} AS ({})", ident(&node.id), graph::transform_sql(node, &schemas, &choices)?));
                schemas.insert(node.id.clone(), kept.schema());
                continue;
            }
            let sql = match &node.kind {
                Kind::SelectFromCollection { index } => {
                    let collection = &node.inputs[0];
                    let frame = format!("{}.{}.{}", crate::query::RUN_CATALOG, crate::query::RUN_SCHEMA, ident(collection));
                    let schema = schemas.get(collection).ok_or_else(|| crate::internal_err!("no rows for {collection}"))?;
                    dynamic::relationalize_sql(&frame, schema, &roots[collection], *index, &node.label())?
                }
                _ => graph::transform_sql(node, &schemas, &choices)?,
            };
            named.push(format!("{} AS ({sql})", ident(&node.id)));
            let query = format!("WITH {} SELECT * FROM {}", named.join(", "), ident(&node.id));
            let schema = self.sql.query_schema(&query, DATABASE, Some(bookmarks.clone())).await.map_err(|e| in_node(node.label(), e))?;
            // A choice column that a node passes on unchanged (same name, still text) stays a choice.
            if !matches!(node.kind, Kind::S3Source { .. } | Kind::ResolveChoice { .. } | Kind::ApplyMapping(_) | Kind::Aggregate { .. } | Kind::Sql { .. } | Kind::SelectFromCollection { .. })
                && let Some(input) = node.inputs.first().and_then(|i| choices.get(i)).cloned()
            {
                let kept = input.into_iter().filter(|(name, _)| schema.fields().iter().any(|f| f.name() == name && f.data_type() == &arrow_schema::DataType::Utf8)).collect();
                choices.insert(node.id.clone(), kept);
            }
            schemas.insert(node.id.clone(), schema);
        }
        let mut writes = Vec::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            let Kind::Target(target) = &node.kind else { continue };
            let started = Instant::now();
            self.update(&run.id, |r| r.nodes[i].state = "RUNNING".into())?;
            let query = format!("WITH {} {}", named.join(", "), graph::transform_sql(node, &schemas, &choices)?);
            let mut report = |p: &QueryProgress| {
                let _ = self.update(&run.id, |r| {
                    sources_read(graph, r, &bookmarks);
                    r.nodes[i].millis = p.elapsed.as_millis() as u64;
                });
            };
            let mut watch = Watch { after: Duration::ZERO, every: Duration::from_millis(200), report: &mut report };
            let outcome = async {
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
                self.staging_at(&run.id, &spec.location)?;
                // The rows are written as the query produces them.
                self.sql.write_target_query(&spec, &query, DATABASE, Some(&mut watch), bookmarks.clone(), &format!("{}-{}", run.id, node.id), &run.id).await
            }
            .await;
            let millis = started.elapsed().as_millis() as u64;
            match outcome {
                Ok(staged) => {
                    self.update(&run.id, |r| {
                        let n = &mut r.nodes[i];
                        n.state = "SUCCEEDED".into();
                        n.records_written = staged.rows;
                        n.millis = millis;
                    })?;
                    writes.push(staged);
                }
                Err(e) => {
                    self.node_failed(&run.id, i, millis)?;
                    return Err(in_node(node.label(), e));
                }
            }
        }
        // Transforms ran inside the targets' queries.
        self.update(&run.id, |r| {
            sources_read(graph, r, &bookmarks);
            for (i, node) in graph.nodes.iter().enumerate() {
                if !node.is_target() {
                    r.nodes[i].state = "SUCCEEDED".into();
                }
            }
        })?;
        Ok(writes)
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

/// Only sources read records (what their scans produced, each row once however many queries
/// it went through); transforms and targets take their inputs' rows, so a run's records read
/// is its sources'.
fn sources_read(graph: &Graph, run: &mut JobRun, bookmarks: &Bookmarks) {
    for (node, metrics) in graph.nodes.iter().zip(run.nodes.iter_mut()) {
        let counted = match &node.kind {
            Kind::CatalogSource { database, table } => format!("{database}.{table}"),
            Kind::S3Source { .. } => node.id.clone(),
            _ => continue,
        };
        metrics.records_read = bookmarks.counter(&counted).load(std::sync::atomic::Ordering::Relaxed);
        metrics.bytes_read = bookmarks.bytes_read(&counted);
    }
}
