//! Statements on tables and schemas: the dispatch of a parsed statement, CREATE TABLE (also
//! AS and LIKE), CREATE EXTERNAL TABLE / SCHEMA, INSERT, DELETE, UPDATE, TRUNCATE and DROP.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_schema::Field;
use datafusion::sql::sqlparser::ast::{self, CopySource, CopyTarget, FromTable, ObjectType, Statement, TableFactor, TableObject};

use super::model::{Column, DEFAULT_SCHEMA, DistStyle, ExternalSchema, Outcome, TableMeta};
use super::parse::{column_of, default_expr, is_default_keyword, lower, quoted, split_name, statement_kind};
use super::types::{arrow_type, cast_column, conform, redshift_type_of, same_kind, sql_cast_type};
use super::{Redshift, find, message, missing_table};
use crate::error::Result;
use crate::query::Watch;
use crate::{internal_err, service_err};

impl Redshift {
    pub(super) async fn statement(&self, cluster: &str, statement: Statement, maxerror: Option<u64>, query_id: u64, watch: Option<&mut Watch<'_>>) -> Result<Outcome> {
        match statement {
            Statement::CreateTable(create) => self.create_table(cluster, create, watch).await,
            Statement::CreateSchema { schema_name, if_not_exists, .. } => {
                let name = lower(&schema_name.to_string());
                self.mutate(|state| {
                    let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
                    if c.schemas.contains(&name) || c.external_schemas.iter().any(|s| s.name == name) {
                        if if_not_exists {
                            return Ok(());
                        }
                        return Err(service_err!(DuplicateSchema, "schema \"{name}\" already exists"));
                    }
                    c.schemas.push(name.clone());
                    Ok(())
                })?;
                Ok(message("CREATE SCHEMA"))
            }
            Statement::Drop { object_type, if_exists, names, .. } if matches!(object_type, ObjectType::Table | ObjectType::Schema) => {
                for name in &names {
                    let (schema, table) = split_name(name);
                    let removed = self.mutate(|state| {
                        let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
                        if object_type == ObjectType::Schema {
                            let name = table.clone();
                            let before = c.schemas.len() + c.external_schemas.len();
                            c.external_schemas.retain(|s| s.name != name);
                            if name != DEFAULT_SCHEMA {
                                if c.tables.iter().any(|t| t.schema == name) {
                                    return Err(service_err!(DependentObjectsStillExist, "cannot drop schema {name} because other objects depend on it"));
                                }
                                c.schemas.retain(|s| *s != name);
                            }
                            if before == c.schemas.len() + c.external_schemas.len() && !if_exists {
                                return Err(service_err!(InvalidSchemaName, "schema \"{name}\" does not exist"));
                            }
                            return Ok(None);
                        }
                        match c.tables.iter().position(|t| t.schema == schema && t.name == table) {
                            Some(i) => Ok(Some(c.tables.remove(i))),
                            None if if_exists => Ok(None),
                            None => Err(missing_table(c, &schema, &table)),
                        }
                    })?;
                    if let Some(t) = removed {
                        let _ = std::fs::remove_dir_all(self.table_dir(cluster, &t));
                    }
                }
                Ok(message(if object_type == ObjectType::Schema { "DROP SCHEMA" } else { "DROP TABLE" }))
            }
            Statement::Insert(insert) => self.insert(cluster, insert, watch).await,
            Statement::Delete(delete) => self.delete(cluster, delete).await,
            Statement::Update(update) => self.update(cluster, update).await,
            Statement::Truncate(truncate) => {
                for target in &truncate.table_names {
                    let (c, t) = self.table_meta(cluster, &target.name)?;
                    self.commit(&c, t.clone(), Some(&t), &[])?;
                }
                Ok(message("TRUNCATE TABLE"))
            }
            Statement::Copy { source, to: false, target, legacy_options, .. } => {
                let CopySource::Table { table_name, columns } = source else {
                    return Err(service_err!(SyntaxError, "COPY loads a table: COPY table FROM 's3://bucket/prefix' …"));
                };
                let CopyTarget::File { filename } = target else {
                    return Err(service_err!(SyntaxError, "COPY … FROM takes an s3:// location in quotes"));
                };
                let columns: Vec<String> = columns.iter().map(|c| lower(&c.value)).collect();
                self.copy(cluster, &table_name, &columns, &filename, &legacy_options, maxerror.unwrap_or(0), query_id).await
            }
            Statement::Copy { to: true, .. } => Err(service_err!(SyntaxError, "COPY … TO is not Redshift: write query results to the lake with UNLOAD ('SELECT …') TO 's3://…'")),
            Statement::Unload { query, query_text, to, options, .. } => {
                let sql = match (query, query_text) {
                    (Some(q), _) => q.to_string(),
                    (None, Some(text)) => text,
                    (None, None) => return Err(service_err!(SyntaxError, "UNLOAD needs a query: UNLOAD ('SELECT …') TO 's3://…'")),
                };
                self.unload(cluster, &sql, &to.value, &options, query_id, watch).await
            }
            Statement::Query(_) | Statement::Explain { .. } | Statement::ShowTables { .. } | Statement::ShowColumns { .. } | Statement::ExplainTable { .. } => {
                let text = statement.to_string();
                self.query_watched(cluster, &text, watch).await
            }
            other => Err(service_err!(FeatureNotSupported, "{} is not supported on a Lakebook Redshift cluster", statement_kind(&other))
                .with_hint("supported: CREATE TABLE [AS], CREATE [EXTERNAL] SCHEMA, INSERT, UPDATE, DELETE, DROP, COPY, UNLOAD, SELECT")),
        }
    }

