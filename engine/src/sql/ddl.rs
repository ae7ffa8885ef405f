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

/// The catalog definition a `CREATE EXTERNAL TABLE` describes.
pub(crate) fn external_definition(ct: &ast::CreateTable) -> Result<TableDefinition> {
    let columns = ct.columns.iter().map(column).collect::<Result<Vec<_>>>()?;
    if columns.is_empty() {
        return Err(service_err!(InvalidRequestException, "CREATE EXTERNAL TABLE needs a column list"));
    }
    let partition_keys = match &ct.hive_distribution {
        HiveDistributionStyle::PARTITIONED { columns } => columns.iter().map(column).collect::<Result<Vec<_>>>()?,
        HiveDistributionStyle::NONE => Vec::new(),
        other => return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: {other:?} tables")),
    };
    let formats = ct.hive_formats.clone().unwrap_or_default();
    let location = formats.location.clone().or_else(|| ct.location.clone()).ok_or_else(|| {
        service_err!(InvalidRequestException, "an external table needs LOCATION 's3://bucket/prefix/'")
    })?;
    let location = normalise_location(&location)?;
    let properties = options(&ct.table_options);
    let serde_properties: BTreeMap<String, String> =
        formats.serde_properties.iter().flatten().filter_map(option_pair).collect();
    let header = properties.get("skip.header.line.count").is_some_and(|n| n.trim() != "0");
    let stored_as = match &formats.storage {
        Some(HiveIOFormat::FileFormat { format }) => Some(*format),
        // The classes Glue itself records for each format (Format::hive_classes).
        Some(HiveIOFormat::IOF { input_format, .. }) => {
            let class = input_format.to_string().trim_matches(['\'', '"']).to_string();
            Some(match class.as_str() {
                "org.apache.hadoop.mapred.TextInputFormat" => SqlFileFormat::TEXTFILE,
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat" => SqlFileFormat::PARQUET,
                "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat" => SqlFileFormat::ORC,
                "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat" => SqlFileFormat::AVRO,
                other => {
                    return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: INPUTFORMAT '{other}'")
                        .with_hint("the input formats read here are TextInputFormat, MapredParquetInputFormat, OrcInputFormat and AvroContainerInputFormat"));
                }
            })
        }
        Some(HiveIOFormat::Using { .. }) => {
            return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: USING; write STORED AS PARQUET, JSONFILE or TEXTFILE"));
        }
        None => ct.file_format,
    };
    let serde_class = match &formats.row_format {
        Some(HiveRowFormat::SERDE { class }) => Some(class.to_lowercase()),
        _ => None,
    };
    let format = match (stored_as, serde_class.as_deref()) {
        (Some(SqlFileFormat::PARQUET), _) => Format::Parquet,
        (Some(SqlFileFormat::ORC), _) => Format::Orc,
        (Some(SqlFileFormat::AVRO), _) => Format::Avro,
        (Some(SqlFileFormat::JSONFILE), _) => Format::Json,
        (_, Some(class)) if class.contains("parquet") => Format::Parquet,
        (_, Some(class)) if class.contains("json") => Format::Json,
        (_, Some(class)) if class.contains("opencsv") => {
            let delimiter = serde_properties.get("separatorChar").and_then(|s| s.chars().next()).unwrap_or(',');
            Format::Csv { delimiter, header }
        }
        (None | Some(SqlFileFormat::TEXTFILE), _) => {
            // LazySimpleSerDe: FIELDS TERMINATED BY, else field.delim, else Hive's \001.
            let delimited = match &formats.row_format {
                Some(HiveRowFormat::DELIMITED { delimiters }) => delimiters
                    .iter()
                    .find(|d| matches!(d.delimiter, HiveDelimiter::FieldsTerminatedBy))
                    .map(|d| unescape_delimiter(&d.char.value)),
                _ => None,
            };
            let delimiter = delimited
                .or_else(|| serde_properties.get("field.delim").map(|d| unescape_delimiter(d)))
                .unwrap_or('\u{1}');
            Format::Csv { delimiter, header }
        }
        (Some(other), _) => return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: STORED AS {other}")),
    };
    let compression = properties.get("compressiontype").or_else(|| properties.get("write.compression")).map(|c| c.to_lowercase());
    Ok(TableDefinition { location, format, compression, columns, partition_keys })
}

/// CTAS's `WITH (format = 'PARQUET', external_location = 's3://…', partitioned_by = ARRAY['c'],
/// write_compression = 'SNAPPY', field_delimiter = ',')`.
#[derive(Debug)]
pub(super) struct CtasOptions {
    pub format: Format,
    pub location: Option<String>,
    pub partitioned_by: Vec<String>,
    pub compression: Option<String>,
}

