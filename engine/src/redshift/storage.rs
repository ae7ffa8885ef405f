//! The slice storage: a table version's Parquet slices (distribution, sort order, zone maps)
//! and committing the next version, and the cluster as DataFusion sees it for a query.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use datafusion::arrow::compute::{SortColumn, cast, concat_batches, lexsort_to_indices, take};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::common::Column as ColumnName;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::logical_expr::{Expr, Partitioning};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::prelude::{SessionContext, col};
use datafusion::sql::sqlparser::ast;

use super::model::{Cluster, DATABASE, DEFAULT_SCHEMA, DistStyle, Outcome, TableMeta};
use super::parse::{split_name, top_as_limit};
use super::system::{last_query_udf, system_tables};
use super::types::conform;
use super::{Redshift, find, missing_table};
use crate::error::{Result, closest};
use crate::query::{GlueCatalogProvider, Watch, collect_watched};
use crate::{internal_err, service_err};

/// Rows per Parquet row group. Redshift's zone maps are the min/max of each 1 MB block;
/// here they are the page index's min/max of each data page (`ZONE_ROWS` rows), which
/// DataFusion prunes by as it prunes row groups. Row groups stay large: with one per 16 K
/// rows (the zone maps before), the per-row-group work of the reader made the loaded TPC-H
/// queries 1.04x DuckDB's time; with 1 M-row groups and 16 K-row pages, 0.76x (bench/redshift.py).
const ROW_GROUP_ROWS: usize = 1024 * 1024;
/// Rows per data page: the granularity of the zone maps (see `ROW_GROUP_ROWS`).
const ZONE_ROWS: usize = 16 * 1024;

impl Redshift {
    /// Runs a query and reports the bytes its scans read, split between managed storage and
    /// the lake (Spectrum).
    pub(super) async fn query(&self, cluster: &str, sql: &str) -> Result<Outcome> {
        self.query_watched(cluster, sql, None).await
    }

    /// [`query`](Self::query), reporting its progress to `watch` from `watch.after` on.
    pub(super) async fn query_watched(&self, cluster: &str, sql: &str, watch: Option<&mut Watch<'_>>) -> Result<Outcome> {
        let started = std::time::Instant::now();
        let c = self.describe(cluster)?;
        let ctx = self.context(&c)?;
        let sql = &top_as_limit(sql);
        let df = ctx.sql(sql).await.map_err(|e| self.sql_error(&c, e, sql))?;
        let plan = df.create_physical_plan().await.map_err(|e| self.sql_error(&c, e, sql))?;
        let batches = collect_watched(&plan, ctx.task_ctx(), started, watch, |e| self.sql_error(&c, e, sql), |_| Ok(())).await?;
        let (local_bytes, spectrum_bytes) = scanned(plan.as_ref());
        Ok(Outcome { query_id: 0, schema: plan.schema(), batches, message: None, local_bytes, spectrum_bytes, rows_loaded: None, elapsed: Duration::ZERO })
    }

    fn sql_error(&self, c: &Cluster, e: datafusion::error::DataFusionError, sql: &str) -> crate::Error {
        let err = crate::query::sql_error(e, sql);
        let text = err.message();
        if let Some(name) = text.split("table '").nth(1).and_then(|r| r.split('\'').next()) {
            let name = name.trim_start_matches(&format!("{DATABASE}.")).to_string();
            let mut known: Vec<String> = c.tables.iter().map(TableMeta::qualified).collect();
            known.extend(c.tables.iter().filter(|t| t.schema == DEFAULT_SCHEMA).map(|t| t.name.clone()));
            let known: Vec<&str> = known.iter().map(String::as_str).collect();
            let mut err = service_err!(UndefinedTable, "relation \"{name}\" does not exist");
            if let Some(s) = closest(&name, &known) {
                err = err.with_hint(format!("did you mean {s}?"));
            }
            return err;
        }
        err
    }

