//! The Glue-style Data Catalog: databases, tables (with versions), partitions, crawlers and
//! their run history, persisted in `<workspace>/catalog/catalog.json` (atomic rewrites). It is
//! the one catalog SQL, EMR and the warehouse read.

mod classify;
mod crawler;
mod model;
pub mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use classify::{Classified, classify};
pub use crawler::{CrawlResult, FoundTable};
pub use model::*;

use crate::clock::Clock;
use crate::error::{Result, closest};
use crate::lake::Lake;
use crate::service_err;
use crate::workspace::{Workspace, read_json, write_json};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    databases: BTreeMap<String, Database>,
    crawlers: BTreeMap<String, Crawler>,
}

#[derive(Debug)]
pub struct Catalog {
    path: PathBuf,
    state: Mutex<State>,
    clock: Arc<Clock>,
}

/// The database every workspace starts with, as Glue's `default`.
pub const DEFAULT_DATABASE: &str = "default";

impl Catalog {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>) -> Result<Self> {
        let path = workspace.dir("catalog")?.join("catalog.json");
        let state: State = read_json(&path)?.unwrap_or_default();
        let catalog = Self { path, state: Mutex::new(state), clock };
        if !catalog.lock().databases.contains_key(DEFAULT_DATABASE) {
            catalog.create_database(DEFAULT_DATABASE, "the default database")?;
        }
        Ok(catalog)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to a copy of the state and saves it; the state only changes if the
    /// save succeeded.
    fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        let mut next = state.clone();
        let value = change(&mut next)?;
        write_json(&self.path, &next)?;
        *state = next;
        Ok(value)
    }

    // ---- databases -------------------------------------------------------------------------

    /// ≙ CreateDatabase. Creating one that exists fails with `AlreadyExistsException`.
    pub fn create_database(&self, name: &str, description: &str) -> Result<()> {
        self.create_database_at(name, description, None, BTreeMap::new())
    }

    /// ≙ CreateDatabase with a LocationUri and Parameters.
    pub fn create_database_at(&self, name: &str, description: &str, location: Option<String>, parameters: BTreeMap<String, String>) -> Result<()> {
        validate_name("database", name)?;
        let now = self.clock.now();
        self.update(|s| {
            if s.databases.contains_key(name) {
                return Err(service_err!(AlreadyExistsException, "the database {name} already exists"));
            }
            s.databases.insert(
                name.to_string(),
                Database { name: name.to_string(), description: description.to_string(), created: now, tables: BTreeMap::new(), location, parameters },
            );
            Ok(())
        })
    }

    /// ≙ DeleteDatabase (with its tables).
    pub fn drop_database(&self, name: &str) -> Result<usize> {
        self.update(|s| {
            let db = s.databases.remove(name).ok_or_else(|| no_database(name))?;
            Ok(db.tables.len())
        })
    }

    /// ≙ GetDatabases.
    pub fn databases(&self) -> Vec<Database> {
        self.lock().databases.values().cloned().collect()
    }

    // ---- tables ----------------------------------------------------------------------------

    /// ≙ GetTables.
    pub fn tables(&self, database: &str) -> Result<Vec<Table>> {
        let state = self.lock();
        let db = state.databases.get(database).ok_or_else(|| no_database(database))?;
        Ok(db.tables.values().cloned().collect())
    }

    /// ≙ GetTable.
    pub fn table(&self, database: &str, name: &str) -> Result<Table> {
        let state = self.lock();
        let db = state.databases.get(database).ok_or_else(|| no_database(database))?;
        db.tables.get(name).cloned().ok_or_else(|| no_table(db, name))
    }

    /// ≙ CreateTable (version 1). Fails with `AlreadyExistsException` if the name is taken.
    pub fn create_table(&self, database: &str, name: &str, definition: TableDefinition) -> Result<Table> {
        validate_name("table", name)?;
        let now = self.clock.now();
        self.update(|s| {
            let db = s.databases.get_mut(database).ok_or_else(|| no_database(database))?;
            if db.tables.contains_key(name) {
                return Err(service_err!(AlreadyExistsException, "the table {database}.{name} already exists"));
            }
            let table = new_table(database, name, definition, now, None);
            db.tables.insert(name.to_string(), table.clone());
            Ok(table)
        })
    }

    /// ≙ UpdateTable: a new version with the new definition.
    pub fn update_table(&self, database: &str, name: &str, definition: TableDefinition) -> Result<Table> {
        let now = self.clock.now();
        self.update(|s| {
            let db = s.databases.get_mut(database).ok_or_else(|| no_database(database))?;
            let known: Vec<String> = db.tables.keys().cloned().collect();
            let table = db.tables.get_mut(name).ok_or_else(|| no_table_in(database, &known, name))?;
            push_version(table, definition, now);
            Ok(table.clone())
        })
    }

    /// ≙ DeleteTable.
    pub fn drop_table(&self, database: &str, name: &str) -> Result<()> {
        self.update(|s| {
            let db = s.databases.get_mut(database).ok_or_else(|| no_database(database))?;
            let known: Vec<String> = db.tables.keys().cloned().collect();
            db.tables.remove(name).map(|_| ()).ok_or_else(|| no_table_in(database, &known, name))
        })
    }

    /// ≙ BatchCreatePartition: adds partitions not yet known; returns how many were new.
    pub fn add_partitions(&self, database: &str, name: &str, partitions: Vec<(Vec<String>, String)>) -> Result<usize> {
        let now = self.clock.now();
        self.update(|s| {
            let db = s.databases.get_mut(database).ok_or_else(|| no_database(database))?;
            let known: Vec<String> = db.tables.keys().cloned().collect();
            let table = db.tables.get_mut(name).ok_or_else(|| no_table_in(database, &known, name))?;
            let keys = table.definition.partition_keys.len();
            let mut added = 0;
            for (values, location) in partitions {
                if values.len() != keys {
                    return Err(service_err!(InvalidInputException, "partition {values:?} has {} values; {database}.{name} has {keys} partition keys", values.len()));
                }
                let id = values.join("/");
                if table.partitions.get(&id).is_none_or(|p| p.deprecated) {
                    table.partitions.insert(id, Partition { values, location, created: now, deprecated: false });
                    added += 1;
                }
            }
            Ok(added)
        })
    }

    // ---- crawlers --------------------------------------------------------------------------

    /// ≙ CreateCrawler.
    pub fn create_crawler(&self, config: CrawlerConfig) -> Result<()> {
        validate_crawler(&config)?;
        let now = self.clock.now();
        self.update(|s| {
            if s.crawlers.contains_key(&config.name) {
                return Err(service_err!(AlreadyExistsException, "the crawler {} already exists", config.name));
            }
            s.crawlers.insert(config.name.clone(), Crawler { config, created: now, last_run: None, runs: Vec::new() });
            Ok(())
        })
    }

    /// Creates the crawler, or replaces the definition of an existing one (keeping its runs).
    pub fn upsert_crawler(&self, config: CrawlerConfig) -> Result<()> {
        validate_crawler(&config)?;
        let now = self.clock.now();
        self.update(|s| {
            match s.crawlers.get_mut(&config.name) {
                Some(existing) => existing.config = config,
                None => {
                    s.crawlers.insert(config.name.clone(), Crawler { config, created: now, last_run: None, runs: Vec::new() });
                }
            }
            Ok(())
        })
    }

    pub fn crawler(&self, name: &str) -> Result<Crawler> {
        let state = self.lock();
        state.crawlers.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = state.crawlers.keys().map(String::as_str).collect();
            not_found("crawler", name, &known)
        })
    }

    pub fn crawlers(&self) -> Vec<Crawler> {
        self.lock().crawlers.values().cloned().collect()
    }

    /// ≙ DeleteCrawler (its tables stay).
    pub fn delete_crawler(&self, name: &str) -> Result<()> {
        self.crawler(name)?;
        self.update(|s| {
            s.crawlers.remove(name);
            Ok(())
        })
    }

    /// ≙ StartCrawler, run to completion: crawls and merges what it found into the catalog.
    pub async fn run_crawler(&self, lake: &Lake, name: &str, progress: &mut (dyn FnMut(usize, usize) + Send)) -> Result<CrawlSummary> {
        let crawler = self.crawler(name)?;
        let started = self.clock.now();
        let timer = std::time::Instant::now();
        let found = crawler::crawl(lake, &crawler.config, progress).await?;
        let mut summary = self.apply_crawl(&crawler.config, found)?;
        summary.started = Some(started);
        summary.elapsed_ms = timer.elapsed().as_millis() as u64;
        let record = summary.clone();
        self.update(|s| {
            if let Some(c) = s.crawlers.get_mut(name) {
                c.last_run = Some(started);
                c.runs.push(record);
                let keep = c.runs.len().saturating_sub(20);
                c.runs.drain(..keep);
            }
            Ok(())
        })?;
        Ok(summary)
    }

    /// Crawlers whose schedule is due at `now`.
    pub fn due_crawlers(&self, now: DateTime<Utc>) -> Vec<String> {
        self.lock()
            .crawlers
            .values()
            .filter_map(|c| {
                let schedule = crate::schedule::Schedule::parse(c.config.schedule.as_deref()?).ok()?;
                let since = c.last_run.unwrap_or(c.created);
                crate::schedule::due(&schedule, since, now).then(|| c.config.name.clone())
            })
            .collect()
    }

    /// Merges a crawl into the catalog following the crawler's schema-change policy.
    fn apply_crawl(&self, config: &CrawlerConfig, found: CrawlResult) -> Result<CrawlSummary> {
        let now = self.clock.now();
        let mut summary = CrawlSummary {
            crawler: config.name.clone(),
            files_seen: found.files_seen,
            files_read: found.files_read,
            skipped: found.skipped,
            ..CrawlSummary::default()
        };
        let changes = self.update(|s| {
            let db_name = &config.database;
            let db = s.databases.entry(db_name.clone()).or_insert_with(|| Database {
                name: db_name.clone(),
                description: format!("created by the crawler {}", config.name),
                created: now,
                tables: BTreeMap::new(),
                location: None,
                parameters: BTreeMap::new(),
            });
            let mut changes = Vec::new();
            let mut seen = Vec::new();
            for table in found.tables {
                let name = free_name(db, &table, &config.name);
                seen.push(name.clone());
                changes.push(merge_found(db, &name, table, config, now));
            }
            // Tables this crawler made before whose data is gone.
            let gone: Vec<String> = db
                .tables
                .values()
                .filter(|t| t.crawler.as_deref() == Some(config.name.as_str()) && !seen.contains(&t.name) && !t.deprecated)
                .map(|t| t.name.clone())
                .collect();
            for name in gone {
                let version = db.tables.get(&name).map_or(1, Table::version);
                let (action, detail) = match config.delete_behavior {
                    DeleteBehavior::Delete => {
                        db.tables.remove(&name);
                        (TableAction::Deleted, "its data is gone: deleted from the catalog")
                    }
                    DeleteBehavior::Deprecate => {
                        if let Some(t) = db.tables.get_mut(&name) {
                            t.deprecated = true;
                            t.updated = now;
                        }
                        (TableAction::Deprecated, "its data is gone: marked deprecated")
                    }
                    DeleteBehavior::Log => (TableAction::Logged, "its data is gone (logged only)"),
                };
                changes.push(TableChange { table: name, action, version, partitions_added: 0, partitions_removed: 0, detail: detail.into() });
            }
            Ok(changes)
        })?;
        summary.tables = changes;
        Ok(summary)
    }
}

