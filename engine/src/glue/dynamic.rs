//! Glue's DynamicFrame idea for files read from S3 (S3JsonSource, S3CsvSource): each value
//! keeps its own type, and a field seen with more than one type is a *choice* (`choice<long,
//! string>`) until ResolveChoice settles it — by `cast:T`, `project:T`, `make_cols` or
//! `make_struct`, as `DynamicFrame.resolveChoice` does.
//!
//! A choice field's values travel as their JSON text in a string column (`17`, `"17a"`), so the
//! queries of later nodes can tell the types apart; a field with one type gets that type.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::lake::{Lake, S3Uri};
use crate::query::Bookmarks;
use crate::{internal_err, service_err};

/// What a source read: its rows and, per choice field, the types seen (in first-seen order).
#[derive(Debug, Clone)]
pub struct DynamicRows {
    pub batch: RecordBatch,
    pub choices: BTreeMap<String, Vec<String>>,
}

/// How to read the files of an S3 source.
#[derive(Debug, Clone, PartialEq)]
pub enum FileFormat {
    /// JSON lines (or, `multiline`, one JSON document per file: an object or an array of them).
    Json { multiline: bool },
    /// Delimited text with a header line (Glue's `WithHeader`), values typed one by one.
    Csv { separator: char, header: bool },
    /// Parquet files: typed by their schemas (files whose schemas differ are merged, a
    /// column a file lacks is null there), so no choices.
    Parquet,
}

/// DropNullFields' idea of null: null itself, and what the node adds (≙ NullCheckBoxList
/// and NullTextList).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NullValues {
    /// `""` in a string field.
    pub empty: bool,
    /// The string `null`.
    pub null_string: bool,
    /// The integer -1.
    pub neg_one: bool,
    /// Custom placeholders: (value, whether it is an integer, not a string).
    pub custom: Vec<(String, bool)>,
}

/// Glue's name for a value's type.
fn type_of(value: &Value) -> Option<&'static str> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some("boolean"),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some("long"),
        Value::Number(_) => Some("double"),
        Value::String(_) => Some("string"),
        Value::Array(_) => Some("array"),
        Value::Object(_) => Some("struct"),
    }
}

/// A CSV field as DynamicFrame types it: a whole number is a long, a number a double,
/// anything else a string; an empty field is null.
fn csv_value(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && text.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')) => Value::from(f),
        _ => Value::String(text.to_string()),
    }
}

