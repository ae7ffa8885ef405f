//! The magics: one file per magic (parse with clap, help text, run against the engine), and
//! here the registry, argument parsing with helpful usage errors, help and completion, all
//! generated from each magic's clap definition.
//!
//! A magic is one file and one line in `MAGICS`: its `SPEC` names it and gives its clap
//! command, its form, what its cell body is and its run function (usually made with
//! `runner!`). Nothing else in the kernel lists magics.

use std::future::Future;
use std::pin::Pin;

/// A registry entry's run function for a magic whose arguments clap parses: `runner!(SPEC,
/// run)` for `async fn run(args: XArgs, ctx: Ctx) -> …`, `runner!(SPEC, sync run)` for a
/// plain `fn`.
macro_rules! runner {
    ($spec:expr, sync $run:path) => {{
        fn start<'a>(args: &'a [String], ctx: $crate::magics::Ctx<'a>) -> $crate::magics::Running<'a> {
            Box::pin(async move { $run($crate::magics::parse(&$spec, args)?, ctx) })
        }
        start
    }};
    ($spec:expr, $run:path) => {{
        fn start<'a>(args: &'a [String], ctx: $crate::magics::Ctx<'a>) -> $crate::magics::Running<'a> {
            Box::pin(async move { $run($crate::magics::parse(&$spec, args)?, ctx).await })
        }
        start
    }};
}

pub mod analytics;
pub mod aws;
pub mod catalog;
pub mod chart;
pub mod clock;
pub mod context;
pub mod crawl;
pub mod dashboard;
pub mod emr;
pub mod firehose;
pub mod glue;
pub mod help;
pub mod lake;
pub mod redshift;
pub mod set;
pub mod sql;
pub mod stream;
pub mod workspace;

use clap::{Command, FromArgMatches};

pub use context::{Ctx, State, Workspace};
use crate::output::Output;
use crate::render::Bundle;
use crate::error::CellError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Line,
    LineAndCell,
    /// Only `%%name` (the session runs it: `%%lakebook-allow-error`).
    Cell,
}

impl Form {
    pub fn cell(self) -> bool {
        self != Form::Line
    }

    pub fn line(self) -> bool {
        self != Form::Cell
    }
}

/// The cell magic whose body may fail without failing the cell.
pub const ALLOW_ERROR: &str = "lakebook-allow-error";

/// What a magic's cell body is, which decides whether `${NAME}` is expanded in it: SQL is,
/// data a cell puts (records, objects) is taken as written.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    Data,
    Sql,
    /// SQL for these verbs (`%%emr step`, `%%firehose create`), data for the others.
    SqlFor(&'static [&'static str]),
}

impl Body {
    /// Whether the body of `%%name VERB …` is SQL.
    pub fn is_sql(self, verb: Option<&str>) -> bool {
        match self {
            Body::Data => false,
            Body::Sql => true,
            Body::SqlFor(verbs) => verb.is_some_and(|v| verbs.contains(&v)),
        }
    }
}

/// A running magic: the cell waits for it (and an interrupt drops it).
pub type Running<'a> = Pin<Box<dyn Future<Output = Result<Option<Bundle>, CellError>> + Send + 'a>>;

/// A magic's run function: its arguments (shell-split, `${NAME}` expanded) and its context.
pub type Run = for<'a> fn(&'a [String], Ctx<'a>) -> Running<'a>;

/// A magic's registration.
pub struct MagicSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub form: Form,
    pub body: Body,
    /// The clap command: help, usage errors, flags and completion all come from it.
    pub command: fn() -> Command,
    pub run: Run,
}

/// Every magic, in the order `%lsmagic` shows them.
pub const MAGICS: &[MagicSpec] = &[
    stream::SPEC,
    firehose::SPEC,
    lake::SPEC,
    crawl::SPEC,
    catalog::SPEC,
    sql::SPEC,
    emr::SPEC,
    redshift::SPEC,
    analytics::SPEC,
    glue::SPEC,
    dashboard::SPEC,
    aws::SPEC,
    chart::SPEC,
    clock::SPEC,
    workspace::SPEC,
    set::SPEC,
    help::ALLOW_ERROR_SPEC,
    help::LSMAGIC,
    help::HELP,
];

pub fn find(name: &str) -> Option<&'static MagicSpec> {
    MAGICS.iter().find(|m| m.name == name)
}

/// Runs one magic; its value (if any) is displayed by the caller.
pub async fn run(name: &str, args: &[String], ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let spec = find(name).ok_or_else(|| unknown_magic(name, ctx.body.is_some()))?;
    if ctx.body.is_some() && spec.form == Form::Line {
        return Err(CellError::usage(format!("%{name} is a line magic; write it as `%{name} …` without a second %")));
    }
    (spec.run)(args, ctx).await
}

/// What a create with `--if-not-exists` says when it finds `what` there already.
pub(crate) fn kept(out: &Output, what: &str) {
    out.stdout(&format!("{what} already exists; kept as it is (--if-not-exists)\n"));
}

