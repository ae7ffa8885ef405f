//! The session's answers besides running cells: completion (magic names, verbs, flags,
//! `s3://` paths, SQL words, and Rust from rust-analyzer in the worker; positions in code
//! points), inspection (a magic's help, a table's schema, a Rust item's signature and docs)
//! and is-complete (IPython's rules for cell magics; open brackets and strings in Rust).

use lakebook_engine::S3Uri;

use super::Session;
use crate::cell::{self, Cell, ParseError};
use crate::magics;
use crate::render;
use crate::render::Bundle;

/// One completion candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub text: String,
    pub kind: &'static str,
}

/// Completion answer; positions count Unicode code points.
#[derive(Debug, Default)]
pub struct Completion {
    pub matches: Vec<Match>,
    pub start: usize,
    pub end: usize,
}

/// Whether the cursor is in SQL: the body of a `%%sql` cell, or the SQL of a `%sql` line
/// (not a flag, a flag's value, or `%sql workgroup …`, which is a command).
fn in_sql(before: &str, line: &str, word: &str) -> bool {
    let first = before.trim_start().lines().next().unwrap_or("");
    if first.starts_with("%%sql") && before.trim_start().contains('\n') {
        return true;
    }
    let Some(rest) = line.trim_start().strip_prefix("%sql ") else { return false };
    if word.starts_with('-') {
        return false;
    }
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    let typed = if word.is_empty() { &tokens[..] } else { &tokens[..tokens.len().saturating_sub(1)] };
    let value_flags = magics::value_flags(&magics::sql::SPEC);
    // Past the flags (and their values), the first word decides.
    let mut words = typed.iter();
    let mut sql_start = None;
    while let Some(token) = words.next() {
        if !token.starts_with('-') {
            sql_start = Some(*token);
            break;
        }
        if !token.contains('=') && value_flags.iter().any(|f| f == token) && words.next().is_none() {
            return false;
        }
    }
    !sql_start.is_some_and(|w| w.eq_ignore_ascii_case(magics::sql::WORKGROUP))
}

/// The cell's Rust and where it starts (code points), when the cursor is in it.
fn rust_at(code: &str, cursor: usize) -> Option<(String, usize)> {
    match cell::parse(code) {
        Ok(Cell::Code { code, offset, .. }) if cursor >= offset => Some((code, offset)),
        _ => None,
    }
}

impl Session {
    /// Completion at `cursor_pos` (code points).
    pub async fn complete(&mut self, code: &str, cursor_pos: usize) -> Completion {
        let chars: Vec<char> = code.chars().collect();
        let cursor = cursor_pos.min(chars.len());
        let before: String = chars[..cursor].iter().collect();
        let line = before.rsplit('\n').next().unwrap_or("");
        let word_len = line.chars().rev().take_while(|c| !c.is_whitespace()).count();
        let word: String = line.chars().skip(line.chars().count() - word_len).collect();
        let mut completion = Completion { matches: Vec::new(), start: cursor - word_len, end: cursor };
        if let Some((rust, offset)) = rust_at(code, cursor) {
            let home = self.home().to_path_buf();
            return match self.rust.complete(&rust, cursor - offset, &home).await {
                Ok((names, start, end)) => Completion { matches: names.into_iter().map(|text| Match { text, kind: "rust" }).collect(), start: start + offset, end: end + offset },
                Err(e) => {
                    tracing::debug!("rust completion: {}", e.evalue);
                    completion
                }
            };
        }

        if in_sql(&before, line, &word) {
            let is_sql_char = |c: &char| c.is_alphanumeric() || *c == '_' || *c == '.';
            let sql_word: String = {
                let mut w: Vec<char> = before.chars().rev().take_while(is_sql_char).collect();
                w.reverse();
                w.into_iter().collect()
            };
            let len = sql_word.chars().count();
            return Completion { matches: self.complete_sql(code, &before, &sql_word), start: cursor - len, end: cursor };
        }
        let Some(stripped) = line.strip_prefix('%') else { return completion };
        let (cell_form, stripped) = match stripped.strip_prefix('%') {
            Some(rest) => (true, rest),
            None => (false, stripped),
        };
        let tokens: Vec<&str> = stripped.split_whitespace().collect();
        let typing_name = !stripped.contains(char::is_whitespace);
        let prefix = if cell_form { "%%" } else { "%" };
        if typing_name {
            completion.matches = magics::MAGICS
                .iter()
                .filter(|m| m.name.starts_with(stripped) && (if cell_form { m.form.cell() } else { m.form.line() }))
                .map(|m| Match { text: format!("{prefix}{}", m.name), kind: "magic" })
                .collect();
            return completion;
        }
        let Some(spec) = magics::find(tokens[0]) else { return completion };
        let mut args: Vec<&str> = tokens[1..].to_vec();
        if word.is_empty() {
            args.push("");
        }
        if word.starts_with("s3://") {
            completion.matches = self.complete_s3(&word).await;
            return completion;
        }
        let candidates = magics::complete_args(spec, &args);
        completion.matches = candidates.words.into_iter().map(|text| Match { text, kind: candidates.kind }).collect();
        if completion.matches.is_empty() && !word.starts_with('-') && spec.name == "catalog" {
            completion.matches = self.complete_tables(&word);
        }
        completion
    }

