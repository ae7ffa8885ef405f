//! DataFusion sees the Data Catalog: databases are schemas, catalog tables are scans over
//! their lake location. Partitions come from the catalog, as in Athena, so named (`year=`)
//! and unnamed (`partition_0`) layouts both prune: filters on partition keys are evaluated
//! against the catalog's partition list before a single file is listed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session};
use datafusion::common::{DFSchema, ScalarValue, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use futures::{StreamExt, TryStreamExt, stream};

use object_store::ObjectStore;

use super::spelling::{RespellExec, Spellings, json_spellings, lower_nested};
use crate::catalog::types::arrow_type;
use crate::catalog::{Catalog, Format, Table};
use crate::lake::{Lake, S3Uri};
use crate::streams::Streams;

/// How many of a JSON table's files are sampled for their keys' spellings.
const JSON_FILES_SAMPLED: usize = 4;

/// Results kept with `--output NAME`: visible by bare name from every database.
pub type TempViews = Arc<Mutex<BTreeMap<String, Arc<dyn TableProvider>>>>;

#[derive(Debug)]
pub struct GlueCatalogProvider {
    pub catalog: Arc<Catalog>,
    pub lake: Arc<Lake>,
    pub temp_views: TempViews,
    pub streams: Arc<Streams>,
    /// A Glue job run's bookmark: files its earlier runs processed are skipped.
    pub bookmarks: Option<Arc<Bookmarks>>,
}

/// What a Glue job's bookmark says and what a run reads: per source table (`db.table`), the
/// files processed (`s3://…` → last-modified time in ms). A scan skips a file whose time is
/// the one processed (a rewritten file is read again, as Glue's S3 bookmarks do) and notes
/// every file it reads, so a successful run's bookmark is `done` plus `read`.
#[derive(Debug, Default)]
pub struct Bookmarks {
    pub done: BTreeMap<String, BTreeMap<String, i64>>,
    pub read: Mutex<BTreeMap<String, BTreeMap<String, i64>>>,
    /// Rows the run's scans produced, per source table.
    pub rows: Mutex<BTreeMap<String, Arc<std::sync::atomic::AtomicU64>>>,
    /// The size of each file the run's scans read, per source table: its bytes read.
    pub sizes: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    /// Rows the run read itself (S3 JSON sources), visible to its queries as
    /// `lakebook_run.frames."<node id>"`.
    pub frames: Mutex<BTreeMap<String, Arc<dyn TableProvider>>>,
}

/// The catalog and schema a Glue run's own frames are in.
pub const RUN_CATALOG: &str = "lakebook_run";
pub const RUN_SCHEMA: &str = "frames";

impl Bookmarks {
    /// No bookmark, only extra tables visible as `lakebook_run.frames."<name>"`.
    pub fn with_frames(frames: BTreeMap<String, Arc<dyn TableProvider>>) -> Self {
        Self { frames: Mutex::new(frames), ..Self::default() }
    }

    /// The row counter of a source table's scans.
    pub fn counter(&self, table: &str) -> Arc<std::sync::atomic::AtomicU64> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).entry(table.to_string()).or_default().clone()
    }

    /// Rows read from every source so far.
    pub fn rows_read(&self) -> u64 {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).values().map(|c| c.load(std::sync::atomic::Ordering::Relaxed)).sum()
    }

    /// Whether a scan of `table` reads this file (and notes it, with its size, if so).
    pub fn reads(&self, table: &str, file: &str, modified_ms: i64, size: u64) -> bool {
        if self.done.get(table).and_then(|files| files.get(file)) == Some(&modified_ms) {
            return false;
        }
        self.read.lock().unwrap_or_else(|p| p.into_inner()).entry(table.to_string()).or_default().insert(file.to_string(), modified_ms);
        self.sizes.lock().unwrap_or_else(|p| p.into_inner()).entry(table.to_string()).or_default().insert(file.to_string(), size);
        true
    }

    /// Bytes of the files the run's scans read, every table's.
    pub fn all_bytes_read(&self) -> u64 {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner()).values().flat_map(|files| files.values()).sum()
    }

    /// Bytes of the files the run's scans of `table` read (each file once).
    pub fn bytes_read(&self, table: &str) -> u64 {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner()).get(table).map_or(0, |files| files.values().sum())
    }
}

