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
    pub bucketed_by: Vec<String>,
    pub bucket_count: Option<u32>,
}

pub(in crate::sql) fn ctas_options(ct: &ast::CreateTable) -> Result<CtasOptions> {
    let mut options = CtasOptions { format: Format::Parquet, location: None, partitioned_by: Vec::new(), compression: None, bucketed_by: Vec::new(), bucket_count: None };
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
                    "TEXTFILE" => Format::Csv { delimiter: '\u{1}', header: false, escape: None },
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
            "bucketed_by" => {
                let Expr::Array(array) = value else {
                    return Err(service_err!(InvalidRequestException, "bucketed_by takes ARRAY['col', …]"));
                };
                options.bucketed_by = array.elem.iter().map(|e| string_value(e).map(|s| s.to_lowercase())).collect::<Result<_>>()?;
            }
            "bucket_count" => {
                let count = string_value(value)?;
                options.bucket_count = Some(count.parse().ok().filter(|n| (1..=100_000).contains(n)).ok_or_else(|| {
                    service_err!(InvalidRequestException, "bucket_count must be a whole number from 1 to 100000, not {count}")
                })?);
            }
            other => {
                let known = ["format", "external_location", "partitioned_by", "bucketed_by", "bucket_count", "write_compression", "field_delimiter"];
                let hint = closest(other, &known).map(|c| format!("did you mean {c}?")).unwrap_or_else(|| known.join(", "));
                return Err(service_err!(InvalidRequestException, "unknown CTAS property {other}").with_hint(hint));
            }
        }
    }
    if options.bucketed_by.is_empty() != options.bucket_count.is_none() {
        return Err(service_err!(InvalidRequestException, "bucketed_by and bucket_count go together")
            .with_hint("bucketed_by = ARRAY['col'], bucket_count = 16"));
    }
    if let Some(both) = options.bucketed_by.iter().find(|b| options.partitioned_by.contains(b)) {
        return Err(service_err!(InvalidRequestException, "{both} cannot be both a partition and a bucket column"));
    }
    if let (Format::Csv { delimiter: d, .. }, Some(chosen)) = (&mut options.format, delimiter) {
        *d = chosen;
    }
    Ok(options)
}