/// Reads every record of the files under `paths` that the run's bookmark has not processed
/// (source name `source` in the bookmark), typed value by value.
pub(super) async fn read(lake: &Lake, paths: &[String], format: &FileFormat, source: &str, bookmarks: &Bookmarks) -> Result<DynamicRows> {
    let mut records: Vec<Map<String, Value>> = Vec::new();
    let mut parquet: Vec<RecordBatch> = Vec::new();
    for path in paths {
        let uri = S3Uri::parse(path)?;
        let listing = lake.list(&uri, true).await?;
        for object in listing.objects {
            let relative = object.key.strip_prefix(&uri.key).unwrap_or(&object.key);
            if object.size == 0 || relative.split('/').any(|s| s.starts_with('_') || s.starts_with('.')) {
                continue;
            }
            let file = format!("s3://{}/{}", uri.bucket, object.key);
            if !bookmarks.reads(source, &file, object.last_modified.timestamp_millis(), object.size) {
                continue;
            }
            let bytes = lake.get(&S3Uri { bucket: uri.bucket.clone(), key: object.key.clone() }).await?;
            if *format == FileFormat::Parquet {
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .and_then(|b| b.build())
                    .map_err(|e| service_err!(InvalidInputException, "{file} is not a Parquet file: {e}"))?;
                for batch in reader {
                    parquet.push(batch.map_err(|e| service_err!(InvalidInputException, "{file}: {e}"))?);
                }
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            parse_records(&text, format, &file, &mut records)?;
        }
    }
    if *format == FileFormat::Parquet {
        let batch = merge_batches(&parquet)?;
        bookmarks.counter(source).fetch_add(batch.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
        return Ok(DynamicRows { batch, choices: BTreeMap::new() });
    }
    bookmarks.counter(source).fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
    to_rows(records)
}

/// Batches whose schemas may differ as one batch of their merged schema (a column a batch
/// lacks is null there; a column's type is the first seen, later ones cast to it).
fn merge_batches(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = Vec::new();
    for batch in batches {
        for field in batch.schema().fields() {
            if !fields.iter().any(|f| f.name() == field.name()) {
                fields.push(field.as_ref().clone().with_nullable(true));
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let mut aligned = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let column = match batch.column_by_name(field.name()) {
                Some(c) if c.data_type() == field.data_type() => c.clone(),
                Some(c) => datafusion::arrow::compute::cast(c, field.data_type()).map_err(|e| service_err!(InvalidInputException, "column {}: the files' types do not agree: {e}", field.name()))?,
                None => arrow_array::new_null_array(field.data_type(), batch.num_rows()),
            };
            columns.push(column);
        }
        aligned.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?);
    }
    datafusion::arrow::compute::concat_batches(&schema, &aligned).map_err(|e| internal_err!("{e}"))
}

/// DropNullFields: the indices of the columns with a value that is not null (by `nulls`); a
/// frame without rows keeps every column (there is nothing to judge them by).
pub(super) fn non_null_columns(batch: &RecordBatch, nulls: &NullValues) -> Result<Vec<usize>> {
    if batch.num_rows() == 0 {
        return Ok((0..batch.num_columns()).collect());
    }
    let mut keep = Vec::new();
    for (i, column) in batch.columns().iter().enumerate() {
        let has_value = match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let text = datafusion::arrow::compute::cast(column, &DataType::Utf8).map_err(|e| internal_err!("{e}"))?;
                let text = text.as_any().downcast_ref::<arrow_array::StringArray>().ok_or_else(|| internal_err!("not text"))?;
                text.iter().flatten().any(|v| !((nulls.empty && v.is_empty()) || (nulls.null_string && v == "null") || nulls.custom.iter().any(|(c, int)| !int && c == v)))
            }
            t if t.is_integer() => {
                let ints = datafusion::arrow::compute::cast(column, &DataType::Int64).map_err(|e| internal_err!("{e}"))?;
                let ints = ints.as_any().downcast_ref::<arrow_array::Int64Array>().ok_or_else(|| internal_err!("not integers"))?;
                let custom: Vec<i64> = nulls.custom.iter().filter(|(_, int)| *int).filter_map(|(v, _)| v.trim().parse().ok()).collect();
                ints.iter().flatten().any(|v| !((nulls.neg_one && v == -1) || custom.contains(&v)))
            }
            _ => column.null_count() < column.len(),
        };
        if has_value {
            keep.push(i);
        }
    }
    Ok(keep)
}

fn parse_records(text: &str, format: &FileFormat, file: &str, into: &mut Vec<Map<String, Value>>) -> Result<()> {
    let not_object = |line: usize| service_err!(InvalidInputException, "{file}: record {line} is not a JSON object");
    match format {
        FileFormat::Json { multiline: false } => {
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let value: Value = serde_json::from_str(line).map_err(|e| service_err!(InvalidInputException, "{file}: line {} is not JSON: {e}", i + 1))?;
                into.push(value.as_object().cloned().ok_or_else(|| not_object(i + 1))?);
            }
        }
        FileFormat::Json { multiline: true } => {
            let value: Value = serde_json::from_str(text).map_err(|e| service_err!(InvalidInputException, "{file} is not one JSON document: {e}"))?;
            match value {
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        into.push(item.as_object().cloned().ok_or_else(|| not_object(i + 1))?);
                    }
                }
                Value::Object(o) => into.push(o),
                _ => return Err(not_object(1)),
            }
        }
        FileFormat::Parquet => return Err(internal_err!("{file}: Parquet is read as Arrow, not as records")),
        FileFormat::Csv { separator, header } => {
            let mut reader = csv::ReaderBuilder::new().delimiter(*separator as u8).has_headers(false).flexible(true).from_reader(text.as_bytes());
            let mut names: Option<Vec<String>> = None;
            for row in reader.records() {
                let row = row.map_err(|e| service_err!(InvalidInputException, "{file}: {e}"))?;
                if names.is_none() {
                    if *header {
                        names = Some(row.iter().map(str::to_string).collect());
                        continue;
                    }
                    names = Some((0..row.len()).map(|i| format!("col{i}")).collect());
                }
                let names = names.as_ref().ok_or_else(|| internal_err!("no CSV header"))?;
                into.push(names.iter().zip(row.iter()).map(|(n, v)| (n.clone(), csv_value(v))).collect());
            }
        }
    }
    Ok(())
}

