//! `%set`: notebook variables. `${NAME}` in any magic line, and in the SQL of `%%sql`,
//! `%%emr step` and `%%firehose create` cells, is replaced by NAME's value before the magic
//! runs (`$${NAME}` keeps the text `${NAME}`), so a workshop notebook can be parameterised —
//! papermill's parameters cell is a list of `%set` lines.

use clap::{CommandFactory, Parser};

use crate::render::{batch, strings};
use super::{Body, Ctx, Form, MagicSpec};
use crate::render::Bundle;
use crate::render::{self, Footer, TableOptions};
use crate::error::CellError;

pub const SPEC: MagicSpec = MagicSpec {
    name: "set",
    summary: "Notebook variables: %set NAME VALUE, then ${NAME} in magic lines and SQL",
    form: Form::Line,
    command: SetArgs::command,
    body: Body::Data,
    run: runner!(SPEC, sync run),
};

#[derive(Debug, Parser)]
#[command(
    about = "Notebook variables: %set NAME VALUE, then ${NAME} in magic lines and SQL",
    after_help = "%set lists the variables; %set NAME shows one; %set --delete NAME removes it.\n\
                  ${NAME} is replaced in magic lines and in the SQL of %%sql, %%emr step and %%firehose create cells;\n\
                  $${NAME} stays as the text ${NAME}. Variables last for the kernel session (a restart clears them).\n\
                  Settings have dotted names: %set display.max_rows N shows query results of up to N rows whole\n\
                  (default 50; longer ones show their first and last rows and the row count);\n\
                  %set sql.progress_after 1s: a %sql query running longer shows its progress, updated in place (0s: always)."
)]
pub struct SetArgs {
    /// Remove the variable
    #[arg(long)]
    delete: bool,
    /// The variable's name: a letter or _, then letters, digits or _
    name: Option<String>,
    /// The value (the rest of the line)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    value: Vec<String>,
}

pub fn run(args: SetArgs, ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    let vars = &mut ctx.state.variables;
    let Some(name) = args.name else {
        if args.delete {
            return Err(CellError::usage("%set --delete NAME: which variable?"));
        }
        let table = batch(vec![
            ("name", strings(vars.keys().cloned())),
            ("value", strings(vars.values().cloned())),
        ])?;
        return Ok(Some(render::table(&table, &TableOptions::default(), &Footer::default())));
    };
    if name.contains('.') {
        return setting(&name, args.delete, &args.value, ctx);
    }
    if !valid_name(&name) {
        return Err(CellError::usage(format!("{name:?} is not a variable name: a letter or _, then letters, digits or _")));
    }
    if args.delete {
        if !args.value.is_empty() {
            return Err(CellError::usage("%set --delete NAME takes no value"));
        }
        return match vars.remove(&name) {
            Some(_) => {
                ctx.out.stdout(&format!("{name} deleted\n"));
                Ok(None)
            }
            None => Err(missing(&name, vars)),
        };
    }
    if args.value.is_empty() {
        return match vars.get(&name) {
            Some(v) => {
                ctx.out.stdout(&format!("{name} = {v}\n"));
                Ok(None)
            }
            None => Err(missing(&name, vars)),
        };
    }
    let value = args.value.join(" ");
    ctx.out.stdout(&format!("{name} = {value}\n"));
    vars.insert(name, value);
    Ok(None)
}

/// The settings `%set` knows, as pandas names its display options.
const SETTINGS: &[&str] = &["display.max_rows", "sql.progress_after"];

/// `%set display.max_rows [N]`, `%set sql.progress_after [DURATION]`: show or change a setting.
fn setting(name: &str, delete: bool, value: &[String], ctx: Ctx<'_>) -> Result<Option<Bundle>, CellError> {
    if !SETTINGS.contains(&name) {
        let hint = lakebook_engine::error::closest(name, SETTINGS).map(|s| format!(" Did you mean {s}?")).unwrap_or_default();
        return Err(CellError::usage(format!("unknown setting {name}.{hint} Settings: {}", SETTINGS.join(", "))));
    }
    if delete {
        return Err(CellError::usage(format!("{name} is a setting, not a variable: give it a value instead")));
    }
    let state = ctx.state;
    if !value.is_empty() {
        let text = value.join(" ");
        match name {
            "display.max_rows" => {
                state.display_max_rows = text
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| CellError::usage(format!("{name} takes a number of rows, e.g. %set {name} 200, not {text:?}")))?;
            }
            _ => state.sql_progress_after = lakebook_engine::clock::parse_duration(&text)?,
        }
    }
    let shown = match name {
        "display.max_rows" => state.display_max_rows.to_string(),
        _ => lakebook_engine::clock::format_duration(state.sql_progress_after),
    };
    ctx.out.stdout(&format!("{name} = {shown}\n"));
    Ok(None)
}

pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn missing(name: &str, vars: &std::collections::BTreeMap<String, String>) -> CellError {
    let names: Vec<&str> = vars.keys().map(String::as_str).collect();
    let hint = match lakebook_engine::error::closest(name, &names) {
        Some(n) => format!("did you mean {n}? (`%set` lists the variables)"),
        None => format!("set it with `%set {name} VALUE`"),
    };
    CellError::new("UndefinedVariable", format!("the variable {name} is not set")).with_detail(hint)
}

/// Replaces `${NAME}` with its value; `$${NAME}` becomes the text `${NAME}`.
pub fn expand(text: &str, vars: &std::collections::BTreeMap<String, String>) -> Result<String, CellError> {
    use lakebook_engine::Unexpanded;
    lakebook_engine::expand_vars(text, false, |name| vars.get(name).map(String::as_str)).map_err(|e| match e {
        Unexpanded::Unclosed => CellError::usage(format!("`${{` without a closing `}}` in {text:?}")).with_detail("write ${NAME}, or $${ for the text ${"),
        Unexpanded::BadName(name) => CellError::usage(format!("${{{name}}}: {name:?} is not a variable name")),
        Unexpanded::Missing(name) => missing(&name, vars),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_escapes_and_reports_missing_names() {
        let vars = [("day".to_string(), "2026-01-02".to_string()), ("n".to_string(), "5".to_string())].into_iter().collect();
        assert_eq!(expand("WHERE dt = '${day}' LIMIT ${n}", &vars).unwrap(), "WHERE dt = '2026-01-02' LIMIT 5");
        assert_eq!(expand("keep $${day} as text, $5 too", &vars).unwrap(), "keep ${day} as text, $5 too");
        let err = expand("${dya}", &vars).unwrap_err();
        assert_eq!(err.ename, "UndefinedVariable");
        assert!(expand("${day", &vars).is_err());
        assert!(!valid_name("1x") && valid_name("_x1"));
    }
}
