//! Glue Studio's visual jobs: the graph of nodes a job stores as `CodeGenConfigurationNodes`
//! (node id → `{"NodeType": {…}}`), checked (unknown node types, missing inputs, cycles, one
//! target at least) and turned into SQL: each transform is a query over its inputs' queries,
//! named by node id, with the columns its inputs have (asked of the engine node by node, so a
//! column that is not there is an error naming the node).

use std::collections::{BTreeMap, BTreeSet};

use arrow_schema::SchemaRef;
use serde_json::Value;

use crate::catalog::Format;
use crate::error::Result;
use crate::service_err;

/// A node's work.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// CatalogSource / S3CatalogSource: a Data Catalog table.
    CatalogSource { database: String, table: String },
    /// S3JsonSource / S3CsvSource / S3ParquetSource: files under S3 paths, typed value by
    /// value (choices; Parquet by its schema).
    S3Source { paths: Vec<String>, format: super::dynamic::FileFormat },
    /// ResolveChoice (DynamicFrame.resolveChoice): (path, action) specs, or one action for
    /// every choice column.
    ResolveChoice { specs: Vec<(String, String)>, choice: Option<String> },
    /// Relationalize: a collection of frames (the flattened root, one per array).
    Relationalize { root: String },
    /// SelectFromCollection: one frame of a collection, by index.
    SelectFromCollection { index: usize },
    ApplyMapping(Vec<Mapping>),
    /// DropNullFields: the fields whose every value is null (or one of the node's null
    /// placeholders) are dropped.
    DropNullFields(super::dynamic::NullValues),
    SelectFields(Vec<String>),
    DropFields(Vec<String>),
    RenameField { from: String, to: String },
    Filter { and: bool, expressions: Vec<FilterExpression> },
    Join { kind: String, left: Vec<String>, right: Vec<String> },
    Union { distinct: bool },
    DropDuplicates(Vec<String>),
    Aggregate { groups: Vec<String>, aggs: Vec<(String, String)> },
    /// SparkSQL (Glue Studio's "SQL query"): the query, with the inputs' aliases.
    Sql { query: String, aliases: Vec<(String, String)> },
    /// S3DirectTarget / S3GlueParquetTarget / S3CatalogTarget.
    Target(TargetNode),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub to: String,
    pub from: String,
    pub to_type: String,
    pub dropped: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilterExpression {
    pub operation: String,
    pub negated: bool,
    /// (is a column, text).
    pub values: Vec<(bool, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetNode {
    pub path: Option<String>,
    pub format: Format,
    pub compression: Option<String>,
    pub partition_keys: Vec<String>,
    /// Update the Data Catalog: (database, table).
    pub catalog: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub inputs: Vec<String>,
}

impl Node {
    pub fn is_target(&self) -> bool {
        matches!(self.kind, Kind::Target(_))
    }

    /// "ApplyMapping node map (node-2)" for messages.
    pub fn label(&self) -> String {
        format!("{} node {} ({})", self.type_name(), self.name, self.id)
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::CatalogSource { .. } => "CatalogSource",
            Kind::S3Source { format: super::dynamic::FileFormat::Json { .. }, .. } => "S3JsonSource",
            Kind::S3Source { format: super::dynamic::FileFormat::Parquet, .. } => "S3ParquetSource",
            Kind::S3Source { .. } => "S3CsvSource",
            Kind::DropNullFields(_) => "DropNullFields",
            Kind::ResolveChoice { .. } => "ResolveChoice",
            Kind::Relationalize { .. } => "Relationalize",
            Kind::SelectFromCollection { .. } => "SelectFromCollection",
            Kind::ApplyMapping(_) => "ApplyMapping",
            Kind::SelectFields(_) => "SelectFields",
            Kind::DropFields(_) => "DropFields",
            Kind::RenameField { .. } => "RenameField",
            Kind::Filter { .. } => "Filter",
            Kind::Join { .. } => "Join",
            Kind::Union { .. } => "Union",
            Kind::DropDuplicates(_) => "DropDuplicates",
            Kind::Aggregate { .. } => "Aggregate",
            Kind::Sql { .. } => "SparkSQL",
            Kind::Target(_) => "S3Target",
        }
    }
}

/// A checked graph, its nodes in an order where inputs come first.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub nodes: Vec<Node>,
}

