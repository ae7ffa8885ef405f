//! Athena's statements that change the catalog or the lake rather than just read:
//! `CREATE EXTERNAL TABLE`, CTAS (`CREATE TABLE … WITH (…) AS SELECT`), `INSERT INTO`,
//! `MSCK REPAIR TABLE`, `DROP TABLE`, and `SHOW DATABASES` / `SHOW TABLES` with Athena's
//! result columns. Everything else goes to DataFusion unchanged.
//!
//! Writes follow Athena: CTAS needs an empty location (HIVE_PATH_ALREADY_EXISTS otherwise) and
//! takes its partition columns from the end of the SELECT list; INSERT INTO only adds files;
//! `DROP TABLE` on an external table leaves the data in place. Files are written whole through
//! the lake (write, then rename), so a failed statement leaves no half-written object.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::sql::sqlparser::ast::{
    self, CreateTableOptions, Expr, FileFormat as SqlFileFormat, HiveDelimiter, HiveDistributionStyle, HiveIOFormat,
    HiveRowFormat, ObjectName, ObjectType, SqlOption, Statement, TableObject,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::catalog::types::{arrow_type, glue_type};
use crate::catalog::{Column, Format, Table, TableDefinition};
use crate::error::{Result, closest};
use crate::lake::S3Uri;
use crate::{internal_err, service_err};

mod definition;
mod run;
mod write;

pub(crate) use definition::external_definition;
pub(super) use definition::*;
pub(super) use write::*;

/// Hive's name for a NULL partition value.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// A statement this module runs itself.
#[derive(Debug)]
pub(super) enum Ddl {
    CreateExternal(Box<ast::CreateTable>),
    Ctas(Box<ast::CreateTable>),
    Insert(Box<ast::Insert>),
    Msck(ObjectName),
    DropTable { names: Vec<ObjectName>, if_exists: bool },
    ShowDatabases,
    /// `SHOW TABLES [IN db] ['pattern']`: the pattern's `*` is any characters, `|` separates alternatives.
    ShowTables(Option<ObjectName>, Option<String>),
    CreateDatabase { name: String, if_not_exists: bool, comment: String, location: Option<String>, properties: BTreeMap<String, String> },
    /// `SHOW PARTITIONS [db.]table` (read from the text: sqlparser has no such statement).
    ShowPartitions(ObjectName),
    /// `DESCRIBE t`: a catalog table as Athena describes it (Hive types, then the partition
    /// columns under `# Partition Information`); anything else (a temporary view) is
    /// DataFusion's DESCRIBE of the statement kept here.
    Describe { name: ObjectName, statement: Box<Statement> },
    /// `ALTER TABLE … ADD [IF NOT EXISTS] PARTITION (…) [LOCATION '…'] …` (read from the
    /// tokens: sqlparser drops the LOCATION of each partition).
    AddPartitions(AddPartitions),
}

/// `key = value, …)` from `w[*i]` (just after the opening parenthesis) through the closing
/// one, which `*i` ends past; `None` if the tokens are not such a list.
fn key_values(
    w: &[&datafusion::sql::sqlparser::tokenizer::Token],
    i: &mut usize,
    key: impl Fn(Option<&&datafusion::sql::sqlparser::tokenizer::Token>) -> Option<String>,
    value: impl Fn(Option<&&datafusion::sql::sqlparser::tokenizer::Token>) -> Option<String>,
) -> Option<Vec<(String, String)>> {
    use datafusion::sql::sqlparser::tokenizer::Token;
    let mut pairs = Vec::new();
    loop {
        let (Some(k), Some(Token::Eq), Some(v)) = (key(w.get(*i)), w.get(*i + 1), value(w.get(*i + 2))) else { return None };
        pairs.push((k, v));
        *i += 3;
        match w.get(*i) {
            Some(Token::Comma) => *i += 1,
            Some(Token::RParen) => {
                *i += 1;
                return Some(pairs);
            }
            _ => return None,
        }
    }
}

