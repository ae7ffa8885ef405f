//! Running the catalog-changing statements (CREATE/DROP/ALTER/MSCK/SHOW/DESCRIBE), CTAS and
//! INSERT INTO against the catalog and the lake.

use super::*;
use std::time::Instant;

use datafusion::error::DataFusionError;

use crate::query::{Bookmarks, Watch, collect_watched, drive_watched, sql_error};

impl crate::sql::SqlEngine {
    /// Runs one of Athena's catalog-changing statements.
    pub(in crate::sql) async fn run_ddl(&self, ddl: Ddl, running: crate::sql::Running<'_, '_>) -> std::result::Result<crate::sql::Output, crate::sql::Failure> {
        let crate::sql::Running { ctx, text, database, workgroup, .. } = running;
        match ddl {
            Ddl::CreateDatabase { name, if_not_exists, comment, location, properties } => match self.catalog.create_database_at(&name, &comment, location, properties) {
                Ok(_) => Ok(output(messages(vec![format!("database {name} created in the catalog")]), 0)),
                Err(e) if if_not_exists && e.code() == "AlreadyExistsException" => Ok(output(messages(vec![format!("database {name} already exists")]), 0)),
                Err(e) => Err(e.into()),
            },
            Ddl::Describe { name, statement } => {
                let table = table_name(&name, database).ok().and_then(|(db, t)| self.catalog.table(&db, &t).ok()).filter(|t| !t.deprecated);
                let is_view = name.0.len() == 1 && self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&name.to_string().to_lowercase());
                match table {
                    Some(table) if !is_view => Ok(output(describe(&table), 0)),
                    _ => self.query_watched(ctx, *statement, text, workgroup, running.watch).await,
                }
            }
            Ddl::AddPartitions(add) => {
                let (db, name) = table_name(&add.table, database)?;
                Ok(output(messages(add.apply(&self.catalog, &db, &name)?), 0))
            }
            Ddl::ShowPartitions(name) => {
                let (db, name) = table_name(&name, database)?;
                let table = self.catalog.table(&db, &name)?;
                let keys = &table.definition.partition_keys;
                if keys.is_empty() {
                    return Err(service_err!(InvalidRequestException, "FAILED: SemanticException Table {name} is not a partitioned table").into());
                }
                let mut listed: Vec<String> = table
                    .partitions
                    .values()
                    .filter(|p| !p.deprecated)
                    .map(|p| keys.iter().zip(&p.values).map(|(k, v)| format!("{}={v}", k.name)).collect::<Vec<_>>().join("/"))
                    .collect();
                listed.sort();
                Ok(output(names("partition", listed), 0))
            }
            Ddl::ShowDatabases => {
                let databases = self.catalog.databases().into_iter().map(|d| d.name).collect();
                Ok(output(names("database_name", databases), 0))
            }
            Ddl::ShowTables(db, pattern) => {
                let db = match db {
                    Some(name) => name.to_string().trim_matches(['`', '"']).to_lowercase(),
                    None => database.to_string(),
                };
                let tables = self
                    .catalog
                    .tables(&db)?
                    .into_iter()
                    .filter(|t| !t.deprecated && pattern.as_deref().is_none_or(|p| name_matches(p, &t.name)))
                    .map(|t| t.name)
                    .collect();
                Ok(output(names("tab_name", tables), 0))
            }
            Ddl::CreateExternal(ct) => {
                let (db, name) = table_name(&ct.name, database)?;
                let definition = external_definition(&ct)?;
                let location = definition.location.clone();
                match self.catalog.create_table(&db, &name, definition) {
                    Ok(_) => {}
                    Err(e) if e.code() == "AlreadyExistsException" && ct.if_not_exists => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(output(messages(vec![format!("table {db}.{name} is in the catalog, over {location}")]), 0))
            }
            Ddl::DropTable { names, if_exists } => {
                let mut lines = Vec::new();
                for object in names {
                    let (db, name) = table_name(&object, database)?;
                    let dropped_view = object.0.len() == 1 && self.temp_views.lock().unwrap_or_else(|p| p.into_inner()).remove(&name).is_some();
                    if dropped_view {
                        lines.push(format!("temporary view {name} dropped"));
                        continue;
                    }
                    match self.catalog.drop_table(&db, &name) {
                        Ok(()) => lines.push(format!("table {db}.{name} dropped from the catalog; its files stay in the lake")),
                        Err(e) if if_exists && e.code() == "EntityNotFoundException" => lines.push(format!("no table {db}.{name}")),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(output(messages(lines), 0))
            }
            Ddl::Msck(object) => {
                let (db, name) = table_name(&object, database)?;
                let table = self.catalog.table(&db, &name)?;
                if table.definition.partition_keys.is_empty() {
                    return Err(service_err!(InvalidRequestException, "{db}.{name} is not partitioned; MSCK REPAIR TABLE has nothing to add").into());
                }
                let location = S3Uri::parse(&table.definition.location)?;
                let listing = self.lake.list(&location, true).await?;
                let mut found: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
                for object in &listing.objects {
                    let relative = object.key.strip_prefix(&location.key).unwrap_or(&object.key);
                    if let Some((values, path)) = hive_partition(&table, relative) {
                        found.entry(values.join("/")).or_insert((values, path));
                    }
                }
                let missing: Vec<(Vec<String>, String)> =
                    found.into_iter().filter(|(id, _)| table.partitions.get(id).is_none_or(|p| p.deprecated)).map(|(_, p)| p).collect();
                let mut lines = Vec::new();
                for (values, _) in &missing {
                    let spec: Vec<String> =
                        table.definition.partition_keys.iter().zip(values).map(|(k, v)| format!("{}={v}", k.name)).collect();
                    lines.push(format!("Repair: Added partition to metastore {name}:{}", spec.join("/")));
                }
                self.catalog.add_partitions(&db, &name, missing)?;
                if lines.is_empty() {
                    lines.push(format!("every partition under {} is already in the catalog", table.definition.location));
                }
                Ok(output(messages(lines), 0))
            }
            Ddl::Ctas(ct) => self.ctas(&ct, running).await,
            Ddl::Insert(insert) => self.insert(&insert, running).await,
        }
    }

    /// `CREATE TABLE t WITH (…) AS SELECT …`: writes the result to an empty location, then
    /// registers the table (and its partitions).
    pub(super) async fn ctas(&self, ct: &ast::CreateTable, running: crate::sql::Running<'_, '_>) -> std::result::Result<crate::sql::Output, crate::sql::Failure> {
        let crate::sql::Running { ctx, text, database, workgroup, execution_id, watch } = running;
        let (db, name) = table_name(&ct.name, database)?;
        crate::catalog::validate_name("table", &name)?;
        if self.catalog.table(&db, &name).is_ok() {
            if ct.if_not_exists {
                return Ok(output(messages(vec![format!("{db}.{name} already exists")]), 0));
            }
            return Err(service_err!(AlreadyExistsException, "Table {db}.{name} already exists").into());
        }
        self.catalog.tables(&db)?;
        let options = ctas_options(ct)?;
        let location = match &options.location {
            Some(location) => location.clone(),
            None => {
                let results = S3Uri::parse(&workgroup.output_location)?;
                format!("s3://{}/{}tables/{execution_id}/", results.bucket, results.key)
            }
        };
        let uri = S3Uri::parse(&location)?;
        if uri.bucket == crate::sql::RESULTS_BUCKET {
            let _ = self.lake.create_bucket(crate::sql::RESULTS_BUCKET)?;
        }
        match self.lake.list(&uri, true).await {
            Ok(listing) if !listing.objects.is_empty() => {
                return Err(service_err!(HIVE_PATH_ALREADY_EXISTS, "Target directory for table '{db}.{name}' already exists: {location}")
                    .with_hint("CTAS writes to an empty location: choose another external_location or empty this one")
                    .into());
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let query = ct.query.as_deref().ok_or_else(|| internal_err!("CTAS without a query"))?;
        let output = self.query_watched(ctx, Statement::Query(Box::new(query.clone())), text, workgroup, watch).await?;
        let batch = one_batch(&output.schema, &output.batches)?;

        // Partition columns must come last, in partitioned_by order (Athena's rule).
        let fields: Vec<String> = output.schema.fields().iter().map(|f| f.name().to_lowercase()).collect();
        let keys = options.partitioned_by.len();
        if keys > 0 && (keys >= fields.len() || fields[fields.len() - keys..] != options.partitioned_by[..]) {
            {
                return Err(service_err!(
                    InvalidRequestException,
                    "partition columns {:?} must be the last columns of the SELECT, in that order; it returns {:?}",
                    options.partitioned_by,
                    fields
                )
                .into());
            }
        }
        let columns: Vec<Column> = output.schema.fields()[..fields.len() - keys]
            .iter()
            .map(|f| Column::new(f.name().to_lowercase(), glue_type(f.data_type())))
            .collect();
        // The engine reads partition values as strings, so that is what the catalog records.
        let partition_keys: Vec<Column> = options.partitioned_by.iter().map(|k| Column::new(k, "string")).collect();
        if let Some(missing) = options.bucketed_by.iter().find(|b| !columns.iter().any(|c| &&c.name == b)) {
            return Err(service_err!(InvalidRequestException, "bucket column {missing} is not a column of the SELECT").into());
        }
        let bucketing = options.bucket_count.map(|count| crate::catalog::Bucketing { columns: options.bucketed_by.clone(), count });
        let definition = TableDefinition {
            location: location.clone(),
            format: options.format,
            compression: options.compression,
            columns,
            partition_keys,
            bucketing,
        };
        let table = crate::catalog::new_table(&db, &name, definition.clone(), self.clock.now(), None);
        let written = self.write_whole(&table, &batch, execution_id, Some(definition)).await?;
        let line = format!(
            "table {db}.{name} created: {} row(s) in {} file(s) under {location}",
            batch.num_rows(),
            written.files
        );
        let mut done = self::output(messages(vec![line]), output.bytes_scanned);
        done.rows_written = batch.num_rows() as u64;
        Ok(done)
    }

    /// `INSERT INTO t [(cols)] SELECT … | VALUES …`: new files beside the table's old ones.
    pub(super) async fn insert(&self, insert: &ast::Insert, running: crate::sql::Running<'_, '_>) -> std::result::Result<crate::sql::Output, crate::sql::Failure> {
        let crate::sql::Running { ctx, text, database, workgroup, execution_id, watch } = running;
        let (db, name) = table_name(insert_target(insert)?, database)?;
        let table = self.catalog.table(&db, &name)?;
        if insert.overwrite {
            return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: INSERT OVERWRITE; Athena only appends with INSERT INTO").into());
        }
        let source = insert.source.as_deref().ok_or_else(|| service_err!(InvalidRequestException, "INSERT INTO needs a SELECT or VALUES"))?;
        let output = self.query_watched(ctx, Statement::Query(Box::new(source.clone())), text, workgroup, watch).await?;
        let batch = one_batch(&output.schema, &output.batches)?;
        let mut all_columns = table.definition.columns.clone();
        all_columns.extend(table.definition.partition_keys.iter().cloned());
        // With a column list, columns not named are NULL; without one, the SELECT gives every
        // column in order, partition keys last.
        let named: Vec<String> = insert.columns.iter().map(|c| c.to_string().trim_matches(['`', '"']).to_lowercase()).collect();
        if named.is_empty() && batch.num_columns() != all_columns.len() {
            return Err(service_err!(
                InvalidRequestException,
                "Insert query has {} column(s) but {db}.{name} has {} ({})",
                batch.num_columns(),
                all_columns.len(),
                all_columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )
            .into());
        }
        if !named.is_empty() && named.len() != batch.num_columns() {
            return Err(service_err!(InvalidRequestException, "Insert query has {} column(s) for {} named column(s)", batch.num_columns(), named.len()).into());
        }
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (i, column) in all_columns.iter().enumerate() {
            let position = if named.is_empty() {
                Some(i)
            } else {
                named.iter().position(|n| n == &column.name)
            };
            arrays.push(match position {
                Some(p) => batch.column(p).clone(),
                None => arrow_array::new_null_array(&DataType::Null, batch.num_rows()),
            });
        }
        for n in &named {
            if !all_columns.iter().any(|c| &c.name == n) {
                let names: Vec<&str> = all_columns.iter().map(|c| c.name.as_str()).collect();
                let hint = closest(n, &names).map(|c| format!("did you mean {c}?")).unwrap_or_default();
                return Err(service_err!(InvalidRequestException, "COLUMN_NOT_FOUND: {db}.{name} has no column {n}").with_hint(hint).into());
            }
        }
        let loose_fields: Vec<Field> = all_columns.iter().zip(&arrays).map(|(c, a)| Field::new(&c.name, a.data_type().clone(), true)).collect();
        let ordered = RecordBatch::try_new(Arc::new(Schema::new(loose_fields)), arrays).map_err(|e| internal_err!("{e}"))?;
        let mut target: Vec<Column> = table.definition.columns.clone();
        target.extend(table.definition.partition_keys.iter().map(|k| Column::new(&k.name, "string")));
        let conformed = conform(&ordered, &write_schema(&target)?)?;
        let written = self.write_whole(&table, &conformed, execution_id, None).await?;
        let line = format!("{} row(s) inserted into {db}.{name} in {} new file(s)", conformed.num_rows(), written.files);
        let mut done = self::output(messages(vec![line]), output.bytes_scanned);
        done.rows_written = conformed.num_rows() as u64;
        Ok(done)
    }

    /// Appends rows to a catalog table as INSERT INTO does (columns by position, partition
    /// keys last; new files named from `stem`, staged and committed under it); what
    /// continuous applications write to a catalog sink. Returns the rows written.
    pub async fn append(&self, db: &str, name: &str, batch: &RecordBatch, stem: &str) -> Result<usize> {
        let table = self.catalog.table(db, name)?;
        let mut all_columns = table.definition.columns.clone();
        all_columns.extend(table.definition.partition_keys.iter().cloned());
        if batch.num_columns() != all_columns.len() {
            return Err(service_err!(InvalidRequestException, "{} column(s) for {db}.{name}, which has {}", batch.num_columns(), all_columns.len()));
        }
        let conformed = conform(batch, &write_schema(&all_columns)?)?;
        // Whole or not at all, as INSERT INTO: a step killed midway leaves no partial files
        // for queries to see before the application runs the step again.
        self.write_whole(&table, &conformed, stem, None).await?;
        Ok(conformed.num_rows())
    }

    /// Writes rows as [`write_rows_staged`](Self::write_rows_staged) does, whole or not at all: staged,
    /// noted, then moved in and registered (the table created from `create`, for a CTAS; the
    /// new partitions added) as one noted commit that a killed kernel's successor finishes.
    async fn write_whole(&self, table: &Table, batch: &RecordBatch, execution_id: &str, create: Option<TableDefinition>) -> Result<Written> {
        let locations = table.locations();
        self.note_staging(execution_id, locations.clone())?;
        let written = match self.write_rows_staged(table, batch, execution_id, Some(execution_id)).await {
            Ok(written) => written,
            Err(e) => {
                let _ = self.abandon_noted(execution_id, &locations);
                return Err(e);
            }
        };
        let write = StagedWrite {
            rows: batch.num_rows() as u64,
            moves: written.moves.clone(),
            table: Some((table.database.clone(), table.name.clone())),
            create,
            partitions: written.partitions.clone(),
        };
        self.commit_noted(execution_id, write)?;
        Ok(written)
    }

    /// Writes rows (data columns, then partition values) as one new file per partition; with
    /// `staging`, each file is written under `<folder>/_lakebook_staging/<staging>/` instead
    /// (hidden from scans, as `_` folders are) and `Written::moves` says where it goes at
    /// commit.
    async fn write_rows_staged(&self, table: &Table, batch: &RecordBatch, execution_id: &str, staging: Option<&str>) -> Result<Written> {
        let keys = table.definition.partition_keys.len();
        let data_schema = write_schema(&table.definition.columns)?;
        let mut written = Written::default();
        let mut files = Vec::new();
        for (n, (values, rows)) in split_partitions(batch, keys)?.into_iter().enumerate() {
            if rows.num_rows() == 0 {
                continue;
            }
            let rows = conform(&rows, &data_schema)?;
            let folder = partition_folder(table, &values);
            // A bucketed table gets a file per non-empty bucket, named by its number.
            match &table.definition.bucketing {
                None => files.push((folder.clone(), format!("{execution_id}-{n:05}"), rows)),
                Some(b) => {
                    for (bucket, rows) in buckets(&rows, b)? {
                        files.push((folder.clone(), format!("{execution_id}-{n:05}_bucket-{bucket:05}"), rows));
                    }
                }
            }
            if keys > 0 {
                written.partitions.push((values, folder));
            }
        }
        // The files are encoded on every core, as many at a time, and put in order.
        let (format, compression) = (&table.definition.format, &table.definition.compression);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut encoded = futures::stream::iter(files.into_iter().map(|(folder, stem, rows)| {
            let (format, compression) = (format.clone(), compression.clone());
            async move {
                let encoded = tokio::task::spawn_blocking(move || encode(&rows, &format, compression.as_deref()))
                    .await
                    .map_err(|e| internal_err!("encoding {stem}: {e}"))??;
                Ok::<_, crate::Error>((folder, stem, encoded))
            }
        }))
        .buffered(cores);
        while let Some(file) = encoded.next().await {
            let (folder, stem, (bytes, extension)) = file?;
            self.put_file(&folder, &format!("{stem}{extension}"), bytes, staging, &mut written).await?;
        }
        Ok(written)
    }

    /// Puts one written file in its folder, or in the folder's staging area with its move noted.
    async fn put_file(&self, folder: &str, name: &str, bytes: Bytes, staging: Option<&str>, written: &mut Written) -> Result<()> {
        let uri = S3Uri::parse(folder)?.join(name);
        match staging {
            Some(staging) => {
                let staged = S3Uri::parse(folder)?.join(&format!("{STAGING}/{staging}/{name}"));
                self.lake.put(&staged, bytes).await?;
                written.moves.push((format!("s3://{}/{}", staged.bucket, staged.key), format!("s3://{}/{}", uri.bucket, uri.key)));
            }
            None => {
                self.lake.put(&uri, bytes).await?;
            }
        }
        written.files += 1;
        Ok(())
    }
}

/// Where a partition's files go: an existing partition keeps its location (a crawled
/// `2026/01/` layout too); a new one is `key=value/` under the table's.
fn partition_folder(table: &Table, values: &[String]) -> String {
    match table.partitions.get(&values.join("/")).filter(|p| !p.deprecated) {
        Some(p) => p.location.clone(),
        None if values.is_empty() => table.definition.location.clone(),
        None => partition_path(table, values),
    }
}

#[derive(Debug, Default)]
pub(super) struct Written {
    pub(super) files: usize,
    pub(super) partitions: Vec<(Vec<String>, String)>,
    /// Staged files and where each goes at commit.
    pub(super) moves: Vec<(String, String)>,
}

/// The folder staged files wait in (a `_` folder, which scans skip).
pub const STAGING: &str = "_lakebook_staging";

/// A job target's rows written to staging: what its commit moves and registers.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StagedWrite {
    pub rows: u64,
    /// (staged object, final object), `s3://…`.
    pub moves: Vec<(String, String)>,
    /// The catalog table to register the partitions in (created from `create` if missing).
    pub table: Option<(String, String)>,
    pub create: Option<TableDefinition>,
    pub partitions: Vec<(Vec<String>, String)>,
}

/// Where a Glue job's target writes (Glue Studio's S3 targets).
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// `s3://…/` (ignored when `catalog` names an existing table: its location is used).
    pub location: String,
    pub format: Format,
    pub compression: Option<String>,
    pub partition_keys: Vec<String>,
    /// `(database, table)` to create on the first write and add new partitions to.
    pub catalog: Option<(String, String)>,
}

impl crate::sql::SqlEngine {
    /// Writes a Glue job target's rows (partition keys anywhere among the columns) to
    /// staging: one file per partition named from `stem`, under the run's `staging` folder. A
    /// catalog table that exists takes the rows as INSERT INTO gives them (its columns, by
    /// name); otherwise the files go under `location` and, with `catalog`, the table is to be
    /// created from the rows' columns. Nothing is visible until [`commit_target`](Self::commit_target).
    pub async fn write_target(&self, target: &TargetSpec, batch: &RecordBatch, stem: &str, staging: &str) -> Result<StagedWrite> {
        let (table, create, positions, schema) = self.target_table(target, &batch.schema())?;
        let conformed = target_rows(batch, &positions, &schema)?;
        let written = self.write_rows_staged(&table, &conformed, stem, Some(staging)).await?;
        Ok(StagedWrite {
            rows: conformed.num_rows() as u64,
            moves: written.moves,
            table: target.catalog.clone(),
            create,
            partitions: if table.definition.partition_keys.is_empty() { Vec::new() } else { written.partitions },
        })
    }

    /// What [`write_target`](Self::write_target) writes, the rows coming from `query` as it
    /// runs: a Parquet target's partitions are encoded while the query still decodes (the
    /// same files, one per partition, numbered in key order); other formats and bucketed
    /// tables collect the rows first.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_target_query(
        &self,
        target: &TargetSpec,
        query: &str,
        database: &str,
        watch: Option<&mut Watch<'_>>,
        bookmarks: Arc<Bookmarks>,
        stem: &str,
        staging: &str,
    ) -> Result<StagedWrite> {
        let ctx = self.context_for(database, Some(bookmarks))?;
        let fail = |e: DataFusionError| self.suggest_table(sql_error(e, query));
        let plan = ctx.sql(query).await.map_err(fail)?.create_physical_plan().await.map_err(fail)?;
        let started = Instant::now();
        let (table, create, positions, schema) = self.target_table(target, &plan.schema())?;
        if table.definition.format != Format::Parquet || table.definition.bucketing.is_some() {
            let batches = collect_watched(&plan, ctx.task_ctx(), started, watch, fail, |_| Ok(())).await?;
            let batch = one_batch(&plan.schema(), &batches)?;
            return self.write_target(target, &batch, stem, staging).await;
        }
        let keys = table.definition.partition_keys.len();
        let props = parquet_properties(table.definition.compression.as_deref())?;
        let mut files = super::stream::PartitionedParquet::new(keys, write_schema(&table.definition.columns)?, props);
        drive_watched(&plan, ctx.task_ctx(), started, watch, fail, |_| Ok(()), |batch| {
            files.push(target_rows(&batch, &positions, &schema)?);
            Ok(())
        })
        .await?;
        let rows = files.rows;
        let mut written = Written::default();
        for (n, (values, bytes)) in files.finish().await?.into_iter().enumerate() {
            let folder = partition_folder(&table, &values);
            self.put_file(&folder, &format!("{stem}-{n:05}.parquet"), bytes, Some(staging), &mut written).await?;
            if keys > 0 {
                written.partitions.push((values, folder));
            }
        }
        Ok(StagedWrite { rows, moves: written.moves, table: target.catalog.clone(), create, partitions: written.partitions })
    }

    /// The table a target writes (its catalog table, or one made from the rows' columns,
    /// `create` if the catalog is to get it), where each of its columns (data, then partition
    /// keys) is among the rows', and their schema as written.
    fn target_table(&self, target: &TargetSpec, rows: &SchemaRef) -> Result<(Table, Option<TableDefinition>, Vec<usize>, SchemaRef)> {
        let fields: Vec<String> = rows.fields().iter().map(|f| f.name().to_lowercase()).collect();
        let position = |name: &str| {
            fields.iter().position(|f| f == &name.to_lowercase()).ok_or_else(|| {
                let names: Vec<&str> = fields.iter().map(String::as_str).collect();
                let hint = closest(name, &names).map(|c| format!("did you mean {c}?")).unwrap_or_default();
                service_err!(InvalidInputException, "COLUMN_NOT_FOUND: the rows have no column {name} (columns: {})", fields.join(", ")).with_hint(hint)
            })
        };
        let existing = match &target.catalog {
            Some((db, name)) => self.catalog.table(db, name).ok().filter(|t| !t.deprecated),
            None => None,
        };
        let mut create = None;
        let table = match existing {
            Some(table) => table,
            None => {
                let keys: Vec<usize> = target.partition_keys.iter().map(|k| position(k)).collect::<Result<_>>()?;
                let columns: Vec<Column> = rows
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !keys.contains(i))
                    .map(|(_, f)| Column::new(f.name().to_lowercase(), glue_type(f.data_type())))
                    .collect();
                let definition = TableDefinition {
                    location: target.location.clone(),
                    format: target.format.clone(),
                    compression: target.compression.clone(),
                    columns,
                    partition_keys: target.partition_keys.iter().map(|k| Column::new(k.to_lowercase(), "string")).collect(),
                    bucketing: None,
                };
                let (db, name) = target.catalog.clone().unwrap_or_else(|| (crate::catalog::DEFAULT_DATABASE.to_string(), "target".to_string()));
                if target.catalog.is_some() {
                    self.catalog.tables(&db)?;
                    create = Some(definition.clone());
                }
                crate::catalog::new_table(&db, &name, definition, self.clock.now(), None)
            }
        };
        let mut all_columns = table.definition.columns.clone();
        all_columns.extend(table.definition.partition_keys.iter().map(|k| Column::new(&k.name, "string")));
        let positions = all_columns.iter().map(|c| position(&c.name)).collect::<Result<_>>()?;
        let schema = write_schema(&all_columns)?;
        Ok((table, create, positions, schema))
    }