const SUPPORTED: &str = "CatalogSource, S3CatalogSource, S3JsonSource, S3CsvSource, S3ParquetSource, ApplyMapping, DropNullFields, ResolveChoice, Relationalize, SelectFromCollection, SelectFields, DropFields, RenameField, Filter, Join, Union, DropDuplicates, Aggregate, SparkSQL, S3DirectTarget, S3GlueParquetTarget, S3CatalogTarget";

fn bad(message: String) -> crate::Error {
    service_err!(InvalidInputException, "{message}")
}

fn text(node: &Value, key: &str, id: &str) -> Result<String> {
    node.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| bad(format!("node {id}: {key} is missing (a string)")))
}

/// `[["a","b"]]` → `["a.b"]`; `["a"]` → `["a"]`.
fn paths(value: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = value else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => Some(parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(".")),
            _ => None,
        })
        .collect()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
}

/// Parses a job's graph: `{"node-1": {"CatalogSource": {…}}, …}`, or that map under
/// `"CodeGenConfigurationNodes"` (as CreateJob / GetJob carry it).
pub fn parse(json: &str) -> Result<Graph> {
    let value: Value = serde_json::from_str(json).map_err(|e| bad(format!("the job graph is not JSON: {e}")))?;
    let map = match value.get("CodeGenConfigurationNodes") {
        Some(inner) => inner.clone(),
        None => value,
    };
    let Value::Object(map) = map else {
        return Err(bad("the job graph is a JSON object of node id → {\"NodeType\": {…}}".into()));
    };
    let mut nodes = BTreeMap::new();
    for (id, wrapper) in &map {
        let Some((node_type, body)) = wrapper.as_object().filter(|o| o.len() == 1).and_then(|o| o.iter().next()) else {
            return Err(bad(format!("node {id}: write {{\"NodeType\": {{…}}}} with one node type")));
        };
        let name = body.get("Name").and_then(Value::as_str).unwrap_or(id).to_string();
        let inputs = strings(body.get("Inputs"));
        let kind = match node_type.as_str() {
            "CatalogSource" | "S3CatalogSource" => Kind::CatalogSource { database: text(body, "Database", id)?, table: text(body, "Table", id)? },
            "S3JsonSource" | "S3CsvSource" | "S3ParquetSource" => {
                let paths = strings(body.get("Paths"));
                if paths.is_empty() {
                    return Err(bad(format!("node {id}: Paths is missing (s3://…/ prefixes)")));
                }
                let format = if node_type == "S3JsonSource" {
                    super::dynamic::FileFormat::Json { multiline: body.get("Multiline").and_then(Value::as_bool).unwrap_or(false) }
                } else if node_type == "S3ParquetSource" {
                    super::dynamic::FileFormat::Parquet
                } else {
                    let separator = match body.get("Separator").and_then(Value::as_str).unwrap_or("comma") {
                        "comma" => ',',
                        "tab" => '\t',
                        "pipe" => '|',
                        "semicolon" => ';',
                        "ctrla" => '\u{1}',
                        other => return Err(bad(format!("node {id}: Separator {other:?} is not one of comma, ctrla, pipe, semicolon, tab"))),
                    };
                    super::dynamic::FileFormat::Csv { separator, header: body.get("WithHeader").and_then(Value::as_bool).unwrap_or(true) }
                };
                Kind::S3Source { paths, format }
            }
            "Relationalize" => Kind::Relationalize { root: body.get("RootTableName").and_then(Value::as_str).unwrap_or("roottable").to_string() },
            "SelectFromCollection" => Kind::SelectFromCollection { index: body.get("Index").and_then(Value::as_u64).unwrap_or(0) as usize },
            "ResolveChoice" => {
                let specs: Vec<(String, String)> = body
                    .get("Specs")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|s| Some((s.get(0)?.as_str()?.to_string(), s.get(1)?.as_str()?.to_string())))
                    .collect();
                let choice = body.get("Choice").and_then(Value::as_str).filter(|c| !c.is_empty()).map(str::to_string);
                if specs.is_empty() == choice.is_none() {
                    return Err(bad(format!("node {id}: a ResolveChoice has Specs ([[\"path\", \"cast:long\"], …]) or a Choice for every choice column, one of the two")));
                }
                Kind::ResolveChoice { specs, choice }
            }
            "ApplyMapping" => {
                let mut mappings = Vec::new();
                for m in body.get("Mapping").and_then(Value::as_array).ok_or_else(|| bad(format!("node {id}: Mapping is missing")))? {
                    let from = paths(m.get("FromPath").map(|p| Value::Array(vec![p.clone()])).as_ref()).pop().unwrap_or_default();
                    let to = m.get("ToKey").and_then(Value::as_str).unwrap_or(&from).to_string();
                    let to_type = m.get("ToType").and_then(Value::as_str).or_else(|| m.get("FromType").and_then(Value::as_str)).unwrap_or("string").to_string();
                    if from.is_empty() {
                        return Err(bad(format!("node {id}: a mapping without FromPath")));
                    }
                    mappings.push(Mapping { to, from, to_type, dropped: m.get("Dropped").and_then(Value::as_bool).unwrap_or(false) });
                }
                Kind::ApplyMapping(mappings)
            }
            "DropNullFields" => {
                let boxes = body.get("NullCheckBoxList");
                let checked = |name: &str| boxes.and_then(|b| b.get(name)).and_then(Value::as_bool).unwrap_or(false);
                let mut custom = Vec::new();
                for field in body.get("NullTextList").and_then(Value::as_array).cloned().unwrap_or_default() {
                    let value = match field.get("Value") {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        _ => return Err(bad(format!("node {id}: a NullTextList entry needs a Value"))),
                    };
                    let datatype = field.get("Datatype").and_then(|d| d.get("Id").or_else(|| d.get("Label"))).and_then(Value::as_str).unwrap_or("string").to_ascii_lowercase();
                    let int = match datatype.as_str() {
                        "int" | "integer" | "bigint" | "long" | "smallint" | "tinyint" => true,
                        "string" | "str" | "varchar" => false,
                        other => return Err(bad(format!("node {id}: a custom null value's Datatype is string or int, not {other:?}"))),
                    };
                    if int && value.trim().parse::<i64>().is_err() {
                        return Err(bad(format!("node {id}: custom null value {value:?} is not an integer")));
                    }
                    custom.push((value, int));
                }
                Kind::DropNullFields(super::dynamic::NullValues { empty: checked("IsEmpty"), null_string: checked("IsNullString"), neg_one: checked("IsNegOne"), custom })
            }
            "SelectFields" => Kind::SelectFields(paths(body.get("Paths"))),
            "DropFields" => Kind::DropFields(paths(body.get("Paths"))),
            "RenameField" => Kind::RenameField {
                from: strings(body.get("SourcePath")).join("."),
                to: strings(body.get("TargetPath")).join("."),
            },
            "Filter" => {
                let and = body.get("LogicalOperator").and_then(Value::as_str).unwrap_or("AND").eq_ignore_ascii_case("AND");
                let mut expressions = Vec::new();
                for f in body.get("Filters").and_then(Value::as_array).cloned().unwrap_or_default() {
                    let operation = f.get("Operation").and_then(Value::as_str).unwrap_or("").to_uppercase();
                    if !["EQ", "LT", "GT", "LTE", "GTE", "REGEX", "ISNULL"].contains(&operation.as_str()) {
                        return Err(bad(format!("node {id}: filter operation {operation:?} is not one of EQ, LT, GT, LTE, GTE, REGEX, ISNULL")));
                    }
                    let values = f
                        .get("Values")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|v| (v.get("Type").and_then(Value::as_str) == Some("COLUMNEXTRACTED"), strings(v.get("Value")).join(".")))
                        .collect();
                    expressions.push(FilterExpression { operation, negated: f.get("Negated").and_then(Value::as_bool).unwrap_or(false), values });
                }
                Kind::Filter { and, expressions }
            }
            "Join" => {
                let columns = body.get("Columns").and_then(Value::as_array).cloned().unwrap_or_default();
                if columns.len() != 2 || inputs.len() != 2 {
                    return Err(bad(format!("node {id}: a Join has two Inputs and two Columns")));
                }
                let keys_of = |from: &str| {
                    columns.iter().find(|c| c.get("From").and_then(Value::as_str) == Some(from)).map(|c| paths(c.get("Keys"))).unwrap_or_default()
                };
                let (left, right) = (keys_of(&inputs[0]), keys_of(&inputs[1]));
                if left.is_empty() || left.len() != right.len() {
                    return Err(bad(format!("node {id}: the Join's Columns name as many keys for {} as for {}", inputs[0], inputs[1])));
                }
                let kind = body.get("JoinType").and_then(Value::as_str).unwrap_or("equijoin").to_string();
                if !["equijoin", "left", "right", "outer", "leftsemi", "leftanti"].contains(&kind.as_str()) {
                    return Err(bad(format!("node {id}: JoinType {kind:?} is not one of equijoin, left, right, outer, leftsemi, leftanti")));
                }
                Kind::Join { kind, left, right }
            }
            "Union" => Kind::Union { distinct: body.get("UnionType").and_then(Value::as_str) == Some("DISTINCT") },
            "DropDuplicates" => Kind::DropDuplicates(paths(body.get("Columns"))),
            "Aggregate" => {
                let groups = paths(body.get("Groups"));
                let mut aggs = Vec::new();
                for a in body.get("Aggs").and_then(Value::as_array).cloned().unwrap_or_default() {
                    let column = strings(a.get("Column")).join(".");
                    let func = a.get("AggFunc").and_then(Value::as_str).unwrap_or("").to_string();
                    aggs.push((column, func));
                }
                if aggs.is_empty() {
                    return Err(bad(format!("node {id}: an Aggregate needs Aggs")));
                }
                Kind::Aggregate { groups, aggs }
            }
            "SparkSQL" => {
                let aliases = body
                    .get("SqlAliases")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|a| Some((a.get("From")?.as_str()?.to_string(), a.get("Alias")?.as_str()?.to_string())))
                    .collect();
                Kind::Sql { query: text(body, "SqlQuery", id)?, aliases }
            }
            "S3DirectTarget" | "S3GlueParquetTarget" | "S3CatalogTarget" => {
                let format = match node_type.as_str() {
                    "S3GlueParquetTarget" => Format::Parquet,
                    "S3CatalogTarget" => Format::Parquet,
                    _ => match body.get("Format").and_then(Value::as_str).unwrap_or("parquet") {
                        "parquet" | "glueparquet" => Format::Parquet,
                        "json" => Format::Json,
                        "csv" => Format::Csv { delimiter: ',', header: true, escape: None },
                        other => return Err(bad(format!("node {id}: Format {other:?}: the S3 targets here write parquet, json or csv"))),
                    },
                };
                let compression = body.get("Compression").and_then(Value::as_str).filter(|c| !matches!(*c, "none" | "snappy" | "uncompressed")).map(str::to_string);
                if let Some(c) = &compression
                    && !matches!(c.as_str(), "gzip" | "bzip2" | "zstd")
                {
                    return Err(bad(format!("node {id}: Compression {c:?} is not one of snappy, gzip, bzip2, zstd, none")));
                }
                let policy = body.get("SchemaChangePolicy");
                let update = policy.and_then(|p| p.get("EnableUpdateCatalog")).and_then(Value::as_bool).unwrap_or(node_type == "S3CatalogTarget");
                let database = body.get("Database").or_else(|| policy.and_then(|p| p.get("Database"))).and_then(Value::as_str);
                let table = body.get("Table").or_else(|| policy.and_then(|p| p.get("Table"))).and_then(Value::as_str);
                let catalog = match (update, database, table) {
                    (true, Some(d), Some(t)) => Some((d.to_lowercase(), t.to_lowercase())),
                    (true, _, _) => return Err(bad(format!("node {id}: updating the Data Catalog needs a Database and a Table"))),
                    _ => None,
                };
                let path = body.get("Path").and_then(Value::as_str).map(str::to_string);
                if path.is_none() && node_type != "S3CatalogTarget" {
                    return Err(bad(format!("node {id}: Path is missing (s3://…/)")));
                }
                Kind::Target(TargetNode { path, format, compression, partition_keys: paths(body.get("PartitionKeys")), catalog })
            }
            other => {
                return Err(bad(format!("node {id}: node type {other} is not supported here; the supported ones are {SUPPORTED}")));
            }
        };
        let sources = matches!(kind, Kind::CatalogSource { .. } | Kind::S3Source { .. });
        if sources && !inputs.is_empty() {
            return Err(bad(format!("node {id}: a source takes no Inputs")));
        }
        if !sources && inputs.is_empty() {
            return Err(bad(format!("node {id}: {node_type} needs Inputs")));
        }
        nodes.insert(id.clone(), Node { id: id.clone(), name, kind, inputs });
    }
    for node in nodes.values() {
        for input in &node.inputs {
            match nodes.get(input) {
                None => return Err(bad(format!("node {}: its input {input} is not a node of the graph", node.id))),
                Some(n) if n.is_target() => return Err(bad(format!("node {}: its input {input} is a target, which has no output", node.id))),
                _ => {}
            }
        }
    }
    for node in nodes.values() {
        let reads_collection = node.inputs.iter().any(|i| matches!(nodes[i].kind, Kind::Relationalize { .. }));
        if matches!(node.kind, Kind::SelectFromCollection { .. }) != reads_collection {
            return Err(bad(format!("node {}: a Relationalize node's collection is read by SelectFromCollection nodes, and only they read collections", node.id)));
        }
    }
    if !nodes.values().any(Node::is_target) {
        return Err(bad("the job graph has no target node (S3DirectTarget, S3GlueParquetTarget or S3CatalogTarget)".into()));
    }
    // Inputs first (Kahn's order); what is left is a cycle.
    let mut order = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    while order.len() < nodes.len() {
        let ready: Vec<&Node> = nodes.values().filter(|n| !done.contains(&n.id) && n.inputs.iter().all(|i| done.contains(i))).collect();
        if ready.is_empty() {
            let left: Vec<&str> = nodes.keys().filter(|k| !done.contains(*k)).map(String::as_str).collect();
            return Err(bad(format!("the job graph has a cycle through {}", left.join(", "))));
        }
        for node in ready {
            done.insert(node.id.clone());
            order.push(node.clone());
        }
    }
    Ok(Graph { nodes: order })
}