/// `CREATE TABLE … AS SELECT … WITH NO DATA` without its last three words, or `None` when
/// `sql` does not end that way.
pub(super) fn without_no_data(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
    let significant: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i], Token::Whitespace(_) | Token::SemiColon)).collect();
    let word = |i: usize, k: &str| matches!(&tokens[i], Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(k));
    let n = significant.len();
    if n < 5 || !(word(significant[0], "CREATE") && word(significant[1], "TABLE")) {
        return None;
    }
    let [with, no, data] = [significant[n - 3], significant[n - 2], significant[n - 1]];
    if !(word(with, "WITH") && word(no, "NO") && word(data, "DATA")) {
        return None;
    }
    // a quoted literal prints without its doubled quotes; escape them again
    Some(
        tokens[..with]
            .iter()
            .map(|t| match t {
                Token::SingleQuotedString(v) => format!("'{}'", v.replace('\'', "''")),
                other => other.to_string(),
            })
            .collect(),
    )
}

/// The partitions an `ALTER TABLE … ADD PARTITION` statement names.
#[derive(Debug, Clone)]
pub(crate) struct AddPartitions {
    pub table: ObjectName,
    pub if_not_exists: bool,
    /// Each partition's `key = value` pairs as written, and its LOCATION if given.
    pub partitions: Vec<(PartitionSpec, Option<String>)>,
}

/// A partition's `key = value` pairs, in the order written.
pub(crate) type PartitionSpec = Vec<(String, String)>;

impl AddPartitions {
    /// Reads `ALTER TABLE name ADD [IF NOT EXISTS] PARTITION (k = 'v', …) [LOCATION 's3://…']
    /// [PARTITION …]` (Athena's and Redshift Spectrum's form); `None` if `sql` is another
    /// statement.
    pub(crate) fn parse(sql: &str) -> Option<Result<AddPartitions>> {
        use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
        let w: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon)).collect();
        let word = |i: usize, k: &str| matches!(w.get(i), Some(Token::Word(x)) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(k));
        if !(word(0, "ALTER") && word(1, "TABLE")) {
            return None;
        }
        let mut i = 2;
        let mut parts = Vec::new();
        while let Some(Token::Word(x)) = w.get(i) {
            parts.push(ast::Ident::new(x.value.clone()));
            i += 1;
            if matches!(w.get(i), Some(Token::Period)) {
                i += 1;
            } else {
                break;
            }
        }
        if parts.is_empty() || !word(i, "ADD") {
            return None;
        }
        i += 1;
        let if_not_exists = word(i, "IF") && word(i + 1, "NOT") && word(i + 2, "EXISTS");
        if if_not_exists {
            i += 3;
        }
        if !word(i, "PARTITION") {
            return None;
        }
        let syntax = |what: &str| Some(Err(service_err!(InvalidRequestException, "line 1: {what} in ALTER TABLE … ADD PARTITION (key = 'value', …) [LOCATION 's3://…']")));
        let literal = |t: Option<&&Token>| match t {
            Some(Token::SingleQuotedString(v) | Token::DoubleQuotedString(v) | Token::Number(v, _)) => Some(v.clone()),
            Some(Token::Word(x)) => Some(x.value.clone()),
            _ => None,
        };
        let mut partitions = Vec::new();
        while word(i, "PARTITION") {
            i += 1;
            if !matches!(w.get(i), Some(Token::LParen)) {
                return syntax("missing '(' after PARTITION");
            }
            i += 1;
            let key = |t: Option<&&Token>| match t {
                Some(Token::Word(k)) => Some(k.value.to_lowercase()),
                _ => None,
            };
            let Some(spec) = key_values(&w, &mut i, key, literal) else { return syntax("the partition spec is (key = 'value', …)") };
            let mut location = None;
            if word(i, "LOCATION") {
                match w.get(i + 1) {
                    Some(Token::SingleQuotedString(l)) => location = Some(l.clone()),
                    _ => return syntax("LOCATION takes a quoted 's3://…' path"),
                }
                i += 2;
            }
            partitions.push((spec, location));
        }
        if i < w.len() {
            return syntax(&format!("unexpected {} after the partitions", w[i]));
        }
        Some(Ok(AddPartitions { table: ObjectName::from(parts), if_not_exists, partitions }))
    }

    /// Adds the partitions to `db.name` in the catalog, all or none: every key of the table in
    /// each spec (in any order), a LOCATION or the table's `key=value/` folder, and an existing
    /// partition is an error unless IF NOT EXISTS. Returns a line per partition added.
    pub(crate) fn apply(&self, catalog: &crate::catalog::Catalog, db: &str, name: &str) -> Result<Vec<String>> {
        let table = catalog.table(db, name)?;
        let keys = &table.definition.partition_keys;
        let mut add = Vec::new();
        let mut lines = Vec::new();
        for (spec, location) in &self.partitions {
            let written = spec.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
            if keys.is_empty() {
                return Err(service_err!(InvalidRequestException, "FAILED: SemanticException table is not partitioned but partition spec exists: {{{written}}}"));
            }
            if let Some((k, _)) = spec.iter().find(|(k, _)| !keys.iter().any(|key| key.name.eq_ignore_ascii_case(k))) {
                return Err(service_err!(InvalidRequestException, "FAILED: SemanticException Partition spec {{{written}}} contains non-partition columns ({k})"));
            }
            let values = keys
                .iter()
                .map(|key| spec.iter().find(|(k, _)| key.name.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone()))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| service_err!(InvalidRequestException, "FAILED: SemanticException partition spec {{{written}}} does not name every partition key ({})", keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")))?;
            let id = values.join("/");
            if table.partitions.get(&id).is_some_and(|p| !p.deprecated) || add.iter().any(|(v, _): &(Vec<String>, String)| v.join("/") == id) {
                if self.if_not_exists {
                    continue;
                }
                return Err(service_err!(AlreadyExistsException, "Partition already exists: {db}.{name} ({written})")
                    .with_hint("ADD IF NOT EXISTS PARTITION … skips the partitions already there"));
            }
            let location = match location {
                Some(l) => {
                    S3Uri::parse(l)?;
                    if l.ends_with('/') { l.clone() } else { format!("{l}/") }
                }
                None => partition_path(&table, &values),
            };
            lines.push(format!("partition {} added at {location}", keys.iter().zip(&values).map(|(k, v)| format!("{}={v}", k.name)).collect::<Vec<_>>().join("/")));
            add.push((values, location));
        }
        catalog.add_partitions(db, name, add)?;
        if lines.is_empty() {
            lines.push(format!("every partition named is already in {db}.{name}"));
        }
        Ok(lines)
    }
}