/// A name for a found table: its own, unless another location already uses it.
fn free_name(db: &Database, table: &FoundTable, crawler: &str) -> String {
    match db.tables.get(&table.name) {
        Some(existing) if existing.definition.location != table.definition.location && existing.crawler.as_deref() != Some(crawler) => {
            let hash = table.definition.location.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
            format!("{}_{:08x}", table.name, hash)
        }
        _ => table.name.clone(),
    }
}

fn merge_found(db: &mut Database, name: &str, found: FoundTable, config: &CrawlerConfig, now: DateTime<Utc>) -> TableChange {
    let partitions: Vec<(String, Vec<String>, String)> =
        found.partitions.into_iter().map(|(values, location)| (values.join("/"), values, location)).collect();
    let Some(table) = db.tables.get_mut(name) else {
        let mut table = new_table(&db.name, name, found.definition, now, Some(&config.name));
        for (id, values, location) in &partitions {
            table.partitions.insert(id.clone(), Partition { values: values.clone(), location: location.clone(), created: now, deprecated: false });
        }
        set_stats(&mut table, found.files, found.bytes);
        let added = table.partitions.len();
        db.tables.insert(name.to_string(), table);
        return TableChange { table: name.to_string(), action: TableAction::Created, version: 1, partitions_added: added, partitions_removed: 0, detail: String::new() };
    };
    let mut action = TableAction::Unchanged;
    let mut detail = Vec::new();
    if table.deprecated {
        table.deprecated = false;
        action = TableAction::Updated;
        detail.push("its data is back".to_string());
    }
    if table.definition != found.definition {
        let what = describe_change(&table.definition, &found.definition);
        match config.update_behavior {
            UpdateBehavior::Update => {
                push_version(table, found.definition, now);
                action = TableAction::Updated;
                detail.push(what);
            }
            UpdateBehavior::Log => {
                if action == TableAction::Unchanged {
                    action = TableAction::Logged;
                }
                detail.push(format!("{what} (logged, not applied)"));
            }
        }
    }
    // Partitions: add new, handle vanished ones per the delete behaviour.
    let mut added = 0;
    let now_ids: std::collections::BTreeSet<&String> = partitions.iter().map(|(id, ..)| id).collect();
    if table.definition.partition_keys.len() == partitions.first().map_or(table.definition.partition_keys.len(), |(_, v, _)| v.len()) {
        for (id, values, location) in &partitions {
            if table.partitions.get(id).is_none_or(|p| p.deprecated) {
                table.partitions.insert(id.clone(), Partition { values: values.clone(), location: location.clone(), created: now, deprecated: false });
                added += 1;
            }
        }
    }
    let vanished: Vec<String> = table.partitions.keys().filter(|id| !now_ids.contains(id)).cloned().collect();
    let mut removed = 0;
    for id in vanished {
        match config.delete_behavior {
            DeleteBehavior::Delete => {
                table.partitions.remove(&id);
                removed += 1;
            }
            DeleteBehavior::Deprecate => {
                if let Some(p) = table.partitions.get_mut(&id).filter(|p| !p.deprecated) {
                    p.deprecated = true;
                    removed += 1;
                }
            }
            DeleteBehavior::Log => {}
        }
    }
    if removed > 0 || (config.delete_behavior == DeleteBehavior::Log && table.partitions.len() > now_ids.len()) {
        let verb = match config.delete_behavior {
            DeleteBehavior::Delete => "deleted",
            DeleteBehavior::Deprecate => "deprecated",
            DeleteBehavior::Log => "gone (logged only)",
        };
        let n = if removed > 0 { removed } else { table.partitions.len() - now_ids.len() };
        detail.push(format!("{n} partition(s) {verb}"));
    }
    if (added > 0 || removed > 0) && action == TableAction::Unchanged {
        action = TableAction::Updated;
    }
    if action != TableAction::Unchanged {
        table.updated = now;
    }
    set_stats(table, found.files, found.bytes);
    TableChange {
        table: name.to_string(),
        action,
        version: table.version(),
        partitions_added: added,
        partitions_removed: removed,
        detail: detail.join("; "),
    }
}