pub(super) fn ctas_options(ct: &ast::CreateTable) -> Result<CtasOptions> {
    let mut options = CtasOptions { format: Format::Parquet, location: None, partitioned_by: Vec::new(), compression: None };
    let sql_options = match &ct.table_options {
        CreateTableOptions::With(o) | CreateTableOptions::Options(o) | CreateTableOptions::TableProperties(o) => o.clone(),
        _ => Vec::new(),
    };
    let mut delimiter = None;
    for option in &sql_options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(service_err!(InvalidRequestException, "CTAS options are key = value pairs, not {option}"));
        };
        let key = key.value.to_lowercase();
        match key.as_str() {
            "format" => {
                options.format = match string_value(value)?.to_uppercase().as_str() {
                    "PARQUET" => Format::Parquet,
                    "JSON" => Format::Json,
                    "TEXTFILE" => Format::Csv { delimiter: '\u{1}', header: false },
                    other => {
                        return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: CTAS format '{other}'")
                            .with_hint("format = 'PARQUET' (the default), 'JSON' or 'TEXTFILE'"));
                    }
                }
            }
            "external_location" | "location" => options.location = Some(normalise_location(&string_value(value)?)?),
            "partitioned_by" => {
                let Expr::Array(array) = value else {
                    return Err(service_err!(InvalidRequestException, "partitioned_by takes ARRAY['col', …]"));
                };
                options.partitioned_by = array.elem.iter().map(|e| string_value(e).map(|s| s.to_lowercase())).collect::<Result<_>>()?;
            }
            "write_compression" | "parquet_compression" => options.compression = Some(string_value(value)?.to_lowercase()),
            "field_delimiter" => delimiter = string_value(value)?.chars().next(),
            "bucketed_by" | "bucket_count" => {
                return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: bucketed CTAS tables"));
            }
            other => {
                let known = ["format", "external_location", "partitioned_by", "write_compression", "field_delimiter"];
                let hint = closest(other, &known).map(|c| format!("did you mean {c}?")).unwrap_or_else(|| known.join(", "));
                return Err(service_err!(InvalidRequestException, "unknown CTAS property {other}").with_hint(hint));
            }
        }
    }
    if let (Format::Csv { delimiter: d, .. }, Some(chosen)) = (&mut options.format, delimiter) {
        *d = chosen;
    }
    Ok(options)
}

/// `s3://bucket/prefix/` with the trailing slash that marks a folder.
fn normalise_location(location: &str) -> Result<String> {
    Ok(S3Uri::parse(location)?.folder().to_string())
}

fn column(def: &ast::ColumnDef) -> Result<Column> {
    let data_type = hive_type(&def.data_type).to_lowercase();
    let data_type = match data_type.as_str() {
        "integer" => "int".to_string(),
        "real" => "float".to_string(),
        "varchar" | "text" | "char" => "string".to_string(),
        _ => data_type,
    };
    arrow_type(&data_type)?;
    Ok(Column::new(def.name.value.to_lowercase(), data_type))
}

/// A column type in Hive's spelling (`struct<a:string,b:int>`, `array<…>`, `map<…>`), which
/// sqlparser prints in SQL's (`STRUCT<a STRING>`).
fn hive_type(t: &ast::DataType) -> String {
    match t {
        ast::DataType::Struct(fields, _) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.field_name.as_ref().map_or(String::new(), |n| n.value.clone()), hive_type(&f.field_type)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        ast::DataType::Array(ast::ArrayElemTypeDef::AngleBracket(inner)) => format!("array<{}>", hive_type(inner)),
        ast::DataType::Map(k, v) => format!("map<{},{}>", hive_type(k), hive_type(v)),
        other => other.to_string(),
    }
}

fn options(options: &CreateTableOptions) -> BTreeMap<String, String> {
    match options {
        CreateTableOptions::With(o) | CreateTableOptions::Options(o) | CreateTableOptions::TableProperties(o) => {
            o.iter().filter_map(option_pair).collect()
        }
        _ => BTreeMap::new(),
    }
}

fn option_pair(option: &SqlOption) -> Option<(String, String)> {
    match option {
        SqlOption::KeyValue { key, value } => Some((key.value.clone(), string_value(value).ok()?)),
        _ => None,
    }
}

fn string_value(expr: &Expr) -> Result<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => Ok(s.clone()),
            ast::Value::Number(n, _) => Ok(n.clone()),
            ast::Value::Boolean(b) => Ok(b.to_string()),
            other => Err(service_err!(InvalidRequestException, "expected a quoted string, found {other}")),
        },
        Expr::Identifier(ident) => Ok(ident.value.clone()),
        other => Err(service_err!(InvalidRequestException, "expected a quoted string, found {other}")),
    }
}

