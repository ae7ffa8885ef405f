//! The slice storage: a table version's Parquet slices (distribution, sort order, zone maps)
//! and committing the next version, and the cluster as DataFusion sees it for a query.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use datafusion::arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::physical_plan::ExecutionPlan;
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

/// Rows per Parquet row group: the granularity of the min/max "zone maps".
const ROW_GROUP_ROWS: usize = 16 * 1024;

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
            // One partition per slice, as the cluster's slices each scan their own data.
            .with_target_partitions(c.slices() as usize)
            .with_collect_statistics(true);
        let ctx = SessionContext::new_with_config_rt(config, crate::query::memory::runtime());
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
        // Strings are scanned as views (cheaper to decode and to group by), as the lake's
        // tables are; `expand_views_at_output` gives results plain strings.
        let schema = t.arrow_schema()?;
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| if f.data_type() == &DataType::Utf8 { f.as_ref().clone().with_data_type(DataType::Utf8View) } else { f.as_ref().clone() })
            .collect();
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(Arc::new(Schema::new(fields)));
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
            if slice.num_rows() == 0 {
                continue;
            }
            let bytes = parquet_bytes(&slice, ROW_GROUP_ROWS)?;
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

/// Which rows go to which slice.
fn distribute(meta: &TableMeta, all: &RecordBatch, slices: usize) -> Result<Vec<Vec<u64>>> {
    let mut out = vec![Vec::new(); slices];
    match (meta.diststyle, &meta.distkey) {
        (DistStyle::Key, Some(key)) => {
            let column = all.column_by_name(key).cloned().ok_or_else(|| internal_err!("DISTKEY {key} is not a column"))?;
            let converter = RowConverter::new(vec![SortField::new(column.data_type().clone())]).map_err(|e| internal_err!("{e}"))?;
            let rows = converter.convert_columns(&[column]).map_err(|e| internal_err!("{e}"))?;
            for (i, row) in rows.iter().enumerate() {
                let slice = crc32fast::hash(row.as_ref()) as usize % slices;
                out[slice].push(i as u64);
            }
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

pub(super) fn parquet_bytes(batch: &RecordBatch, row_group: usize) -> Result<Bytes> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group))
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