/// Records as rows: fields in first-seen order, a field with one type typed as it is, a
/// choice as its values' JSON text.
fn to_rows(records: Vec<Map<String, Value>>) -> Result<DynamicRows> {
    let mut order: Vec<String> = Vec::new();
    let mut types: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for record in &records {
        for (name, value) in record {
            let seen = types.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                Vec::new()
            });
            if let Some(t) = type_of(value)
                && !seen.contains(&t)
            {
                seen.push(t);
            }
        }
    }
    let mut fields = Vec::new();
    let mut choices = BTreeMap::new();
    for name in &order {
        let seen = &types[name];
        let data_type = match seen.as_slice() {
            [] | ["string"] => DataType::Utf8,
            ["long"] => DataType::Int64,
            ["double"] => DataType::Float64,
            ["boolean"] => DataType::Boolean,
            [_] => {
                let values = records.iter().filter_map(|r| r.get(name)).filter(|v| !v.is_null()).map(|v| Ok(serde_json::json!({ "v": v })));
                let inferred = arrow_json::reader::infer_json_schema_from_iterator(values).map_err(|e| internal_err!("{e}"))?;
                inferred.field_with_name("v").map(|f| f.data_type().clone()).unwrap_or(DataType::Utf8)
            }
            _ => {
                choices.insert(name.clone(), seen.iter().map(|t| t.to_string()).collect::<Vec<_>>());
                DataType::Utf8
            }
        };
        fields.push(Field::new(name, data_type, true));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut lines = Vec::with_capacity(records.len());
    for mut record in records {
        for name in choices.keys() {
            if let Some(value) = record.get_mut(name)
                && !value.is_null()
            {
                *value = Value::String(value.to_string());
            }
        }
        lines.push(Value::Object(record));
    }
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone()).build_decoder().map_err(|e| internal_err!("{e}"))?;
    decoder.serialize(&lines).map_err(|e| service_err!(InvalidInputException, "the records do not fit their inferred types: {e}"))?;
    let batch = match decoder.flush().map_err(|e| internal_err!("{e}"))? {
        Some(batch) => batch,
        None => RecordBatch::new_empty(schema),
    };
    Ok(DynamicRows { batch, choices })
}

/// A choice column's JSON text as a test of one type.
fn is_type(column: &str, t: &str) -> String {
    match t {
        "string" => format!("left({column}, 1) = '\"'"),
        "boolean" => format!("{column} IN ('true', 'false')"),
        "struct" => format!("left({column}, 1) = '{{'"),
        "array" => format!("left({column}, 1) = '['"),
        "long" | "int" => format!("{column} ~ '^-?[0-9]+$'"),
        _ => format!("({column} ~ '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$' AND {column} ~ '[.eE]')"),
    }
}

/// A choice column's value as text: a string without its quotes, anything else as written.
fn text_of(column: &str) -> String {
    format!("CASE WHEN left({column}, 1) = '\"' THEN substr({column}, 2, length({column}) - 2) ELSE {column} END")
}

fn value_as(column: &str, t: &str) -> Result<String> {
    Ok(match t {
        "struct" | "array" => column.to_string(),
        other => format!("TRY_CAST({} AS {})", text_of(column), super::graph::sql_type(other)?),
    })
}

