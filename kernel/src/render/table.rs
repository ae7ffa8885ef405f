//! Tables: an Arrow record batch as escaped `text/html` (a dtype row, head and tail around
//! an ellipsis row, a footer "N rows × M columns" plus run time and bytes scanned) and a
//! `text/plain` box table with the same rows.

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::Value;

use super::{escape, human_bytes};
use super::Bundle;

/// How many rows to show, and what to write for NULL.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// More rows than this are shown as head … tail.
    pub max_rows: usize,
    pub head: usize,
    pub tail: usize,
    pub null: &'static str,
}

impl Default for TableOptions {
    fn default() -> Self {
        Self { max_rows: 50, head: 10, tail: 10, null: "NULL" }
    }
}

impl TableOptions {
    /// For listings and descriptions the kernel builds itself: an absent value is left blank
    /// instead of spelled NULL (which is for query results).
    pub fn plain() -> Self {
        Self { null: "", ..Self::default() }
    }
}

/// Facts shown under a table besides its shape.
#[derive(Debug, Clone, Default)]
pub struct Footer {
    pub elapsed: Option<std::time::Duration>,
    pub bytes_scanned: Option<u64>,
    pub extra: Vec<String>,
}

impl Footer {
    /// "3 rows × 2 columns · 4 ms · 1.2 KB scanned · …"
    pub fn text(&self, rows: usize, columns: usize) -> String {
        let shape = format!(
            "{} row{} × {} column{}",
            group_digits(rows),
            if rows == 1 { "" } else { "s" },
            columns,
            if columns == 1 { "" } else { "s" }
        );
        let facts = self.facts();
        if facts.is_empty() { shape } else { format!("{shape} · {facts}") }
    }

    /// The facts without the shape ("4 ms · 1.2 KB scanned · …"), for statements whose
    /// output is sentences rather than rows.
    pub fn facts(&self) -> String {
        let mut facts = Vec::new();
        if let Some(elapsed) = self.elapsed {
            facts.push(format_elapsed(elapsed));
        }
        if let Some(bytes) = self.bytes_scanned {
            facts.push(format!("{} scanned", human_bytes(bytes)));
        }
        facts.extend(self.extra.iter().cloned());
        facts.join(" · ")
    }
}

pub fn table(batch: &RecordBatch, options: &TableOptions, footer: &Footer) -> Bundle {
    let rows = batch.num_rows();
    let shown: Vec<Option<usize>> = if rows > options.max_rows {
        (0..options.head).map(Some).chain(std::iter::once(None)).chain((rows - options.tail..rows).map(Some)).collect()
    } else {
        (0..rows).map(Some).collect()
    };
    let format = FormatOptions::new()
        .with_null(options.null)
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    let formatters: Vec<Option<ArrayFormatter>> =
        batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &format).ok()).collect();
    let cell = |col: usize, row: usize| -> String {
        match &formatters[col] {
            Some(f) => f.value(row).to_string(),
            None => "?".to_string(),
        }
    };
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let types: Vec<String> = schema.fields().iter().map(|f| type_name(f.data_type())).collect();
    let footer_text = footer.text(rows, names.len());

    // HTML
    let mut html = String::from("<div class=\"lakebook-table\"><table class=\"dataframe\">\n<thead>\n<tr>");
    for name in &names {
        html.push_str(&format!("<th>{}</th>", escape(name)));
    }
    html.push_str("</tr>\n<tr class=\"lakebook-dtype\">");
    for t in &types {
        html.push_str(&format!("<th style=\"font-weight:normal;font-style:italic;color:#777\">{}</th>", escape(t)));
    }
    html.push_str("</tr>\n</thead>\n<tbody>\n");
    for row in &shown {
        html.push_str("<tr>");
        for col in 0..names.len() {
            match row {
                Some(r) => {
                    let is_null = batch.column(col).is_null(*r);
                    let value = escape(&cell(col, *r));
                    if is_null {
                        html.push_str(&format!("<td style=\"color:#999\">{value}</td>"));
                    } else {
                        html.push_str(&format!("<td>{value}</td>"));
                    }
                }
                None => html.push_str("<td>…</td>"),
            }
        }
        html.push_str("</tr>\n");
    }
    html.push_str(&format!(
        "</tbody>\n</table>\n<p class=\"lakebook-footer\" style=\"color:#777;font-size:smaller\">{}</p></div>",
        escape(&footer_text)
    ));

    // Text
    let mut text_table = Table::new();
    text_table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    text_table.set_header(names.iter().map(|n| n.to_string()));
    text_table.add_row(types.iter().map(|t| t.to_string()));
    for row in &shown {
        match row {
            Some(r) => text_table.add_row((0..names.len()).map(|c| cell(c, *r))),
            None => text_table.add_row((0..names.len()).map(|_| "…".to_string())),
        };
    }
    let plain = format!("{text_table}\n{footer_text}");

    let mut bundle = Bundle::new();
    bundle.insert("text/plain".into(), Value::String(plain));
    bundle.insert("text/html".into(), Value::String(html));
    bundle
}

/// Type names in Athena's vocabulary (string, bigint, double, timestamp …), as the catalog
/// writes them.
pub fn type_name(data_type: &DataType) -> String {
    lakebook_engine::catalog::types::glue_type(data_type)
}

fn group_digits(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn format_elapsed(d: std::time::Duration) -> String {
    if d.as_secs_f64() < 1.0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn batch(n: i64) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]);
        let ids = Int64Array::from_iter_values(0..n);
        let names = StringArray::from_iter((0..n).map(|i| if i == 1 { None } else { Some(format!("<b>{i}</b>")) }));
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ids), Arc::new(names)]).unwrap()
    }

    #[test]
    fn html_is_escaped_with_dtypes_and_footer() {
        let b = table(&batch(3), &TableOptions::default(), &Footer::default());
        let html = b["text/html"].as_str().unwrap();
        assert!(html.contains("&lt;b&gt;0&lt;/b&gt;") && !html.contains("<b>0"));
        assert!(html.contains(">bigint</th>") && html.contains(">string</th>"));
        assert!(html.contains("3 rows × 2 columns"));
        let plain = b["text/plain"].as_str().unwrap();
        assert!(plain.contains("NULL") && plain.contains("3 rows × 2 columns"), "{plain}");
    }

    #[test]
    fn long_tables_show_head_and_tail() {
        let options = TableOptions { max_rows: 10, head: 3, tail: 2, null: "" };
        let footer = Footer { elapsed: Some(std::time::Duration::from_millis(12)), bytes_scanned: Some(2_500_000), extra: vec![] };
        let b = table(&batch(1000), &options, &footer);
        let html = b["text/html"].as_str().unwrap();
        assert_eq!(html.matches("<tr>").count(), 3 + 1 + 2 + 1);
        assert!(html.contains("<td>…</td>") && html.contains(">999<") && !html.contains(">500<"));
        assert!(html.contains("1,000 rows × 2 columns · 12 ms · 2.5 MB scanned"));
    }
}

#[cfg(test)]
mod timestamp_tests {
    use std::sync::Arc;

    use arrow_array::{Array, TimestampMillisecondArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    #[test]
    fn utc_timestamps_render_as_dates() {
        let ts = TimestampMillisecondArray::from(vec![Some(1_767_225_690_000), None]).with_timezone("UTC");
        let schema = Schema::new(vec![Field::new("t", ts.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ts)]).unwrap();
        let plain = table(&batch, &TableOptions::default(), &Footer::default())["text/plain"].as_str().unwrap().to_string();
        assert!(plain.contains("2026-01-01 00:01:30"), "{plain}");
    }
}