    /// The cluster as DataFusion sees it: catalog `dev`, a schema per cluster schema with its
    /// managed tables (one partition per slice), Spectrum schemas from the Data Catalog, and
    /// the system tables in `public`.
    fn context(&self, c: &Cluster) -> Result<SessionContext> {
        let config = crate::query::tuned_config()
            .with_default_catalog_and_schema(DATABASE, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            // One partition per slice, as the cluster's slices each scan their own data. KEY
            // tables declare Hash partitioning with this count (see `declared_key`); nothing
            // may turn on `preserve_file_partitions`, which would declare Hive-partitioned lake
            // scans Hash partitioned too without their rows being placed by the hash.
            .with_target_partitions(c.slices() as usize)
            .with_collect_statistics(true);
        let ctx = crate::query::context(config);
        ctx.register_udf(crate::query::clock_fn::now_udf(self.clock.clone()));
        ctx.register_udf(last_query_udf(c.last_query.saturating_sub(1)));
        let catalog = MemoryCatalogProvider::new();
        let df = |e: datafusion::error::DataFusionError| internal_err!("the cluster's catalog: {e}");
        for schema in &c.schemas {
            let provider = MemorySchemaProvider::new();
            for t in c.tables.iter().filter(|t| &t.schema == schema) {
                provider.register_table(t.name.clone(), self.table_provider(c, t)?).map_err(df)?;
            }
            if schema == DEFAULT_SCHEMA {
                for (name, batch) in system_tables(c, &self.catalog)? {
                    if c.table(DEFAULT_SCHEMA, name).is_none() {
                        provider.register_table(name.to_string(), Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(df)?)).map_err(df)?;
                    }
                }
            }
            catalog.register_schema(schema, Arc::new(provider)).map_err(df)?;
        }
        if !c.external_schemas.is_empty() {
            let glue = GlueCatalogProvider { catalog: self.catalog.clone(), lake: self.lake.clone(), temp_views: Arc::default(), streams: self.streams.clone(), bookmarks: None };
            for e in &c.external_schemas {
                if let Some(schema) = glue.schema(&e.database) {
                    catalog.register_schema(&e.name, schema).map_err(df)?;
                }
            }
        }
        ctx.register_catalog(DATABASE, Arc::new(catalog));
        Ok(ctx)
    }

    pub(super) fn table_dir(&self, cluster: &str, t: &TableMeta) -> PathBuf {
        self.dir.join(cluster).join(format!("{}.{}", t.schema, t.name))
    }

    fn table_provider(&self, c: &Cluster, t: &TableMeta) -> Result<Arc<dyn datafusion::datasource::TableProvider>> {
        let dir = self.table_dir(&c.name, t).join(format!("v{}", t.version));
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        let url = ListingTableUrl::parse(format!("file://{}/", dir.display())).map_err(|e| internal_err!("{e}"))?;
        let mut options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        if !t.sortkey.is_empty() && t.diststyle != DistStyle::All {
            options = options.with_file_sort_order(vec![t.sortkey.iter().map(|k| col(k).sort(true, false)).collect()]);
        }
        let schema = scan_schema(t.arrow_schema()?.as_ref());
        if let Some(key) = declared_key(c, t, &schema, &dir) {
            // Slice file i holds exactly the rows DataFusion's hash repartitioning sends to
            // partition i, so joins and aggregations on the key need not move rows.
            let slices = t.slice_rows.len();
            options = options.with_output_partitioning(Some(Partitioning::Hash(vec![Expr::Column(ColumnName::new_unqualified(key))], slices)));
        }
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
        Ok(Arc::new(ListingTable::try_new(config).map_err(|e| internal_err!("{e}"))?))
    }

    /// Lays `batches` out as the table's next version and commits it; replaces `previous`.
    pub(super) fn commit(&self, c: &Cluster, meta: TableMeta, previous: Option<&TableMeta>, batches: &[RecordBatch]) -> Result<TableMeta> {
        self.commit_noting(c, meta, previous, batches, |_| {})
    }

