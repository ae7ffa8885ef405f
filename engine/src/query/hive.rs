//! Hive DDL that Athena and Redshift Spectrum share: `CREATE EXTERNAL TABLE` to a catalog
//! definition (columns and Hive types, ROW FORMAT / SerDe / STORED AS, table properties,
//! delimiters as Hive writes them), `ALTER TABLE … ADD PARTITION` read from the tokens, and
//! Hive's `key=value/` partition folders with their `%XX` escapes.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{
    self, CreateTableOptions, Expr, FileFormat as SqlFileFormat, HiveDelimiter, HiveDistributionStyle, HiveIOFormat, HiveRowFormat, ObjectName,
    SqlOption,
};

use crate::catalog::types::arrow_type;
use crate::catalog::{Column, Format, Table, TableDefinition};
use crate::error::Result;
use crate::lake::S3Uri;
use crate::service_err;

/// Hive's name for a NULL partition value.
pub(crate) const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

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
            // OpenCSVSerde: quoted fields, and `\` (its default escapeChar) makes the next
            // character literal inside them.
            let delimiter = serde_properties.get("separatorChar").map(|s| unescape_delimiter(s)).unwrap_or(',');
            let escape = serde_properties.get("escapeChar").map(|s| unescape_delimiter(s)).unwrap_or('\\');
            Format::Csv { delimiter, header, escape: Some(escape) }
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
            Format::Csv { delimiter, header, escape: None }
        }
        (Some(other), _) => return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: STORED AS {other}")),
    };
    let compression = properties.get("compressiontype").or_else(|| properties.get("write.compression")).map(|c| c.to_lowercase());
    Ok(TableDefinition { location, format, compression, columns, partition_keys, bucketing: None })
}

/// `s3://bucket/prefix/` with the trailing slash that marks a folder.
pub(crate) fn normalise_location(location: &str) -> Result<String> {
    Ok(S3Uri::parse(location)?.folder().to_string())
}

pub(crate) fn column(def: &ast::ColumnDef) -> Result<Column> {
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
pub(crate) fn hive_type(t: &ast::DataType) -> String {
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

pub(crate) fn options(options: &CreateTableOptions) -> BTreeMap<String, String> {
    match options {
        CreateTableOptions::With(o) | CreateTableOptions::Options(o) | CreateTableOptions::TableProperties(o) => {
            o.iter().filter_map(option_pair).collect()
        }
        _ => BTreeMap::new(),
    }
}

pub(crate) fn option_pair(option: &SqlOption) -> Option<(String, String)> {
    match option {
        SqlOption::KeyValue { key, value } => Some((key.value.clone(), string_value(value).ok()?)),
        _ => None,
    }
}

pub(crate) fn string_value(expr: &Expr) -> Result<String> {
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
pub(crate) fn unescape_delimiter(text: &str) -> char {
    match text {
        "\\t" => '\t',
        "\\n" => '\n',
        t if t.starts_with('\\') && t.len() > 1 && t[1..].chars().all(|c| c.is_ascii_digit()) => {
            u32::from_str_radix(&t[1..], 8).ok().and_then(char::from_u32).unwrap_or('\u{1}')
        }
        t => t.chars().next().unwrap_or('\u{1}'),
    }
}

/// `key = value, …)` from `w[*i]` (just after the opening parenthesis) through the closing
/// one, which `*i` ends past; `None` if the tokens are not such a list.
pub(crate) fn key_values(
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

/// `key=value/…` of a partition under the table location.
pub(crate) fn partition_path(table: &Table, values: &[String]) -> String {
    let mut path = table.definition.location.clone();
    for (key, value) in table.definition.partition_keys.iter().zip(values) {
        path.push_str(&format!("{}={}/", key.name, escape_partition_value(value)));
    }
    path
}

/// Hive escapes path-unsafe characters in partition values as `%XX`.
pub(crate) fn escape_partition_value(value: &str) -> String {
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

pub(crate) fn unescape_partition_value(value: &str) -> String {
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
pub(crate) fn hive_partition(table: &Table, relative_key: &str) -> Option<(Vec<String>, String)> {
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

