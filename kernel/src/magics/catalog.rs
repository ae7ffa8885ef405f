//! `%catalog`: the Glue-style Data Catalog — databases, tables with their columns, partition
//! keys, partitions and versions.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, UInt32Array, UInt64Array};
use clap::{CommandFactory, Parser, Subcommand};
use lakebook_engine::catalog::{Table, split_table_name};

use super::{Body, Ctx, Form, MagicSpec};
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions, batch, strings, times};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "catalog",
    summary: "The Data Catalog: databases, tables, columns, partitions and versions (Glue)",
    form: Form::Line,
    command: CatalogArgs::command,
    body: Body::Data,
    run: runner!(SPEC, run),
};

#[derive(Debug, Parser)]
#[command(about = "The Data Catalog: databases, tables, columns, partitions and versions (Glue)")]
pub struct CatalogArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// List the databases (≙ GetDatabases)
    Databases,
    /// List a database's tables (≙ GetTables)
    Tables {
        /// The database (default: default)
        database: Option<String>,
    },
    /// A table's columns, partition keys, location, format and version (≙ GetTable)
    Describe {
        /// DB.TABLE
        table: String,
    },
    /// A table's partitions (≙ GetPartitions)
    Partitions {
        /// DB.TABLE
        table: String,
    },
    /// A table's versions, oldest first (≙ GetTableVersions)
    Versions {
        /// DB.TABLE
        table: String,
    },
    /// Create a database (≙ CreateDatabase)
    CreateDatabase {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// If it exists already, keep it as it is instead of failing (a cell that can be rerun)
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Drop a table from the catalog; its files stay in the lake (≙ DeleteTable)
    DropTable {
        /// DB.TABLE
        table: String,
    },
    /// Drop a database and its tables from the catalog (≙ DeleteDatabase)
    DropDatabase { name: String },
}

pub async fn run(args: CatalogArgs, mut ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let engine = ctx.engine()?;
    let catalog = engine.catalog();
    let out = ctx.out;
    let plain = TableOptions::plain();
    match args.verb {
        Verb::Databases => {
            let dbs = catalog.databases();
            let batch = batch(vec![
                ("database", strings(dbs.iter().map(|d| d.name.clone()))),
                ("tables", Arc::new(UInt64Array::from_iter_values(dbs.iter().map(|d| d.tables.len() as u64)))),
                ("description", strings(dbs.iter().map(|d| d.description.clone()))),
                ("created", times(dbs.iter().map(|d| Some(d.created.timestamp_millis())))),
            ])?;
            Ok(Some(render::table(&batch, &plain, &Footer::default())))
        }
        Verb::Tables { database } => {
            let db = database.as_deref().unwrap_or(lakebook_engine::catalog::DEFAULT_DATABASE);
            let tables = catalog.tables(db)?;
            let batch = batch(vec![
                ("table", strings(tables.iter().map(|t| t.name.clone()))),
                ("format", strings(tables.iter().map(|t| t.definition.format.to_string()))),
                ("columns", Arc::new(UInt64Array::from_iter_values(tables.iter().map(|t| t.definition.columns.len() as u64)))),
                ("partition_keys", strings(tables.iter().map(|t| t.definition.partition_keys.iter().map(|k| k.name.clone()).collect::<Vec<_>>().join(", ")))),
                ("partitions", Arc::new(UInt64Array::from_iter_values(tables.iter().map(|t| t.live_partitions().count() as u64)))),
                ("version", Arc::new(UInt32Array::from_iter_values(tables.iter().map(Table::version)))),
                ("location", strings(tables.iter().map(|t| t.definition.location.clone()))),
                ("deprecated", Arc::new(BooleanArray::from(tables.iter().map(|t| t.deprecated).collect::<Vec<_>>()))),
            ])?;
            Ok(Some(render::table(&batch, &plain, &Footer { extra: vec![format!("database {db}")], ..Footer::default() })))
        }
        Verb::Describe { table } => {
            let (db, name) = split_table_name(&table, None)?;
            Ok(Some(describe(&catalog.table(db, name)?)?))
        }
        Verb::Partitions { table } => {
            let (db, name) = split_table_name(&table, None)?;
            let t = catalog.table(db, name)?;
            let keys: Vec<String> = t.definition.partition_keys.iter().map(|k| k.name.clone()).collect();
            let parts: Vec<_> = t.partitions.values().collect();
            let mut columns: Vec<(&str, ArrayRef)> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (k.as_str(), strings(parts.iter().map(|p| p.values[i].clone()))))
                .collect();
            columns.push(("location", strings(parts.iter().map(|p| p.location.clone()))));
            columns.push(("created", times(parts.iter().map(|p| Some(p.created.timestamp_millis())))));
            columns.push(("deprecated", Arc::new(BooleanArray::from(parts.iter().map(|p| p.deprecated).collect::<Vec<_>>()))));
            Ok(Some(render::table(&batch(columns)?, &plain, &Footer { extra: vec![t.qualified_name()], ..Footer::default() })))
        }
        Verb::Versions { table } => {
            let (db, name) = split_table_name(&table, None)?;
            let t = catalog.table(db, name)?;
            let v = &t.versions;
            let batch = batch(vec![
                ("version", Arc::new(UInt32Array::from_iter_values(v.iter().map(|v| v.version)))),
                ("created", times(v.iter().map(|v| Some(v.created.timestamp_millis())))),
                ("columns", strings(v.iter().map(|v| v.definition.columns.iter().map(|c| format!("{} {}", c.name, c.data_type)).collect::<Vec<_>>().join(", ")))),
                ("partition_keys", strings(v.iter().map(|v| v.definition.partition_keys.iter().map(|k| k.name.clone()).collect::<Vec<_>>().join(", ")))),
                ("format", strings(v.iter().map(|v| v.definition.format.to_string()))),
            ])?;
            Ok(Some(render::table(&batch, &plain, &Footer { extra: vec![t.qualified_name()], ..Footer::default() })))
        }
        Verb::CreateDatabase { name, description, if_not_exists } => {
            if if_not_exists && catalog.databases().iter().any(|d| d.name == name) {
                super::kept(out, &format!("database {name}"));
                return Ok(None);
            }
            catalog.create_database(&name, &description)?;
            out.stdout(&format!("created database {name}\n"));
            Ok(None)
        }
        Verb::DropTable { table } => {
            let (db, name) = split_table_name(&table, None)?;
            catalog.drop_table(db, name)?;
            out.stdout(&format!("dropped table {db}.{name} (its files stay in the lake)\n"));
            Ok(None)
        }
        Verb::DropDatabase { name } => {
            let n = catalog.drop_database(&name)?;
            out.stdout(&format!("dropped database {name} and its {n} table(s)\n"));
            Ok(None)
        }
    }
}