/// A quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `a.b` as a column reference (a nested field by name).
fn column(path: &str) -> String {
    let mut parts = path.split('.');
    let mut out = ident(parts.next().unwrap_or_default());
    for part in parts {
        out.push_str(&format!("['{}']", part.replace('\'', "''")));
    }
    out
}

fn literal(text: &str) -> String {
    if text.parse::<f64>().is_ok() { text.to_string() } else { format!("'{}'", text.replace('\'', "''")) }
}

/// Glue's ApplyMapping types as SQL types.
pub(super) fn sql_type(glue: &str) -> Result<String> {
    let lower = glue.trim().to_lowercase();
    Ok(match lower.as_str() {
        "string" | "varchar" | "char" => "VARCHAR".into(),
        "int" | "integer" => "INT".into(),
        "long" | "bigint" => "BIGINT".into(),
        "short" | "smallint" => "SMALLINT".into(),
        "byte" | "tinyint" => "TINYINT".into(),
        "double" => "DOUBLE".into(),
        "float" => "FLOAT".into(),
        "boolean" => "BOOLEAN".into(),
        "date" => "DATE".into(),
        "timestamp" => "TIMESTAMP".into(),
        "binary" => "BYTEA".into(),
        d if d.starts_with("decimal") => d.to_uppercase(),
        other => return Err(bad(format!("ApplyMapping: type {other:?} is not one of string, int, long, short, byte, double, float, boolean, date, timestamp, decimal(p,s), binary"))),
    })
}

