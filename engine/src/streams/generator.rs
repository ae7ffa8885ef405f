//! A data generator in the spirit of the Kinesis Data Generator: a record template with
//! `{{…}}` placeholders (faker-style names such as `random.number(1,500)`, `internet.ip`,
//! `date.now`) filled in per record. The built-in templates (`clickstream`, `iot`, `logs`)
//! are written in the same language, so `%stream generate --show-template` teaches it.
//! With a seed, output is a pure function of (seed, record time): deterministic under the
//! manual clock.

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::error::Result;
use crate::service_err;

pub const CLICKSTREAM: &str = r#"{"event_id":"{{random.uuid}}","event_time":"{{date.now}}","user_id":"user_{{random.number(1,500)}}","session_id":"{{random.alphaNumeric(12)}}","event_type":"{{random.weightedArrayElement({"weights":[0.6,0.2,0.12,0.08],"data":["page_view","click","add_to_cart","purchase"]})}}","page":"{{random.arrayElement(["/","/search","/product","/cart","/checkout","/account"])}}","product_id":"P{{random.number(1000,1199)}}","price":{{random.float(5,300,2)}},"device":"{{random.weightedArrayElement({"weights":[0.55,0.35,0.1],"data":["mobile","desktop","tablet"]})}}","country":"{{address.countryCode}}","referrer":"{{random.arrayElement(["google","direct","email","facebook","bing"])}}","ip":"{{internet.ip}}"}"#;

pub const IOT: &str = r#"{"device_id":"sensor-{{random.number(1,50)}}","ts":"{{date.now}}","temperature":{{random.float(18,32,1)}},"humidity":{{random.number(30,80)}},"battery":{{random.float(3,4.2,2)}},"status":"{{random.weightedArrayElement({"weights":[0.95,0.04,0.01],"data":["OK","WARN","FAIL"]})}}"}"#;

pub const LOGS: &str = r#"{{internet.ip}} - - [{{date.now("%d/%b/%Y:%H:%M:%S %z")}}] "{{random.weightedArrayElement({"weights":[0.8,0.15,0.05],"data":["GET","POST","PUT"]})}} {{random.arrayElement(["/","/index.html","/api/items","/api/cart","/login","/static/app.js","/images/logo.png"])}} HTTP/1.1" {{random.weightedArrayElement({"weights":[0.85,0.06,0.05,0.04],"data":[200,304,404,500]})}} {{random.number(200,50000)}} "-" "{{internet.userAgent}}""#;

/// The functions a placeholder may call, for help texts and error hints.
pub const FUNCTIONS: &[&str] = &[
    "random.number(max) | random.number(min,max)",
    "random.float(min,max[,decimals])",
    "random.arrayElement([...])",
    "random.weightedArrayElement({\"weights\":[...],\"data\":[...]})",
    "random.uuid",
    "random.boolean",
    "random.word",
    "random.alphaNumeric(n)",
    "internet.ip",
    "internet.userAgent",
    "internet.email",
    "name.firstName",
    "name.lastName",
    "address.city",
    "address.countryCode",
    "commerce.productName",
    "date.now | date.now(\"strftime format\")",
    "date.epoch",
    "date.epochMillis",
];

const WORDS: &[&str] = &["lake", "stream", "shard", "table", "query", "cluster", "bucket", "record", "schema", "window"];
const FIRST_NAMES: &[&str] = &["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Linus"];
const LAST_NAMES: &[&str] = &["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Torvalds"];
const CITIES: &[&str] = &["Seattle", "Dublin", "Frankfurt", "Tokyo", "Sydney", "Sao Paulo", "Mumbai", "Toronto", "Paris", "Singapore"];
const COUNTRIES: &[&str] = &["US", "US", "US", "GB", "DE", "JP", "AU", "BR", "IN", "CA", "FR", "SG"];
const PRODUCTS: &[&str] = &["Ergonomic Chair", "Trail Shoes", "Espresso Maker", "Desk Lamp", "Noise-Cancelling Headphones", "Yoga Mat", "Water Bottle", "Backpack"];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
];

/// A parsed template: literal text and placeholders in order.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    /// The JSON field whose value is the partition key (None: a random key per record).
    pub partition_key_field: Option<String>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Call { name: String, args: Vec<Value> },
}

