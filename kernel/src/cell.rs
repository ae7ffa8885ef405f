//! Cell syntax, IPython style: `%name args` lines stack at the top of a cell; `%%name args`
//! as the first line makes the rest of the cell its body; `%name?` asks for help. Arguments
//! are split with shell quoting; a trailing `\` continues a line. Lines starting with `#` or
//! `//` are comments.

/// One magic invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MagicCall {
    pub name: String,
    pub args: Vec<String>,
    /// The argument text as typed, for magics whose arguments are a language (SQL).
    pub raw: String,
    /// `%name?`: show help instead of running.
    pub help: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Empty,
    /// Stacked line magics, run in order.
    Lines(Vec<MagicCall>),
    /// A cell magic and its body.
    CellMagic { call: MagicCall, body: String },
    /// Plain code (Rust), with any magic lines stacked above it; `offset` is where the Rust
    /// starts in the cell, in code points (completion and inspection map the cursor by it).
    Code { magics: Vec<MagicCall>, code: String, offset: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A quote is still open: more input would complete it.
    OpenQuote { line: String },
    /// The last line ends with a continuation backslash.
    Continued,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::OpenQuote { line } => write!(f, "unbalanced quotes in `{line}`"),
            ParseError::Continued => f.write_str("the last line ends with `\\` but nothing follows"),
        }
    }
}

pub fn parse(code: &str) -> Result<Cell, ParseError> {
    let trimmed = code.trim_start();
    if trimmed.is_empty() {
        return Ok(Cell::Empty);
    }
    if let Some(rest) = trimmed.strip_prefix("%%") {
        let (first, body) = rest.split_once('\n').unwrap_or((rest, ""));
        let call = parse_call(first.trim_end_matches('\r'))?;
        return Ok(Cell::CellMagic { call, body: body.to_string() });
    }
    let (lines, starts) = logical_lines(trimmed)?;
    let mut magics = Vec::new();
    let mut code_start = None;
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        // `#[derive(…)]` and `#![…]` are Rust attributes, not comments.
        let comment = (line.starts_with('#') && !line.starts_with("#[") && !line.starts_with("#!")) || line.starts_with("//");
        if line.is_empty() || comment {
            continue;
        }
        match line.strip_prefix('%') {
            Some(call) if !call.starts_with('%') => magics.push(parse_call(call)?),
            _ => {
                code_start = Some(i);
                break;
            }
        }
    }
    match code_start {
        None if magics.is_empty() => Ok(Cell::Empty),
        None => Ok(Cell::Lines(magics)),
        // The Rust as typed, from its first line (backslashes and indentation kept).
        Some(i) => {
            let skipped: usize = trimmed.split_inclusive('\n').take(starts[i]).map(|l| l.chars().count()).sum();
            let offset = code[..code.len() - trimmed.len()].chars().count() + skipped;
            Ok(Cell::Code { magics, code: trimmed.lines().skip(starts[i]).collect::<Vec<_>>().join("\n"), offset })
        }
    }
}

/// Joins backslash-continued lines; with each logical line, the index of the raw line it
/// starts at.
fn logical_lines(text: &str) -> Result<(Vec<String>, Vec<usize>), ParseError> {
    let mut lines = Vec::new();
    let mut starts = Vec::new();
    let mut pending: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        if pending.is_none() {
            starts.push(n);
        }
        let line = raw.trim_end();
        let (content, continues) = match line.strip_suffix('\\') {
            Some(head) => (head, true),
            None => (line, false),
        };
        let joined = match pending.take() {
            Some(mut prev) => {
                prev.push(' ');
                prev.push_str(content.trim_start());
                prev
            }
            None => content.to_string(),
        };
        if continues {
            pending = Some(joined);
        } else {
            lines.push(joined);
        }
    }
    if pending.is_some() {
        return Err(ParseError::Continued);
    }
    Ok((lines, starts))
}

/// Parses `name args…` (after the `%` or `%%`).
fn parse_call(text: &str) -> Result<MagicCall, ParseError> {
    let text = text.trim();
    let (head, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let (name, help) = match head.strip_suffix("??").or_else(|| head.strip_suffix('?')) {
        Some(name) => (name, true),
        None => (head, false),
    };
    // SQL quotes ('it''s') are not shell quotes: its arguments are taken raw.
    let args = if name == "sql" {
        rest.split_whitespace().map(str::to_string).collect()
    } else {
        shlex::split(rest).ok_or_else(|| ParseError::OpenQuote { line: text.to_string() })?
    };
    Ok(MagicCall { name: name.to_string(), args, raw: rest.trim().to_string(), help })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[&str]) -> MagicCall {
        MagicCall { name: name.into(), args: args.iter().map(|s| s.to_string()).collect(), raw: args.join(" "), help: false }
    }

    #[test]
    fn stacked_lines_with_quotes_comments_and_continuations() {
        let cell = parse("\n%lake mb s3://demo\n# a comment\n%lake put s3://demo/a --from 'my file.csv'\n%clock \\\n  advance 90s\n").unwrap();
        assert_eq!(
            cell,
            Cell::Lines(vec![
                call("lake", &["mb", "s3://demo"]),
                MagicCall { raw: "put s3://demo/a --from 'my file.csv'".into(), ..call("lake", &["put", "s3://demo/a", "--from", "my file.csv"]) },
                call("clock", &["advance", "90s"]),
            ])
        );
    }

    #[test]
    fn cell_magic_owns_the_body() {
        let cell = parse("%%lake put s3://demo/a.csv\nid,name\n1,%x\n").unwrap();
        assert_eq!(cell, Cell::CellMagic { call: call("lake", &["put", "s3://demo/a.csv"]), body: "id,name\n1,%x\n".into() });
    }

    #[test]
    fn help_code_and_errors() {
        assert_eq!(parse("%lake?").unwrap(), Cell::Lines(vec![MagicCall { help: true, ..call("lake", &[]) }]));
        assert_eq!(parse("  \n\n").unwrap(), Cell::Empty);
        assert!(matches!(parse("%clock\nlet x = 1;").unwrap(), Cell::Code { ref code, .. } if code == "let x = 1;"));
        // Rust keeps its attributes, indentation and backslashes.
        let rust = "#[derive(Debug)]\nstruct P {\n    x: i32,\n}\nlet s = \"a\\\n   b\";";
        assert!(matches!(parse(&format!("%clock\n{rust}")).unwrap(), Cell::Code { ref code, .. } if code == rust));
        // Where the Rust starts in the cell, in code points (leading blank lines and magics skipped).
        let cell = "\n  %set é=1\n// note\nv.le";
        assert!(matches!(parse(cell).unwrap(), Cell::Code { offset, .. } if cell.chars().skip(offset).collect::<String>() == "v.le"));
        assert!(matches!(parse("%lake put 's3://a"), Err(ParseError::OpenQuote { .. })));
        assert_eq!(parse("%lake ls \\"), Err(ParseError::Continued));
    }
}
