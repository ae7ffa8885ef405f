//! Writing rows into a table's files: the write schema, rows conformed to it, split by
//! partition values into Hive-style `key=value/` folders, encoded in the table's format; and
//! the small result tables DDL statements answer with.

use super::*;

/// The table's columns (then partition keys) as the Arrow schema files are written with.
pub(in crate::sql) fn write_schema(columns: &[Column]) -> Result<SchemaRef> {
    let fields = columns.iter().map(|c| Ok(Field::new(&c.name, arrow_type(&c.data_type)?, true))).collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Casts `batch`'s columns, in order, to `schema` (what the catalog says the files hold).
pub(in crate::sql) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
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

/// Rows grouped by their partition values (the last `keys` columns) as their folder names
/// print them, in key order; each group keeps only the data columns, its rows in their order.
pub(in crate::sql) fn split_partitions(batch: &RecordBatch, keys: usize) -> Result<Vec<(Vec<String>, RecordBatch)>> {
    use arrow_array::Array as _;
    use arrow_array::cast::AsArray as _;
    let data_columns = batch.num_columns() - keys;
    let data_schema = Arc::new(Schema::new(batch.schema().fields()[..data_columns].to_vec()));
    if keys == 0 {
        return Ok(vec![(Vec::new(), batch.project(&(0..data_columns).collect::<Vec<_>>()).map_err(|e| internal_err!("{e}"))?)]);
    }
    // Rows are grouped by their key values as text, compared as bytes in Arrow's row format:
    // no string is made per row, only one per group.
    let texts: Vec<ArrayRef> = batch.columns()[data_columns..]
        .iter()
        .map(|c| cast(c, &DataType::Utf8).map_err(|e| internal_err!("partition values as text: {e}")))
        .collect::<Result<_>>()?;
    let fields = texts.iter().map(|_| SortField::new(DataType::Utf8)).collect();
    let converter = RowConverter::new(fields).map_err(|e| internal_err!("{e}"))?;
    let rows = converter.convert_columns(&texts).map_err(|e| internal_err!("splitting partitions: {e}"))?;
    let mut slots: HashMap<&[u8], usize> = HashMap::new();
    let mut members: Vec<Vec<u32>> = Vec::new();
    let mut last: Option<(&[u8], usize)> = None;
    for (i, row) in rows.iter().enumerate() {
        let key = row.data();
        let slot = match last {
            Some((previous, slot)) if previous == key => slot,
            _ => {
                let slot = *slots.entry(key).or_insert_with(|| {
                    members.push(Vec::new());
                    members.len() - 1
                });
                last = Some((key, slot));
                slot
            }
        };
        members[slot].push(i as u32);
    }
    // A NULL and the text of the default partition's name print the same: one group. In key
    // order, not arrival order (which a parallel plan varies), so file numbers are the same on
    // every run.
    let mut groups: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
    for rows in members {
        let first = rows[0] as usize;
        let key = texts
            .iter()
            .map(|t| {
                let t = t.as_string::<i32>();
                if t.is_null(first) { NULL_PARTITION.to_string() } else { t.value(first).to_string() }
            })
            .collect();
        match groups.entry(key) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(rows);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                slot.get_mut().extend(rows);
                slot.get_mut().sort_unstable();
            }
        }
    }
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

/// How the lake's Parquet files are written: the table's compression (snappy by default).
pub(in crate::sql) fn parquet_properties(compression: Option<&str>) -> Result<WriterProperties> {
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
    Ok(WriterProperties::builder().set_compression(codec).build())
}

