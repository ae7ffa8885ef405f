//! Column types: the Hive/Glue type strings the catalog stores (`bigint`, `array<string>`,
//! `struct<a:int>` …), their Arrow equivalents both ways, and the inference lattice the
//! crawler uses to widen types seen in different files and records.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, TimeUnit};

use crate::error::Result;
use crate::service_err;

/// The Glue type name of an Arrow type (also what result tables show as dtypes).
pub fn glue_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Null => "void".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            format!("decimal({p},{s})")
        }
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) | DataType::FixedSizeList(f, _) => {
            format!("array<{}>", glue_type(f.data_type()))
        }
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields.iter().map(|f| format!("{}:{}", f.name(), glue_type(f.data_type()))).collect::<Vec<_>>().join(",")
        ),
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("map<{},{}>", glue_type(kv[0].data_type()), glue_type(kv[1].data_type()))
            }
            other => format!("map<string,{}>", glue_type(other)),
        },
        DataType::Dictionary(_, value) => glue_type(value),
        DataType::Time32(_) | DataType::Time64(_) => "string".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// The Arrow type for a Glue type string.
pub fn arrow_type(glue: &str) -> Result<DataType> {
    let mut parser = Parser { text: glue.trim(), pos: 0 };
    let ty = parser.parse()?;
    parser.skip_ws();
    if parser.pos != parser.text.len() {
        return Err(bad_type(glue));
    }
    Ok(ty)
}