/// `'\t'`, `'\001'`, `','` as written in Hive DDL.
fn unescape_delimiter(text: &str) -> char {
    match text {
        "\\t" => '\t',
        "\\n" => '\n',
        t if t.starts_with('\\') && t.len() > 1 && t[1..].chars().all(|c| c.is_ascii_digit()) => {
            u32::from_str_radix(&t[1..], 8).ok().and_then(char::from_u32).unwrap_or('\u{1}')
        }
        t => t.chars().next().unwrap_or('\u{1}'),
    }
}

/// The table's columns (then partition keys) as the Arrow schema files are written with.
pub(super) fn write_schema(columns: &[Column]) -> Result<SchemaRef> {
    let fields = columns.iter().map(|c| Ok(Field::new(&c.name, arrow_type(&c.data_type)?, true))).collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Casts `batch`'s columns, in order, to `schema` (what the catalog says the files hold).
pub(super) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| {
            // Not the default "safe" cast, which would turn bad values into NULLs silently.
            let options = datafusion::arrow::compute::CastOptions { safe: false, ..Default::default() };
            datafusion::arrow::compute::cast_with_options(array, field.data_type(), &options).map_err(|e| {
                service_err!(
                    InvalidRequestException,
                    "TYPE_MISMATCH: column {} is {} and cannot be stored as {}: {e}",
                    field.name(),
                    glue_type(array.data_type()),
                    glue_type(field.data_type())
                )
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("conforming rows to the table schema: {e}"))
}

/// Rows grouped by their partition values (the last `keys` columns), in order of first
/// appearance; each group keeps only the data columns.
pub(super) fn split_partitions(batch: &RecordBatch, keys: usize) -> Result<Vec<(Vec<String>, RecordBatch)>> {
    let data_columns = batch.num_columns() - keys;
    let data_schema = Arc::new(Schema::new(batch.schema().fields()[..data_columns].to_vec()));
    if keys == 0 {
        return Ok(vec![(Vec::new(), batch.project(&(0..data_columns).collect::<Vec<_>>()).map_err(|e| internal_err!("{e}"))?)]);
    }
    let values: Vec<Vec<String>> = (data_columns..batch.num_columns())
        .map(|i| partition_strings(batch.column(i)))
        .collect::<Result<_>>()?;
    let mut groups: Vec<(Vec<String>, Vec<u32>)> = Vec::new();
    let mut index: BTreeMap<Vec<String>, usize> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let key: Vec<String> = values.iter().map(|v| v[row].clone()).collect();
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(row as u32);
    }
    // In key order, not arrival order (which a parallel plan varies), so file numbers are
    // the same on every run.
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    groups
        .into_iter()
        .map(|(key, rows)| {
            let rows = UInt32Array::from(rows);
            let columns = (0..data_columns)
                .map(|i| take(batch.column(i).as_ref(), &rows, None).map_err(|e| internal_err!("splitting partitions: {e}")))
                .collect::<Result<Vec<_>>>()?;
            let part = RecordBatch::try_new(data_schema.clone(), columns).map_err(|e| internal_err!("{e}"))?;
            Ok((key, part))
        })
        .collect()
}

fn partition_strings(array: &ArrayRef) -> Result<Vec<String>> {
    let strings = cast(array, &DataType::Utf8).map_err(|e| internal_err!("partition values as text: {e}"))?;
    let strings = strings.as_any().downcast_ref::<StringArray>().ok_or_else(|| internal_err!("partition values are not text"))?;
    Ok(strings.iter().map(|v| v.map_or_else(|| NULL_PARTITION.to_string(), str::to_string)).collect())
}

/// One file's bytes in the table's format.
pub(super) fn encode(batch: &RecordBatch, format: &Format, compression: Option<&str>) -> Result<(Bytes, &'static str)> {
    let fail = |e: &dyn std::fmt::Display| internal_err!("writing {}: {e}", format.classification());
    match format {
        Format::Parquet => {
            let codec = match compression.unwrap_or("snappy") {
                "snappy" => Compression::SNAPPY,
                "gzip" => Compression::GZIP(Default::default()),
                "zstd" => Compression::ZSTD(ZstdLevel::default()),
                "none" | "uncompressed" => Compression::UNCOMPRESSED,
                other => {
                    return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: write_compression '{other}' for Parquet")
                        .with_hint("SNAPPY (the default), GZIP, ZSTD or NONE"));
                }
            };
            let props = WriterProperties::builder().set_compression(codec).build();
            let mut out = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).map_err(|e| fail(&e))?;
            writer.write(batch).map_err(|e| fail(&e))?;
            writer.close().map_err(|e| fail(&e))?;
            Ok((Bytes::from(out), ".parquet"))
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(Vec::new());
            writer.write(batch).map_err(|e| fail(&e))?;
            writer.finish().map_err(|e| fail(&e))?;
            Ok((Bytes::from(writer.into_inner()), ".json"))
        }
        Format::Csv { delimiter, header } => {
            let mut out = Vec::new();
            let mut writer = arrow_csv::WriterBuilder::new().with_header(*header).with_delimiter(*delimiter as u8).build(&mut out);
            writer.write(batch).map_err(|e| fail(&e))?;
            drop(writer);
            Ok((Bytes::from(out), if *delimiter == ',' { ".csv" } else { "" }))
        }
        Format::Avro | Format::Orc => Err(service_err!(
            InvalidRequestException,
            "NOT_SUPPORTED: writing {} files; this engine writes Parquet, JSON and text tables",
            format.classification()
        )),
    }
}

