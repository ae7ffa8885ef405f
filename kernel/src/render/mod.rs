//! Rendering: results become mime bundles. Tables as escaped HTML plus a text box table,
//! progress as a small HTML bar, plain text as `text/plain`.

pub mod chart;
pub mod columns;
pub mod dashboard;
pub mod graph;
pub mod table;

use serde_json::Value;

/// A mime bundle: mime type → data.
pub type Bundle = serde_json::Map<String, serde_json::Value>;

pub use columns::{batch, strings, times};
pub use table::{Footer, TableOptions, table};

/// A `text/plain` bundle.
pub fn text(text: &str) -> Bundle {
    let mut bundle = Bundle::new();
    bundle.insert("text/plain".into(), Value::String(text.to_string()));
    bundle
}

/// Two bundles shown one after the other (HTML and text joined).
pub fn concat(mut first: Bundle, second: Bundle) -> Bundle {
    for (mime, value) in second {
        let joined = match (first.get(&mime), &value) {
            (Some(Value::String(a)), Value::String(b)) => {
                Value::String(if mime == "text/html" { format!("{a}\n{b}") } else { format!("{a}\n\n{b}") })
            }
            _ => value,
        };
        first.insert(mime, joined);
    }
    first
}

/// A progress bundle: an HTML bar and a text line.
pub fn progress(label: &str, fraction: f64) -> Bundle {
    let percent = (fraction.clamp(0.0, 1.0) * 100.0).round();
    let mut bundle = text(&format!("{label} [{percent:.0}%]"));
    bundle.insert(
        "text/html".into(),
        Value::String(format!(
            "<div class=\"lakebook-progress\"><progress max=\"100\" value=\"{percent:.0}\" style=\"width:20em\"></progress> {}</div>",
            escape(label)
        )),
    );
    bundle
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bytes as people read them (1.2 MB; decimal units as the AWS consoles show).
pub use lakebook_engine::human_bytes;

/// A column's values as lines of text.
pub fn column_text(batch: &arrow_array::RecordBatch, column: usize) -> String {
    let options = arrow_cast::display::FormatOptions::new();
    match arrow_cast::display::ArrayFormatter::try_new(batch.column(column).as_ref(), &options) {
        Ok(f) => (0..batch.num_rows()).map(|row| f.value(row).to_string()).collect::<Vec<_>>().join("\n"),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_sizes() {
        assert_eq!(escape("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }
}
