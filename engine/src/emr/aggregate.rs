//! Hadoop's `aggregate` package, which streaming jobs name as `-reducer aggregate` (and
//! `-combiner aggregate`): the mapper writes `Type:id<TAB>value` lines and the reducer keeps
//! one aggregator per key, writing `id<TAB>report`. As Hadoop's ValueAggregatorReducer and
//! ValueAggregatorCombiner do, with the aggregators of ValueAggregatorBaseDescriptor:
//! `LongValueSum`, `LongValueMax`, `LongValueMin`, `DoubleValueSum`, `StringValueMax`,
//! `StringValueMin` and `UniqValueCount` (`ValueHistogram` is not offered yet: a job that
//! uses it fails with a message saying so). The combiner keeps the type prefix and writes
//! partial aggregates, which the reducer adds up.

use std::collections::BTreeSet;

use super::streaming::key_value;

/// The reducer or combiner command that means this built-in, not a program.
pub const COMMAND: &str = "aggregate";

/// True when a streaming command is Hadoop's built-in aggregate reducer.
pub fn is_aggregate(command: &str) -> bool {
    command.trim() == COMMAND
}

enum Aggregator {
    LongSum(i64),
    LongMax(Option<i64>),
    LongMin(Option<i64>),
    DoubleSum(f64),
    StringMax(Option<String>),
    StringMin(Option<String>),
    Uniq(BTreeSet<String>),
}

impl Aggregator {
    fn of(kind: &str) -> Result<Self, String> {
        Ok(match kind {
            "LongValueSum" => Self::LongSum(0),
            "LongValueMax" => Self::LongMax(None),
            "LongValueMin" => Self::LongMin(None),
            "DoubleValueSum" => Self::DoubleSum(0.0),
            "StringValueMax" => Self::StringMax(None),
            "StringValueMin" => Self::StringMin(None),
            "UniqValueCount" => Self::Uniq(BTreeSet::new()),
            "ValueHistogram" => return Err("the aggregate type ValueHistogram is not offered here yet".into()),
            other => {
                return Err(format!(
                    "unknown aggregate type {other:?}: use LongValueSum, LongValueMax, LongValueMin, DoubleValueSum, StringValueMax, StringValueMin or UniqValueCount"
                ));
            }
        })
    }

    fn add(&mut self, value: &str) -> Result<(), String> {
        let long = || value.trim().parse::<i64>().map_err(|_| format!("NumberFormatException: For input string: {value:?}"));
        match self {
            Self::LongSum(sum) => *sum = sum.wrapping_add(long()?),
            Self::LongMax(max) => {
                let v = long()?;
                *max = Some(max.map_or(v, |m| m.max(v)));
            }
            Self::LongMin(min) => {
                let v = long()?;
                *min = Some(min.map_or(v, |m| m.min(v)));
            }
            Self::DoubleSum(sum) => {
                *sum += value.trim().parse::<f64>().map_err(|_| format!("NumberFormatException: For input string: {value:?}"))?;
            }
            Self::StringMax(max) => {
                if max.as_deref().is_none_or(|m| value > m) {
                    *max = Some(value.to_string());
                }
            }
            Self::StringMin(min) => {
                if min.as_deref().is_none_or(|m| value < m) {
                    *min = Some(value.to_string());
                }
            }
            Self::Uniq(values) => {
                values.insert(value.to_string());
            }
        }
        Ok(())
    }

    /// What the combiner passes on: one partial value, or each distinct value for UniqValueCount.
    fn partials(&self) -> Vec<String> {
        match self {
            Self::Uniq(values) => values.iter().cloned().collect(),
            other => vec![other.report()],
        }
    }

    /// The reducer's output value.
    fn report(&self) -> String {
        match self {
            Self::LongSum(sum) => sum.to_string(),
            Self::LongMax(v) | Self::LongMin(v) => v.map_or(String::new(), |v| v.to_string()),
            Self::DoubleSum(sum) => java_double(*sum),
            Self::StringMax(v) | Self::StringMin(v) => v.clone().unwrap_or_default(),
            Self::Uniq(values) => values.len().to_string(),
        }
    }
}

