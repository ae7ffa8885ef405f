//! Classifiers, tried in Glue's order: Avro (writer schema from the header, via arrow-avro),
//! ORC (schema from the footer, via orc-rust), Parquet (schema from the footer), JSON / JSON
//! Lines, CSV (delimiter and header detection). gzip, bzip2 and zstd text is read through. A
//! file no classifier is certain about is reported with the reason, never guessed.

use std::io::Read;

use super::model::{Column, Format};
use super::types::{Inferred, glue_type, merge_fields};

/// How much decompressed text is sampled for inference.
pub const SAMPLE_BYTES: usize = 4 * 1024 * 1024;
/// How many records are sampled for inference.
pub const SAMPLE_RECORDS: usize = 1000;

/// A classified file: its format and the schema sampled from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub format: Format,
    pub compression: Option<String>,
    pub columns: Vec<Column>,
}

pub const PARQUET_MAGIC: &[u8] = b"PAR1";
pub const AVRO_MAGIC: &[u8] = b"Obj\x01";
pub const ORC_MAGIC: &[u8] = b"ORC";

/// Classifies a text or Parquet file. For Parquet, `footer` is the file's metadata block (the
/// caller reads it with a range request); `head` is the start of the file (or all of it).
pub fn classify(head: &[u8], footer: Option<&[u8]>) -> Result<Classified, String> {
    if head.is_empty() {
        return Err("empty file".into());
    }
    if head.starts_with(PARQUET_MAGIC) {
        let footer = footer.ok_or("Parquet file without a readable footer (truncated?)")?;
        return parquet_schema(footer).map(|columns| Classified { format: Format::Parquet, compression: None, columns });
    }
    if head.starts_with(AVRO_MAGIC) {
        let reader = arrow_avro::reader::ReaderBuilder::new()
            .build(std::io::Cursor::new(head))
            .map_err(|e| format!("not a valid Avro file: {e}"))?;
        return Ok(Classified { format: Format::Avro, compression: None, columns: arrow_columns(&reader.schema()) });
    }
    if head.starts_with(ORC_MAGIC) {
        // `head` is the whole file here: ORC keeps its schema in the footer.
        let reader = orc_rust::ArrowReaderBuilder::try_new(bytes::Bytes::copy_from_slice(head))
            .map_err(|e| format!("not a valid ORC file: {e}"))?;
        return Ok(Classified { format: Format::Orc, compression: None, columns: arrow_columns(&reader.schema()) });
    }
    let (text, compression) = decompress(head)?;
    let text = std::str::from_utf8(&text)
        .or_else(|e| if e.error_len().is_none() { std::str::from_utf8(&text[..e.valid_up_to()]) } else { Err(e) })
        .map_err(|_| "binary data: not Parquet, JSON or CSV".to_string())?;
    if text.contains('\0') {
        return Err("binary data: not Parquet, JSON or CSV".into());
    }
    if text.trim().is_empty() {
        return Err("empty file".into());
    }
    let result = match text.trim_start().as_bytes()[0] {
        b'{' | b'[' => json_schema(text).map(|columns| (Format::Json, columns)),
        _ => csv_schema(text),
    };
    result.map(|(format, columns)| Classified { format, compression, columns })
}

fn parquet_schema(footer: &[u8]) -> Result<Vec<Column>, String> {
    let metadata = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(footer)
        .map_err(|e| format!("not a valid Parquet file: {e}"))?;
    let file = metadata.file_metadata();
    let schema = parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|e| format!("Parquet schema not readable: {e}"))?;
    Ok(arrow_columns(&schema))
}

fn arrow_columns(schema: &arrow_schema::Schema) -> Vec<Column> {
    schema.fields().iter().map(|f| Column::new(f.name().to_lowercase(), glue_type(f.data_type()))).collect()
}

/// Reads gzip / bzip2 / zstd through (up to [`SAMPLE_BYTES`]); returns the text and the
/// compression's name.
fn decompress(data: &[u8]) -> Result<(Vec<u8>, Option<String>), String> {
    let (reader, name): (Box<dyn Read + '_>, &str) = if data.starts_with(&[0x1f, 0x8b]) {
        (Box::new(flate2::read::MultiGzDecoder::new(data)), "gzip")
    } else if data.starts_with(b"BZh") {
        (Box::new(bzip2::read::MultiBzDecoder::new(data)), "bzip2")
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        match zstd::stream::read::Decoder::new(data) {
            Ok(d) => (Box::new(d), "zstd"),
            Err(e) => return Err(format!("corrupt zstd data: {e}")),
        }
    } else {
        let end = data.len().min(SAMPLE_BYTES);
        return Ok((data[..end].to_vec(), None));
    };
    let mut out = Vec::new();
    // A sample may end mid-stream: keep what decompressed before the error.
    let result = reader.take(SAMPLE_BYTES as u64).read_to_end(&mut out);
    if out.is_empty() {
        return Err(match result {
            Err(e) => format!("corrupt {name} data: {e}"),
            Ok(_) => "empty file".into(),
        });
    }
    Ok((out, Some(name.to_string())))
}

