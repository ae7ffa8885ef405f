//! From `CREATE EXTERNAL TABLE` and CTAS statements to catalog definitions: columns and Hive
//! types, SerDe and table properties, delimiters as Hive writes them, CTAS `WITH (…)` options.

use super::*;

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
pub(in crate::sql) struct CtasOptions {
    pub format: Format,
    pub location: Option<String>,
    pub partitioned_by: Vec<String>,
    pub compression: Option<String>,
}

pub(in crate::sql) fn ctas_options(ct: &ast::CreateTable) -> Result<CtasOptions> {
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
pub(super) fn normalise_location(location: &str) -> Result<String> {
    Ok(S3Uri::parse(location)?.folder().to_string())
}

pub(super) fn column(def: &ast::ColumnDef) -> Result<Column> {
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
pub(super) fn hive_type(t: &ast::DataType) -> String {
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

pub(super) fn options(options: &CreateTableOptions) -> BTreeMap<String, String> {
    match options {
        CreateTableOptions::With(o) | CreateTableOptions::Options(o) | CreateTableOptions::TableProperties(o) => {
            o.iter().filter_map(option_pair).collect()
        }
        _ => BTreeMap::new(),
    }
}

pub(super) fn option_pair(option: &SqlOption) -> Option<(String, String)> {
    match option {
        SqlOption::KeyValue { key, value } => Some((key.value.clone(), string_value(value).ok()?)),
        _ => None,
    }
}

pub(super) fn string_value(expr: &Expr) -> Result<String> {
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
pub(super) fn unescape_delimiter(text: &str) -> char {
    match text {
        "\\t" => '\t',
        "\\n" => '\n',
        t if t.starts_with('\\') && t.len() > 1 && t[1..].chars().all(|c| c.is_ascii_digit()) => {
            u32::from_str_radix(&t[1..], 8).ok().and_then(char::from_u32).unwrap_or('\u{1}')
        }
        t => t.chars().next().unwrap_or('\u{1}'),
    }
}
