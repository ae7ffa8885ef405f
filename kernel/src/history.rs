//! Input history, appended to `<workspace>/kernel/history.jsonl` so it survives restarts;
//! each kernel start is a new session number, as in IPython. Answers tail / range / search.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use jupyter_protocol::HistoryRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    session: i64,
    line: usize,
    input: String,
}

pub struct History {
    file: Option<PathBuf>,
    entries: Vec<Entry>,
    session: i64,
}

impl History {
    /// Loads the history of the workspace at `home`; history still works in memory when the
    /// file cannot be read or written.
    pub fn open(home: &Path) -> Self {
        let file = home.join("kernel").join("history.jsonl");
        let entries: Vec<Entry> = fs::read_to_string(&file)
            .map(|text| text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
            .unwrap_or_default();
        let session = entries.iter().map(|e| e.session).max().unwrap_or(0) + 1;
        Self { file: Some(file), entries, session }
    }

    pub fn record(&mut self, line: usize, input: &str) {
        let entry = Entry { session: self.session, line, input: input.to_string() };
        if let Some(file) = &self.file {
            let appended = file
                .parent()
                .map(fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|_| OpenOptions::new().create(true).append(true).open(file))
                .and_then(|mut f| writeln!(f, "{}", serde_json::to_string(&entry).unwrap_or_default()));
            if let Err(e) = appended {
                tracing::warn!("history not saved to {}: {e}", file.display());
            }
        }
        self.entries.push(entry);
    }

    /// Answers a history_request's content; clients leave out fields they do not use
    /// (`unique`, `n`, `session` …), so missing ones take the spec's defaults.
    pub fn query_content(&self, content: &Value) -> Vec<Value> {
        let int = |k: &str, d: i64| content.get(k).and_then(Value::as_i64).unwrap_or(d);
        let flag = |k: &str| content.get(k).and_then(Value::as_bool).unwrap_or(false);
        let request = match content.get("hist_access_type").and_then(Value::as_str).unwrap_or("tail") {
            "range" => HistoryRequest::Range {
                session: Some(int("session", 0) as i32),
                start: int("start", 0) as i32,
                stop: int("stop", 0) as i32,
                output: flag("output"),
                raw: flag("raw"),
            },
            "search" => HistoryRequest::Search {
                pattern: content.get("pattern").and_then(Value::as_str).unwrap_or("*").to_string(),
                unique: flag("unique"),
                output: flag("output"),
                raw: flag("raw"),
                n: int("n", 0) as i32,
            },
            _ => HistoryRequest::Tail { n: int("n", 10) as i32, output: flag("output"), raw: flag("raw") },
        };
        self.query(&request)
    }

    pub fn query(&self, request: &HistoryRequest) -> Vec<Value> {
        let (picked, output): (Vec<&Entry>, bool) = match request {
            HistoryRequest::Tail { n, output, .. } => {
                let n = (*n).max(0) as usize;
                (self.entries.iter().skip(self.entries.len().saturating_sub(n)).collect(), *output)
            }
            HistoryRequest::Range { session, start, stop, output, .. } => {
                let session = match session.unwrap_or(0) as i64 {
                    s if s <= 0 => self.session + s,
                    s => s,
                };
                let (start, stop) = (*start as i64, *stop as i64);
                let picked = self
                    .entries
                    .iter()
                    .filter(|e| e.session == session && e.line as i64 >= start && (stop <= start || (e.line as i64) < stop))
                    .collect();
                (picked, *output)
            }
            HistoryRequest::Search { pattern, unique, output, n, .. } => {
                let mut picked: Vec<&Entry> = self.entries.iter().filter(|e| glob_match(pattern, &e.input)).collect();
                if *unique {
                    let mut seen = std::collections::HashSet::new();
                    let mut kept: Vec<&Entry> = picked.into_iter().rev().filter(|e| seen.insert(e.input.as_str())).collect();
                    kept.reverse();
                    picked = kept;
                }
                if *n > 0 {
                    picked = picked.split_off(picked.len().saturating_sub(*n as usize));
                }
                (picked, *output)
            }
        };
        picked
            .into_iter()
            .map(|e| if output { json!([e.session, e.line, [e.input, Value::Null]]) } else { json!([e.session, e.line, e.input]) })
            .collect()
    }
}

/// Shell-style glob: `*` any run, `?` any one character, everything else literal.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("%clock*", "%clock manual"));
        assert!(glob_match("%l?ke *", "%lake ls"));
        assert!(!glob_match("%clock", "%clock manual"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn persists_across_sessions_and_answers_each_access_type() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = History::open(dir.path());
        first.record(1, "%clock");
        first.record(2, "%lake ls");
        let mut second = History::open(dir.path());
        second.record(1, "%clock manual");
        let tail = second.query(&HistoryRequest::Tail { n: 2, output: false, raw: true });
        assert_eq!(tail, vec![json!([1, 2, "%lake ls"]), json!([2, 1, "%clock manual"])]);
        let range = second.query(&HistoryRequest::Range { session: Some(-1), start: 1, stop: 2, output: false, raw: true });
        assert_eq!(range, vec![json!([1, 1, "%clock"])]);
        let search = second.query(&HistoryRequest::Search { pattern: "%clock*".into(), unique: true, output: false, raw: true, n: 0 });
        assert_eq!(search.len(), 2);
        let lenient = second.query_content(&json!({ "hist_access_type": "search", "pattern": "%clock*", "n": 1 }));
        assert_eq!(lenient, vec![json!([2, 1, "%clock manual"])]);
    }
}
