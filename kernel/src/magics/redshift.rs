//! `%redshift`: Redshift-style warehouse clusters. SQL runs on a cluster with
//! `%%sql --cluster NAME` (or every `%sql` after `%redshift connect NAME`): managed tables
//! with DISTSTYLE and SORTKEY, COPY from the lake, UNLOAD back to it, Spectrum schemas over
//! the Data Catalog, and the system tables `stl_load_errors` and `svv_table_info`.

use std::sync::Arc;

use arrow_array::{ArrayRef, UInt32Array, UInt64Array};
use clap::{CommandFactory, Parser, Subcommand};
use lakebook_engine::Lakebook;
use lakebook_engine::redshift::Outcome;

use crate::render::{batch, strings, times};
use lakebook_engine::query::{QueryProgress, Watch};

use super::sql::{LiveProgress, PROGRESS_EVERY, View, show};
use super::{Body, Ctx, Form, MagicSpec};
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "redshift",
    summary: "Redshift-style warehouse clusters: managed columnar tables, COPY/UNLOAD, Spectrum",
    form: Form::Line,
    command: RedshiftArgs::command,
    body: Body::Data,
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(
    about = "Redshift-style warehouse clusters: managed columnar tables, COPY/UNLOAD, Spectrum",
    after_help = "Run SQL on a cluster with `%%sql --cluster NAME`, or `%redshift connect NAME` to send every %sql there\n\
                  (`%redshift disconnect` goes back to Athena). A cluster of N nodes has 2·N slices; tables are laid out\n\
                  across them by DISTSTYLE EVEN | KEY | ALL and sorted by SORTKEY. COPY t FROM 's3://…' FORMAT CSV | JSON 'auto' |\n\
                  PARQUET [IGNOREHEADER n] [DELIMITER ','] [GZIP] [MAXERROR n] loads from the lake (bad rows in stl_load_errors);\n\
                  UNLOAD ('SELECT …') TO 's3://…' [FORMAT PARQUET | CSV] [PARTITION BY (col)] writes to it;\n\
                  CREATE EXTERNAL SCHEMA s FROM DATA CATALOG DATABASE 'db' queries catalog tables in place (Spectrum)."
)]
pub struct RedshiftArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Create a cluster (≙ CreateCluster)
    Create {
        name: String,
        /// Compute nodes; each has 2 slices
        #[arg(long, default_value_t = 2)]
        nodes: u32,
        /// Days automated snapshots are kept (0-35; 0 = none)
        #[arg(long, default_value_t = 1)]
        retention: u32,
        /// If it exists already, keep it as it is instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List clusters (≙ DescribeClusters)
    List,
    /// A cluster's nodes, schemas and tables with their layout (≙ DescribeClusters + svv_table_info)
    Describe { name: String },
    /// Delete a cluster, its managed storage and automated snapshots (≙ DeleteCluster)
    Delete {
        name: String,
        /// Take a manual snapshot with this id first
        #[arg(long, value_name = "ID")]
        final_snapshot: Option<String>,
    },
    /// Take a manual snapshot, kept until deleted (≙ CreateClusterSnapshot)
    Snapshot { name: String, id: String },
    /// Automated and manual snapshots, of one cluster or all (≙ DescribeClusterSnapshots)
    Snapshots { name: Option<String> },
    /// Delete a manual snapshot (≙ DeleteClusterSnapshot)
    DeleteSnapshot { id: String },
    /// A new cluster from a snapshot (≙ RestoreFromClusterSnapshot)
    Restore {
        id: String,
        /// The new cluster's name
        #[arg(long = "as", value_name = "NAME")]
        cluster: String,
    },
    /// Send every %sql to this cluster
    Connect { name: String },
    /// Send %sql to Athena again
    Disconnect,
}

