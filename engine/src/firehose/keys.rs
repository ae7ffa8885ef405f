//! Object keys as Firehose forms them: `<evaluated prefix><stream>-<version>-
//! yyyy-MM-dd-HH-mm-ss-<uuid>[.ext]`. Prefix expressions: `!{timestamp:<Java
//! DateTimeFormatter pattern>}` (UTC, the oldest record's arrival time),
//! `!{firehose:random-string}` (11 characters), `!{firehose:error-output-type}` (error prefix
//! only) and `!{partitionKeyFromQuery:NAME}` (dynamic partitioning). A prefix without a
//! timestamp expression (or an error prefix without any expression) gets `yyyy/MM/dd/HH/`
//! appended.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::error::Result;
use crate::service_err;

/// One piece of a parsed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Timestamp(String),
    RandomString,
    ErrorOutputType,
    PartitionKey(String),
}

/// A validated prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    pieces: Vec<Piece>,
}

/// What a prefix is evaluated with.
pub struct Context<'a> {
    pub oldest_arrival: DateTime<Utc>,
    /// 11 characters, fixed per delivered object.
    pub random: &'a str,
    pub error_output_type: Option<&'a str>,
    pub partition_keys: &'a BTreeMap<String, String>,
}

/// The literal text of a prefix before its first expression: `stage/` of
/// `stage/!{timestamp:yyyy}/`.
pub fn static_part(prefix: &str) -> &str {
    prefix.find("!{").map_or(prefix, |i| &prefix[..i])
}

impl Prefix {
    /// Parses and validates `text`; `error` says whether this is the error output prefix
    /// (the only place `!{firehose:error-output-type}` is allowed).
    pub fn parse(text: &str, error: bool) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut expressions = 0;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let end = rest[start..].find('}').ok_or_else(|| invalid(text, "an expression `!{` is never closed"))? + start;
            let body = &rest[start + 2..end];
            let (namespace, value) = body.split_once(':').ok_or_else(|| invalid(text, &format!("`!{{{body}}}` has no namespace")))?;
            let piece = match (namespace.trim(), value.trim()) {
                ("timestamp", pattern) => {
                    java_pattern(pattern, DateTime::UNIX_EPOCH).map_err(|e| invalid(text, &e))?;
                    Piece::Timestamp(pattern.to_string())
                }
                ("firehose", "random-string") => Piece::RandomString,
                ("firehose", "error-output-type") if error => Piece::ErrorOutputType,
                ("firehose", "error-output-type") => {
                    return Err(invalid(text, "`!{firehose:error-output-type}` is only allowed in the error output prefix"));
                }
                ("partitionKeyFromQuery", key) if !key.is_empty() => Piece::PartitionKey(key.to_string()),
                (namespace, value) => return Err(invalid(text, &format!("`!{{{namespace}:{value}}}` is not a supported expression"))),
            };
            pieces.push(piece);
            expressions += 1;
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        // The guide's semantic rule: a prefix without a timestamp expression gets
        // !{timestamp:yyyy/MM/dd/HH/} appended (a dynamic-partitioning prefix is used as
        // written); an error prefix only when it has no expressions at all.
        let timestamped = pieces.iter().any(|p| matches!(p, Piece::Timestamp(_)));
        let partitioned = pieces.iter().any(|p| matches!(p, Piece::PartitionKey(_)));
        if (!error && !timestamped && !partitioned) || expressions == 0 {
            pieces.push(Piece::Timestamp("yyyy/MM/dd/HH/".into()));
        }
        Ok(Self { pieces })
    }

    pub fn has_expressions(text: &str) -> bool {
        text.contains("!{")
    }

    /// The partition keys the prefix uses (`!{partitionKeyFromQuery:NAME}`).
    pub fn partition_keys(&self) -> Vec<&str> {
        self.pieces.iter().filter_map(|p| if let Piece::PartitionKey(k) = p { Some(k.as_str()) } else { None }).collect()
    }

    pub fn evaluate(&self, ctx: &Context) -> Result<String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Timestamp(p) => out.push_str(&java_pattern(p, ctx.oldest_arrival).map_err(|e| crate::internal_err!("{e}"))?),
                Piece::RandomString => out.push_str(ctx.random),
                Piece::ErrorOutputType => out.push_str(ctx.error_output_type.unwrap_or("processing-failed")),
                Piece::PartitionKey(k) => match ctx.partition_keys.get(k) {
                    Some(v) => out.push_str(v),
                    None => return Err(service_err!(InvalidArgumentException, "partition key {k} has no value for this record")),
                },
            }
        }
        Ok(out)
    }
}

fn invalid(prefix: &str, why: &str) -> crate::Error {
    service_err!(InvalidArgumentException, "the prefix {prefix:?} is invalid: {why}")
        .with_hint("expressions: !{timestamp:yyyy-MM-dd}, !{firehose:random-string}, !{firehose:error-output-type}, !{partitionKeyFromQuery:NAME}")
}