impl Ddl {
    /// The statement as a DDL/DML command, or back unchanged for DataFusion.
    #[allow(clippy::result_large_err, reason = "the statement is handed back unchanged, once per statement")]
    pub(super) fn classify(statement: Statement) -> std::result::Result<Ddl, Statement> {
        Ok(match statement {
            Statement::CreateTable(ct) if ct.external => Ddl::CreateExternal(Box::new(ct)),
            Statement::CreateTable(ct) if ct.query.is_some() && !ct.temporary => Ddl::Ctas(Box::new(ct)),
            Statement::Insert(insert) => Ddl::Insert(Box::new(insert)),
            Statement::Msck(msck) if msck.repair => Ddl::Msck(msck.table_name),
            Statement::ExplainTable { describe_alias: ast::DescribeAlias::Describe | ast::DescribeAlias::Desc, ref table_name, .. } => {
                Ddl::Describe { name: table_name.clone(), statement: Box::new(statement) }
            }
            Statement::Drop { object_type: ObjectType::Table, if_exists, names, .. } => Ddl::DropTable { names, if_exists },
            Statement::ShowDatabases { .. } | Statement::ShowSchemas { .. } => Ddl::ShowDatabases,
            Statement::CreateDatabase { db_name, if_not_exists, location, .. } => {
                Ddl::CreateDatabase { name: glue_name(&db_name.to_string()), if_not_exists, comment: String::new(), location, properties: BTreeMap::new() }
            }
            Statement::CreateSchema { schema_name: ast::SchemaName::Simple(name), if_not_exists, .. } => {
                Ddl::CreateDatabase { name: glue_name(&name.to_string()), if_not_exists, comment: String::new(), location: None, properties: BTreeMap::new() }
            }
            Statement::ShowTables { show_options, .. } => {
                let pattern = match show_options.filter_position {
                    Some(
                        ast::ShowStatementFilterPosition::Suffix(ast::ShowStatementFilter::NoKeyword(p) | ast::ShowStatementFilter::Like(p))
                        | ast::ShowStatementFilterPosition::Infix(ast::ShowStatementFilter::NoKeyword(p) | ast::ShowStatementFilter::Like(p)),
                    ) => Some(p),
                    _ => None,
                };
                Ddl::ShowTables(show_options.show_in.and_then(|i| i.parent_name), pattern)
            }
            other => return Err(other),
        })
    }