impl Template {
    /// A built-in template by name, or the template text itself.
    pub fn named_or_text(spec: &str) -> Result<Self> {
        let (text, key) = match spec {
            "clickstream" => (CLICKSTREAM, Some("user_id")),
            "iot" => (IOT, Some("device_id")),
            "logs" => (LOGS, None),
            text if text.contains("{{") => (text, None),
            other => {
                return Err(service_err!(InvalidArgumentException, "{other:?} is neither a built-in template nor a template")
                    .with_hint("use clickstream, iot or logs, or a record template with {{…}} placeholders such as {\"id\":{{random.number(100)}}}"));
            }
        };
        let mut template = Self::parse(text)?;
        template.partition_key_field = key.map(str::to_string);
        Ok(template)
    }

    /// The text of a built-in template.
    pub fn builtin_text(name: &str) -> Option<&'static str> {
        match name {
            "clickstream" => Some(CLICKSTREAM),
            "iot" => Some(IOT),
            "logs" => Some(LOGS),
            _ => None,
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let body = &rest[open + 2..];
            let close = placeholder_end(body).ok_or_else(|| {
                service_err!(InvalidArgumentException, "a {{{{ placeholder is never closed: {{{{{}", body.chars().take(40).collect::<String>())
            })?;
            parts.push(parse_call(body[..close].trim())?);
            rest = &body[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts, partition_key_field: None })
    }

    /// One record at time `at`.
    pub fn render(&self, rng: &mut StdRng, at: DateTime<Utc>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Call { name, args } => out.push_str(&call(name, args, rng, at)),
            }
        }
        out
    }

    /// The partition key of a rendered record: the configured field, else a random one.
    pub fn partition_key(&self, record: &str, rng: &mut StdRng) -> String {
        let field = self.partition_key_field.as_ref().and_then(|f| {
            let value: Value = serde_json::from_str(record).ok()?;
            match value.get(f)? {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            }
        });
        field.unwrap_or_else(|| format!("{:032x}", rng.random::<u128>()))
    }
}

/// A generator's random source: seeded for reproducible runs.
pub fn rng(seed: Option<u64>) -> StdRng {
    match seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_rng(&mut rand::rng()),
    }
}

/// Records per second from `200/s`, `12000/m`, `100/h` or a bare number (per second).
pub fn parse_rate(text: &str) -> Result<f64> {
    let (number, per) = text.split_once('/').unwrap_or((text, "s"));
    let seconds = match per.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => 0.0,
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && seconds > 0.0 && n.is_finite() => Ok(n / seconds),
        _ => Err(service_err!(InvalidArgumentException, "{text:?} is not a rate").with_hint("write records per unit: 200/s, 1200/m or 50/h")),
    }
}

/// Where the `}}` closing a placeholder is, skipping brackets and JSON strings in arguments.
fn placeholder_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'(' | b'[' | b'{' => depth += 1,
                b'}' if depth == 0 && bytes.get(i + 1) == Some(&b'}') => return Some(i),
                b')' | b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn parse_call(expr: &str) -> Result<Part> {
    let (name, args) = match expr.split_once('(') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').ok_or_else(|| service_err!(InvalidArgumentException, "{{{{{expr}}}}} is missing its closing ')'"))?;
            let args: Vec<Value> = serde_json::from_str(&format!("[{inner}]"))
                .map_err(|e| service_err!(InvalidArgumentException, "the arguments of {{{{{expr}}}}} are not JSON values: {e}"))?;
            (name.trim(), args)
        }
        None => (expr, Vec::new()),
    };
    if !FUNCTIONS.iter().any(|f| f.split([' ', '(']).next() == Some(name) || f.contains(&format!("| {name}"))) {
        return Err(service_err!(InvalidArgumentException, "{{{{{name}}}}} is not a generator function")
            .with_hint(format!("available: {}", FUNCTIONS.join(", "))));
    }
    Ok(Part::Call { name: name.to_string(), args })
}

fn number(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64)
}