impl CatalogProvider for GlueCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.catalog.databases().into_iter().map(|d| d.name).collect();
        if !names.iter().any(|n| n == super::streams::SCHEMA) {
            names.push(super::streams::SCHEMA.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        // A Glue database named `streams` wins over the streams schema.
        if name == super::streams::SCHEMA && self.catalog.tables(name).is_err() {
            return Some(Arc::new(super::streams::StreamsSchema { streams: self.streams.clone() }));
        }
        self.catalog.tables(name).ok()?;
        Some(Arc::new(GlueSchema {
            database: name.to_string(),
            catalog: self.catalog.clone(),
            lake: self.lake.clone(),
            temp_views: self.temp_views.clone(),
            bookmarks: self.bookmarks.clone(),
        }))
    }
}

#[derive(Debug)]
struct GlueSchema {
    database: String,
    catalog: Arc<Catalog>,
    lake: Arc<Lake>,
    temp_views: TempViews,
    bookmarks: Option<Arc<Bookmarks>>,
}

#[async_trait]
impl SchemaProvider for GlueSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.catalog.tables(&self.database).unwrap_or_default().into_iter().map(|t| t.name).collect();
        names.extend(self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned());
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(view) = self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(Some(view.clone()));
        }
        // Athena's `"table$partitions"`: a row of partition values per partition.
        if let Some(base) = name.strip_suffix("$partitions") {
            return match self.catalog.table(&self.database, base) {
                Ok(table) if !table.deprecated && !table.definition.partition_keys.is_empty() => Ok(Some(partitions_table(&table)?)),
                _ => Ok(None),
            };
        }
        match self.catalog.table(&self.database, name) {
            Ok(table) if !table.deprecated => {
                let mut scan = CatalogTable::new(table, self.lake.clone())?;
                scan.bookmarks = self.bookmarks.clone();
                Ok(Some(Arc::new(scan)))
            }
            _ => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).contains_key(name)
            || self.catalog.table(&self.database, name).is_ok_and(|t| !t.deprecated)
    }
}

/// The partitions of a table as rows of its partition keys, typed as the keys are, in
/// partition order (Athena's `$partitions` metadata table).
fn partitions_table(table: &Table) -> DfResult<Arc<dyn TableProvider>> {
    let keys = &table.definition.partition_keys;
    let fields = keys
        .iter()
        .map(|k| arrow_type(&k.data_type).map(|t| Field::new(&k.name, t, true)).map_err(|e| DataFusionError::Plan(e.message())))
        .collect::<DfResult<Vec<_>>>()?;
    let schema = Arc::new(Schema::new(fields));
    let partitions: Vec<_> = table.partitions.values().filter(|p| !p.deprecated).collect();
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let text: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(partitions.iter().map(|p| p.values.get(i).cloned()).collect::<Vec<_>>()));
            datafusion::arrow::compute::cast(&text, f.data_type()).map_err(DataFusionError::from)
        })
        .collect::<DfResult<Vec<_>>>()?;
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]])?))
}

/// A catalog table as a DataFusion scan.
#[derive(Debug)]
pub struct CatalogTable {
    table: Table,
    lake: Arc<Lake>,
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    bookmarks: Option<Arc<Bookmarks>>,
}

impl CatalogTable {
    pub fn new(table: Table, lake: Arc<Lake>) -> DfResult<Self> {
        let plan_err = |e: crate::Error| DataFusionError::Plan(format!("{}: {}", table.qualified_name(), e.message()));
        let parquet = matches!(table.definition.format, Format::Parquet);
        let mut file_fields = Vec::new();
        for c in &table.definition.columns {
            let data_type = match arrow_type(&c.data_type).map_err(plan_err)? {
                // Parquet strings are read as views, as `register_parquet` does
                // (`schema_force_view_types`): no copy out of the decoded pages, and faster
                // filters, joins and grouping. `expand_views_at_output` turns results back into
                // plain strings.
                DataType::Utf8 if parquet => DataType::Utf8View,
                DataType::Binary if parquet => DataType::BinaryView,
                other => lower_nested(&other),
            };
            file_fields.push(Field::new(&c.name, data_type, true));
        }
        let partition_fields: Vec<FieldRef> =
            table.definition.partition_keys.iter().map(|k| Arc::new(Field::new(&k.name, DataType::Utf8, true))).collect();
        let file_schema = Arc::new(Schema::new(file_fields));
        let mut all: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        all.extend(partition_fields.iter().cloned());
        Ok(Self { schema: Arc::new(Schema::new(all)), file_schema, partition_fields, table, lake, bookmarks: None })
    }