/// Java's `Double.toString` for the values a sum gives: `3.0`, `0.5`, `1.0E7`.
fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
        format!("{mantissa}E{exp}")
    }
}

/// Aggregates sorted `Type:id<TAB>value` lines, one group per key. The reducer (`combine`
/// false) writes `id<TAB>report`; the combiner writes `Type:id<TAB>partial` lines. Returns the
/// output and the number of lines written.
pub fn run(sorted: &[u8], combine: bool) -> Result<(Vec<u8>, u64), String> {
    let mut out = Vec::new();
    let mut records = 0u64;
    let mut current: Option<(Vec<u8>, Aggregator)> = None;
    let mut flush = |key: &[u8], agg: &Aggregator, out: &mut Vec<u8>| {
        let key = String::from_utf8_lossy(key);
        if combine {
            for partial in agg.partials() {
                out.extend_from_slice(format!("{key}\t{partial}\n").as_bytes());
                records += 1;
            }
        } else {
            let id = key.split_once(':').map_or(key.as_ref(), |(_, id)| id);
            out.extend_from_slice(format!("{id}\t{}\n", agg.report()).as_bytes());
            records += 1;
        }
    };
    for line in sorted.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let (key, value) = key_value(line);
        let value = String::from_utf8_lossy(value);
        if current.as_ref().is_none_or(|(k, _)| k.as_slice() != key) {
            if let Some((k, agg)) = current.take() {
                flush(&k, &agg, &mut out);
            }
            let text = String::from_utf8_lossy(key);
            let Some((kind, _)) = text.split_once(':') else {
                return Err(format!("the key {text:?} has no aggregate type: the mapper must write Type:id<TAB>value, e.g. LongValueSum:word\\t1"));
            };
            current = Some((key.to_vec(), Aggregator::of(kind)?));
        }
        if let Some((_, agg)) = current.as_mut() {
            agg.add(&value)?;
        }
    }
    if let Some((k, agg)) = current.take() {
        flush(&k, &agg, &mut out);
    }
    Ok((out, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sums_per_key_and_drops_the_type() {
        let input = b"LongValueSum:dog\t1\nLongValueSum:dog\t1\nLongValueSum:the\t1\nLongValueSum:the\t3\n";
        let (out, n) = run(input, false).unwrap();
        assert_eq!(text(out), "dog\t2\nthe\t4\n");
        assert_eq!(n, 2);
    }

    #[test]
    fn combiner_keeps_the_type_and_reducer_adds_partials() {
        let (partial, _) = run(b"LongValueSum:a\t1\nLongValueSum:a\t2\nUniqValueCount:u\tx\nUniqValueCount:u\tx\nUniqValueCount:u\ty\n", true).unwrap();
        assert_eq!(text(partial.clone()), "LongValueSum:a\t3\nUniqValueCount:u\tx\nUniqValueCount:u\ty\n");
        let (out, _) = run(&partial, false).unwrap();
        assert_eq!(text(out), "a\t3\nu\t2\n");
    }

    #[test]
    fn max_min_double_and_strings() {
        let input = b"DoubleValueSum:d\t1.5\nDoubleValueSum:d\t1.5\nLongValueMax:m\t3\nLongValueMax:m\t10\nLongValueMin:n\t-2\nLongValueMin:n\t5\nStringValueMax:s\tpear\nStringValueMax:s\tapple\n";
        let (out, _) = run(input, false).unwrap();
        assert_eq!(text(out), "d\t3.0\nm\t10\nn\t-2\ns\tpear\n");
    }

    #[test]
    fn bad_lines_fail_with_hadoops_reason() {
        assert!(run(b"word\t1\n", false).unwrap_err().contains("no aggregate type"));
        assert!(run(b"LongValueSum:a\tone\n", false).unwrap_err().contains("NumberFormatException"));
        assert!(run(b"Average:a\t1\n", false).unwrap_err().contains("unknown aggregate type"));
    }

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double(3.0), "3.0");
        assert_eq!(java_double(0.25), "0.25");
        assert_eq!(java_double(1e7), "1.0E7");
    }
}