    async fn complete_s3(&mut self, word: &str) -> Vec<Match> {
        let Ok(engine) = self.workspace.engine() else { return Vec::new() };
        let rest = &word["s3://".len()..];
        let Some((bucket, key)) = rest.split_once('/') else {
            let buckets = engine.lake().list_buckets().unwrap_or_default();
            return buckets
                .into_iter()
                .filter(|b| b.name.starts_with(rest))
                .map(|b| Match { text: format!("s3://{}/", b.name), kind: "bucket" })
                .collect();
        };
        let uri = S3Uri { bucket: bucket.to_string(), key: key.to_string() };
        let Ok(listing) = engine.lake().list(&uri, false).await else { return Vec::new() };
        let folders = listing.prefixes.into_iter().map(|p| Match { text: format!("s3://{bucket}/{p}"), kind: "folder" });
        let objects = listing.objects.into_iter().map(|o| Match { text: format!("s3://{bucket}/{}", o.key), kind: "object" });
        folders.chain(objects).collect()
    }

    /// Where the SQL of this cell runs: its magic line's flags, else the connected cluster,
    /// else Athena with the session's database.
    fn sql_target(&self, code: &str, before: &str) -> super::sql::Target {
        let first = code.trim_start().lines().next().unwrap_or("");
        let line = if first.starts_with("%%sql") { first } else { before.rsplit('\n').next().unwrap_or("") };
        super::sql::Target::of(line, &self.state.sql_database, self.state.redshift_cluster.as_deref())
    }

    /// SQL completion: see `session/sql.rs`.
    fn complete_sql(&mut self, code: &str, before: &str, word: &str) -> Vec<Match> {
        let Ok(engine) = self.workspace.engine() else { return Vec::new() };
        let target = self.sql_target(code, before);
        super::sql::complete(&engine, &target, code, word)
    }

    /// Databases and `db.table` names starting with `word`.
    fn complete_tables(&mut self, word: &str) -> Vec<Match> {
        let Ok(engine) = self.workspace.engine() else { return Vec::new() };
        let mut matches = Vec::new();
        for db in engine.catalog().databases() {
            if db.name.starts_with(word) && !word.contains('.') {
                matches.push(Match { text: db.name.clone(), kind: "database" });
            }
            for table in db.tables.keys() {
                let name = format!("{}.{table}", db.name);
                if name.starts_with(word) {
                    matches.push(Match { text: name, kind: "table" });
                }
            }
        }
        matches
    }

