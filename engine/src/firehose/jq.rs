//! jq expressions for dynamic partitioning keys, as Firehose's inline parsing takes them
//! (`.customer_id`, `.type.device`, `.event_timestamp | strftime("%Y")`), run with the jaq
//! crates (jq's language in Rust, with its standard library).

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data::JustLut};
use jaq_json::Val;
use serde_json::Value;

use crate::error::Result;
use crate::service_err;

type Data = JustLut<Val>;

/// A compiled jq expression.
pub struct Query {
    filter: jaq_core::Filter<Data>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Query")
    }
}

impl Query {
    /// Compiles `expr` with jq's standard library; a syntax error or an unknown function is
    /// `InvalidArgumentException`.
    pub fn compile(expr: &str) -> Result<Query> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs::<Data>().chain(jaq_std::funs::<Data>()).chain(jaq_json::funs::<Data>());
        let arena = Arena::default();
        let invalid = |why: String| service_err!(InvalidArgumentException, "the jq expression {expr:?} does not parse: {why}");
        let modules = Loader::new(defs).load(&arena, File { code: expr, path: () }).map_err(|errors| invalid(format!("{} error(s) in it", errors.len())))?;
        let filter = Compiler::default().with_funs(funs).compile(modules).map_err(|errors| {
            let names: Vec<String> = errors.into_iter().flat_map(|(_, undefined)| undefined).map(|(name, _)| name.to_string()).collect();
            invalid(format!("unknown {}", names.join(", ")))
        })?;
        Ok(Query { filter })
    }

    /// The expression's first value on `record` as a partition value: a string as it is,
    /// a number or boolean as JSON writes it; None for null or no value; an error as text.
    pub fn first_value(&self, record: &Value) -> std::result::Result<Option<String>, String> {
        let input: Val = serde_json::from_value(record.clone()).map_err(|e| e.to_string())?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let Some(first) = self.filter.id.run((ctx, input)).next() else { return Ok(None) };
        let value = first.map_err(|e| match e.get_err() {
            Ok(err) => err.to_string(),
            Err(_) => "the expression stopped (halt)".to_string(),
        })?;
        Ok(match value {
            Val::Null => None,
            Val::TStr(bytes) | Val::BStr(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Val::Arr(_) | Val::Obj(_) => return Err(format!("{value} is not a single value")),
            other => Some(other.to_string()),
        })
    }
}
