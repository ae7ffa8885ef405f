//! Column types: Redshift's names for them, the Arrow types they are stored as, and the casts
//! between them.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::sql::sqlparser::ast::{self, DataType as SqlType, ExactNumberInfo};

use crate::error::Result;
use crate::{internal_err, service_err};

/// Equal types, counting Arrow's three string encodings as one.
pub(super) fn same_kind(a: &DataType, b: &DataType) -> bool {
    let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    a == b || (text(a) && text(b))
}

/// A column type as Redshift names it, from the DDL.
pub(super) fn redshift_type(t: &SqlType) -> Result<String> {
    let length = |n: &Option<ast::CharacterLength>, default: u64| match n {
        Some(ast::CharacterLength::IntegerLength { length, .. }) => *length,
        Some(ast::CharacterLength::Max) => 65535,
        None => default,
    };
    let text = match t {
        SqlType::SmallInt(_) | SqlType::Int2(_) => "smallint".to_string(),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => "integer".to_string(),
        SqlType::BigInt(_) | SqlType::Int8(_) => "bigint".to_string(),
        SqlType::Real | SqlType::Float4 => "real".to_string(),
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 | SqlType::Float(_) => "double precision".to_string(),
        SqlType::Boolean | SqlType::Bool => "boolean".to_string(),
        SqlType::Varchar(n) | SqlType::CharacterVarying(n) | SqlType::Nvarchar(n) => format!("character varying({})", length(n, 256)),
        SqlType::Char(n) | SqlType::Character(n) => format!("character({})", length(n, 1)),
        SqlType::Text | SqlType::String(_) => "character varying(256)".to_string(),
        SqlType::Date => "date".to_string(),
        SqlType::Timestamp(_, tz) => {
            if matches!(tz, ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz) { "timestamp with time zone".to_string() } else { "timestamp without time zone".to_string() }
        }
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => match info {
            ExactNumberInfo::PrecisionAndScale(p, s) => format!("numeric({p},{s})"),
            ExactNumberInfo::Precision(p) => format!("numeric({p},0)"),
            ExactNumberInfo::None => "numeric(18,0)".to_string(),
        },
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("timestamptz") => "timestamp with time zone".to_string(),
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("float4") => "real".to_string(),
        other => return Err(service_err!(FeatureNotSupported, "column type {other} is not supported").with_hint("use smallint, integer, bigint, real, double precision, numeric(p,s), boolean, varchar(n), char(n), date, timestamp or timestamptz")),
    };
    Ok(text)
}

/// The Redshift type of a query result column (CREATE TABLE AS).
pub(super) fn redshift_type_of(t: &DataType) -> Result<String> {
    Ok(match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "character varying(65535)".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({},{s})", (*p).min(38)),
        other => return Err(service_err!(FeatureNotSupported, "a column of type {other} cannot be stored in a Redshift table")),
    })
}

/// The Arrow type a Redshift column is stored as.
pub fn arrow_type(redshift: &str) -> Result<DataType> {
    let t = redshift.to_ascii_lowercase();
    Ok(match t.as_str() {
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" => DataType::Float32,
        "double precision" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp without time zone" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp with time zone" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ if t.starts_with("character") => DataType::Utf8,
        _ if t.starts_with("numeric(") => {
            let inner = t.trim_start_matches("numeric(").trim_end_matches(')');
            let (p, s) = inner.split_once(',').ok_or_else(|| internal_err!("bad numeric type {t}"))?;
            DataType::Decimal128(p.trim().parse().map_err(|_| internal_err!("bad numeric type {t}"))?, s.trim().parse().map_err(|_| internal_err!("bad numeric type {t}"))?)
        }
        _ => return Err(internal_err!("unknown Redshift type {t}")),
    })
}

/// The declared length of a `character varying(n)` / `character(n)` column.
pub(super) fn char_length(redshift: &str) -> Option<usize> {
    redshift.strip_prefix("character")?.split('(').nth(1)?.trim_end_matches(')').parse().ok()
}

pub(super) fn sql_cast_type(t: &DataType) -> String {
    match t {
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        _ => "VARCHAR".into(),
    }
}

pub(super) fn cast_column(array: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    cast_with_options(array.as_ref(), to, &CastOptions { safe: false, ..CastOptions::default() })
        .map_err(|e| service_err!(InvalidParameterValue, "column \"{name}\" is of type {to} but the value does not convert: {e}"))
}

/// A batch with exactly `schema`'s columns and types (by position).
pub(super) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema.fields().iter().enumerate().map(|(i, f)| cast_column(batch.column(i), f.data_type(), f.name())).collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| internal_err!("{e}"))
}
