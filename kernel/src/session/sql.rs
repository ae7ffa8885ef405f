//! SQL assistance in `%sql` / `%%sql` cells, as JupySQL and jupyterlab-sql-editor users expect:
//! completion of databases (schemas), tables, the columns of the tables in the statement's
//! FROM / JOIN clauses (through their aliases too), functions and keywords; and Shift-Tab on a
//! column (its type, and whether it is a partition key) or a function (its signature). On a
//! Redshift cluster (`%sql --cluster NAME` or `%redshift connect NAME`) the names are the
//! cluster's: its schemas and tables, and its external (Spectrum) schemas' catalog tables.

use lakebook_engine::Lakebook;

use super::Match;

/// Keywords offered when completing SQL (Athena's and Redshift's common DDL, DML and query words).
const SQL_KEYWORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "HAVING", "LIMIT", "JOIN", "LEFT JOIN", "INNER JOIN", "ON", "AS",
    "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS NULL", "DISTINCT", "COUNT", "SUM", "AVG", "MIN", "MAX", "CASE",
    "WHEN", "THEN", "ELSE", "END", "CAST", "WITH", "UNION ALL", "DESC", "ASC", "CREATE TABLE", "CREATE EXTERNAL TABLE",
    "INSERT INTO", "VALUES", "MSCK REPAIR TABLE", "DROP TABLE", "SHOW TABLES", "SHOW DATABASES", "DESCRIBE", "EXPLAIN",
    "PARTITIONED BY", "STORED AS", "LOCATION", "TBLPROPERTIES", "ROW FORMAT DELIMITED", "FIELDS TERMINATED BY",
];

/// Words that end a FROM item, so they are never taken for an alias.
const CLAUSE_WORDS: &[&str] = &[
    "WHERE", "JOIN", "ON", "USING", "GROUP", "ORDER", "LIMIT", "LEFT", "RIGHT", "INNER", "FULL", "OUTER", "CROSS", "NATURAL",
    "UNION", "EXCEPT", "INTERSECT", "HAVING", "WINDOW", "SELECT", "FROM", "AS", "OFFSET", "QUALIFY", "TABLESAMPLE",
];

/// A table a statement reads: `FROM t`, `JOIN db.t AS x`, `FROM a x, b y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableRef {
    pub name: String,
    pub alias: Option<String>,
}

/// A column as completion and inspection show it.
#[derive(Debug, Clone)]
pub(super) struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub partition_key: bool,
}

/// A table's qualified name and columns.
#[derive(Debug, Clone)]
pub(super) struct TableInfo {
    pub qualified: String,
    pub columns: Vec<ColumnInfo>,
}

/// Where the statement runs: Athena with a default database, or a Redshift cluster.
pub(super) enum Target {
    Athena { database: String },
    Redshift { cluster: String },
}

impl Target {
    /// From the magic line (`%sql …` or the `%%sql …` first line): `--cluster NAME` runs on
    /// Redshift, `--database`/`--workgroup`/`--output` on Athena; otherwise the cluster
    /// `%redshift connect` chose, else Athena with the session's database.
    pub(super) fn of(magic_line: &str, database: &str, connected: Option<&str>) -> Target {
        let words: Vec<&str> = magic_line.split_whitespace().collect();
        let value = |flags: &[&str]| {
            words.iter().enumerate().find_map(|(i, w)| {
                flags.iter().find_map(|f| match w.strip_prefix(f) {
                    Some("") => words.get(i + 1).map(|v| v.to_string()),
                    Some(rest) => rest.strip_prefix('=').map(str::to_string),
                    None => None,
                })
            })
        };
        if let Some(cluster) = value(&["--cluster"]) {
            return Target::Redshift { cluster };
        }
        let athena_flag = words.iter().any(|w| ["--database", "-d", "--workgroup", "-w", "--output"].iter().any(|f| w.starts_with(f)));
        match (value(&["--database", "-d"]), connected) {
            (Some(database), _) => Target::Athena { database },
            (None, Some(cluster)) if !athena_flag => Target::Redshift { cluster: cluster.to_string() },
            _ => Target::Athena { database: database.to_string() },
        }
    }
}

fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in sql.chars() {
        if c.is_whitespace() || matches!(c, ',' | '(' | ')' | ';' | '=' | '<' | '>' | '+' | '*') {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn is_name(token: &str) -> bool {
    token.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '"')
        && token.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '"' | '$'))
}

fn unquote(name: &str) -> String {
    name.replace('"', "")
}

/// The tables the statement's FROM and JOIN clauses name, with their aliases.
pub(super) fn table_refs(sql: &str) -> Vec<TableRef> {
    let tokens = tokens(sql);
    let mut refs = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let keyword = tokens[i].to_ascii_uppercase();
        if keyword != "FROM" && keyword != "JOIN" {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while let Some(name) = tokens.get(j).filter(|t| is_name(t) && !CLAUSE_WORDS.contains(&t.to_ascii_uppercase().as_str())) {
            j += 1;
            let mut alias = None;
            if tokens.get(j).is_some_and(|t| t.eq_ignore_ascii_case("AS")) {
                alias = tokens.get(j + 1).filter(|t| is_name(t)).map(|t| unquote(t));
                j += 2;
            } else if let Some(a) = tokens.get(j).filter(|t| is_name(t) && !CLAUSE_WORDS.contains(&t.to_ascii_uppercase().as_str())) {
                alias = Some(unquote(a));
                j += 1;
            }
            refs.push(TableRef { name: unquote(name), alias });
            // `FROM a x, b y`: a comma goes on to the next table.
            if keyword == "FROM" && tokens.get(j).is_some_and(|t| t == ",") {
                j += 1;
            } else {
                break;
            }
        }
        i = j.max(i + 1);
    }
    refs
}

/// The table a reference names, with its columns, in the target's namespace.
pub(super) fn resolve(engine: &Lakebook, target: &Target, name: &str) -> Option<TableInfo> {
    let catalog_table = |db: &str, table: &str| {
        let t = engine.catalog().table(db, table).ok()?;
        let data = t.definition.columns.iter().map(|c| (c, false));
        let keys = t.definition.partition_keys.iter().map(|c| (c, true));
        let columns = data.chain(keys).map(|(c, key)| ColumnInfo { name: c.name.clone(), data_type: c.data_type.clone(), partition_key: key }).collect();
        Some(TableInfo { qualified: format!("{db}.{table}"), columns })
    };
    let lower = name.to_lowercase();
    match target {
        Target::Athena { database } => match lower.split_once('.') {
            Some((db, table)) => catalog_table(db, table),
            None => catalog_table(database, &lower),
        },
        Target::Redshift { cluster } => {
            let c = engine.redshift().describe(cluster).ok()?;
            let (schema, table) = lower.split_once('.').unwrap_or(("public", &lower));
            if let Some(external) = c.external_schemas.iter().find(|s| s.name == schema) {
                return catalog_table(&external.database, table).map(|t| TableInfo { qualified: format!("{schema}.{table}"), ..t });
            }
            let t = c.tables.iter().find(|t| t.schema == schema && t.name == table)?;
            let columns = t.columns.iter().map(|c| ColumnInfo { name: c.name.clone(), data_type: c.data_type.clone(), partition_key: false }).collect();
            Some(TableInfo { qualified: t.qualified(), columns })
        }
    }
}

/// The tables of a database (Athena) or schema (Redshift), and the databases or schemas.
fn namespaces(engine: &Lakebook, target: &Target) -> Vec<(String, Vec<String>)> {
    match target {
        Target::Athena { .. } => engine.catalog().databases().into_iter().map(|db| (db.name.clone(), db.tables.keys().cloned().collect())).collect(),
        Target::Redshift { cluster } => {
            let Ok(c) = engine.redshift().describe(cluster) else { return Vec::new() };
            let mut spaces: Vec<(String, Vec<String>)> =
                c.schemas.iter().map(|s| (s.clone(), c.tables.iter().filter(|t| &t.schema == s).map(|t| t.name.clone()).collect())).collect();
            for external in &c.external_schemas {
                let tables = engine.catalog().tables(&external.database).unwrap_or_default().into_iter().map(|t| t.name).collect();
                spaces.push((external.name.clone(), tables));
            }
            spaces
        }
    }
}