    /// Athena's StatementType for the execution record.
    /// Athena's `CREATE (DATABASE|SCHEMA) [IF NOT EXISTS] name [COMMENT '…'] [LOCATION '…']
    /// [WITH DBPROPERTIES ('k'='v', …)]` (read from the tokens: sqlparser does not take
    /// COMMENT or DBPROPERTIES there).
    pub(super) fn create_database(sql: &str) -> Option<Result<Ddl>> {
        use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
        let w: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon)).collect();
        let word = |i: usize, k: &str| matches!(w.get(i), Some(Token::Word(x)) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(k));
        if !(word(0, "CREATE") && (word(1, "DATABASE") || word(1, "SCHEMA"))) {
            return None;
        }
        let mut i = 2;
        let if_not_exists = word(2, "IF") && word(3, "NOT") && word(4, "EXISTS");
        if if_not_exists {
            i = 5;
        }
        let Some(Token::Word(name)) = w.get(i) else { return None };
        let name = glue_name(&name.value);
        i += 1;
        if !(word(i, "COMMENT") || word(i, "WITH") || (word(i, "LOCATION") && (i + 2..w.len()).any(|j| word(j, "COMMENT") || word(j, "WITH")))) {
            return None; // the plain forms go through sqlparser
        }
        let string = |t: Option<&&Token>| match t {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => Some(s.clone()),
            _ => None,
        };
        let bad = |what: &str| Some(Err(service_err!(InvalidRequestException, "line 1: {what} in CREATE DATABASE name [COMMENT '…'] [LOCATION 's3://…'] [WITH DBPROPERTIES ('k'='v')]")));
        let (mut comment, mut location, mut properties) = (String::new(), None, BTreeMap::new());
        while i < w.len() {
            if word(i, "COMMENT") {
                let Some(c) = string(w.get(i + 1)) else { return bad("COMMENT takes a quoted text") };
                comment = c;
                i += 2;
            } else if word(i, "LOCATION") {
                let Some(l) = string(w.get(i + 1)) else { return bad("LOCATION takes a quoted 's3://…'") };
                location = Some(l);
                i += 2;
            } else if word(i, "WITH") && word(i + 1, "DBPROPERTIES") && matches!(w.get(i + 2), Some(Token::LParen)) {
                i += 3;
                let Some(pairs) = key_values(&w, &mut i, string, string) else { return bad("DBPROPERTIES are ('key'='value', …)") };
                properties.extend(pairs);
            } else {
                return bad(&format!("unexpected {}", w[i]));
            }
        }
        Some(Ok(Ddl::CreateDatabase { name, if_not_exists, comment, location, properties }))
    }

    /// `SHOW PARTITIONS name` as a statement of its own, if `sql` is one.
    pub(super) fn show_partitions(sql: &str) -> Option<Ddl> {
        let words: Vec<&str> = sql.trim().trim_end_matches(';').split_whitespace().collect();
        match words.as_slice() {
            [show, partitions, name] if show.eq_ignore_ascii_case("SHOW") && partitions.eq_ignore_ascii_case("PARTITIONS") => {
                let parts = name.split('.').map(|p| ast::Ident::new(p.trim_matches(['`', '"']))).collect::<Vec<_>>();
                Some(Ddl::ShowPartitions(ObjectName::from(parts)))
            }
            _ => None,
        }
    }

    pub(super) fn statement_type(&self) -> super::StatementType {
        match self {
            Ddl::Insert(_) | Ddl::Ctas(_) => super::StatementType::Dml,
            Ddl::ShowDatabases | Ddl::ShowTables(..) | Ddl::ShowPartitions(_) | Ddl::Describe { .. } => super::StatementType::Utility,
            _ => super::StatementType::Ddl,
        }
    }
}