    /// [`commit`](Self::commit), making `note`'s change to the cluster's state (a COPY's
    /// `stl_load_commits` rows) in the same atomic state write as the new table version.
    pub(super) fn commit_noting(&self, c: &Cluster, mut meta: TableMeta, previous: Option<&TableMeta>, batches: &[RecordBatch], note: impl FnOnce(&mut Cluster)) -> Result<TableMeta> {
        let schema = meta.arrow_schema()?;
        meta.version = previous.map_or(1, |p| p.version + 1);
        let dir = self.table_dir(&c.name, &meta).join(format!("v{}", meta.version));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        // Query results come with the scan's string types (views come out as LargeUtf8).
        let batches = batches.iter().map(|b| conform(b, &schema)).collect::<Result<Vec<_>>>()?;
        let all = concat_batches(&schema, &batches).map_err(|e| internal_err!("{e}"))?;
        let slices = if meta.diststyle == DistStyle::All { 1 } else { c.slices() as usize };
        let assignment = distribute(&meta, &all, slices)?;
        meta.placement = match (meta.diststyle, &meta.distkey) {
            (DistStyle::Key, Some(key)) => schema.field_with_name(key).ok().and_then(|f| placement(&scan_type(f.data_type()), slices)),
            _ => None,
        };
        meta.slice_rows = vec![0; slices];
        meta.bytes = 0;
        for (s, rows) in assignment.iter().enumerate() {
            let indices = UInt64Array::from(rows.clone());
            let columns = all.columns().iter().map(|a| take(a.as_ref(), &indices, None)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| internal_err!("{e}"))?;
            let mut slice = RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?;
            if !meta.sortkey.is_empty() && slice.num_rows() > 1 {
                let keys: Vec<SortColumn> = meta.sortkey.iter().map(|k| SortColumn { values: slice.column_by_name(k).cloned().expect("sort key is a column"), options: None }).collect();
                let order = lexsort_to_indices(&keys, None).map_err(|e| internal_err!("{e}"))?;
                let columns = slice.columns().iter().map(|a| take(a.as_ref(), &order, None)).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| internal_err!("{e}"))?;
                slice = RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?;
            }
            meta.slice_rows[s] = slice.num_rows() as u64;
            // A declared partitioning maps the i-th file to slice i: KEY tables keep empty slices.
            if slice.num_rows() == 0 && meta.placement.is_none() {
                continue;
            }
            let bytes = parquet_bytes(&slice, SLICE_LAYOUT)?;
            meta.bytes += bytes.len() as u64;
            let path = dir.join(format!("slice-{s:04}.parquet"));
            std::fs::write(&path, &bytes).map_err(|e| crate::Error::io(&path, e))?;
        }
        if meta.diststyle == DistStyle::All {
            // every node holds the copy
            meta.bytes *= u64::from(c.nodes);
        }
        let committed = meta.clone();
        self.mutate(|state| {
            let i = find(state, &c.name)?;
            let cl = &mut state.clusters[i];
            cl.changed_bytes += meta.bytes;
            match cl.tables.iter().position(|t| t.schema == meta.schema && t.name == meta.name) {
                Some(i) => cl.tables[i] = meta,
                None => cl.tables.push(meta),
            }
            note(cl);
            Ok(())
        })?;
        if let Some(p) = previous {
            let _ = std::fs::remove_dir_all(self.table_dir(&c.name, p).join(format!("v{}", p.version)));
        }
        Ok(committed)
    }

    pub(super) fn table_meta(&self, cluster: &str, name: &ast::ObjectName) -> Result<(Cluster, TableMeta)> {
        let c = self.describe(cluster)?;
        let (schema, table) = split_name(name);
        let t = c.table(&schema, &table).cloned().ok_or_else(|| missing_table(&c, &schema, &table))?;
        Ok((c, t))
    }

    pub(super) async fn rows_of(&self, cluster: &str, select: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.query(cluster, select).await?.batches)
    }
}