pub fn unknown_magic(name: &str, cell: bool) -> CellError {
    let prefix = if cell { "%%" } else { "%" };
    let available: Vec<String> = MAGICS
        .iter()
        .filter(|m| if cell { m.form.cell() } else { m.form.line() })
        .map(|m| format!("{prefix}{}", m.name))
        .collect();
    let names: Vec<&str> = MAGICS.iter().map(|m| m.name).collect();
    let suggestion = lakebook_engine::error::closest(name, &names)
        .map(|s| format!(" Did you mean {prefix}{s}?"))
        .unwrap_or_default();
    CellError::usage(format!(
        "{} magic {prefix}{name} not found.{suggestion} Available: {}",
        if cell { "Cell" } else { "Line" },
        available.join(", ")
    ))
}

/// Parses arguments with the magic's clap definition. `--help` shows the help instead.
pub(crate) fn parse<T: FromArgMatches>(spec: &MagicSpec, args: &[String]) -> Result<T, CellError> {
    let command = command_of(spec);
    let argv = std::iter::once(format!("%{}", spec.name)).chain(args.iter().cloned());
    match command.clone().try_get_matches_from(argv) {
        Ok(matches) => T::from_arg_matches(&matches).map_err(|e| usage_error(spec, &command, args, e)),
        Err(e) => Err(usage_error(spec, &command, args, e)),
    }
}

fn command_of(spec: &MagicSpec) -> Command {
    (spec.command)()
        .name(format!("%{}", spec.name))
        .bin_name(format!("%{}", spec.name))
        .color(clap::ColorChoice::Never)
        .styles(clap::builder::Styles::plain())
        .disable_help_subcommand(true)
        .help_template("{about-with-newline}\n{usage-heading} {usage}\n\n{all-args}{after-help}")
}

fn usage_error(spec: &MagicSpec, command: &Command, args: &[String], err: clap::Error) -> CellError {
    use clap::error::ErrorKind;
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        return CellError::help(err.render().to_string());
    }
    let rendered = err.render().to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    let sub = verb_of(command, args);
    let target = sub.as_ref().unwrap_or(command);
    let hint = match err.kind() {
        ErrorKind::InvalidSubcommand | ErrorKind::MissingSubcommand => {
            format!("verbs of %{}: {}", spec.name, verbs(command).join(", "))
        }
        _ => {
            let flags = flags(target);
            if flags.is_empty() {
                format!("%{} {} takes no flags", spec.name, target.get_name())
            } else {
                format!("valid flags: {}", flags.join(", "))
            }
        }
    };
    CellError::usage(format!("%{}: {first}; {hint}", spec.name))
        .with_detail(format!("see `%{}?` for the full help", spec.name))
}

/// The subcommand named by the first positional argument, if any.
fn verb_of(command: &Command, args: &[String]) -> Option<Command> {
    let verb = args.iter().find(|a| !a.starts_with('-'))?;
    command
        .get_subcommands()
        .find(|s| s.get_name() == verb || s.get_all_aliases().any(|a| a == verb))
        .cloned()
}

/// The flags of a magic (or of one of its verbs) that take a value, long and short forms:
/// what tells `%sql --limit 5 SELECT …` apart into flags and SQL.
pub fn value_flags(spec: &MagicSpec) -> Vec<String> {
    command_of(spec)
        .get_arguments()
        .filter(|a| !a.is_positional() && a.get_action().takes_values())
        .flat_map(|a| a.get_long().map(|l| format!("--{l}")).into_iter().chain(a.get_short().map(|c| format!("-{c}"))))
        .collect()
}

fn verbs(command: &Command) -> Vec<String> {
    command.get_subcommands().map(|s| s.get_name().to_string()).collect()
}

fn flags(command: &Command) -> Vec<String> {
    command
        .get_arguments()
        .filter(|a| !a.is_positional() && a.get_id() != "help")
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .chain(std::iter::once("--help".to_string()))
        .collect()
}

/// A magic's full help text, including each verb's help.
pub fn help_text(spec: &MagicSpec) -> String {
    let mut command = command_of(spec);
    let mut text = command.render_long_help().to_string();
    let subs: Vec<Command> = command.get_subcommands().cloned().collect();
    for sub in subs {
        let name = format!("%{} {}", spec.name, sub.get_name());
        let mut sub = sub.clone().bin_name(name.clone()).name(name);
        text.push_str(&format!("\n── {} ──\n", sub.get_name()));
        text.push_str(sub.render_long_help().to_string().trim_end());
        text.push('\n');
    }
    text
}

/// Completion candidates for the word being typed in a magic line.
pub struct Candidates {
    pub words: Vec<String>,
    pub kind: &'static str,
}

