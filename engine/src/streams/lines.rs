//! Records from lines of text (`%%stream put` cells, `--from FILE`, `lakebook put-records`):
//! one record per non-blank line, its partition key fixed or taken from a JSON field.

use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{LoadReport, PutEntry, Streams};
use crate::error::Result;

/// How each line's partition key is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKey {
    /// The same key for every record.
    Fixed(String),
    /// The value of this top-level field of the line's JSON object (empty when absent,
    /// which PutRecords then refuses for that record alone).
    Field(String),
}

impl LineKey {
    pub fn entry(&self, line: Bytes) -> PutEntry {
        let partition_key = match self {
            LineKey::Fixed(key) => key.clone(),
            LineKey::Field(field) => json_field(&line, field).unwrap_or_default(),
        };
        PutEntry { partition_key, data: line, explicit_hash_key: None }
    }
}

/// The non-blank lines of `text` (without `\r\n`/`\n`), sharing its buffer.
pub fn lines(text: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < text.len() {
            let end = memchr(b'\n', &text[at..]).map_or(text.len(), |p| at + p);
            let mut line = text.slice(at..end);
            at = end + 1;
            if line.last() == Some(&b'\r') {
                line.truncate(line.len() - 1);
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(line);
            }
        }
        None
    })
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// The lines grouped per bulk load: big enough that the fsync is cheap per record.
pub const LOAD_GROUP: usize = 50_000;

impl Streams {
    /// Bulk-loads `text`, one record per non-blank line, in group commits of
    /// [`LOAD_GROUP`] records (throughput limits still apply when on).
    pub fn load_lines(&self, name: &str, text: &Bytes, key: &LineKey) -> Result<LoadReport> {
        let mut total = LoadReport::default();
        let mut group = Vec::with_capacity(LOAD_GROUP);
        let mut lines = lines(text).peekable();
        while lines.peek().is_some() {
            group.extend(lines.by_ref().take(LOAD_GROUP).map(|line| key.entry(line)));
            let report = self.load(name, std::mem::take(&mut group))?;
            total.stored += report.stored;
            total.failed += report.failed;
            total.throttled += report.throttled;
            if total.first_error.is_none() {
                total.first_error = report.first_error;
            }
        }
        Ok(total)
    }
}

/// A top-level field of a JSON object as text (strings unquoted, other values as JSON),
/// found without building the whole document.
pub fn json_field(json: &[u8], field: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    FieldSeed(field).deserialize(&mut de).ok().flatten()
}

struct FieldSeed<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == self.0 {
                found = match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_without_parsing_everything() {
        assert_eq!(json_field(br#"{"a":{"k":1},"k":"v","z":[1,2]}"#, "k").as_deref(), Some("v"));
        assert_eq!(json_field(br#"{"k":42}"#, "k").as_deref(), Some("42"));
        assert_eq!(json_field(br#"{"k":null}"#, "k"), None);
        assert_eq!(json_field(b"not json", "k"), None);
        assert_eq!(json_field(b"[1]", "k"), None);
    }

    #[test]
    fn lines_skip_blanks_and_carriage_returns() {
        let text = Bytes::from_static(b"one\r\n\n  \ntwo\nthree");
        let got: Vec<Bytes> = lines(&text).collect();
        assert_eq!(got, [Bytes::from_static(b"one"), Bytes::from_static(b"two"), Bytes::from_static(b"three")]);
    }
}