    /// The Data Catalog database behind an external schema.
    pub(super) fn external_database(&self, cluster: &str, schema: &str) -> Result<String> {
        let c = self.describe(cluster)?;
        if let Some(e) = c.external_schemas.iter().find(|e| e.name == schema) {
            return Ok(e.database.clone());
        }
        if c.schemas.iter().any(|s| s == schema) {
            return Err(service_err!(InvalidSchemaName, "\"{schema}\" is not an external schema")
                .with_hint("external tables live in a schema made with CREATE EXTERNAL SCHEMA … FROM DATA CATALOG"));
        }
        Err(service_err!(InvalidSchemaName, "schema \"{schema}\" does not exist"))
    }

    /// Spectrum's `CREATE EXTERNAL TABLE schema.table (…) … LOCATION 's3://…'`: a table in
    /// the schema's Data Catalog database, the same one Athena creates.
    pub(super) fn create_external_table(&self, cluster: &str, hive: &str) -> Result<Outcome> {
        let dialect = datafusion::sql::sqlparser::dialect::HiveDialect {};
        let statement = datafusion::sql::sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(hive)
            .and_then(|mut p| p.parse_statement())
            .map_err(|e| service_err!(SyntaxError, "{e}"))?;
        let Statement::CreateTable(create) = statement else {
            return Err(service_err!(SyntaxError, "expected CREATE EXTERNAL TABLE schema.table (columns) … LOCATION 's3://…'"));
        };
        let (schema, table) = split_name(&create.name);
        let database = self.external_database(cluster, &schema)?;
        let definition = crate::query::hive::external_definition(&create)?;
        match self.catalog.create_table(&database, &table, definition) {
            Ok(_) => Ok(message("CREATE EXTERNAL TABLE")),
            Err(e) if e.code() == "AlreadyExistsException" && create.if_not_exists => Ok(message("CREATE EXTERNAL TABLE")),
            Err(e) if e.code() == "AlreadyExistsException" => Err(service_err!(DuplicateTable, "relation \"{table}\" already exists")),
            Err(e) => Err(e),
        }
    }