/// The select list of a ResolveChoice node over `schema` whose `choices` are known: each
/// spec (path, action) — or, without specs, `choice` for every choice column.
pub fn resolve_choice_columns(schema: &Schema, choices: &BTreeMap<String, Vec<String>>, specs: &[(String, String)], choice: Option<&str>, node: &str) -> Result<Vec<String>> {
    use super::graph::ident;
    let action_for = |name: &str| -> Option<String> {
        match specs.iter().find(|(p, _)| p.eq_ignore_ascii_case(name)) {
            Some((_, action)) => Some(action.clone()),
            None if specs.is_empty() => choice.map(str::to_string),
            None => None,
        }
    };
    for (path, _) in specs {
        if !schema.fields().iter().any(|f| f.name().eq_ignore_ascii_case(path)) {
            return Err(service_err!(InvalidInputException, "{node}: column {path} not found"));
        }
    }
    let mut columns = Vec::new();
    let mut appended = Vec::new();
    for field in schema.fields() {
        let name = field.name();
        let quoted = ident(name);
        let Some(action) = action_for(name) else {
            columns.push(quoted);
            continue;
        };
        let Some(types) = choices.get(name) else {
            // Not a choice: a cast still applies, the other actions leave it as it is.
            match action.split_once(':') {
                Some(("cast", t)) => columns.push(format!("TRY_CAST({quoted} AS {}) AS {quoted}", super::graph::sql_type(t)?)),
                _ => columns.push(quoted),
            }
            continue;
        };
        match action.split_once(':').unwrap_or((action.as_str(), "")) {
            ("cast", t) => columns.push(format!("{} AS {quoted}", value_as(&quoted, t)?)),
            ("project", t) => columns.push(format!("CASE WHEN {} THEN {} END AS {quoted}", is_type(&quoted, t), value_as(&quoted, t)?)),
            ("make_cols", _) => {
                // As Glue does: the first type's column in place, the others at the end.
                for (i, t) in types.iter().enumerate() {
                    let column = format!("CASE WHEN {} THEN {} END AS {}", is_type(&quoted, t), value_as(&quoted, t)?, ident(&format!("{name}_{t}")));
                    if i == 0 { columns.push(column) } else { appended.push(column) }
                }
            }
            ("make_struct", _) => {
                let parts = types.iter().map(|t| Ok(format!("'{t}', CASE WHEN {} THEN {} END", is_type(&quoted, t), value_as(&quoted, t)?))).collect::<Result<Vec<_>>>()?;
                columns.push(format!("named_struct({}) AS {quoted}", parts.join(", ")));
            }
            (other, _) => {
                return Err(service_err!(InvalidInputException, "{node}: action {other:?} is not cast:TYPE, project:TYPE, make_cols or make_struct"));
            }
        }
    }
    columns.extend(appended);
    Ok(columns)
}

/// The frames Relationalize makes of `schema` (root `name`): the root with nested fields
/// flattened to `a.b` columns and each array replaced by a join key, then one frame per
/// array (`name_<path>`: `id` — the key —, `index`, and the element's fields as
/// `<path>.val[.field]`), in the order the arrays appear.
pub fn relationalize_frames(schema: &Schema, name: &str) -> Vec<(String, Vec<String>)> {
    let mut frames = vec![(name.to_string(), Vec::new())];
    let mut arrays = Vec::new();
    flatten(schema.fields(), "", "", &mut frames[0].1, &mut arrays, true);
    for path in arrays {
        frames.push((format!("{name}_{path}"), vec![path]));
    }
    frames
}

/// Columns of a flattened struct: `expr` reaches the struct, `prefix` names its fields.
fn flatten(fields: &arrow_schema::Fields, expr: &str, prefix: &str, columns: &mut Vec<String>, arrays: &mut Vec<String>, root: bool) {
    use super::graph::ident;
    for field in fields {
        let path = if prefix.is_empty() { field.name().clone() } else { format!("{prefix}.{}", field.name()) };
        let access = if root { ident(field.name()) } else { format!("{expr}['{}']", field.name().replace('\'', "''")) };
        match field.data_type() {
            DataType::Struct(inner) => flatten(inner, &access, &path, columns, arrays, false),
            DataType::List(_) | DataType::LargeList(_) => {
                columns.push(format!("CASE WHEN {access} IS NOT NULL THEN lakebook_id END AS {}", ident(&path)));
                arrays.push(path);
            }
            _ => columns.push(format!("{access} AS {}", ident(&path))),
        }
    }
}

