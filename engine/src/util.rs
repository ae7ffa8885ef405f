//! Small helpers the services and the kernel share.

/// The name a unit enum variant has in its serialised form (`created`, `SUCCEEDED` …), so
/// `Display` and the persisted state always agree.
pub fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
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