/// A table's schema and facts, for `describe` and for inspection (Shift-Tab).
pub fn describe(t: &Table) -> Result<Bundle, CellError> {
    let d = &t.definition;
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut roles = Vec::new();
    for c in &d.columns {
        names.push(c.name.clone());
        types.push(c.data_type.clone());
        roles.push(String::new());
    }
    for k in &d.partition_keys {
        names.push(k.name.clone());
        types.push(k.data_type.clone());
        roles.push("partition key".to_string());
    }
    let batch = batch(vec![("column", strings(names.into_iter())), ("type", strings(types.into_iter())), ("role", strings(roles.into_iter()))])?;
    let mut facts = vec![
        format!("location {}", d.location),
        format!("format {}", d.format),
        format!("version {}", t.version()),
        format!("{} partition(s)", t.live_partitions().count()),
    ];
    if let Some(c) = &d.compression {
        facts.push(format!("compression {c}"));
    }
    for (k, v) in d.format.serde_parameters() {
        facts.push(format!("{k}={}", v.replace('\t', "\\t")));
    }
    if let Some(c) = &t.crawler {
        facts.push(format!("crawler {c}"));
    }
    if t.deprecated {
        facts.push("DEPRECATED (its data is gone)".into());
    }
    let options = TableOptions { max_rows: 500, ..TableOptions::plain() };
    let mut bundle = render::table(&batch, &options, &Footer { extra: facts.clone(), ..Footer::default() });
    let heading = t.qualified_name();
    if let Some(serde_json::Value::String(html)) = bundle.get_mut("text/html") {
        *html = format!("<p><b>{}</b></p>{html}", render::escape(&heading));
    }
    if let Some(serde_json::Value::String(text)) = bundle.get_mut("text/plain") {
        *text = format!("{heading}\n{text}");
    }
    Ok(bundle)
}