fn describe_change(old: &TableDefinition, new: &TableDefinition) -> String {
    let mut parts = Vec::new();
    let added: Vec<&str> = new.columns.iter().filter(|c| !old.columns.iter().any(|o| o.name == c.name)).map(|c| c.name.as_str()).collect();
    let dropped: Vec<&str> = old.columns.iter().filter(|c| !new.columns.iter().any(|o| o.name == c.name)).map(|c| c.name.as_str()).collect();
    let retyped: Vec<String> = new
        .columns
        .iter()
        .filter_map(|c| old.columns.iter().find(|o| o.name == c.name && o.data_type != c.data_type).map(|o| format!("{} {}→{}", c.name, o.data_type, c.data_type)))
        .collect();
    if !added.is_empty() {
        parts.push(format!("new column(s) {}", added.join(", ")));
    }
    if !dropped.is_empty() {
        parts.push(format!("column(s) {} no longer seen", dropped.join(", ")));
    }
    if !retyped.is_empty() {
        parts.push(format!("type change {}", retyped.join(", ")));
    }
    if old.partition_keys != new.partition_keys {
        parts.push("partition keys changed".into());
    }
    if old.format != new.format || old.compression != new.compression {
        parts.push(format!("format {} → {}", old.format, new.format));
    }
    if parts.is_empty() { "definition changed".into() } else { parts.join(", ") }
}