/// The table as queries scan it: strings as views (cheaper to decode and to group by), as
/// the lake's tables are; `expand_views_at_output` gives results plain strings.
fn scan_schema(schema: &Schema) -> Arc<Schema> {
    let fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone().with_data_type(scan_type(f.data_type()))).collect();
    Arc::new(Schema::new(fields))
}

/// A column's type as the scan reads it (see [`scan_schema`]).
fn scan_type(stored: &DataType) -> DataType {
    if stored == &DataType::Utf8 { DataType::Utf8View } else { stored.clone() }
}

/// Which rows go to which slice. KEY places a row where DataFusion's hash repartitioning
/// into `slices` partitions would send its key (as the scan reads it), so a query can take
/// the slices as hash partitioned on the key.
fn distribute(meta: &TableMeta, all: &RecordBatch, slices: usize) -> Result<Vec<Vec<u64>>> {
    let mut out = vec![Vec::new(); slices];
    match (meta.diststyle, &meta.distkey) {
        (DistStyle::Key, Some(key)) => {
            let column = all.column_by_name(key).cloned().ok_or_else(|| internal_err!("DISTKEY {key} is not a column"))?;
            let column = cast(&column, &scan_type(column.data_type())).map_err(|e| internal_err!("{e}"))?;
            out = hash_slices(&column, slices)?;
        }
        (DistStyle::All, _) => out[0] = (0..all.num_rows() as u64).collect(),
        _ => {
            for i in 0..all.num_rows() {
                out[i % slices].push(i as u64);
            }
        }
    }
    Ok(out)
}

/// The rows of `keys` each of `slices` partitions gets from DataFusion's hash repartitioning
/// (the partitioner its `RepartitionExec` uses), as row numbers in order.
fn hash_slices(keys: &ArrayRef, slices: usize) -> Result<Vec<Vec<u64>>> {
    let df = |e: datafusion::error::DataFusionError| internal_err!("distributing by key: {e}");
    let schema = Arc::new(Schema::new(vec![Field::new("k", keys.data_type().clone(), true), Field::new("i", DataType::UInt64, false)]));
    let rows = Arc::new(UInt64Array::from_iter_values(0..keys.len() as u64));
    let batch = RecordBatch::try_new(schema, vec![keys.clone(), rows]).map_err(|e| internal_err!("{e}"))?;
    let mut partitioner = BatchPartitioner::new_hash_partitioner(vec![Arc::new(Column::new("k", 0))], slices, Time::new()).map_err(df)?;
    let mut out = vec![Vec::new(); slices];
    partitioner
        .partition(batch, |p, part| {
            out[p].extend_from_slice(part.column(1).as_primitive::<UInt64Type>().values());
            Ok(())
        })
        .map_err(df)?;
    Ok(out)
}

/// How this build places keys of type `key` in `slices` slices: a checksum of DataFusion's
/// version and of where a fixed probe of such values goes (512 numbers in that type, strings
/// longer than a view's 12 inline bytes, a null). `None` when the probe cannot be made in that
/// type (then the partitioning is never declared).
fn placement(key: &DataType, slices: usize) -> Option<u32> {
    let wide: ArrayRef = Arc::new(Int64Array::from_iter_values(-256..256));
    let narrow: ArrayRef = Arc::new(Int32Array::from_iter_values(-256..256));
    let mut probe = vec![cast(&wide, key).or_else(|_| cast(&narrow, key)).ok()?];
    if matches!(key, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) {
        let long: ArrayRef = Arc::new(arrow_array::StringArray::from_iter_values((0..64).map(|i| format!("a longer key, number {i:04}"))));
        probe.push(cast(&long, key).ok()?);
    }
    probe.push(arrow_array::new_null_array(key, 1));
    let probe = datafusion::arrow::compute::concat(&probe.iter().map(AsRef::as_ref).collect::<Vec<_>>()).ok()?;
    let placed = hash_slices(&probe, slices).ok()?;
    let mut sum = crc32fast::Hasher::new();
    sum.update(datafusion::DATAFUSION_VERSION.as_bytes());
    for rows in placed {
        sum.update(&(rows.len() as u64).to_le_bytes());
        rows.iter().for_each(|r| sum.update(&r.to_le_bytes()));
    }
    Some(sum.finalize())
}