/// Completion of `word` (the SQL word before the cursor) in `code`.
pub(super) fn complete(engine: &Lakebook, target: &Target, code: &str, word: &str) -> Vec<Match> {
    let lower = word.to_lowercase();
    let mut matches: Vec<Match> = Vec::new();
    let push = |text: String, kind: &'static str, matches: &mut Vec<Match>| {
        if text.to_lowercase().starts_with(&lower) && !matches.iter().any(|m| m.text == text) {
            matches.push(Match { text, kind });
        }
    };
    let refs = table_refs(code);
    let spaces = namespaces(engine, target);
    if let Some((prefix, _)) = word.rsplit_once('.') {
        // `alias.col`, `table.col`, then `db.table`.
        let named = refs.iter().find(|r| {
            r.alias.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(prefix))
                || r.name.eq_ignore_ascii_case(prefix)
                || (r.alias.is_none() && r.name.rsplit('.').next().is_some_and(|t| t.eq_ignore_ascii_case(prefix)))
        });
        if let Some(table) = named.and_then(|r| resolve(engine, target, &r.name)) {
            for column in table.columns {
                push(format!("{prefix}.{}", column.name), "column", &mut matches);
            }
        }
        if let Some((space, tables)) = spaces.iter().find(|(s, _)| s.eq_ignore_ascii_case(prefix)) {
            for table in tables {
                push(format!("{space}.{table}"), "table", &mut matches);
            }
        }
        return matches;
    }
    for table in refs.iter().filter_map(|r| resolve(engine, target, &r.name)) {
        for column in table.columns {
            push(column.name, "column", &mut matches);
        }
    }
    let default_space = match target {
        Target::Athena { database } => database.clone(),
        Target::Redshift { .. } => "public".to_string(),
    };
    if let Some((_, tables)) = spaces.iter().find(|(s, _)| *s == default_space) {
        for table in tables {
            push(table.clone(), "table", &mut matches);
        }
    }
    if let Target::Athena { .. } = target {
        for view in engine.sql().views() {
            push(view, "view", &mut matches);
        }
    }
    for (space, _) in &spaces {
        push(space.clone(), if matches!(target, Target::Athena { .. }) { "database" } else { "schema" }, &mut matches);
    }
    let typed_lower = !word.is_empty() && word.chars().all(|c| !c.is_uppercase());
    for name in engine.sql().function_names() {
        push(if typed_lower { name } else { name.to_uppercase() }, "function", &mut matches);
    }
    for keyword in SQL_KEYWORDS {
        push(if typed_lower { keyword.to_lowercase() } else { keyword.to_string() }, "keyword", &mut matches);
    }
    matches
}

/// Shift-Tab on a SQL word: a column of a table the statement reads (its type, and its role
/// as a partition key), else a function's signature.
pub(super) fn inspect(engine: &Lakebook, target: &Target, code: &str, word: &str) -> Option<String> {
    let refs = table_refs(code);
    let (prefix, column) = match word.rsplit_once('.') {
        Some((p, c)) => (Some(p), c),
        None => (None, word),
    };
    for r in &refs {
        if let Some(p) = prefix {
            let by_alias = r.alias.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(p));
            let by_name = r.name.eq_ignore_ascii_case(p) || r.name.rsplit('.').next().is_some_and(|t| t.eq_ignore_ascii_case(p));
            if !by_alias && !by_name {
                continue;
            }
        }
        let Some(table) = resolve(engine, target, &r.name) else { continue };
        if let Some(c) = table.columns.iter().find(|c| c.name.eq_ignore_ascii_case(column)) {
            let role = if c.partition_key {
                format!("partition key of {} (a filter on it prunes partitions before files are read)", table.qualified)
            } else {
                format!("column of {}", table.qualified)
            };
            return Some(format!("{} {}\n{role}", c.name, c.data_type));
        }
    }
    if prefix.is_none() {
        return engine.sql().function_doc(word);
    }
    None
}