/// One file's bytes in the table's format.
pub(crate) fn encode(batch: &RecordBatch, format: &Format, compression: Option<&str>) -> Result<(Bytes, &'static str)> {
    let fail = |e: &dyn std::fmt::Display| internal_err!("writing {}: {e}", format.classification());
    match format {
        Format::Parquet => {
            let mut out = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(parquet_properties(compression)?)).map_err(|e| fail(&e))?;
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
        Format::Csv { delimiter, header, .. } => {
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
pub(in crate::sql) fn one_batch(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    concat_batches(schema, batches).map_err(|e| internal_err!("concatenating the result: {e}"))
}

/// A partition's rows spread over a bucketed table's buckets: Hive's bucketing (version 1,
/// which Athena's CTAS writes), `(hash & i32::MAX) % count`, the hash of several columns
/// combined as `31 * h + column`. Non-empty buckets only, in bucket order.
pub(in crate::sql) fn buckets(rows: &RecordBatch, bucketing: &crate::catalog::Bucketing) -> Result<Vec<(u32, RecordBatch)>> {
    let schema = rows.schema();
    let mut hashes = vec![0i32; rows.num_rows()];
    for name in &bucketing.columns {
        let i = schema.index_of(name).map_err(|_| service_err!(InvalidRequestException, "bucket column {name} is not a column of the table"))?;
        let column = hive_hashes(rows.column(i), name)?;
        for (h, c) in hashes.iter_mut().zip(column) {
            *h = h.wrapping_mul(31).wrapping_add(c);
        }
    }
    let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (row, h) in hashes.into_iter().enumerate() {
        members.entry((h & i32::MAX) as u32 % bucketing.count).or_default().push(row as u32);
    }
    members
        .into_iter()
        .map(|(bucket, rows_in)| {
            let indices = UInt32Array::from(rows_in);
            let columns = rows.columns().iter().map(|c| take(c.as_ref(), &indices, None)).collect::<std::result::Result<Vec<_>, _>>();
            let columns = columns.map_err(|e| internal_err!("bucketing rows: {e}"))?;
            Ok((bucket, RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))?))
        })
        .collect()
}

/// Each value's hash as Hive's `ObjectInspectorUtils.hashCode` computes it: strings as
/// `Text.hashCode` (31 * h + signed byte, from 1), integers as Java's `Integer`/`Long`
/// hashes, doubles as `Double.hashCode`, booleans 1 / 0, NULL 0.
fn hive_hashes(column: &ArrayRef, name: &str) -> Result<Vec<i32>> {
    use arrow_array::Array as _;
    use arrow_array::cast::AsArray as _;
    use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
    let n = column.len();
    let long = |v: i64| (v ^ ((v as u64) >> 32) as i64) as i32;
    let hashes: Vec<Option<i32>> = match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(column, &DataType::Utf8).map_err(|e| internal_err!("{e}"))?;
            let text = text.as_string::<i32>();
            (0..n).map(|i| text.is_valid(i).then(|| text.value(i).bytes().fold(1i32, |h, b| h.wrapping_mul(31).wrapping_add(b as i8 as i32)))).collect()
        }
        DataType::Int8 => column.as_primitive::<Int8Type>().iter().map(|v| v.map(i32::from)).collect(),
        DataType::Int16 => column.as_primitive::<Int16Type>().iter().map(|v| v.map(i32::from)).collect(),
        DataType::Int32 => column.as_primitive::<Int32Type>().iter().collect(),
        DataType::Int64 => column.as_primitive::<Int64Type>().iter().map(|v| v.map(long)).collect(),
        DataType::Float32 => column.as_primitive::<Float32Type>().iter().map(|v| v.map(|f| f.to_bits() as i32)).collect(),
        DataType::Float64 => column.as_primitive::<Float64Type>().iter().map(|v| v.map(|f| long(f.to_bits() as i64))).collect(),
        DataType::Boolean => column.as_boolean().iter().map(|v| v.map(i32::from)).collect(),
        other => {
            return Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: bucketing on column {name} of type {}", glue_type(other))
                .with_hint("bucket on a string, integer, floating-point or boolean column"));
        }
    };
    Ok(hashes.into_iter().map(|h| h.unwrap_or(0)).collect())
}

/// Athena's DESCRIBE of a catalog table: `col_name`, `data_type`, `comment` for each column,
/// then the partition columns after a `# Partition Information` header, as Hive prints them.
pub(super) fn describe(table: &Table) -> RecordBatch {
    let mut rows: Vec<(String, String, String)> = table.definition.columns.iter().map(|c| (c.name.clone(), c.data_type.clone(), String::new())).collect();
    let keys = &table.definition.partition_keys;
    if !keys.is_empty() {
        rows.push((String::new(), String::new(), String::new()));
        rows.push(("# Partition Information".into(), String::new(), String::new()));
        rows.push(("# col_name".into(), "data_type".into(), "comment".into()));
        rows.push((String::new(), String::new(), String::new()));
        rows.extend(keys.iter().map(|k| (k.name.clone(), k.data_type.clone(), String::new())));
    }
    if let Some(b) = &table.definition.bucketing {
        rows.push((String::new(), String::new(), String::new()));
        rows.push(("# Bucketing Information".into(), String::new(), String::new()));
        rows.push(("Bucket Columns:".into(), format!("[{}]", b.columns.join(", ")), String::new()));
        rows.push(("Num Buckets:".into(), b.count.to_string(), String::new()));
    }
    let column = |f: fn(&(String, String, String)) -> &String| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
    RecordBatch::try_from_iter(vec![("col_name", column(|r| &r.0)), ("data_type", column(|r| &r.1)), ("comment", column(|r| &r.2))])
        .expect("three string columns of one length")
}

/// A one-column result of messages (Athena shows DDL outcomes as text).
pub(in crate::sql) fn messages(lines: Vec<String>) -> RecordBatch {
    names("result", lines)
}

/// A one-column result named `column`.
pub(in crate::sql) fn names(column: &str, values: Vec<String>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values))]).expect("one string column matches its schema")
}

/// A statement's output that is one batch.
pub(super) fn output(batch: RecordBatch, bytes_scanned: u64) -> crate::sql::Output {
    crate::sql::Output { schema: batch.schema(), batches: vec![batch], bytes_scanned, rows_written: 0 }
}