pub(crate) fn new_table(database: &str, name: &str, definition: TableDefinition, now: DateTime<Utc>, crawler: Option<&str>) -> Table {
    let mut parameters = BTreeMap::new();
    parameters.insert("classification".into(), definition.format.classification().to_string());
    if let Some(c) = &definition.compression {
        parameters.insert("compressionType".into(), c.clone());
    }
    Table {
        name: name.to_string(),
        database: database.to_string(),
        created: now,
        updated: now,
        versions: vec![TableVersion { version: 1, created: now, definition: definition.clone() }],
        definition,
        partitions: BTreeMap::new(),
        crawler: crawler.map(str::to_string),
        deprecated: false,
        parameters,
    }
}

fn push_version(table: &mut Table, definition: TableDefinition, now: DateTime<Utc>) {
    let version = table.version() + 1;
    table.versions.push(TableVersion { version, created: now, definition: definition.clone() });
    table.parameters.insert("classification".into(), definition.format.classification().to_string());
    table.definition = definition;
    table.updated = now;
}

fn set_stats(table: &mut Table, files: usize, bytes: u64) {
    table.parameters.insert("objectCount".into(), files.to_string());
    table.parameters.insert("sizeKey".into(), bytes.to_string());
}

fn validate_crawler(config: &CrawlerConfig) -> Result<()> {
    // Glue names crawlers more freely than databases and tables: `raw-orders` is a crawler.
    let name = &config.name;
    let printable = !name.is_empty() && name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !printable {
        return Err(service_err!(InvalidInputException, "{name:?} is not a valid crawler name").with_hint("crawler names are 1 to 255 letters, digits, '_', '-' or '.'"));
    }
    validate_name("database", &config.database)?;
    crate::lake::S3Uri::parse(&config.target)?;
    if let Some(schedule) = &config.schedule {
        crate::schedule::Schedule::parse(schedule)?;
    }
    if !config.table_prefix.is_empty() {
        validate_name("table prefix", &config.table_prefix)?;
    }
    Ok(())
}

fn no_database(name: &str) -> crate::Error {
    service_err!(EntityNotFoundException, "the database {name} does not exist")
        .with_hint(format!("create it with `%catalog create-database {name}`, or list them with `%catalog databases`"))
}

fn no_table(db: &Database, name: &str) -> crate::Error {
    let known: Vec<String> = db.tables.keys().cloned().collect();
    no_table_in(&db.name, &known, name)
}

fn no_table_in(database: &str, known: &[String], name: &str) -> crate::Error {
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    not_found("table", &format!("{database}.{name}"), &known).with_hint(match closest(name, &known) {
        Some(c) => format!("did you mean {database}.{c}?"),
        None => format!("`%catalog tables {database}` lists its tables"),
    })
}

fn not_found(kind: &str, name: &str, known: &[&str]) -> crate::Error {
    let mut err = service_err!(EntityNotFoundException, "the {kind} {name} does not exist");
    if let Some(c) = closest(name.rsplit('.').next().unwrap_or(name), known) {
        err = err.with_hint(format!("did you mean {c}?"));
    }
    err
}