    fn format(&self, state: &dyn Session) -> DfResult<Arc<dyn FileFormat>> {
        let compression = match self.table.definition.compression.as_deref() {
            Some("gzip") => FileCompressionType::GZIP,
            Some("bzip2") => FileCompressionType::BZIP2,
            Some("zstd") => FileCompressionType::ZSTD,
            _ => FileCompressionType::UNCOMPRESSED,
        };
        Ok(match &self.table.definition.format {
            // The session's `datafusion.execution.parquet.*` settings, as `register_parquet`
            // gets them (`ParquetFormat::default()` would silently ignore them).
            Format::Parquet => Arc::new(ParquetFormat::default().with_options(state.default_table_options().parquet)),
            Format::Csv { delimiter, header, escape } => Arc::new(
                CsvFormat::default()
                    .with_has_header(*header)
                    .with_delimiter(*delimiter as u8)
                    .with_escape(escape.map(|e| e as u8))
                    .with_file_compression_type(compression),
            ),
            Format::Json => Arc::new(JsonFormat::default().with_file_compression_type(compression)),
            other => {
                return Err(DataFusionError::NotImplemented(format!(
                    "{} is catalogued as {other}; querying {other} tables is not supported yet",
                    self.table.qualified_name()
                )));
            }
        })
    }

    /// The table's columns named as its files name them: the keys of a sample of its JSON
    /// lines (Hive's JSON SerDes match keys case-insensitively), or the first Parquet file's
    /// footer. Unchanged for other formats and where the spellings agree.
    async fn file_spelling(&self, state: &dyn Session, format: &Arc<dyn FileFormat>, store: &Arc<dyn ObjectStore>, files: &[PartitionedFile]) -> DfResult<SchemaRef> {
        let mut seen = Spellings::default();
        match &self.table.definition.format {
            Format::Json => {
                let gzip = self.table.definition.compression.as_deref() == Some("gzip");
                if gzip || self.table.definition.compression.is_none() {
                    let sample: Vec<_> = files.iter().take(JSON_FILES_SAMPLED).map(|f| &f.object_meta).collect();
                    json_spellings(store.as_ref(), &sample, gzip, &mut seen).await?;
                }
            }
            Format::Parquet => {
                if let Some(first) = files.first() {
                    seen.add_fields(format.infer_schema(state, store, std::slice::from_ref(&first.object_meta)).await?.fields());
                }
            }
            _ => {}
        }
        let respelled = Arc::new(seen.respell(&self.file_schema));
        Ok(if respelled == self.file_schema { self.file_schema.clone() } else { respelled })
    }

    fn is_partition_filter(&self, expr: &Expr) -> bool {
        let columns = expr.column_refs();
        !columns.is_empty() && columns.iter().all(|c| self.partition_fields.iter().any(|f| f.name() == &c.name))
    }

    /// The live partitions that pass the partition filters: `(values, location)`.
    fn prune(&self, state: &dyn Session, filters: &[&Expr]) -> DfResult<Vec<(Vec<String>, String)>> {
        if self.partition_fields.is_empty() {
            return Ok(vec![(Vec::new(), self.table.definition.location.clone())]);
        }
        let partitions: Vec<_> = self.table.live_partitions().collect();
        if filters.is_empty() || partitions.is_empty() {
            return Ok(partitions.into_iter().map(|p| (p.values.clone(), p.location.clone())).collect());
        }
        let schema = Arc::new(Schema::new(self.partition_fields.clone()));
        let columns: Vec<ArrayRef> = (0..self.partition_fields.len())
            .map(|i| Arc::new(StringArray::from_iter_values(partitions.iter().map(|p| p.values[i].clone()))) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let mut keep = vec![true; partitions.len()];
        for filter in filters {
            let predicate = state.create_physical_expr((*filter).clone(), &df_schema)?;
            let mask = predicate.evaluate(&batch)?.into_array(partitions.len())?;
            let mask = mask
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| DataFusionError::Internal("a partition filter is not boolean".into()))?;
            for (i, k) in keep.iter_mut().enumerate() {
                *k &= arrow_array::Array::is_valid(mask, i) && mask.value(i);
            }
        }
        Ok(partitions.into_iter().zip(keep).filter(|(_, k)| *k).map(|(p, _)| (p.values.clone(), p.location.clone())).collect())
    }
}