/// JSON Lines (one object per line) or a JSON document (an object or an array of objects).
fn json_schema(text: &str) -> Result<Vec<Column>, String> {
    let mut fields: Vec<(String, Inferred)> = Vec::new();
    let mut records = 0;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let complete_lines = if text.ends_with('\n') { lines.len() } else { lines.len().saturating_sub(1).max(1) };
    let as_lines: Result<(), String> = (|| {
        for (i, line) in lines.iter().take(complete_lines.min(SAMPLE_RECORDS)).enumerate() {
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("invalid JSON at line {}: {e}", i + 1))?;
            add_record(&mut fields, &value, &mut records)?;
        }
        Ok(())
    })();
    if let Err(line_error) = as_lines {
        // Not JSON Lines: maybe one (pretty-printed) document.
        fields.clear();
        records = 0;
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| line_error)?;
        match &value {
            serde_json::Value::Array(items) => {
                for item in items.iter().take(SAMPLE_RECORDS) {
                    add_record(&mut fields, item, &mut records)?;
                }
            }
            other => add_record(&mut fields, other, &mut records)?,
        }
    }
    if fields.is_empty() {
        return Err("JSON with no fields in its records".into());
    }
    Ok(fields.into_iter().map(|(n, t)| Column::new(n.to_lowercase(), t.sample_type())).collect())
}

fn add_record(fields: &mut Vec<(String, Inferred)>, value: &serde_json::Value, records: &mut usize) -> Result<(), String> {
    match Inferred::of_json(value) {
        Inferred::Struct(record) => {
            *fields = merge_fields(std::mem::take(fields), record);
            *records += 1;
            Ok(())
        }
        _ => Err(format!("JSON record {} is not an object", *records + 1)),
    }
}

/// CSV with one of `,` `|` tab `;`. The first row is a header only if every field in it is a
/// string and some data field below it is not (Glue's rule); otherwise columns are `col0…`.
fn csv_schema(text: &str) -> Result<(Format, Vec<Column>), String> {
    // Only complete lines: a sample may cut the last one.
    let text = match text.rfind('\n') {
        Some(i) if i + 1 < text.len() => &text[..=i],
        _ => text,
    };
    let mut best: Option<(char, Vec<Vec<String>>)> = None;
    for delimiter in [',', '|', '\t', ';'] {
        let Some(rows) = consistent_rows(text, delimiter) else { continue };
        let width = rows[0].len();
        if width > 1 && best.as_ref().is_none_or(|(_, b)| width > b[0].len()) {
            best = Some((delimiter, rows));
        }
    }
    let (delimiter, rows) = best.ok_or("not JSON, and no consistent CSV delimiter (',', '|', tab, ';') in the first rows")?;
    let width = rows[0].len();
    let types_of = |rows: &[Vec<String>]| -> Vec<Inferred> {
        (0..width).map(|c| rows.iter().fold(Inferred::Unknown, |t, r| t.merge(Inferred::of_text(&r[c])))).collect()
    };
    let first_all_strings = rows[0].iter().all(|f| Inferred::of_text(f) == Inferred::String);
    let data_types = types_of(&rows[1..]);
    let some_data_not_string = data_types.iter().any(|t| !matches!(t, Inferred::String | Inferred::Unknown));
    let header = rows.len() > 1 && first_all_strings && some_data_not_string && distinct(&rows[0]);
    let (names, types): (Vec<String>, Vec<Inferred>) = if header {
        (rows[0].iter().map(|h| super::model::sanitize_name(h)).collect(), data_types)
    } else {
        ((0..width).map(|i| format!("col{i}")).collect(), types_of(&rows))
    };
    let columns = names.into_iter().zip(types).map(|(n, t)| Column::new(n, t.sample_type())).collect();
    Ok((Format::Csv { delimiter, header, escape: None }, columns))
}

/// The sampled rows, if every one has the same number of fields.
fn consistent_rows(text: &str, delimiter: char) -> Option<Vec<Vec<String>>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter as u8)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows: Vec<Vec<String>> = Vec::new();
    for record in reader.records().take(SAMPLE_RECORDS) {
        let record = record.ok()?;
        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
            continue; // blank line
        }
        if rows.first().is_some_and(|first| first.len() != record.len()) {
            return None;
        }
        rows.push(record.iter().map(str::to_string).collect());
    }
    if rows.is_empty() { None } else { Some(rows) }
}