/// Concatenates a result into one batch.
pub(super) fn one_batch(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    concat_batches(schema, batches).map_err(|e| internal_err!("concatenating the result: {e}"))
}

/// `key=value/…` of a partition under the table location.
pub(super) fn partition_path(table: &Table, values: &[String]) -> String {
    let mut path = table.definition.location.clone();
    for (key, value) in table.definition.partition_keys.iter().zip(values) {
        path.push_str(&format!("{}={}/", key.name, escape_partition_value(value)));
    }
    path
}

/// Hive escapes path-unsafe characters in partition values as `%XX`.
fn escape_partition_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '/' | '\\' | '=' | '%' | '"' | '\'' | '#' | ':' | '*' | '?' | '[' | ']' | '^' | '{') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape_partition_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The partition values of a key below the table location, when its folders are
/// `k1=v1/k2=v2/` for exactly the table's partition keys (what MSCK REPAIR adds).
pub(super) fn hive_partition(table: &Table, relative_key: &str) -> Option<(Vec<String>, String)> {
    let keys = &table.definition.partition_keys;
    let segments: Vec<&str> = relative_key.split('/').collect();
    if segments.len() <= keys.len() {
        return None;
    }
    let mut values = Vec::new();
    for (key, segment) in keys.iter().zip(&segments) {
        let (name, value) = segment.split_once('=')?;
        if !name.eq_ignore_ascii_case(&key.name) {
            return None;
        }
        values.push(unescape_partition_value(value));
    }
    let location = format!("{}{}/", table.definition.location, segments[..keys.len()].join("/"));
    Some((values, location))
}

/// Athena's DESCRIBE of a catalog table: `col_name`, `data_type`, `comment` for each column,
/// then the partition columns after a `# Partition Information` header, as Hive prints them.
fn describe(table: &Table) -> RecordBatch {
    let mut rows: Vec<(String, String, String)> = table.definition.columns.iter().map(|c| (c.name.clone(), c.data_type.clone(), String::new())).collect();
    let keys = &table.definition.partition_keys;
    if !keys.is_empty() {
        rows.push((String::new(), String::new(), String::new()));
        rows.push(("# Partition Information".into(), String::new(), String::new()));
        rows.push(("# col_name".into(), "data_type".into(), "comment".into()));
        rows.push((String::new(), String::new(), String::new()));
        rows.extend(keys.iter().map(|k| (k.name.clone(), k.data_type.clone(), String::new())));
    }
    let column = |f: fn(&(String, String, String)) -> &String| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
    RecordBatch::try_from_iter(vec![("col_name", column(|r| &r.0)), ("data_type", column(|r| &r.1)), ("comment", column(|r| &r.2))])
        .expect("three string columns of one length")
}

/// A one-column result of messages (Athena shows DDL outcomes as text).
pub(super) fn messages(lines: Vec<String>) -> RecordBatch {
    names("result", lines)
}

/// A one-column result named `column`.
pub(super) fn names(column: &str, values: Vec<String>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values))]).expect("one string column matches its schema")
}

/// A statement's output that is one batch.
fn output(batch: RecordBatch, bytes_scanned: u64) -> super::Output {
    super::Output { schema: batch.schema(), batches: vec![batch], bytes_scanned }
}