#[async_trait]
impl TableProvider for CatalogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| if self.is_partition_filter(f) { TableProviderFilterPushDown::Exact } else { TableProviderFilterPushDown::Inexact })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let format = self.format(state)?;
        let partition_filters: Vec<&Expr> = filters.iter().filter(|f| self.is_partition_filter(f)).collect();
        let partitions = self.prune(state, &partition_filters)?;
        let location = S3Uri::parse(&self.table.definition.location).map_err(|e| DataFusionError::Plan(e.message()))?;
        let url = ObjectStoreUrl::parse(format!("s3://{}", location.bucket))?;
        state.runtime_env().register_object_store(url.as_ref(), self.lake.bucket_store(&location.bucket));

        let mut files = Vec::new();
        let source = self.table.qualified_name();
        for (values, partition_location) in partitions {
            let uri = S3Uri::parse(&partition_location).map_err(|e| DataFusionError::Plan(e.message()))?.folder();
            let listing = match self.lake.list(&uri, true).await {
                Ok(listing) => listing,
                Err(e) if e.code() == "NoSuchBucket" => continue,
                Err(e) => return Err(DataFusionError::External(Box::new(e))),
            };
            for object in listing.objects {
                let relative = object.key.strip_prefix(&uri.key).unwrap_or(&object.key);
                if object.size == 0 || relative.split('/').any(|s| s.starts_with('_') || s.starts_with('.')) {
                    continue;
                }
                if let Some(bookmarks) = &self.bookmarks
                    && !bookmarks.reads(&source, &format!("s3://{}/{}", uri.bucket, object.key), object.last_modified.timestamp_millis(), object.size)
                {
                    continue;
                }
                let mut file = PartitionedFile::new(object.key.clone(), object.size);
                // The real mtime: DataFusion's footer cache is only valid for the same
                // (size, last modified), and `new` stamps every file with the epoch.
                file.object_meta.last_modified = object.last_modified;
                file.partition_values = values.iter().map(|v| ScalarValue::Utf8(Some(v.clone()))).collect();
                files.push(file);
            }
        }
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let store = state.runtime_env().object_store(&url)?;
        // The columns as the files spell them (Athena matches names case-insensitively).
        let file_schema = self.file_spelling(state, &format, &store, &files).await?;
        // Row counts and min/max from the Parquet footers (cached by DataFusion after the
        // first read), as ListingTable collects them: the optimizer needs them to pick join
        // sides and modes; without them TPC-H q18 runs 3x slower.
        let collect_stats = matches!(self.table.definition.format, Format::Parquet) && state.config().collect_statistics();
        if collect_stats {
            let concurrency = state.config_options().execution.meta_fetch_concurrency.get();
            files = stream::iter(files)
                .map(|file| {
                    let (format, store, schema) = (&format, &store, file_schema.clone());
                    async move {
                        let stats = format.infer_stats(state, store, schema, &file.object_meta).await?;
                        Ok::<_, DataFusionError>(file.with_statistics(Arc::new(stats)))
                    }
                })
                .buffered(concurrency)
                .try_collect::<Vec<_>>()
                .await?;
        }
        // Balance files over the session's partitions, largest first. DataFusion splits
        // big files into byte ranges itself when a plan wants more partitions
        // (`datafusion.optimizer.repartition_file_scans`).
        files.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
        let n = state.config().target_partitions().max(1).min(files.len());
        let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
        for file in files {
            if let Some(group) = groups.iter_mut().min_by_key(|g| g.0) {
                group.0 += file.object_meta.size;
                group.1.push(file);
            }
        }
        let table_schema = TableSchema::builder(file_schema.clone()).with_table_partition_cols(self.partition_fields.clone()).build();
        let mut file_groups = Vec::new();
        for (_, files) in groups {
            let mut group = FileGroup::new(files);
            if collect_stats {
                let stats = Statistics::try_merge_iter(group.iter().filter_map(|f| f.statistics.as_deref()), &self.schema)?;
                group = group.with_statistics(Arc::new(stats));
            }
            file_groups.push(group);
        }
        let statistics = if collect_stats {
            Statistics::try_merge_iter(file_groups.iter().filter_map(|g| g.file_statistics(None)), &self.schema)?
        } else {
            Statistics::new_unknown(&self.schema)
        };
        // JSON lines through our own source: a `string` column takes numbers as text.
        let source = match self.table.definition.format {
            Format::Json => Arc::new(super::json::LenientJsonSource::new(table_schema)) as Arc<dyn datafusion::datasource::physical_plan::FileSource>,
            _ => format.file_source(table_schema),
        };
        let config = FileScanConfigBuilder::new(url, source)
            .with_file_groups(file_groups)
            .with_statistics(statistics)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        let plan = format.create_physical_plan(state, config).await?;
        if file_schema == self.file_schema && self.bookmarks.is_none() {
            return Ok(plan);
        }
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let respelled = RespellExec::new(plan, schema);
        // A Glue job run counts the records its sources produce.
        Ok(Arc::new(match &self.bookmarks {
            Some(bookmarks) => respelled.counting(bookmarks.counter(&self.table.qualified_name())),
            None => respelled,
        }))
    }
}