fn find(schema: &SchemaRef, path: &str, node: &Node) -> Result<String> {
    let top = path.split('.').next().unwrap_or(path);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    match names.iter().find(|n| n.eq_ignore_ascii_case(top)) {
        Some(name) => Ok(column(&path.replacen(top, name, 1))),
        None => {
            let mut e = bad(format!("{}: column {top} not found; its input has {}", node.label(), names.join(", ")));
            if let Some(c) = crate::error::closest(top, &names) {
                e = e.with_hint(format!("did you mean {c}?"));
            }
            Err(e)
        }
    }
}

/// What each node's rows hold that SQL types do not say: per choice column, its types.
pub type Choices = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The SQL of a transform node over its inputs (by node id), whose columns are `schemas`
/// and whose choice columns are `choices`.
pub fn transform_sql(node: &Node, schemas: &BTreeMap<String, SchemaRef>, choices: &Choices) -> Result<String> {
    let input = |i: usize| -> Result<(&str, &SchemaRef)> {
        let id = node.inputs.get(i).ok_or_else(|| bad(format!("{}: needs {} input(s)", node.label(), i + 1)))?;
        Ok((id.as_str(), schemas.get(id).ok_or_else(|| crate::internal_err!("no schema for {id}"))?))
    };
    let all = |schema: &SchemaRef, except: &[&str]| -> Vec<String> {
        schema.fields().iter().filter(|f| !except.iter().any(|e| e.eq_ignore_ascii_case(f.name()))).map(|f| ident(f.name())).collect()
    };
    Ok(match &node.kind {
        Kind::CatalogSource { database, table } => format!("SELECT * FROM {}.{}", ident(database), ident(table)),
        // Their rows are the run's frames (read, or computed from the input, before planning).
        Kind::S3Source { .. } | Kind::DropNullFields(_) => format!("SELECT * FROM {}.{}.{}", crate::query::RUN_CATALOG, crate::query::RUN_SCHEMA, ident(&node.id)),
        Kind::ResolveChoice { specs, choice } => {
            let (from, schema) = input(0)?;
            let none = BTreeMap::new();
            let columns = super::dynamic::resolve_choice_columns(schema, choices.get(from).unwrap_or(&none), specs, choice.as_deref(), &node.label())?;
            format!("SELECT {} FROM {}", columns.join(", "), ident(from))
        }
        Kind::ApplyMapping(mappings) => {
            let (from, schema) = input(0)?;
            let mut columns = Vec::new();
            for m in mappings.iter().filter(|m| !m.dropped) {
                // Spark's cast: a value that does not convert becomes NULL.
                columns.push(format!("TRY_CAST({} AS {}) AS {}", find(schema, &m.from, node)?, sql_type(&m.to_type)?, ident(&m.to)));
            }
            if columns.is_empty() {
                return Err(bad(format!("{}: every mapping is dropped", node.label())));
            }
            format!("SELECT {} FROM {}", columns.join(", "), ident(from))
        }
        Kind::SelectFields(paths) => {
            let (from, schema) = input(0)?;
            let columns = paths.iter().map(|p| find(schema, p, node).map(|c| format!("{c} AS {}", ident(p.rsplit('.').next().unwrap_or(p))))).collect::<Result<Vec<_>>>()?;
            format!("SELECT {} FROM {}", columns.join(", "), ident(from))
        }
        Kind::DropFields(paths) => {
            let (from, schema) = input(0)?;
            for p in paths {
                find(schema, p, node)?;
            }
            let kept = all(schema, &paths.iter().map(String::as_str).collect::<Vec<_>>());
            format!("SELECT {} FROM {}", kept.join(", "), ident(from))
        }
        Kind::RenameField { from: old, to } => {
            let (from, schema) = input(0)?;
            find(schema, old, node)?;
            let columns: Vec<String> =
                schema.fields().iter().map(|f| if f.name().eq_ignore_ascii_case(old) { format!("{} AS {}", ident(f.name()), ident(to)) } else { ident(f.name()) }).collect();
            format!("SELECT {} FROM {}", columns.join(", "), ident(from))
        }
        Kind::Filter { and, expressions } => {
            let (from, schema) = input(0)?;
            let mut conditions = Vec::new();
            for e in expressions {
                let value = |i: usize| -> Result<String> {
                    match e.values.get(i) {
                        Some((true, path)) => find(schema, path, node),
                        Some((false, text)) => Ok(literal(text)),
                        None => Err(bad(format!("{}: filter {} needs {} value(s)", node.label(), e.operation, i + 1))),
                    }
                };
                let condition = match e.operation.as_str() {
                    "ISNULL" => format!("{} IS NULL", value(0)?),
                    "REGEX" => format!("{} ~ {}", value(0)?, value(1)?),
                    op => {
                        let sym = match op {
                            "EQ" => "=",
                            "LT" => "<",
                            "GT" => ">",
                            "LTE" => "<=",
                            _ => ">=",
                        };
                        format!("{} {sym} {}", value(0)?, value(1)?)
                    }
                };
                conditions.push(if e.negated { format!("NOT ({condition})") } else { format!("({condition})") });
            }
            let joined = if conditions.is_empty() { "TRUE".to_string() } else { conditions.join(if *and { " AND " } else { " OR " }) };
            format!("SELECT * FROM {} WHERE {joined}", ident(from))
        }
        Kind::Join { kind, left, right } => {
            let (l, ls) = input(0)?;
            let (r, rs) = input(1)?;
            let on = left
                .iter()
                .zip(right)
                .map(|(a, b)| Ok(format!("l.{} = r.{}", find(ls, a, node)?, find(rs, b, node)?)))
                .collect::<Result<Vec<_>>>()?
                .join(" AND ");
            let join = match kind.as_str() {
                "equijoin" => "INNER JOIN",
                "left" => "LEFT JOIN",
                "right" => "RIGHT JOIN",
                "outer" => "FULL OUTER JOIN",
                "leftsemi" => "LEFT SEMI JOIN",
                _ => "LEFT ANTI JOIN",
            };
            // The right side's columns the left has already are left out (Glue Studio asks
            // to rename them; the left's values win here).
            let mut columns: Vec<String> = ls.fields().iter().map(|f| format!("l.{}", ident(f.name()))).collect();
            if !matches!(kind.as_str(), "leftsemi" | "leftanti") {
                for f in rs.fields() {
                    if !ls.fields().iter().any(|g| g.name().eq_ignore_ascii_case(f.name())) {
                        columns.push(format!("r.{}", ident(f.name())));
                    }
                }
            }
            format!("SELECT {} FROM {} AS l {join} {} AS r ON {on}", columns.join(", "), ident(l), ident(r))
        }
        Kind::Union { distinct } => {
            let (first, schema) = input(0)?;
            let names = all(schema, &[]);
            let mut parts = vec![format!("SELECT {} FROM {}", names.join(", "), ident(first))];
            for i in 1..node.inputs.len() {
                let (other, other_schema) = input(i)?;
                let columns = schema.fields().iter().map(|f| find(other_schema, f.name(), node)).collect::<Result<Vec<_>>>()?;
                parts.push(format!("SELECT {} FROM {}", columns.join(", "), ident(other)));
            }
            parts.join(if *distinct { " UNION " } else { " UNION ALL " })
        }
        Kind::DropDuplicates(columns) => {
            let (from, schema) = input(0)?;
            if columns.is_empty() {
                format!("SELECT DISTINCT * FROM {}", ident(from))
            } else {
                let keys = columns.iter().map(|c| find(schema, c, node)).collect::<Result<Vec<_>>>()?;
                let names = all(schema, &[]);
                format!(
                    "SELECT {} FROM (SELECT *, row_number() OVER (PARTITION BY {}) AS lakebook_row FROM {}) WHERE lakebook_row = 1",
                    names.join(", "),
                    keys.join(", "),
                    ident(from)
                )
            }
        }
        Kind::Aggregate { groups, aggs } => {
            let (from, schema) = input(0)?;
            let keys = groups.iter().map(|g| find(schema, g, node)).collect::<Result<Vec<_>>>()?;
            let mut columns = keys.clone();
            for (col, func) in aggs {
                let c = find(schema, col, node)?;
                let expr = match func.as_str() {
                    "avg" | "count" | "max" | "min" | "sum" | "stddev_samp" | "stddev_pop" | "var_samp" | "var_pop" => format!("{func}({c})"),
                    "countDistinct" => format!("count(DISTINCT {c})"),
                    "sumDistinct" => format!("sum(DISTINCT {c})"),
                    "first" => format!("first_value({c})"),
                    "last" => format!("last_value({c})"),
                    other => return Err(bad(format!("{}: AggFunc {other:?} is not supported here (avg, count, countDistinct, first, last, max, min, stddev_samp, stddev_pop, sum, sumDistinct, var_samp, var_pop)", node.label()))),
                };
                columns.push(format!("{expr} AS {}", ident(&format!("{func}({col})"))));
            }
            let group = if keys.is_empty() { String::new() } else { format!(" GROUP BY {}", keys.join(", ")) };
            format!("SELECT {} FROM {}{group}", columns.join(", "), ident(from))
        }
        Kind::Sql { query, aliases } => {
            let mut with = Vec::new();
            for input in &node.inputs {
                let alias = aliases.iter().find(|(from, _)| from == input).map(|(_, a)| a.clone()).unwrap_or_else(|| input.clone());
                with.push(format!("{} AS (SELECT * FROM {})", ident(&alias), ident(input)));
            }
            format!("SELECT * FROM (WITH {} {})", with.join(", "), query.trim().trim_end_matches(';'))
        }
        Kind::Target(_) => format!("SELECT * FROM {}", ident(input(0)?.0)),
        // The collection's rows are read by the run (`visual.rs`) and selected from there.
        Kind::Relationalize { .. } => format!("SELECT * FROM {}.{}.{}", crate::query::RUN_CATALOG, crate::query::RUN_SCHEMA, ident(&node.id)),
        Kind::SelectFromCollection { .. } => return Err(crate::internal_err!("SelectFromCollection is planned with its collection")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPH: &str = r#"{
        "node-1": {"CatalogSource": {"Name": "raw", "Database": "raw", "Table": "events"}},
        "node-2": {"ApplyMapping": {"Name": "map", "Inputs": ["node-1"], "Mapping": [
            {"ToKey": "id", "FromPath": ["id"], "FromType": "int", "ToType": "long", "Dropped": false},
            {"ToKey": "junk", "FromPath": ["junk"], "FromType": "string", "ToType": "string", "Dropped": true}]}},
        "node-3": {"S3DirectTarget": {"Name": "out", "Inputs": ["node-2"], "Path": "s3://cur/events/", "Format": "parquet",
            "PartitionKeys": [["day"]], "SchemaChangePolicy": {"EnableUpdateCatalog": true, "UpdateBehavior": "UPDATE_IN_DATABASE", "Database": "cur", "Table": "events"}}}
    }"#;

    #[test]
    fn a_graph_parses_in_input_order() {
        let g = parse(GRAPH).unwrap();
        assert_eq!(g.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["node-1", "node-2", "node-3"]);
        let Kind::Target(t) = &g.nodes[2].kind else { panic!() };
        assert_eq!(t.catalog, Some(("cur".into(), "events".into())));
        assert_eq!(t.partition_keys, ["day"]);
        let wrapped = format!("{{\"CodeGenConfigurationNodes\": {GRAPH}}}");
        assert_eq!(parse(&wrapped).unwrap(), g);
    }

    #[test]
    fn bad_graphs_are_named() {
        let unknown = r#"{"n": {"SnowflakeSource": {"Name": "x"}}, "t": {"S3DirectTarget": {"Inputs": ["n"], "Path": "s3://b/"}}}"#;
        assert!(parse(unknown).unwrap_err().message().contains("SnowflakeSource is not supported"));
        let missing = r#"{"t": {"S3DirectTarget": {"Inputs": ["nope"], "Path": "s3://b/"}}}"#;
        assert!(parse(missing).unwrap_err().message().contains("nope is not a node"));
        let cycle = r#"{"a": {"Filter": {"Inputs": ["b"], "Filters": []}}, "b": {"Filter": {"Inputs": ["a"], "Filters": []}},
                        "t": {"S3DirectTarget": {"Inputs": ["a"], "Path": "s3://b/"}}}"#;
        assert!(parse(cycle).unwrap_err().message().contains("cycle"));
        let no_target = r#"{"n": {"CatalogSource": {"Database": "d", "Table": "t"}}}"#;
        assert!(parse(no_target).unwrap_err().message().contains("no target"));
        assert_eq!(parse("[1]").unwrap_err().code(), "InvalidInputException");
    }
}