/// Athena's SHOW TABLES pattern: alternatives split by `|`, `*` any run of characters, the
/// rest literal, matched against the whole name without regard to case.
fn name_matches(pattern: &str, name: &str) -> bool {
    fn glob(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], n) || (!n.is_empty() && glob(p, &n[1..])),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => glob(&p[1..], &n[1..]),
            _ => false,
        }
    }
    pattern.split('|').any(|alt| glob(alt.trim().as_bytes(), name.as_bytes()))
}

/// A database name as Glue stores it: unquoted, lower case.
fn glue_name(name: &str) -> String {
    name.trim_matches(['`', '"']).to_lowercase()
}

/// `db.table` (or `table` in the default database; `awsdatacatalog.db.table` too), lower-cased
/// as Glue stores names.
pub(super) fn table_name(name: &ObjectName, database: &str) -> Result<(String, String)> {
    let parts: Vec<String> = name.0.iter().map(|p| p.to_string().trim_matches(['`', '"']).to_lowercase()).collect();
    match parts.as_slice() {
        [table] => Ok((database.to_string(), table.clone())),
        [db, table] => Ok((db.clone(), table.clone())),
        [catalog, db, table] if catalog == super::CATALOG_NAME => Ok((db.clone(), table.clone())),
        _ => Err(service_err!(InvalidRequestException, "{name} is not a table name: write table, db.table or awsdatacatalog.db.table")),
    }
}



#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_partition_statements_keep_each_location() {
        let add = AddPartitions::parse(
            "ALTER TABLE orders ADD\n  PARTITION (dt = '2016-05-14', country = 'IN') LOCATION 's3://b/in14/'\n  PARTITION (dt = '2016-05-15', country = 'IN');",
        )
        .unwrap()
        .unwrap();
        assert_eq!(add.table.to_string(), "orders");
        assert!(!add.if_not_exists);
        assert_eq!(add.partitions.len(), 2);
        assert_eq!(add.partitions[0].0, vec![("dt".to_string(), "2016-05-14".to_string()), ("country".to_string(), "IN".to_string())]);
        assert_eq!(add.partitions[0].1.as_deref(), Some("s3://b/in14/"));
        assert_eq!(add.partitions[1].1, None);
        let spectrum = AddPartitions::parse("alter table spectrum.sales_part add if not exists partition(saledate='2008-01')").unwrap().unwrap();
        assert!(spectrum.if_not_exists);
        assert_eq!(spectrum.table.to_string(), "spectrum.sales_part");
        assert!(AddPartitions::parse("ALTER TABLE t ADD COLUMNS (a int)").is_none());
        assert!(AddPartitions::parse("SELECT 1").is_none());
        assert!(AddPartitions::parse("ALTER TABLE t ADD PARTITION dt='x'").unwrap().is_err());
    }

    #[test]
    fn delimiters_as_hive_writes_them() {
        assert_eq!(unescape_delimiter(","), ',');
        assert_eq!(unescape_delimiter("\\t"), '\t');
        assert_eq!(unescape_delimiter("\\001"), '\u{1}');
        assert_eq!(unescape_delimiter("|"), '|');
    }

    #[test]
    fn partition_values_round_trip_through_paths() {
        for value in ["2026-01-01", "a/b", "x=y", "100%", "plain"] {
            assert_eq!(unescape_partition_value(&escape_partition_value(value)), value);
        }
        assert_eq!(escape_partition_value("a/b"), "a%2Fb");
    }
}