/// The SQL of frame `index` of Relationalize over `frame` (the input's rows with a
/// `lakebook_id` join key, read once so every frame sees the same keys), whose other columns
/// are `schema`.
pub fn relationalize_sql(frame: &str, schema: &Schema, name: &str, index: usize, node: &str) -> Result<String> {
    use super::graph::ident;
    let schema = Schema::new(schema.fields().iter().filter(|f| f.name() != "lakebook_id").cloned().collect::<Vec<_>>());
    let schema = &schema;
    let frames = relationalize_frames(schema, name);
    let Some((_, what)) = frames.get(index) else {
        let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
        return Err(service_err!(InvalidInputException, "{node}: the collection has {} frame(s) ({}); there is no index {index}", frames.len(), names.join(", ")));
    };
    let base = frame;
    if index == 0 {
        return Ok(format!("SELECT {} FROM {base}", what.join(", ")));
    }
    // The array's element type, found by walking its path.
    let path = &frames[index].1[0];
    let mut fields = schema.fields().clone();
    let mut access = String::new();
    let mut element = None;
    for (i, part) in path.split('.').enumerate() {
        let field = fields.iter().find(|f| f.name() == part).cloned().ok_or_else(|| internal_err!("no field {part}"))?;
        access = if i == 0 { ident(part) } else { format!("{access}['{}']", part.replace('\'', "''")) };
        match field.data_type() {
            DataType::Struct(inner) => fields = inner.clone(),
            DataType::List(item) | DataType::LargeList(item) => element = Some(item.clone()),
            _ => {}
        }
    }
    let item = element.ok_or_else(|| internal_err!("{path} is not an array"))?;
    let mut columns = Vec::new();
    let mut nested = Vec::new();
    let val = format!("{path}.val");
    match item.data_type() {
        DataType::Struct(inner) => flatten(inner, "lakebook_val", &val, &mut columns, &mut nested, false),
        _ => columns.push(format!("lakebook_val AS {}", ident(&val))),
    }
    Ok(format!(
        "SELECT lakebook_id AS id, lakebook_index AS \"index\", {} FROM (SELECT lakebook_id, unnest(range(0, array_length({access}))) AS lakebook_index, unnest({access}) AS lakebook_val FROM {base} WHERE array_length({access}) > 0)",
        columns.join(", ")
    ))
}

/// `rows` with a `lakebook_id` column: 1, 2, 3 … in order (Relationalize's join keys).
pub fn with_ids(rows: &RecordBatch) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("lakebook_id", DataType::Int64, false));
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(arrow_array::Int64Array::from_iter_values(1..=rows.num_rows() as i64)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| internal_err!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_two_types_are_choices_and_csv_values_are_typed_one_by_one() {
        let mut records = Vec::new();
        parse_records("provider id,total discharges\n10001,91\n10005,14\n23456b,7\n,3\n", &FileFormat::Csv { separator: ',', header: true }, "f", &mut records).unwrap();
        let rows = to_rows(records).unwrap();
        assert_eq!(rows.choices["provider id"], ["long", "string"]);
        assert!(!rows.choices.contains_key("total discharges"));
        assert_eq!(rows.batch.schema().field(1).data_type(), &DataType::Int64);
        let ids = rows.batch.column(0).as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        assert_eq!((ids.value(0), ids.value(2)), ("10001", "\"23456b\""));
        assert!(arrow_array::Array::is_null(ids, 3));
    }

    #[test]
    fn json_lines_keep_nested_types() {
        let mut records = Vec::new();
        parse_records("{\"a\": {\"b\": 1}, \"p\": 1.5}\n{\"a\": {\"b\": 2}, \"p\": \"$2\"}\n", &FileFormat::Json { multiline: false }, "f", &mut records).unwrap();
        let rows = to_rows(records).unwrap();
        assert!(matches!(rows.batch.schema().field(0).data_type(), DataType::Struct(_)));
        assert_eq!(rows.choices["p"], ["double", "string"]);
    }
}