/// The DISTKEY a query may take the table as hash partitioned on: a KEY table placed the way
/// this build places keys, whose version directory (`dir`) holds exactly one file per slice
/// (the scan gives file i, in path order, to partition i).
fn declared_key<'t>(c: &Cluster, t: &'t TableMeta, scanned: &Schema, dir: &std::path::Path) -> Option<&'t str> {
    let key = t.distkey.as_deref().filter(|_| t.diststyle == DistStyle::Key && t.version > 0)?;
    let slices = c.slices() as usize;
    let written = t.placement?;
    if t.slice_rows.len() != slices || placement(scanned.field_with_name(key).ok()?.data_type(), slices) != Some(written) {
        return None;
    }
    let mut files: Vec<String> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".parquet")).collect();
    files.sort();
    (files.len() == slices && files.iter().enumerate().all(|(s, name)| *name == format!("slice-{s:04}.parquet"))).then_some(key)
}

/// Managed slices are LZ4-compressed: every query decodes them, and LZ4 decodes several times
/// faster than ZSTD (the loaded TPC-H queries took 1.45x DuckDB's time with ZSTD, 1.15x with
/// LZ4, bench/redshift.py). UNLOAD writes Snappy, its documented default.
const SLICE_CODEC: parquet::basic::Compression = parquet::basic::Compression::LZ4_RAW;

/// How a slice (or UNLOAD's part) file is written: rows per row group and per data page,
/// the dictionary page's size limit and the codec.
#[derive(Clone, Copy)]
pub(super) struct Layout {
    pub row_group: usize,
    pub page_rows: usize,
    pub dictionary_bytes: usize,
    pub codec: parquet::basic::Compression,
}

/// Managed slices: see `ROW_GROUP_ROWS`, `ZONE_ROWS`, `SLICE_CODEC`. The dictionary is kept
/// to 64 KiB, so a column of many distinct values (a sort key above all) soon falls back to
/// plain pages: one dictionary for a whole 1 M-row group would be read for every zone a
/// query keeps (a 200,000-row table read 858 KB for a one-zone query with parquet's 1 MiB
/// default, 92 KB with this), and it is no slower (bench/redshift.py 0.73-0.76x DuckDB both ways).
const SLICE_LAYOUT: Layout = Layout { row_group: ROW_GROUP_ROWS, page_rows: ZONE_ROWS, dictionary_bytes: 64 << 10, codec: SLICE_CODEC };

pub(super) fn parquet_bytes(batch: &RecordBatch, layout: Layout) -> Result<Bytes> {
    let Layout { row_group, page_rows, dictionary_bytes, codec } = layout;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(row_group))
        .set_data_page_row_count_limit(page_rows)
        .set_dictionary_page_size_limit(dictionary_bytes)
        .build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).map_err(|e| internal_err!("parquet: {e}"))?;
    writer.write(batch).map_err(|e| internal_err!("parquet: {e}"))?;
    writer.close().map_err(|e| internal_err!("parquet: {e}"))?;
    Ok(Bytes::from(out))
}

/// Bytes read by the plan's scans: (managed storage, lake).
fn scanned(plan: &dyn ExecutionPlan) -> (u64, u64) {
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    let (mut local, mut lake) = (0, 0);
    if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
        let bytes = crate::query::bytes_scanned(plan);
        let is_lake = exec.data_source().downcast_ref::<FileScanConfig>().is_some_and(|c| c.object_store_url.as_str().starts_with("s3://"));
        if is_lake {
            lake += bytes;
        } else {
            local += bytes;
        }
        return (local, lake);
    }
    for child in plan.children() {
        let (l, s) = scanned(child.as_ref());
        local += l;
        lake += s;
    }
    (local, lake)
}

