//! Small helpers the services and the kernel share.

/// The name a unit enum variant has in its serialised form (`created`, `SUCCEEDED` …), so
/// `Display` and the persisted state always agree.
pub fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// How a size's units count: SI as the AWS consoles show scan limits (`10MB` = 10⁶ × 10), or
/// binary as Hadoop's block and split sizes (`128MB` = 2²⁷). `KiB`, `MiB`, `GiB` and `TiB`
/// are binary either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    Si,
    Binary,
}

/// `10MB`, `1.5 GB`, `500KB`, `2GiB`, `10000000` → bytes.
pub fn parse_size(text: &str, units: Units) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a size: write e.g. 10MB or 1GB"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let k = if units == Units::Binary || unit.ends_with("IB") { 1024.0 } else { 1e3 };
    let scale = match unit.as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => k,
        "M" | "MB" | "MIB" => k * k,
        "G" | "GB" | "GIB" => k * k * k,
        "T" | "TB" | "TIB" => k * k * k * k,
        other => return Err(format!("unknown size unit {other:?} in {text:?}: use B, KB, MB, GB or TB")),
    };
    Ok((number * scale).round() as u64)
}

/// Sizes as people read them, in SI units as the AWS consoles show them: `1.2 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

/// Why a `${NAME}` text could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unexpanded {
    /// `${` without a closing `}`.
    Unclosed,
    /// `${…}` around something that is not a name.
    BadName(String),
    /// A name with no value.
    Missing(String),
}

/// Replaces `${NAME}` with `value(NAME)`; `$${NAME}` becomes the text `${NAME}`. Names are
/// letters, digits and `_` (not starting with a digit), plus `-` when `dashes`.
pub fn expand_vars<'v>(text: &str, dashes: bool, value: impl Fn(&str) -> Option<&'v str>) -> std::result::Result<String, Unexpanded> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or(Unexpanded::Unclosed)?;
        let name = &after[..end];
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (dashes && c == '-'));
        if !valid {
            return Err(Unexpanded::BadName(name.to_string()));
        }
        out.push_str(value(name).ok_or_else(|| Unexpanded::Missing(name.to_string()))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