pub(in crate::sql) fn insert_target(insert: &ast::Insert) -> Result<&ObjectName> {
    match &insert.table {
        TableObject::TableName(name) => Ok(name),
        other => Err(service_err!(InvalidRequestException, "NOT_SUPPORTED: INSERT INTO {other}")),
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn rows_go_to_the_buckets_hive_v1_puts_them_in() {
        // Java: "c123".hashCode() over bytes = 1 * 31^4 + … ; Hive: (h & MAX) % 30.
        let text = |s: &str| s.bytes().fold(1i32, |h, b| h.wrapping_mul(31).wrapping_add(b as i32));
        let batch = RecordBatch::try_from_iter(vec![
            ("k", Arc::new(StringArray::from(vec!["c123", "c456", "c123"])) as ArrayRef),
            ("n", Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        ])
        .unwrap();
        let by_k = buckets(&batch, &crate::catalog::Bucketing { columns: vec!["k".into()], count: 30 }).unwrap();
        let expected: Vec<u32> = {
            let mut b = vec![(text("c123") & i32::MAX) as u32 % 30, (text("c456") & i32::MAX) as u32 % 30];
            b.sort();
            b
        };
        assert_eq!(by_k.iter().map(|(b, _)| *b).collect::<Vec<_>>(), expected);
        let c123 = by_k.iter().find(|(b, _)| *b == (text("c123") & i32::MAX) as u32 % 30).unwrap();
        assert_eq!(c123.1.num_rows(), 2);
        // Java's Long.hashCode: (int)(v ^ (v >>> 32)); 1 bucket per value here.
        let by_n = buckets(&batch, &crate::catalog::Bucketing { columns: vec!["n".into()], count: 4 }).unwrap();
        assert_eq!(by_n.iter().map(|(b, r)| (*b, r.num_rows())).collect::<Vec<_>>(), vec![(1, 1), (2, 1), (3, 1)]);
        let err = buckets(&batch, &crate::catalog::Bucketing { columns: vec!["nope".into()], count: 4 }).unwrap_err();
        assert!(err.message().contains("nope"), "{err}");
    }
}

#[cfg(test)]
mod partition_tests {
    use super::*;
    use rand::Rng;

    fn partition_strings(array: &ArrayRef) -> Result<Vec<String>> {
        let strings = cast(array, &DataType::Utf8).map_err(|e| internal_err!("partition values as text: {e}"))?;
        let strings = strings.as_any().downcast_ref::<StringArray>().ok_or_else(|| internal_err!("partition values are not text"))?;
        Ok(strings.iter().map(|v| v.map_or_else(|| NULL_PARTITION.to_string(), str::to_string)).collect())
    }

    /// What the rows' folders say, row by row: the reference the grouping must agree with.
    fn by_row_strings(batch: &RecordBatch, keys: usize) -> Vec<(Vec<String>, Vec<i64>)> {
        let data = batch.num_columns() - keys;
        let texts: Vec<Vec<String>> = (data..batch.num_columns()).map(|i| partition_strings(batch.column(i)).unwrap()).collect();
        let ids = batch.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
        let mut groups: BTreeMap<Vec<String>, Vec<i64>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            groups.entry(texts.iter().map(|t| t[row].clone()).collect()).or_default().push(ids.value(row));
        }
        groups.into_iter().collect()
    }

    #[test]
    fn rows_split_by_what_their_folders_say_in_order() {
        let mut rng = crate::streams::generator::rng(Some(31));
        for case in 0..40 {
            let n = rng.random_range(0..600);
            let days = ["2026-01-01", "2026-01-02", NULL_PARTITION, "x/y", ""];
            let day: StringArray = (0..n).map(|_| if rng.random_ratio(1, 6) { None } else { Some(days[rng.random_range(0..days.len())]) }).collect();
            let hour: arrow_array::Int32Array = (0..n).map(|_| if rng.random_ratio(1, 9) { None } else { Some(rng.random_range(0..3)) }).collect();
            let id = arrow_array::Int64Array::from_iter_values(0..n as i64);
            let mut columns: Vec<(&str, ArrayRef)> = vec![("id", Arc::new(id)), ("day", Arc::new(day))];
            if case % 2 == 0 {
                columns.push(("hour", Arc::new(hour)));
            }
            let keys = columns.len() - 1;
            let batch = RecordBatch::try_from_iter(columns).unwrap();
            let split = split_partitions(&batch, keys).unwrap();
            let got: Vec<(Vec<String>, Vec<i64>)> = split
                .iter()
                .map(|(key, rows)| {
                    assert_eq!(rows.num_columns(), 1, "only the data columns");
                    (key.clone(), rows.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap().values().to_vec())
                })
                .collect();
            assert_eq!(got, by_row_strings(&batch, keys), "case {case}");
        }
    }
}