fn pick<'a>(rng: &mut StdRng, items: &'a [&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn call(name: &str, args: &[Value], rng: &mut StdRng, at: DateTime<Utc>) -> String {
    match name {
        "random.number" => {
            let (min, max) = match (args.first(), args.get(1)) {
                (Some(Value::Object(o)), _) => (number(o.get("min")).unwrap_or(0.0), number(o.get("max")).unwrap_or(99_999.0)),
                (Some(a), Some(b)) => (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0)),
                (Some(a), None) => (0.0, a.as_f64().unwrap_or(0.0)),
                (None, _) => (0.0, 99_999.0),
            };
            let (min, max) = (min.round() as i64, max.round() as i64);
            rng.random_range(min.min(max)..=max.max(min)).to_string()
        }
        "random.float" => {
            let min = number(args.first()).unwrap_or(0.0);
            let max = number(args.get(1)).unwrap_or(1.0);
            let decimals = number(args.get(2)).unwrap_or(2.0).clamp(0.0, 10.0) as usize;
            let value = if max > min { rng.random_range(min..max) } else { min };
            format!("{value:.decimals$}")
        }
        "random.arrayElement" => match args.first() {
            Some(Value::Array(items)) if !items.is_empty() => text_of(&items[rng.random_range(0..items.len())]),
            _ => String::new(),
        },
        "random.weightedArrayElement" => {
            let Some(Value::Object(o)) = args.first() else { return String::new() };
            let weights: Vec<f64> = o.get("weights").and_then(Value::as_array).map(|w| w.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
            let data = o.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
            let total: f64 = weights.iter().sum();
            if data.is_empty() || total <= 0.0 {
                return String::new();
            }
            let mut roll = rng.random_range(0.0..total);
            for (weight, item) in weights.iter().zip(&data) {
                if roll < *weight {
                    return text_of(item);
                }
                roll -= weight;
            }
            text_of(&data[data.len().min(weights.len()) - 1])
        }
        "random.uuid" => {
            let bits: u128 = rng.random();
            uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid().to_string()
        }
        "random.boolean" => rng.random::<bool>().to_string(),
        "random.word" => pick(rng, WORDS).to_string(),
        "random.alphaNumeric" => {
            const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            let n = number(args.first()).unwrap_or(8.0).clamp(1.0, 256.0) as usize;
            (0..n).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
        }
        "internet.ip" => {
            let [a, b, c, d]: [u8; 4] = rng.random();
            format!("{}.{b}.{c}.{}", a.clamp(1, 223), d.max(1))
        }
        "internet.userAgent" => pick(rng, USER_AGENTS).to_string(),
        "internet.email" => format!("{}.{}@example.com", pick(rng, FIRST_NAMES).to_lowercase(), pick(rng, LAST_NAMES).to_lowercase()),
        "name.firstName" => pick(rng, FIRST_NAMES).to_string(),
        "name.lastName" => pick(rng, LAST_NAMES).to_string(),
        "address.city" => pick(rng, CITIES).to_string(),
        "address.countryCode" => pick(rng, COUNTRIES).to_string(),
        "commerce.productName" => pick(rng, PRODUCTS).to_string(),
        "date.now" => match args.first().and_then(Value::as_str) {
            Some(format) => {
                use std::fmt::Write;
                let mut out = String::new();
                // An invalid strftime item makes `write!` fail instead of panicking.
                match write!(out, "{}", at.format(format)) {
                    Ok(()) => out,
                    Err(_) => format!("<invalid date format {format:?}>"),
                }
            }
            None => crate::clock::format_time(at),
        },
        "date.epoch" => at.timestamp().to_string(),
        "date.epochMillis" => at.timestamp_millis().to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn builtin_templates_render_valid_records_deterministically() {
        for name in ["clickstream", "iot"] {
            let template = Template::named_or_text(name).unwrap();
            let mut a = rng(Some(7));
            let mut b = rng(Some(7));
            let first = template.render(&mut a, at());
            assert_eq!(first, template.render(&mut b, at()), "same seed, same record");
            let value: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{name}: {e}: {first}"));
            assert!(value.is_object());
            let key = template.partition_key(&first, &mut a);
            assert!(key.starts_with("user_") || key.starts_with("sensor-"), "{key}");
        }
        let logs = Template::named_or_text("logs").unwrap().render(&mut rng(Some(1)), at());
        assert!(logs.contains("[01/Jan/2026:12:00:00 +0000]") && logs.contains("HTTP/1.1\" "), "{logs}");
    }

    #[test]
    fn custom_templates_and_their_errors() {
        let t = Template::parse(r#"{"n":{{random.number(5,5)}},"w":"{{random.weightedArrayElement({"weights":[1,0],"data":["x","y"]})}}","t":{{date.epoch}}}"#).unwrap();
        assert_eq!(t.render(&mut rng(Some(1)), at()), format!(r#"{{"n":5,"w":"x","t":{}}}"#, at().timestamp()));
        assert_eq!(Template::parse("{{nope.nothing}}").unwrap_err().code(), "InvalidArgumentException");
        assert!(Template::parse("{{random.number(1,").is_err());
        assert!(Template::named_or_text("clicks").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("200/s").unwrap(), 200.0);
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert_eq!(parse_rate("50").unwrap(), 50.0);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("0/s").is_err());
    }
}