fn distinct(fields: &[String]) -> bool {
    let mut seen = std::collections::HashSet::new();
    fields.iter().all(|f| !f.trim().is_empty() && seen.insert(f.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples of every kind the classifiers read, cut short and with bytes flipped.
    const SAMPLES: &[&[u8]] = &[
        b"{\"id\": 1, \"v\": \"a\", \"n\": {\"x\": [1, 2.5, null]}}\n{\"id\": \"2\", \"v\": true}\n",
        b"id,name,amount\n1,ann,2.5\n2,\"b,c\",\n",
        b"a|b|c\n1|2|3\n",
        b"x\ty\n1\t2\n",
        b"Obj\x01\x04\x14avro.schema",
        b"PAR1\x15\x04",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 384, failure_persistence: None, ..Default::default() })]

        /// Random bytes, and real samples truncated and bit-flipped, classify or fail with a
        /// reason; never a panic in a crawl (#29).
        #[test]
        fn any_file_classifies_or_fails_cleanly(
            sample in 0..SAMPLES.len(),
            cut in 0usize..200,
            flips in proptest::collection::vec((0usize..200, 0u8..8), 0..4),
            random in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            footer in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)),
        ) {
            let mut bytes = SAMPLES[sample].to_vec();
            bytes.truncate(cut.min(bytes.len()));
            for (at, bit) in flips {
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << bit;
                }
            }
            let _ = classify(&bytes, footer.as_deref());
            let _ = classify(&random, footer.as_deref());
        }
    }

    fn cols(c: &Classified) -> Vec<(String, String)> {
        c.columns.iter().map(|c| (c.name.clone(), c.data_type.clone())).collect()
    }

    #[test]
    fn csv_header_rule_both_ways() {
        let with = classify(b"user_id,page,ts\n1,/home,2026-01-01 10:00:00\n2,/cart,2026-01-01 10:01:00\n", None).unwrap();
        assert_eq!(with.format, Format::Csv { delimiter: ',', header: true, escape: None });
        assert_eq!(cols(&with)[0], ("user_id".into(), "bigint".into()));
        assert_eq!(cols(&with)[2], ("ts".into(), "timestamp".into()));
        // All strings everywhere: the first row cannot be told from data.
        let without = classify(b"alice|home\nbob|cart\n", None).unwrap();
        assert_eq!(without.format, Format::Csv { delimiter: '|', header: false, escape: None });
        assert_eq!(cols(&without), vec![("col0".into(), "string".into()), ("col1".into(), "string".into())]);
        let tabs = classify(b"a\tb\n1\t2.5\n", None).unwrap();
        assert_eq!(tabs.format, Format::Csv { delimiter: '\t', header: true, escape: None });
        assert_eq!(cols(&tabs)[1].1, "double");
    }

    #[test]
    fn json_lines_and_documents() {
        let lines = classify(b"{\"a\":1,\"b\":\"x\"}\n{\"a\":2.5,\"c\":{\"d\":[true]}}\n", None).unwrap();
        assert_eq!(lines.format, Format::Json);
        assert_eq!(cols(&lines), vec![("a".into(), "double".into()), ("b".into(), "string".into()), ("c".into(), "struct<d:array<boolean>>".into())]);
        let doc = classify(b"[\n {\"a\": 1},\n {\"a\": 2}\n]", None).unwrap();
        assert_eq!(cols(&doc), vec![("a".into(), "bigint".into())]);
        let err = classify(b"{\"a\":1}\n{\"a\":\n", None).unwrap_err();
        assert!(err.contains("invalid JSON"), "{err}");
    }

    #[test]
    fn compressed_text_is_read_through() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"x,y\n1,2\n").unwrap();
        let c = classify(&gz.finish().unwrap(), None).unwrap();
        assert_eq!(c.compression.as_deref(), Some("gzip"));
        assert_eq!(c.format, Format::Csv { delimiter: ',', header: true, escape: None });
        let z = zstd::encode_all(&b"{\"k\":\"v\"}\n"[..], 0).unwrap();
        assert_eq!(classify(&z, None).unwrap().compression.as_deref(), Some("zstd"));
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(b"{\"k\":1}\n").unwrap();
        assert_eq!(classify(&bz.finish().unwrap(), None).unwrap().compression.as_deref(), Some("bzip2"));
    }

    #[test]
    fn junk_and_empty_are_reported() {
        assert_eq!(classify(b"", None).unwrap_err(), "empty file");
        assert!(classify(&[0u8, 159, 146, 150, 0, 1, 2], None).unwrap_err().contains("binary"));
        assert!(classify(b"PAR1\x00\x01", None).unwrap_err().contains("Parquet"));
        assert!(classify(b"just one column\nof words\n", None).unwrap_err().contains("delimiter"));
    }
}