pub(super) fn insert_target(insert: &ast::Insert) -> Result<&ObjectName> {
    match &insert.table {
        TableObject::TableName(name) => Ok(name),
        other => Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: INSERT INTO {other}")),
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

impl super::SqlEngine {
    /// Runs one of Athena's catalog-changing statements.
    pub(super) async fn run_ddl(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        ddl: Ddl,
        text: &str,
        database: &str,
        workgroup: &super::Workgroup,
        execution_id: &str,
    ) -> std::result::Result<super::Output, super::Failure> {
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
                    _ => self.query(ctx, *statement, text, workgroup).await,
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
            Ddl::Ctas(ct) => self.ctas(ctx, &ct, text, database, workgroup, execution_id).await,
            Ddl::Insert(insert) => self.insert(ctx, &insert, text, database, workgroup, execution_id).await,
        }
    }

    /// `CREATE TABLE t WITH (…) AS SELECT …`: writes the result to an empty location, then
    /// registers the table (and its partitions).
    async fn ctas(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        ct: &ast::CreateTable,
        text: &str,
        database: &str,
        workgroup: &super::Workgroup,
        execution_id: &str,
    ) -> std::result::Result<super::Output, super::Failure> {
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
        if uri.bucket == super::RESULTS_BUCKET {
            let _ = self.lake.create_bucket(super::RESULTS_BUCKET)?;
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
        let output = self.query(ctx, Statement::Query(Box::new(query.clone())), text, workgroup).await?;
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
        let definition =
            TableDefinition { location: location.clone(), format: options.format, compression: options.compression, columns, partition_keys };
        let table = crate::catalog::new_table(&db, &name, definition.clone(), self.clock.now(), None);
        let written = self.write_rows(&table, &batch, execution_id).await?;
        self.catalog.create_table(&db, &name, definition)?;
        if keys > 0 {
            self.catalog.add_partitions(&db, &name, written.partitions.clone())?;
        }
        let line = format!(
            "table {db}.{name} created: {} row(s) in {} file(s) under {location}",
            batch.num_rows(),
            written.files
        );
        Ok(self::output(messages(vec![line]), output.bytes_scanned))
    }

    /// `INSERT INTO t [(cols)] SELECT … | VALUES …`: new files beside the table's old ones.
    async fn insert(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        insert: &ast::Insert,
        text: &str,
        database: &str,
        workgroup: &super::Workgroup,
        execution_id: &str,
    ) -> std::result::Result<super::Output, super::Failure> {
        let (db, name) = table_name(insert_target(insert)?, database)?;
        let table = self.catalog.table(&db, &name)?;
        if insert.overwrite {
            return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: INSERT OVERWRITE; Athena only appends with INSERT INTO").into());
        }
        let source = insert.source.as_deref().ok_or_else(|| service_err!(InvalidRequestException, "INSERT INTO needs a SELECT or VALUES"))?;
        let output = self.query(ctx, Statement::Query(Box::new(source.clone())), text, workgroup).await?;
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
        let written = self.write_rows(&table, &conformed, execution_id).await?;
        if !table.definition.partition_keys.is_empty() {
            self.catalog.add_partitions(&db, &name, written.partitions.clone())?;
        }
        let line = format!("{} row(s) inserted into {db}.{name} in {} new file(s)", conformed.num_rows(), written.files);
        Ok(self::output(messages(vec![line]), output.bytes_scanned))
    }

    /// Writes rows (data columns, then partition values) as one new file per partition.
    async fn write_rows(&self, table: &Table, batch: &RecordBatch, execution_id: &str) -> Result<Written> {
        let keys = table.definition.partition_keys.len();
        let data_schema = write_schema(&table.definition.columns)?;
        let mut written = Written::default();
        for (n, (values, rows)) in split_partitions(batch, keys)?.into_iter().enumerate() {
            if rows.num_rows() == 0 {
                continue;
            }
            let rows = conform(&rows, &data_schema)?;
            // An existing partition keeps its location (a crawled `2026/01/` layout too).
            let id = values.join("/");
            let folder = match table.partitions.get(&id).filter(|p| !p.deprecated) {
                Some(p) => p.location.clone(),
                None if keys == 0 => table.definition.location.clone(),
                None => partition_path(table, &values),
            };
            let (bytes, extension) = encode(&rows, &table.definition.format, table.definition.compression.as_deref())?;
            let uri = S3Uri::parse(&folder)?.join(&format!("{execution_id}-{n:05}{extension}"));
            self.lake.put(&uri, bytes).await?;
            written.files += 1;
            if keys > 0 {
                written.partitions.push((values, folder));
            }
        }
        Ok(written)
    }
}

#[derive(Debug, Default)]
struct Written {
    files: usize,
    partitions: Vec<(Vec<String>, String)>,
}