fn bad_type(glue: &str) -> crate::Error {
    service_err!(InvalidInputException, "{glue:?} is not a type the catalog knows")
        .with_hint("use Hive types: string, bigint, int, double, boolean, date, timestamp, decimal(p,s), array<T>, struct<a:T>, map<K,V>")
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> Result<()> {
        self.skip_ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(bad_type(self.text))
        }
    }

    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        while self.text[self.pos..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn number(&mut self) -> Result<u8> {
        self.word().parse().map_err(|_| bad_type(self.text))
    }

    fn parse(&mut self) -> Result<DataType> {
        let word = self.word().to_ascii_lowercase();
        Ok(match word.as_str() {
            "string" | "varchar" | "char" => {
                self.skip_length();
                DataType::Utf8
            }
            "boolean" | "bool" => DataType::Boolean,
            "tinyint" => DataType::Int8,
            "smallint" => DataType::Int16,
            "int" | "integer" => DataType::Int32,
            "bigint" | "long" => DataType::Int64,
            "float" | "real" => DataType::Float32,
            "double" => DataType::Float64,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
            "binary" => DataType::Binary,
            // Only while sampling: a value never seen with a type (null, empty array).
            "void" => DataType::Null,
            "decimal" => {
                self.eat('(')?;
                let p = self.number()?;
                self.eat(',')?;
                let s = self.number()?;
                self.eat(')')?;
                DataType::Decimal128(p, s as i8)
            }
            "array" => {
                self.eat('<')?;
                let item = self.parse()?;
                self.eat('>')?;
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            "map" => {
                self.eat('<')?;
                let key = self.parse()?;
                self.eat(',')?;
                let value = self.parse()?;
                self.eat('>')?;
                let entries = Fields::from(vec![Field::new("key", key, false), Field::new("value", value, true)]);
                DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
            }
            "struct" => {
                self.eat('<')?;
                let mut fields = Vec::new();
                loop {
                    let name = self.word().to_string();
                    if name.is_empty() {
                        return Err(bad_type(self.text));
                    }
                    self.eat(':')?;
                    fields.push(Field::new(name, self.parse()?, true));
                    self.skip_ws();
                    if self.text[self.pos..].starts_with(',') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.eat('>')?;
                DataType::Struct(Fields::from(fields))
            }
            _ => return Err(bad_type(self.text)),
        })
    }

    /// `varchar(10)`: the length does not matter to Arrow.
    fn skip_length(&mut self) {
        self.skip_ws();
        if self.text[self.pos..].starts_with('(')
            && let Some(end) = self.text[self.pos..].find(')') {
                self.pos += end + 1;
            }
    }
}

/// A type seen while sampling data, before it is written down as a Glue type.
#[derive(Debug, Clone, PartialEq)]
pub enum Inferred {
    /// Only nulls / empty values seen so far.
    Unknown,
    Boolean,
    BigInt,
    Double,
    Date,
    Timestamp,
    String,
    Array(Box<Inferred>),
    Struct(Vec<(String, Inferred)>),
}

impl Inferred {
    /// The narrowest type of a text value (a CSV field).
    pub fn of_text(value: &str) -> Self {
        let v = value.trim();
        if v.is_empty() {
            return Inferred::Unknown;
        }
        if v.parse::<i64>().is_ok() {
            return Inferred::BigInt;
        }
        if v.parse::<f64>().is_ok() && v.bytes().any(|b| b.is_ascii_digit()) && !v.contains(['i', 'I', 'n', 'N']) {
            return Inferred::Double;
        }
        if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
            return Inferred::Boolean;
        }
        if chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
            return Inferred::Date;
        }
        if is_timestamp(v) {
            return Inferred::Timestamp;
        }
        Inferred::String
    }

    /// The type of a JSON value.
    pub fn of_json(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Inferred::Unknown,
            Value::Bool(_) => Inferred::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => Inferred::BigInt,
            Value::Number(_) => Inferred::Double,
            Value::String(_) => Inferred::String,
            Value::Array(items) => {
                Inferred::Array(Box::new(items.iter().map(Inferred::of_json).fold(Inferred::Unknown, Inferred::merge)))
            }
            Value::Object(map) => Inferred::Struct(map.iter().map(|(k, v)| (k.clone(), Inferred::of_json(v))).collect()),
        }
    }

    /// The narrowest type that holds both (string when nothing narrower does).
    pub fn merge(self, other: Inferred) -> Inferred {
        use Inferred::*;
        match (self, other) {
            (Unknown, t) | (t, Unknown) => t,
            (a, b) if a == b => a,
            (BigInt, Double) | (Double, BigInt) => Double,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            (Array(a), Array(b)) => Array(Box::new(a.merge(*b))),
            (Struct(a), Struct(b)) => Struct(merge_fields(a, b)),
            _ => String,
        }
    }

    /// The Glue type, with types never seen (only nulls) written as `string`.
    pub fn glue_type(&self) -> std::string::String {
        self.write(false)
    }

    /// The Glue type while sampling: types never seen stay `void`, so a later file can still
    /// fill them in (an empty array here, an array of structs there).
    pub fn sample_type(&self) -> std::string::String {
        self.write(true)
    }

    fn write(&self, keep_unknown: bool) -> std::string::String {
        match self {
            Inferred::Unknown if keep_unknown => "void".into(),
            Inferred::Unknown | Inferred::String => "string".into(),
            Inferred::Boolean => "boolean".into(),
            Inferred::BigInt => "bigint".into(),
            Inferred::Double => "double".into(),
            Inferred::Date => "date".into(),
            Inferred::Timestamp => "timestamp".into(),
            Inferred::Array(item) => format!("array<{}>", item.write(keep_unknown)),
            Inferred::Struct(fields) => format!(
                "struct<{}>",
                fields.iter().map(|(n, t)| format!("{n}:{}", t.write(keep_unknown))).collect::<Vec<_>>().join(",")
            ),
        }
    }

    /// The inference type of an Arrow type, for the types inference produces.
    fn from_arrow(data_type: &DataType) -> Option<Inferred> {
        Some(match data_type {
            DataType::Null => Inferred::Unknown,
            DataType::Boolean => Inferred::Boolean,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Inferred::BigInt,
            DataType::Float32 | DataType::Float64 => Inferred::Double,
            DataType::Utf8 => Inferred::String,
            DataType::Date32 => Inferred::Date,
            DataType::Timestamp(..) => Inferred::Timestamp,
            DataType::List(f) => Inferred::Array(Box::new(Inferred::from_arrow(f.data_type())?)),
            DataType::Struct(fields) => Inferred::Struct(
                fields.iter().map(|f| Some((f.name().clone(), Inferred::from_arrow(f.data_type())?))).collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }
}

/// A sampled type made final: `void` (never seen) becomes `string`.
pub fn finalize_type(sampled: &str) -> String {
    if !sampled.contains("void") {
        return sampled.to_string();
    }
    match arrow_type(sampled).ok().and_then(|t| Inferred::from_arrow(&t)) {
        Some(inferred) => inferred.glue_type(),
        None => sampled.replace("void", "string"),
    }
}

/// Merges two field lists by name, keeping first-seen order.
pub fn merge_fields(a: Vec<(String, Inferred)>, b: Vec<(String, Inferred)>) -> Vec<(String, Inferred)> {
    let mut out = a;
    for (name, ty) in b {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => *existing = std::mem::replace(existing, Inferred::Unknown).merge(ty),
            None => out.push((name, ty)),
        }
    }
    out
}

/// Widens two Glue type strings the way [`Inferred::merge`] widens inferred types.
pub fn merge_glue_types(a: &str, b: &str) -> String {
    if a == b {
        return a.to_string();
    }
    let rank = |t: &str| match t {
        "tinyint" => Some(1),
        "smallint" => Some(2),
        "int" => Some(3),
        "bigint" => Some(4),
        "float" => Some(5),
        "double" => Some(6),
        _ => None,
    };
    if let (Some(x), Some(y)) = (rank(a), rank(b)) {
        return if x >= y { a } else { b }.to_string();
    }
    let inferred = |t: &str| arrow_type(t).ok().and_then(|t| Inferred::from_arrow(&t));
    match (inferred(a), inferred(b)) {
        (Some(x), Some(y)) => x.merge(y).sample_type(),
        _ => "string".into(),
    }
}

fn is_timestamp(v: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(v).is_ok()
        || ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"]
            .iter()
            .any(|f| chrono::NaiveDateTime::parse_from_str(v, f).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glue_types_round_trip_through_arrow() {
        for t in ["string", "bigint", "int", "double", "boolean", "date", "timestamp", "decimal(10,2)", "array<string>", "struct<a:bigint,b:array<double>>", "map<string,bigint>"] {
            assert_eq!(glue_type(&arrow_type(t).unwrap()), t);
        }
        assert_eq!(arrow_type("varchar(20)").unwrap(), DataType::Utf8);
        assert_eq!(arrow_type("struct<a:>").unwrap_err().code(), "InvalidInputException");
    }

    #[test]
    fn text_inference_and_widening() {
        use Inferred::*;
        assert_eq!(Inferred::of_text("42"), BigInt);
        assert_eq!(Inferred::of_text("4.2"), Double);
        assert_eq!(Inferred::of_text("TRUE"), Boolean);
        assert_eq!(Inferred::of_text("2026-01-02"), Date);
        assert_eq!(Inferred::of_text("2026-01-02 10:00:00"), Timestamp);
        assert_eq!(Inferred::of_text("2026-01-02T10:00:00Z"), Timestamp);
        assert_eq!(Inferred::of_text("nan"), String);
        assert_eq!(Inferred::of_text("inf"), String);
        assert_eq!(Inferred::of_text(""), Unknown);
        assert_eq!(BigInt.merge(Double), Double);
        assert_eq!(BigInt.merge(String), String);
        assert_eq!(Unknown.merge(Date), Date);
        assert_eq!(merge_glue_types("bigint", "double"), "double");
        assert_eq!(merge_glue_types("bigint", "string"), "string");
        assert_eq!(merge_glue_types("array<void>", "array<struct<sku:string>>"), "array<struct<sku:string>>");
        assert_eq!(merge_glue_types("date", "timestamp"), "timestamp");
        assert_eq!(finalize_type("struct<a:void,b:array<void>>"), "struct<a:string,b:array<string>>");
    }

    #[test]
    fn json_inference_nests() {
        let v: serde_json::Value = serde_json::json!({"a": 1, "b": {"c": [1.5, 2]}, "d": null});
        assert_eq!(Inferred::of_json(&v).glue_type(), "struct<a:bigint,b:struct<c:array<double>>,d:string>");
    }
}
