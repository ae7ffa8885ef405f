//! Athena's statements that change the catalog or the lake rather than just read:
//! `CREATE EXTERNAL TABLE`, CTAS (`CREATE TABLE … WITH (…) AS SELECT`), `INSERT INTO`,
//! `MSCK REPAIR TABLE`, `DROP TABLE`, and `SHOW DATABASES` / `SHOW TABLES` with Athena's
//! result columns. Everything else goes to DataFusion unchanged.
//!
//! Writes follow Athena: CTAS needs an empty location (HIVE_PATH_ALREADY_EXISTS otherwise) and
//! takes its partition columns from the end of the SELECT list; INSERT INTO only adds files;
//! `DROP TABLE` on an external table leaves the data in place. Files are written whole through
//! the lake (write, then rename), so a failed statement leaves no half-written object.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use datafusion::sql::sqlparser::ast::{self, CreateTableOptions, Expr, ObjectName, ObjectType, SqlOption, Statement, TableObject};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::catalog::types::{arrow_type, glue_type};
use crate::catalog::{Column, Format, Table, TableDefinition};
use crate::error::{Result, closest};
use crate::lake::S3Uri;
use crate::{internal_err, service_err};

mod definition;
mod journal;
mod run;
mod stream;
mod write;

pub(super) use crate::query::hive::{AddPartitions, external_definition, hive_partition, partition_path};
use crate::query::hive::{NULL_PARTITION, key_values, normalise_location, string_value};
pub(super) use definition::*;
pub(super) use write::*;
/// Continuous applications write their sink files as tables' files are written.
pub(crate) use write::encode;
pub use run::{STAGING, StagedWrite, TargetSpec};

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