/// Completes the verb or flag at the end of `tokens` (the magic's arguments typed so far,
/// the last one being the partial word). Verbs nest (`%sql workgroup create`).
pub fn complete_args(spec: &MagicSpec, tokens: &[&str]) -> Candidates {
    let mut command = command_of(spec);
    let (done, partial) = tokens.split_at(tokens.len().saturating_sub(1));
    let partial = partial.first().copied().unwrap_or("");
    let mut named_verb = false;
    for token in done.iter().filter(|t| !t.starts_with('-')) {
        match verb_of(&command, &[token.to_string()]) {
            Some(sub) => {
                command = sub;
                named_verb = true;
            }
            None => break,
        }
    }
    if partial.starts_with('-') {
        let words = flags(&command).into_iter().filter(|f| f.starts_with(partial)).collect();
        return Candidates { words, kind: "flag" };
    }
    let at_verb = !named_verb || done.last().is_some_and(|last| command.get_name() == *last);
    if at_verb && command.get_subcommands().next().is_some() {
        let words = verbs(&command).into_iter().filter(|v| v.starts_with(partial)).collect();
        return Candidates { words, kind: "verb" };
    }
    Candidates { words: Vec::new(), kind: "" }
}

/// The help of the verb `verb` of a magic, if it has one.
pub fn verb_help(spec: &MagicSpec, verb: &str) -> Option<String> {
    let command = command_of(spec);
    let mut sub = verb_of(&command, &[verb.to_string()])?;
    let name = format!("%{} {}", spec.name, sub.get_name());
    sub = sub.bin_name(name.clone()).name(name);
    Some(sub.render_long_help().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_flag_lists_valid_ones_and_unknown_magic_suggests() {
        let err = parse::<lake::LakeArgs>(&lake::SPEC, &["ls".into(), "--bogus".into()]).err().unwrap();
        assert_eq!(err.ename, "UsageError");
        assert!(err.evalue.contains("--bogus") && err.evalue.contains("--recursive"), "{}", err.evalue);
        let err = unknown_magic("lakr", false);
        assert!(err.evalue.contains("Did you mean %lake?") && err.evalue.contains("%clock"), "{}", err.evalue);
    }

    #[test]
    fn sizes_in_si_and_binary_units() {
        assert_eq!(parse_size("10MB", Units::Si).unwrap(), 10_000_000);
        assert_eq!(parse_size("1.5 GB", Units::Si).unwrap(), 1_500_000_000);
        assert_eq!(parse_size("2048", Units::Si).unwrap(), 2048);
        assert_eq!(parse_size("128MB", Units::Binary).unwrap(), 128 << 20);
        assert_eq!(parse_size("64k", Units::Binary).unwrap(), 64 << 10);
        assert!(parse_size("ten", Units::Si).is_err());
        assert!(parse_size("10 parsecs", Units::Si).is_err());
    }

    #[test]
    fn completes_verbs_and_flags() {
        assert_eq!(complete_args(&lake::SPEC, &["l"]).words, vec!["ls"]);
        assert_eq!(complete_args(&lake::SPEC, &["ls", "s3://x", "--r"]).words, vec!["--recursive"]);
        assert_eq!(complete_args(&clock::SPEC, &["ma"]).words, vec!["manual"]);
        // Verbs nest: `%sql workgroup create --if…`.
        assert_eq!(complete_args(&sql::SPEC, &["workgroup", "cr"]).words, vec!["create"]);
        assert_eq!(complete_args(&sql::SPEC, &["workgroup", ""]).words, vec!["list", "create", "delete"]);
        assert_eq!(complete_args(&sql::SPEC, &["workgroup", "create", "team", "--if"]).words, vec!["--if-not-exists"]);
        assert!(complete_args(&sql::SPEC, &["workgroup", "create", "t"]).words.is_empty());
    }

    #[test]
    fn value_flags_come_from_the_clap_definition() {
        let flags = value_flags(&sql::SPEC);
        for flag in ["--database", "-d", "--limit", "--workgroup", "-w", "--cluster", "--chart", "--title"] {
            assert!(flags.iter().any(|f| f == flag), "{flag} missing from {flags:?}");
        }
        assert!(!flags.iter().any(|f| f == "--explain"), "--explain takes no value: {flags:?}");
    }

    #[test]
    fn the_registry_says_which_bodies_are_sql() {
        let sql_body = |name: &str, verb: Option<&str>| find(name).unwrap().body.is_sql(verb);
        assert!(sql_body("sql", None) && sql_body("emr", Some("step")) && sql_body("firehose", Some("create")));
        assert!(!sql_body("firehose", Some("put")) && !sql_body("stream", Some("put")) && !sql_body("lake", Some("put")));
        let mut names: Vec<&str> = MAGICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MAGICS.len(), "one entry per magic");
    }

    #[test]
    fn every_magic_has_help_naming_its_verbs() {
        for spec in MAGICS {
            let text = help_text(spec);
            assert!(text.contains(spec.summary) || text.contains(&format!("%{}", spec.name)), "{text}");
        }
        assert!(help_text(&lake::SPEC).contains("PutObject"));
    }
}

pub(crate) use lakebook_engine::Units;

/// `10MB`, `1.5 GB`, `500KB`, `10000000` → bytes.
pub(crate) fn parse_size(text: &str, units: Units) -> Result<u64, CellError> {
    lakebook_engine::parse_size(text, units).map_err(CellError::usage)
}