/// The object name after the prefix: `<stream>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid>`.
pub fn object_name(stream: &str, version: u32, at: DateTime<Utc>, uuid: &str) -> String {
    format!("{stream}-{version}-{}-{uuid}", at.format("%Y-%m-%d-%H-%M-%S"))
}

/// Formats `at` with a Java `DateTimeFormatter` pattern: letters y, M, d, H, h, m, s, S, a,
/// E, D (runs of a letter give the width; MMM/MMMM month names, E day names), `'quoted'`
/// literals and `''` for a quote; anything else is copied.
pub fn java_pattern(pattern: &str, at: DateTime<Utc>) -> std::result::Result<String, String> {
    const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            // A quoted literal; `''` inside it is a quote.
            i += 1;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (Some('\''), Some('\'')) => {
                        out.push('\'');
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(&c), _) => {
                        out.push(c);
                        i += 1;
                    }
                    (None, _) => return Err("an unclosed quote".into()),
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let num = |value: u32, run: usize| format!("{value:0run$}");
        let text = match c {
            'y' | 'u' => {
                if run == 2 {
                    num((at.year() % 100) as u32, 2)
                } else {
                    num(at.year() as u32, run)
                }
            }
            'M' | 'L' => match run {
                1 | 2 => num(at.month(), run),
                3 => MONTHS[at.month0() as usize][..3].to_string(),
                _ => MONTHS[at.month0() as usize].to_string(),
            },
            'd' => num(at.day(), run),
            'D' => num(at.ordinal(), run),
            'H' => num(at.hour(), run),
            'h' => num(at.hour12().1, run),
            'm' => num(at.minute(), run),
            's' => num(at.second(), run),
            'S' => {
                let nanos = format!("{:09}", at.nanosecond().min(999_999_999));
                nanos[..run.min(9)].to_string() + &"0".repeat(run.saturating_sub(9))
            }
            'a' => if at.hour() < 12 { "AM" } else { "PM" }.to_string(),
            'E' => {
                let day = DAYS[at.weekday().num_days_from_monday() as usize];
                if run >= 4 { day.to_string() } else { day[..3].to_string() }
            }
            other => return Err(format!("the pattern letter '{other}' is not supported")),
        };
        out.push_str(&text);
        i += run;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-03-07T09:05:03.250Z".parse().unwrap()
    }

    fn eval(prefix: &str, error: Option<&str>, keys: &[(&str, &str)]) -> String {
        let keys: BTreeMap<String, String> = keys.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let ctx = Context { oldest_arrival: at(), random: "ab12cd34ef5", error_output_type: error, partition_keys: &keys };
        Prefix::parse(prefix, error.is_some()).unwrap().evaluate(&ctx).unwrap()
    }

    #[test]
    fn the_developer_guide_examples() {
        // From "Custom prefixes for Amazon S3 objects".
        assert_eq!(
            eval("myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/", None, &[]),
            "myPrefix/year=2026/month=03/day=07/hour=09/"
        );
        assert_eq!(
            eval("myErrorPrefix/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/", Some("processing-failed"), &[]),
            "myErrorPrefix/processing-failed/2026/03/07/"
        );
        assert_eq!(eval("myPrefix/", None, &[]), "myPrefix/2026/03/07/09/", "no expressions: yyyy/MM/dd/HH/ appended");
        assert_eq!(eval("myPrefix/!{firehose:random-string}/", None, &[]), "myPrefix/ab12cd34ef5/2026/03/07/09/", "no timestamp expression: appended");
        assert_eq!(eval("", None, &[]), "2026/03/07/09/");
        assert_eq!(eval("!{timestamp:yyyy-MM-dd}/!{firehose:random-string}/", None, &[]), "2026-03-07/ab12cd34ef5/");
        assert_eq!(eval("customer_id=!{partitionKeyFromQuery:customer_id}/", None, &[("customer_id", "42")]), "customer_id=42/");
    }

    #[test]
    fn java_patterns() {
        assert_eq!(java_pattern("yyyy-MM-dd'T'HH:mm:ss.SSS", at()).unwrap(), "2026-03-07T09:05:03.250");
        assert_eq!(java_pattern("yy MMM MMMM d EEE h a", at()).unwrap(), "26 Mar March 7 Sat 9 AM");
        assert_eq!(java_pattern("'it''s' D DDD", at()).unwrap(), "it's 66 066");
        assert!(java_pattern("yyyy-QQ", at()).is_err());
    }

    #[test]
    fn invalid_prefixes_are_refused() {
        for bad in ["a/!{timestamp:yyyy", "!{firehose:error-output-type}/", "!{nope:x}", "!{timestamp:Q}", "!{partitionKeyFromQuery:}"] {
            assert_eq!(Prefix::parse(bad, false).unwrap_err().code(), "InvalidArgumentException", "{bad}");
        }
    }

    #[test]
    fn object_names() {
        assert_eq!(object_name("web", 1, at(), "u-u-i-d"), "web-1-2026-03-07-09-05-03-u-u-i-d");
    }
}