    pub(super) fn create_external_schema(&self, cluster: &str, name: &str, database: &str, if_not_exists: bool) -> Result<Outcome> {
        if self.catalog.tables(database).is_err() {
            return Err(service_err!(EntityNotFoundException, "the Data Catalog has no database {database}")
                .with_hint(format!("create it with `%catalog create-database {database}` or run a crawler into it")));
        }
        self.mutate(|state| {
            let i = find(state, cluster)?;
            let c = &mut state.clusters[i];
            if c.schemas.iter().any(|s| s == name) || c.external_schemas.iter().any(|s| s.name == name) {
                if if_not_exists {
                    return Ok(());
                }
                return Err(service_err!(DuplicateSchema, "schema \"{name}\" already exists"));
            }
            c.external_schemas.push(ExternalSchema { name: name.to_string(), database: database.to_string() });
            Ok(())
        })?;
        Ok(message("CREATE EXTERNAL SCHEMA"))
    }

    async fn create_table(&self, cluster: &str, create: ast::CreateTable, watch: Option<&mut Watch<'_>>) -> Result<Outcome> {
        let (schema, name) = split_name(&create.name);
        let c = self.describe(cluster)?;
        if !c.schemas.contains(&schema) {
            return Err(service_err!(InvalidSchemaName, "schema \"{schema}\" does not exist").with_hint(format!("CREATE SCHEMA {schema}")));
        }
        if c.table(&schema, &name).is_some() {
            if create.if_not_exists {
                return Ok(message("CREATE TABLE"));
            }
            return Err(service_err!(DuplicateTable, "relation \"{name}\" already exists"));
        }
        // CREATE TABLE new (LIKE old): the columns, distribution and sort key of `old`.
        if let Some(ast::CreateTableLikeKind::Parenthesized(like) | ast::CreateTableLikeKind::Plain(like)) = &create.like {
            let (from_schema, from_name) = split_name(&like.name);
            let source = c.table(&from_schema, &from_name).cloned().ok_or_else(|| missing_table(&c, &from_schema, &from_name))?;
            let meta = TableMeta { schema, name, version: 0, slice_rows: vec![0; c.slices() as usize], bytes: 0, created: self.clock.now(), placement: None, ..source };
            self.commit(&c, meta, None, &[])?;
            return Ok(message("CREATE TABLE"));
        }
        // CTAS from one table keeps that table's column types where a column comes through
        // unchanged, and (with no keys of its own) its distribution and sort keys.
        let mut source: Option<TableMeta> = None;
        let (columns, rows) = match &create.query {
            Some(query) => {
                let result = self.query_watched(cluster, &query.to_string(), watch).await?;
                if let ast::SetExpr::Select(select) = query.body.as_ref()
                    && let [only] = select.from.as_slice()
                    && only.joins.is_empty()
                    && let TableFactor::Table { name: from, .. } = &only.relation
                {
                    let (s, n) = split_name(from);
                    source = c.table(&s, &n).cloned();
                }
                let columns = result
                    .schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let name = lower(f.name());
                        let data_type = redshift_type_of(f.data_type())?;
                        let kept = source.as_ref().and_then(|s| s.columns.iter().find(|c| c.name == name)).filter(|c| arrow_type(&c.data_type).is_ok_and(|t| same_kind(&t, f.data_type())));
                        Ok(Column { name, data_type: kept.map_or(data_type, |c| c.data_type.clone()), ..Column::default() })
                    })
                    .collect::<Result<Vec<_>>>()?;
                (columns, Some(result.batches))
            }
            None => {
                let columns = create.columns.iter().map(column_of).collect::<Result<Vec<_>>>()?;
                (columns, None)
            }
        };
        if columns.is_empty() {
            return Err(service_err!(SyntaxError, "CREATE TABLE {name} needs columns"));
        }
        // A key is a column name, or in CTAS a column's position (`DISTKEY (1) SORTKEY (1, 3)`).
        let named = |e: &ast::Expr, what: &str| -> Result<String> {
            let n = lower(&e.to_string());
            if let Ok(position) = n.parse::<usize>() {
                return columns.get(position.wrapping_sub(1)).map(|c| c.name.clone()).ok_or_else(|| {
                    service_err!(InvalidColumnReference, "{what} position {position} is not a column of the {} column(s)", columns.len())
                });
            }
            if columns.iter().any(|c| c.name == n) { Ok(n) } else { Err(service_err!(UndefinedColumn, "column \"{n}\" named in {what} does not exist")) }
        };
        let inherit = create.distkey.is_none() && create.diststyle.is_none() && create.sortkey.is_none();
        let inherited = source.filter(|_| inherit);
        let has = |n: &String| columns.iter().any(|c| &c.name == n);
        let distkey = match (&create.distkey, &inherited) {
            (Some(k), _) => Some(named(k, "DISTKEY")?),
            (None, Some(s)) => s.distkey.clone().filter(has),
            (None, None) => None,
        };
        let diststyle = match (&create.diststyle, &distkey) {
            (Some(ast::DistStyle::Key) | None, Some(_)) => DistStyle::Key,
            (Some(ast::DistStyle::Key), None) => return Err(service_err!(SyntaxError, "DISTSTYLE KEY needs DISTKEY(column)")),
            (Some(_), Some(_)) => return Err(service_err!(SyntaxError, "DISTKEY goes with DISTSTYLE KEY")),
            (Some(ast::DistStyle::Even), None) => DistStyle::Even,
            (Some(ast::DistStyle::All), None) => DistStyle::All,
            (Some(ast::DistStyle::Auto) | None, None) => DistStyle::Auto,
        };
        let mut sortkey = create.sortkey.iter().flatten().map(|k| named(k, "SORTKEY")).collect::<Result<Vec<_>>>()?;
        if let Some(s) = &inherited
            && create.sortkey.is_none()
            && s.sortkey.iter().all(has)
        {
            sortkey = s.sortkey.clone();
        }
        let diststyle = match (&inherited, create.distkey.is_none()) {
            (Some(s), true) if s.diststyle != DistStyle::Key && diststyle == DistStyle::Auto => s.diststyle,
            _ => diststyle,
        };
        let meta = TableMeta {
            schema,
            name,
            columns,
            diststyle,
            distkey,
            sortkey,
            version: 0,
            slice_rows: vec![0; c.slices() as usize],
            bytes: 0,
            created: self.clock.now(),
            placement: None,
        };
        let rows_loaded = match rows {
            Some(batches) => {
                let schema = meta.arrow_schema()?;
                let batches = batches.iter().map(|b| conform(b, &schema)).collect::<Result<Vec<_>>>()?;
                let n = batches.iter().map(RecordBatch::num_rows).sum::<usize>();
                self.commit(&c, meta, None, &batches)?;
                Some(n)
            }
            None => {
                self.commit(&c, meta, None, &[])?;
                None
            }
        };
        Ok(message(&match rows_loaded {
            Some(n) => format!("SELECT {n}"),
            None => "CREATE TABLE".to_string(),
        }))
    }

    async fn insert(&self, cluster: &str, insert: ast::Insert, watch: Option<&mut Watch<'_>>) -> Result<Outcome> {
        let TableObject::TableName(name) = &insert.table else {
            return Err(service_err!(SyntaxError, "INSERT INTO takes a table name"));
        };
        let (c, t) = self.table_meta(cluster, name)?;
        let mut source = insert.source.ok_or_else(|| service_err!(SyntaxError, "INSERT INTO {} needs VALUES (…) or a SELECT", t.qualified()))?;
        let targets: Vec<String> = if insert.columns.is_empty() {
            t.columns.iter().map(|c| c.name.clone()).collect()
        } else {
            insert.columns.iter().map(|c| lower(&c.to_string())).collect()
        };
        if let Some(bad) = targets.iter().find(|n| !t.columns.iter().any(|c| &c.name == *n)) {
            return Err(service_err!(UndefinedColumn, "column \"{bad}\" of relation \"{}\" does not exist", t.name));
        }
        let mut meta = t.clone();
        // VALUES (…, DEFAULT, …): the column's DEFAULT, its next identity value, or NULL.
        if let ast::SetExpr::Values(values) = source.body.as_mut() {
            for row in &mut values.rows {
                for (p, expr) in row.iter_mut().enumerate() {
                    if is_default_keyword(expr)
                        && let Some(column) = targets.get(p).and_then(|n| meta.columns.iter_mut().find(|c| &c.name == n))
                    {
                        *expr = default_expr(column)?;
                    } else if let Some(column) = targets.get(p).and_then(|n| meta.columns.iter().find(|c| &c.name == n))
                        && column.identity.as_ref().is_some_and(|i| i.always)
                    {
                        return Err(service_err!(FeatureNotSupported, "cannot set an identity column to a value: {}", column.name));
                    }
                }
            }
        } else if let Some(column) = meta.columns.iter().find(|c| c.identity.as_ref().is_some_and(|i| i.always) && !insert.columns.is_empty() && targets.contains(&c.name)) {
            return Err(service_err!(FeatureNotSupported, "cannot set an identity column to a value: {}", column.name));
        }
        let incoming = self.query_watched(cluster, &source.to_string(), watch).await?;
        if incoming.schema.fields().len() != targets.len() {
            return Err(service_err!(SyntaxError, "INSERT has {} expression(s) for {} target column(s)", incoming.schema.fields().len(), targets.len()));
        }
        let schema = t.arrow_schema()?;
        let mut new = Vec::new();
        for batch in &incoming.batches {
            let mut columns = Vec::with_capacity(schema.fields().len());
            for (f, column) in schema.fields().iter().zip(meta.columns.iter_mut()) {
                columns.push(match targets.iter().position(|n| n == f.name()) {
                    Some(i) => cast_column(batch.column(i), f.data_type(), f.name())?,
                    None => self.unnamed_values(cluster, column, f, batch.num_rows()).await?,
                });
            }
            new.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?);
        }
        let added: usize = new.iter().map(RecordBatch::num_rows).sum();
        let mut all = self.rows_of(cluster, &format!("SELECT * FROM {}", quoted(&t))).await?;
        all.extend(new);
        self.commit(&c, meta, Some(&t), &all)?;
        Ok(message(&format!("INSERT 0 {added}")))
    }

    /// Values for a column a write does not name: its identity's next values (advancing it),
    /// its DEFAULT, or NULL.
    pub(super) async fn unnamed_values(&self, cluster: &str, column: &mut Column, field: &Field, rows: usize) -> Result<ArrayRef> {
        if let Some(id) = &mut column.identity {
            let values: Vec<i64> = (0..rows as i64).map(|k| id.next + k * id.step).collect();
            id.next += rows as i64 * id.step;
            return cast_column(&(Arc::new(arrow_array::Int64Array::from(values)) as ArrayRef), field.data_type(), field.name());
        }
        let Some(expr) = &column.default else { return Ok(new_null_array(field.data_type(), rows)) };
        let result = self.query(cluster, &format!("SELECT CAST(({expr}) AS {})", sql_cast_type(field.data_type()))).await?;
        let batch = result.batches.iter().find(|b| b.num_rows() > 0).ok_or_else(|| internal_err!("DEFAULT {expr} gave no value"))?;
        let one = cast_column(batch.column(0), field.data_type(), field.name())?;
        datafusion::scalar::ScalarValue::try_from_array(&one, 0)
            .and_then(|v| v.to_array_of_size(rows))
            .map_err(|e| internal_err!("DEFAULT {expr}: {e}"))
    }

    async fn delete(&self, cluster: &str, delete: ast::Delete) -> Result<Outcome> {
        let tables = match &delete.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let [only] = tables.as_slice() else {
            return Err(service_err!(FeatureNotSupported, "DELETE from one table at a time"));
        };
        let TableFactor::Table { name, .. } = &only.relation else {
            return Err(service_err!(SyntaxError, "DELETE FROM takes a table name"));
        };
        let (c, t) = self.table_meta(cluster, name)?;
        let keep = match (&delete.using, &delete.selection) {
            // DELETE FROM t USING u WHERE …: a row goes when some row of u meets the condition with it.
            (Some(using), predicate) => format!(
                "SELECT * FROM {} AS \"{}\" WHERE NOT EXISTS (SELECT 1 FROM {} WHERE {})",
                quoted(&t),
                t.name,
                using.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                predicate.as_ref().map_or("true".to_string(), |p| format!("coalesce(({p}), false)"))
            ),
            (None, Some(predicate)) => format!("SELECT * FROM {} WHERE NOT coalesce(({predicate}), false)", quoted(&t)),
            (None, None) => format!("SELECT * FROM {} WHERE false", quoted(&t)),
        };
        let kept = self.rows_of(cluster, &keep).await?;
        let removed = t.rows() - kept.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        self.commit(&c, t.clone(), Some(&t), &kept)?;
        Ok(message(&format!("DELETE {removed}")))
    }

    async fn update(&self, cluster: &str, update: ast::Update) -> Result<Outcome> {
        let TableFactor::Table { name, .. } = &update.table.relation else {
            return Err(service_err!(SyntaxError, "UPDATE takes a table name"));
        };
        let (c, t) = self.table_meta(cluster, name)?;
        let mut meta = t.clone();
        let mut sets: BTreeMap<String, String> = BTreeMap::new();
        for a in &update.assignments {
            let column = lower(&a.target.to_string());
            let Some(col) = meta.columns.iter_mut().find(|c| c.name == column) else {
                return Err(service_err!(UndefinedColumn, "column \"{column}\" of relation \"{}\" does not exist", t.name));
            };
            if col.identity.as_ref().is_some_and(|i| i.always) {
                return Err(service_err!(FeatureNotSupported, "cannot set an identity column to a value: {column}"));
            }
            let value = if is_default_keyword(&a.value) { default_expr(col)?.to_string() } else { a.value.to_string() };
            sets.insert(column, value);
        }
        let condition = update.selection.as_ref().map_or("true".to_string(), |p| format!("coalesce(({p}), false)"));
        let hit = match &update.from {
            None => condition,
            // UPDATE t SET … FROM u WHERE …: the rows of t that some row of u meets the condition
            // with. The new values may use t's columns; values taken from u need a join this
            // rewrite does not make.
            Some(from) => {
                let tables = match from {
                    ast::UpdateTableFromKind::BeforeSet(t) | ast::UpdateTableFromKind::AfterSet(t) => t,
                };
                let names: Vec<String> = tables.iter().map(|t| lower(&t.relation.to_string())).collect();
                if let Some((col, _)) = sets.iter().find(|(_, v)| names.iter().any(|n| v.to_lowercase().contains(&format!("{n}.")))) {
                    return Err(service_err!(FeatureNotSupported, "UPDATE … FROM: the value of {col} uses a FROM table; set it from a subquery instead")
                        .with_hint("SET col = (SELECT … FROM other WHERE other.k = t.k)"));
                }
                format!("EXISTS (SELECT 1 FROM {} WHERE {condition})", tables.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            }
        };
        let schema = t.arrow_schema()?;
        // The rows the condition hits, with the new values, then the others as they are (two
        // filtered scans: a condition with EXISTS is a semi join, which a projection cannot hold).
        let select: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| match sets.get(f.name()) {
                Some(value) => format!("CAST(({value}) AS {}) AS \"{}\"", sql_cast_type(f.data_type()), f.name()),
                None => format!("\"{}\"", f.name()),
            })
            .collect();
        let from = format!("{} AS \"{}\"", quoted(&t), t.name);
        let mut rows = self.rows_of(cluster, &format!("SELECT {} FROM {from} WHERE {hit}", select.join(", "))).await?;
        rows.extend(self.rows_of(cluster, &format!("SELECT * FROM {from} WHERE NOT ({hit})")).await?);
        let rows = rows.iter().map(|b| conform(b, &schema)).collect::<Result<Vec<_>>>()?;
        let counted = self.rows_of(cluster, &format!("SELECT count(*) FROM {} AS \"{}\" WHERE {hit}", quoted(&t), t.name)).await?;
        let changed = counted.first().and_then(|b| b.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().map(|a| a.value(0))).unwrap_or(0);
        self.commit(&c, meta, Some(&t), &rows)?;
        Ok(message(&format!("UPDATE {changed}")))
    }
}