pub async fn run(args: RedshiftArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let redshift = engine.redshift();
    let out = ctx.out;
    match args.verb {
        Verb::Create { name, nodes, retention, if_not_exists } => {
            if if_not_exists && redshift.clusters().iter().any(|c| c.name == name) {
                super::kept(out, &format!("cluster {name}"));
                return Ok(None);
            }
            let c = redshift.create_cluster(&name, nodes, retention)?;
            out.stdout(&format!("Created cluster {} ({} node(s), {} slices, database {}): {}.\n", c.name, c.nodes, c.slices(), lakebook_engine::redshift::DATABASE, c.status()));
            Ok(None)
        }
        Verb::List => {
            let all = redshift.clusters();
            let table = batch(vec![
                ("cluster", strings(all.iter().map(|c| c.name.clone()))),
                ("status", strings(all.iter().map(|c| c.status().to_string()))),
                ("nodes", Arc::new(UInt32Array::from_iter_values(all.iter().map(|c| c.nodes))) as ArrayRef),
                ("tables", Arc::new(UInt32Array::from_iter_values(all.iter().map(|c| c.tables.len() as u32)))),
                ("created", times(all.iter().map(|c| Some(c.created.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::default(), &Footer::default())))
        }
        Verb::Describe { name } => {
            let c = redshift.describe(&name)?;
            let external: Vec<String> = c.external_schemas.iter().map(|e| format!("{} → Data Catalog database {}", e.name, e.database)).collect();
            out.stdout(&format!(
                "{}: {}, {} node(s), {} slices; schemas: {}{}\n",
                c.name,
                c.status(),
                c.nodes,
                c.slices(),
                c.schemas.join(", "),
                if external.is_empty() { String::new() } else { format!("; external: {}", external.join(", ")) }
            ));
            let t = &c.tables;
            let table = batch(vec![
                ("table", strings(t.iter().map(|t| t.qualified()))),
                ("diststyle", strings(t.iter().map(|t| t.diststyle_text()))),
                ("sortkey", strings(t.iter().map(|t| t.sortkey.join(", ")))),
                ("rows", Arc::new(UInt64Array::from_iter_values(t.iter().map(|t| t.rows()))) as ArrayRef),
                ("rows_per_slice", strings(t.iter().map(|t| t.slice_rows.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")))),
                ("size", strings(t.iter().map(|t| lakebook_engine::human_bytes(t.bytes)))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::default(), &Footer::default())))
        }
        Verb::Snapshot { name, id } => {
            let s = redshift.create_snapshot(&name, &id)?;
            out.stdout(&format!("Snapshot {} of {} taken ({} table(s), {}); kept until deleted.\n", s.id, s.cluster, s.state.tables.len(), lakebook_engine::human_bytes(s.bytes)));
            Ok(None)
        }
        Verb::Snapshots { name } => {
            if let Some(n) = &name
                && redshift.snapshots(Some(n)).is_empty()
            {
                redshift.describe(n)?; // a cluster that never existed is an error; one without snapshots is not
            }
            let all = redshift.snapshots(name.as_deref());
            let table = batch(vec![
                ("snapshot", strings(all.iter().map(|s| s.id.clone()))),
                ("cluster", strings(all.iter().map(|s| s.cluster.clone()))),
                ("type", strings(all.iter().map(|s| lakebook_engine::serde_name(&s.snapshot_type)))),
                ("created", times(all.iter().map(|s| Some(s.created.timestamp_millis())))),
                ("expires", times(all.iter().map(|s| s.expires.map(|e| e.timestamp_millis())))),
                ("tables", Arc::new(UInt32Array::from_iter_values(all.iter().map(|s| s.state.tables.len() as u32))) as ArrayRef),
                ("size", strings(all.iter().map(|s| lakebook_engine::human_bytes(s.bytes)))),
            ])?;
            Ok(Some(render::table(&table, &TableOptions::plain(), &Footer::default())))
        }
        Verb::DeleteSnapshot { id } => {
            let s = redshift.delete_snapshot(&id)?;
            out.stdout(&format!("Deleted snapshot {}.\n", s.id));
            Ok(None)
        }
        Verb::Restore { id, cluster } => {
            let c = redshift.restore(&id, &cluster)?;
            out.stdout(&format!("Restored snapshot {id} as cluster {} ({} table(s)): {}.\n", c.name, c.tables.len(), c.status()));
            Ok(None)
        }
        Verb::Delete { name, final_snapshot } => {
            let c = redshift.delete_cluster(&name, final_snapshot.as_deref())?;
            if ctx.state.redshift_cluster.as_deref() == Some(c.name.as_str()) {
                ctx.state.redshift_cluster = None;
            }
            out.stdout(&format!("Deleted cluster {} and its {} table(s).\n", c.name, c.tables.len()));
            Ok(None)
        }
        Verb::Connect { name } => {
            let c = redshift.describe(&name)?;
            ctx.state.redshift_cluster = Some(c.name.clone());
            out.stdout(&format!("%sql now runs on Redshift cluster {} (database {}); `%redshift disconnect` goes back to Athena.\n", c.name, lakebook_engine::redshift::DATABASE));
            Ok(None)
        }
        Verb::Disconnect => {
            ctx.state.redshift_cluster = None;
            out.stdout("%sql runs on Athena again.\n");
            Ok(None)
        }
    }
}

/// `%sql` on a cluster: every statement's message is printed; the last query's rows are shown.
pub async fn sql(engine: &Lakebook, cluster: &str, sql: &str, view: View, ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    // A query running longer than `sql.progress_after` shows its progress, as on Athena.
    let mut live = LiveProgress::new(ctx.out);
    let mut report = |p: &QueryProgress| live.report(p);
    let mut watch = Watch { after: ctx.state.sql_progress_after, every: PROGRESS_EVERY, report: &mut report };
    let ran = engine.redshift().run_watched(cluster, sql, Some(&mut watch)).await;
    let outcomes = match ran {
        Ok(outcomes) => outcomes,
        Err(e) => {
            live.finish(&format!("query failed: {}", e.code()));
            return Err(e.into());
        }
    };
    let (last, earlier) = outcomes.split_last().ok_or_else(|| CellError::bug("statements ran but returned nothing"))?;
    let mut text = String::new();
    for (i, o) in earlier.iter().enumerate() {
        match &o.message {
            Some(m) => text.push_str(&format!("{m}\n")),
            None => text.push_str(&format!("statement {}: {} row(s), {} ms\n", i + 1, o.batches.iter().map(|b| b.num_rows()).sum::<usize>(), o.elapsed.as_millis())),
        }
    }
    let footer = footer(cluster, last);
    if let Some(m) = &last.message {
        text.push_str(&format!("{m}\n{}\n", footer.facts()));
        live.finish_or_print(&text);
        return Ok(None);
    }
    live.finish(&footer.text(last.batches.iter().map(|b| b.num_rows()).sum(), last.schema.fields().len()));
    if !text.is_empty() {
        ctx.out.stdout(&text);
    }
    let batch = arrow_select::concat::concat_batches(&last.schema, &last.batches).unwrap_or_else(|_| arrow_array::RecordBatch::new_empty(last.schema.clone()));
    show(batch, footer, view, ctx)
}

fn footer(cluster: &str, o: &Outcome) -> Footer {
    let mut extra = vec![format!("query {} on {cluster}", o.query_id)];
    if o.spectrum_bytes > 0 {
        extra.push(format!("Spectrum scanned {} of the lake", lakebook_engine::human_bytes(o.spectrum_bytes)));
    }
    Footer { elapsed: Some(o.elapsed), bytes_scanned: Some(o.local_bytes + o.spectrum_bytes), extra }
}
