//! CTAS's `WITH (…)` options; the Hive definitions it shares with `CREATE EXTERNAL TABLE` are
//! in `query::hive`.

use super::*;

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