#[cfg(test)]
mod tests {
    use datafusion::physical_plan::{collect, displayable};

    use super::*;

    async fn planned(ctx: &SessionContext, sql: &str) -> (String, String) {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        let rows = collect(plan, ctx.task_ctx()).await.unwrap();
        (text, datafusion::arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string())
    }

    fn repartitions(plan: &str) -> usize {
        plan.matches("RepartitionExec: partitioning=Hash").count()
    }

    /// A KEY table's slices are the partitions DataFusion's repartitioning would make: a join
    /// with an EVEN table, in the partitioned mode, moves only the EVEN side's rows and finds
    /// every match; a GROUP BY on a (string) key moves no rows and answers as over an EVEN copy;
    /// a table whose recorded placement this build does not reproduce is scanned as before.
    #[tokio::test]
    async fn key_slices_are_declared_as_hash_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let lb = crate::Lakebook::open(dir.path().join("ws")).unwrap();
        let rs = lb.redshift();
        rs.create_cluster("wh", 2, 1).unwrap();
        for (table, style) in [("keyed", "DISTKEY(k)"), ("named", "DISTKEY(s)"), ("even", "DISTSTYLE EVEN")] {
            rs.run("wh", &format!("CREATE TABLE {table} (k bigint, s varchar(8), n int) {style}")).await.unwrap();
            rs.run("wh", &format!("INSERT INTO {table} SELECT value AS k, 'k' || (value % 89) AS s, value AS n FROM generate_series(1, 5000)")).await.unwrap();
        }
        let c = rs.describe("wh").unwrap();
        let ctx = rs.context(&c).unwrap();
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            let optimizer = &mut state.config_mut().options_mut().optimizer;
            optimizer.hash_join_single_partition_threshold = 0;
            optimizer.hash_join_single_partition_threshold_rows = 0;
        }
        let (plan, rows) = planned(&ctx, "SELECT count(*) AS c, sum(a.n + b.n) AS s FROM keyed a JOIN even b ON a.k = b.k").await;
        assert!(plan.contains("mode=Partitioned"), "{plan}");
        assert_eq!(repartitions(&plan), 1, "only the EVEN side moves:\n{plan}");
        assert!(rows.contains("| 5000 | 25005000 |"), "every row finds its match:\n{rows}");

        let by = |table: &str| format!("SELECT s, count(*) AS c, sum(n) AS total FROM {table} GROUP BY s ORDER BY s");
        let (plan, by_key) = planned(&ctx, &by("named")).await;
        assert_eq!(repartitions(&plan), 0, "{plan}");
        let (plan, by_even) = planned(&ctx, &by("even")).await;
        assert_eq!(repartitions(&plan), 1, "{plan}");
        assert_eq!(by_key, by_even);
        assert_eq!(by_key.lines().count(), 89 + 4);

        let mut other = c.clone();
        for t in other.tables.iter_mut() {
            t.placement = t.placement.map(|p| p.wrapping_add(1));
        }
        let (plan, rows) = planned(&rs.context(&other).unwrap(), &by("named")).await;
        assert_eq!(repartitions(&plan), 1, "a placement this build does not make is not declared:\n{plan}");
        assert_eq!(rows, by_even);

        // nor is a version whose slice files are not exactly one per slice
        let dir = rs.table_dir("wh", c.table("public", "named").unwrap()).join(format!("v{}", c.table("public", "named").unwrap().version));
        std::fs::rename(dir.join("slice-0001.parquet"), dir.join("slice-0009.parquet")).unwrap();
        let (plan, _) = planned(&rs.context(&c).unwrap(), &by("named")).await;
        assert_eq!(repartitions(&plan), 1, "{plan}");
    }
}