    /// Help for the magic (or magic verb) under the cursor, or a table's schema when the
    /// cursor is on `db.table`.
    pub async fn inspect(&mut self, code: &str, cursor_pos: usize) -> Option<Bundle> {
        let chars: Vec<char> = code.chars().collect();
        let cursor = cursor_pos.min(chars.len());
        if let Some((rust, offset)) = rust_at(code, cursor) {
            let home = self.home().to_path_buf();
            return match self.rust.inspect(&rust, cursor - offset, &home).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!("rust inspection: {}", e.evalue);
                    None
                }
            };
        }
        if let Some(schema) = self.inspect_table(&chars, cursor) {
            return Some(schema);
        }
        if let Some(text) = self.inspect_sql(code, &chars, cursor) {
            return Some(render::text(&text));
        }
        let line_start = chars[..cursor].iter().rposition(|&c| c == '\n').map_or(0, |i| i + 1);
        let line_end = chars[cursor..].iter().position(|&c| c == '\n').map_or(chars.len(), |i| cursor + i);
        let line: String = chars[line_start..line_end].iter().collect();
        let stripped = line.trim_start().strip_prefix('%')?;
        let stripped = stripped.strip_prefix('%').unwrap_or(stripped);
        let mut tokens = stripped.split_whitespace();
        let name = tokens.next()?.trim_end_matches('?');
        let spec = magics::find(name)?;
        let offset_in_line = cursor - line_start;
        let name_end = line.find(name).map(|i| line[..i].chars().count() + name.chars().count()).unwrap_or(0);
        if offset_in_line > name_end
            && let Some(text) = tokens.next().and_then(|verb| magics::verb_help(spec, verb)) {
                return Some(render::text(&text));
            }
        Some(render::text(&magics::help_text(spec)))
    }

    /// Shift-Tab in SQL: a column of a table the statement reads, or a function.
    fn inspect_sql(&mut self, code: &str, chars: &[char], cursor: usize) -> Option<String> {
        let is_name = |c: &char| c.is_alphanumeric() || *c == '_' || *c == '.';
        let start = chars[..cursor].iter().rposition(|c| !is_name(c)).map_or(0, |i| i + 1);
        let end = chars[cursor..].iter().position(|c| !is_name(c)).map_or(chars.len(), |i| cursor + i);
        let word: String = chars[start..end].iter().collect();
        let before: String = chars[..end].iter().collect();
        let line = before.rsplit('\n').next().unwrap_or("");
        if word.is_empty() || !in_sql(&before, line, &word) {
            return None;
        }
        let engine = self.workspace.engine().ok()?;
        let target = self.sql_target(code, &before);
        super::sql::inspect(&engine, &target, code, &word)
    }

    fn inspect_table(&mut self, chars: &[char], cursor: usize) -> Option<Bundle> {
        let is_name = |c: &char| c.is_ascii_alphanumeric() || *c == '_' || *c == '.';
        let start = chars[..cursor].iter().rposition(|c| !is_name(c)).map_or(0, |i| i + 1);
        let end = chars[cursor..].iter().position(|c| !is_name(c)).map_or(chars.len(), |i| cursor + i);
        let word: String = chars[start..end].iter().collect();
        let (db, table) = word.split_once('.')?;
        let engine = self.workspace.engine().ok()?;
        let table = engine.catalog().table(db, table).ok()?;
        magics::catalog::describe(&table).ok()
    }

    /// `complete`, `incomplete` (with indent) or `invalid`, as a console needs to know
    /// whether to run the input or wait for more.
    pub fn is_complete(&self, code: &str) -> (&'static str, String) {
        match cell::parse(code) {
            Err(ParseError::OpenQuote { .. } | ParseError::Continued) => ("incomplete", String::new()),
            Ok(Cell::CellMagic { call, .. }) => {
                if magics::find(&call.name).is_none() {
                    return ("invalid", String::new());
                }
                // As IPython: a cell magic is complete once its last line is empty.
                if code.lines().last().is_some_and(|l| l.trim().is_empty()) {
                    ("complete", String::new())
                } else {
                    ("incomplete", String::new())
                }
            }
            Ok(Cell::Lines(calls)) if calls.iter().any(|c| magics::find(&c.name).is_none()) => ("invalid", String::new()),
            Ok(Cell::Code { code, .. }) => match super::rust::open_depth(&code) {
                0 => ("complete", String::new()),
                depth => ("incomplete", "    ".repeat(depth)),
            },
            Ok(_) => ("complete", String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[tokio::test]
    async fn completes_magic_names_verbs_and_flags_in_code_points() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = Session::new(dir.path().to_path_buf());
        let c = session.complete("%la", 3).await;
        assert_eq!((c.start, c.end), (0, 3));
        assert_eq!(c.matches[0].text, "%lake");
        let code = "%lake mb s3://dé\n%lake l";
        let c = session.complete(code, code.chars().count()).await;
        assert_eq!(c.matches.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), vec!["ls"]);
        assert_eq!(c.start, code.chars().count() - 1);
        let c = session.complete("%%la", 4).await;
        assert_eq!(c.matches[0].text, "%%lake");
    }

    #[tokio::test]
    async fn completes_sql_keywords_tables_and_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mut session = Session::new(dir.path().to_path_buf());
        let engine = session.workspace.engine().unwrap();
        engine.catalog().create_database("web", "").unwrap();
        let definition = lakebook_engine::catalog::TableDefinition {
            location: "s3://lake/clicks/".into(),
            format: lakebook_engine::catalog::Format::Parquet,
            compression: None,
            columns: vec![lakebook_engine::catalog::Column::new("page", "string"), lakebook_engine::catalog::Column::new("ms", "bigint")],
            partition_keys: vec![lakebook_engine::catalog::Column::new("day", "string")],
            bucketing: None,
        };
        engine.catalog().create_table("web", "clicks", definition).unwrap();
        session.state.sql_database = "web".into();
        let texts = |c: Completion| c.matches.into_iter().map(|m| m.text).collect::<Vec<_>>();

        let code = "%sql sel";
        assert_eq!(texts(session.complete(code, 8).await), ["select"]);
        let code = "%%sql\nSELECT p FROM clicks";
        let c = session.complete(code, "%%sql\nSELECT p".len()).await;
        assert_eq!((c.start, c.end), (13, 14));
        assert_eq!(c.matches[0].text, "page");
        assert_eq!(c.matches[0].kind, "column");
        let code = "%sql SELECT * FROM cl";
        assert_eq!(texts(session.complete(code, code.len()).await), ["clicks"]);
        let code = "%sql SELECT * FROM web.c";
        assert_eq!(texts(session.complete(code, code.len()).await), ["web.clicks"]);
        let code = "%sql SELECT d FROM web.clicks";
        assert!(texts(session.complete(code, 13).await).contains(&"day".to_string()));
        // Flags are still flags, a flag's value is not SQL, and `workgroup` is a command.
        let code = "%sql --li";
        assert_eq!(texts(session.complete(code, code.len()).await), ["--limit"]);
        let code = "%sql --cluster ";
        assert!(!texts(session.complete(code, code.len()).await).contains(&"SELECT".to_string()));
        let code = "%sql --limit 5 sel";
        assert_eq!(texts(session.complete(code, code.len()).await), ["select"]);
        let code = "%sql workgroup cr";
        assert_eq!(texts(session.complete(code, code.len()).await), ["create"]);
    }

    #[test]
    fn is_complete_rules() {
        let session = Session::new(PathBuf::from("unused"));
        assert_eq!(session.is_complete("%clock").0, "complete");
        assert_eq!(session.is_complete("%lake put s3://a/b --from 'x").0, "incomplete");
        assert_eq!(session.is_complete("%lake ls \\").0, "incomplete");
        assert_eq!(session.is_complete("%%lake put s3://demo/x").0, "incomplete");
        assert_eq!(session.is_complete("%%lake put s3://demo/x\nbody").0, "incomplete");
        assert_eq!(session.is_complete("%%lake put s3://demo/x\nbody\n\n").0, "complete");
        assert_eq!(session.is_complete("%nosuchmagic").0, "invalid");
        assert_eq!(session.is_complete("%clock\nfn f() {\n    let v = vec![1,"), ("incomplete", "        ".to_string()));
        assert_eq!(session.is_complete("fn f() {\n}").0, "complete");
    }
}