    /// Makes a staged write visible: its files moved to their names (a rename each), the
    /// catalog table created if it is not there yet, its partitions added. Every step can be
    /// done again, so a commit a crash cut short is finished when the workspace opens.
    pub fn commit_target(&self, staged: &StagedWrite) -> Result<()> {
        for (from, to) in &staged.moves {
            self.lake.rename(&S3Uri::parse(from)?, &S3Uri::parse(to)?)?;
        }
        if let Some((db, name)) = &staged.table {
            if let Some(definition) = &staged.create {
                match self.catalog.create_table(db, name, definition.clone()) {
                    Ok(_) => {}
                    Err(e) if e.code() == "AlreadyExistsException" => {}
                    Err(e) => return Err(e),
                }
            }
            if !staged.partitions.is_empty() {
                self.catalog.add_partitions(db, name, staged.partitions.clone())?;
            }
        }
        Ok(())
    }
}

/// A target's rows in its table's column order (data, then partition keys) and types.
fn target_rows(batch: &RecordBatch, positions: &[usize], schema: &SchemaRef) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = positions.iter().map(|&p| batch.column(p).clone()).collect();
    let loose: Vec<Field> = schema.fields().iter().zip(&arrays).map(|(f, a)| Field::new(f.name(), a.data_type().clone(), true)).collect();
    let ordered = RecordBatch::try_new(Arc::new(Schema::new(loose)), arrays).map_err(|e| internal_err!("{e}"))?;
    conform(&ordered, schema)
}
