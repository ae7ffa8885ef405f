//! Building a dashboard: every visual's numbers for every choice of its sheet's controls,
//! precomputed in the engine so count distinct and percentiles stay exact wherever the page
//! shows them. Each control's choices are sets of its field's values ("all", one value, a
//! ticked set, the values up to a slider's, a range of periods), written as a membership table
//! (choice, value); [`visual`] reads each visual's numbers through a shared cube, by value, or
//! through those memberships. Pivot subtotals are grouping sets of the same query.

mod visual;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use serde::Serialize;
use serde_json::{Value, json};

use super::spec::{self, Control, ControlKind, Granularity, Located, SliderOp, Sort, SortBy, Spec, Visual, VisualKind};
use super::{Dashboards, Mode, dataset_query};
use crate::error::{Error, Result};
use crate::service_err;

/// How many aggregated rows one visual may draw per control value.
pub const MAX_POINTS: usize = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub name: String,
    pub title: Option<String>,
    pub sheets: Vec<BuiltSheet>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuiltSheet {
    pub name: String,
    pub columns: usize,
    pub controls: Vec<BuiltControl>,
    pub visuals: Vec<BuiltVisual>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuiltControl {
    pub name: String,
    pub kind: ControlKind,
    pub field: String,
    pub op: SliderOp,
    pub granularity: Granularity,
    /// The values to choose from, in order (a date range's periods); null is "NULL" in a
    /// dropdown or multi-select, and only in "all" for a slider or date range.
    pub values: Vec<String>,
    /// Each choice's members, as indices into `values`; choice 0 is "all".
    pub choices: Vec<Vec<usize>>,
}

impl BuiltControl {
    /// The choice whose members are exactly `members` (sorted); none or all of them is "all".
    pub fn choice_of(&self, members: &[usize]) -> Option<usize> {
        if members.is_empty() || members.len() == self.values.len() {
            return Some(0);
        }
        self.choices.iter().position(|c| c == members)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BuiltVisual {
    pub kind: VisualKind,
    pub title: String,
    pub span: usize,
    pub dims: Vec<String>,
    pub pivot_rows: usize,
    /// The measures' labels; a KPI's target, when it has one, is the last.
    pub measures: Vec<String>,
    pub has_target: bool,
    pub horizontal: bool,
    pub stacked: bool,
    pub donut: bool,
    pub subtotals: bool,
    /// The sheet's controls that filter it (those over its dataset), by index.
    pub controls: Vec<usize>,
    /// How many choices each of those controls has: `frames` is indexed by the choices in
    /// mixed radix, the first control's choice varying fastest.
    pub radix: Vec<usize>,
    /// A combo's last measures, drawn as lines on a second axis.
    pub line_measures: usize,
    /// A histogram's bin width (its rows' first dimension is each bin's start).
    pub bin_width: Option<f64>,
    /// The numbers for every combination of its controls' choices; `frames[0]` is "all".
    pub frames: Vec<Frame>,
}

impl BuiltVisual {
    /// Which frame shows the sheet's controls at `choices` (one per sheet control; a missing
    /// one is "all").
    pub fn frame_index(&self, choices: &[usize]) -> usize {
        mixed_radix(self.controls.iter().map(|&control| choices.get(control).copied().unwrap_or(0)), &self.radix)
    }

    /// The frame shown for the sheet's controls at `choices`.
    pub fn frame(&self, choices: &[usize]) -> &Frame {
        self.frames.get(self.frame_index(choices)).unwrap_or(&self.frames[0])
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Frame {
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The dimensions' values (numbers, text, date-times as text, null); a total's are null.
    pub dims: Vec<Value>,
    /// Which dimensions this row is a total over (pivot subtotals).
    pub totals: Vec<bool>,
    pub measures: Vec<Value>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn located_err(line: usize, message: impl std::fmt::Display) -> Error {
    service_err!(InvalidParameterValueException, "line {line}: {message}")
}

/// The same error with the spec line in front.
fn at_line(err: Error, line: usize) -> Error {
    match err {
        Error::Service { code, message, hint } => Error::Service { code, message: format!("line {line}: {message}"), hint },
        other => other,
    }
}

/// The frame of one choice per control: the first control's choice varies fastest; a choice
/// past its control's count is its last.
fn mixed_radix(choices: impl Iterator<Item = usize>, radix: &[usize]) -> usize {
    let (mut index, mut stride) = (0, 1);
    for (choice, &n) in choices.zip(radix) {
        index += choice.min(n.saturating_sub(1)) * stride;
        stride *= n;
    }
    index
}

/// A control's choices as a table of (`__choice`, `__value`) rows, joined to a visual's rows
/// on `key` (the field, or its period for a date range).
struct Membership {
    key: String,
    table: Arc<datafusion::datasource::MemTable>,
    /// A dropdown's or `=` slider's choices, one value each: the choice of each value, keyed
    /// by the value as JSON text.
    by_value: Option<std::collections::HashMap<String, usize>>,
}

/// A date range's period as people write it: 2026-03-01, 2026-03, 2026 Q1, 2026.
fn period_label(start: &str, granularity: Granularity) -> String {
    let month: u32 = start.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    match granularity {
        Granularity::Day | Granularity::Week => start.chars().take(10).collect(),
        Granularity::Month => start.chars().take(7).collect(),
        Granularity::Quarter => format!("{} Q{}", start.chars().take(4).collect::<String>(), (month - 1) / 3 + 1),
        Granularity::Year => start.chars().take(4).collect(),
    }
}

/// A dataset as the dashboard's queries see it: its schema and the FROM item that reads it.
struct Source {
    schema: SchemaRef,
    from: String,
    database: String,
    tables: BTreeMap<String, Arc<dyn TableProvider>>,
}

impl Source {
    fn field(&self, name: &Located<String>, dataset: &str) -> Result<(String, DataType)> {
        let fields = self.schema.fields();
        let found = fields.iter().find(|f| f.name() == &name.value).or_else(|| fields.iter().find(|f| f.name().eq_ignore_ascii_case(&name.value)));
        match found {
            Some(f) => Ok((f.name().clone(), f.data_type().clone())),
            None => {
                let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
                let hint = crate::error::closest(&name.value, &names).map(|c| format!(" Did you mean {c}?")).unwrap_or_default();
                Err(located_err(name.line, format!("dataset {dataset} has no field {}.{hint}", name.value)).with_hint(format!("its fields: {}", names.join(", "))))
            }
        }
    }
}

impl Dashboards {
    async fn source(&self, name: &Located<String>, cache: &mut BTreeMap<String, Arc<Source>>) -> Result<Arc<Source>> {
        if let Some(source) = cache.get(&name.value) {
            return Ok(source.clone());
        }
        let dataset = self.dataset(&name.value).map_err(|e| at_line(e, name.line))?;
        let database = dataset.source.database().to_string();
        let (from, tables) = match self.spice_table(&dataset).map_err(|e| at_line(e, name.line))? {
            Some(table) => {
                let key = format!("spice_{}", dataset.name.replace('-', "_"));
                let from = visual::run_table(&key);
                (from, BTreeMap::from([(key, table)]))
            }
            None => (format!("({}) AS ds", dataset_query(&dataset)), BTreeMap::new()),
        };
        let schema = self.sql.query_schema_over(&format!("SELECT * FROM {from}"), &database, tables.clone()).await.map_err(|e| at_line(e, name.line))?;
        debug_assert!(dataset.mode == Mode::DirectQuery || !tables.is_empty());
        let source = Arc::new(Source { schema, from, database, tables });
        cache.insert(name.value.clone(), source.clone());
        Ok(source)
    }

    pub(super) async fn build_spec(&self, name: &str, spec: &Spec) -> Result<Built> {
        let mut cache = BTreeMap::new();
        let mut sheets = Vec::new();
        for sheet in &spec.sheets {
            let mut controls: Vec<(&Control, BuiltControl, Membership)> = Vec::new();
            let mut combinations = 1usize;
            for control in &sheet.controls {
                let source = self.source(&control.dataset, &mut cache).await?;
                let (built, membership) = self.build_control(control, &source, sheet.filter.as_ref()).await?;
                combinations = combinations.saturating_mul(built.choices.len());
                if combinations > spec::MAX_CHOICES {
                    return Err(located_err(
                        control.line,
                        format!(
                            "the sheet's controls make {combinations} combinations of choices with control {}; every combination is precomputed, and a sheet's controls make at most {}",
                            control.name,
                            spec::MAX_CHOICES
                        ),
                    )
                    .with_hint("use fewer controls, a coarser granularity, or a field with fewer values"));
                }
                controls.push((control, built, membership));
            }
            let mut plans = Vec::new();
            for visual in &sheet.visuals {
                let source = self.source(&visual.dataset, &mut cache).await?;
                plans.push(self.plan_visual(visual, source, sheet.filter.as_ref()).await?);
            }
            let applying = |dataset: &str| -> Vec<visual::Applying> {
                controls
                    .iter()
                    .enumerate()
                    .filter(|(_, (c, _, _))| c.dataset.value == dataset)
                    .map(|(index, (_, built, membership))| visual::Applying { index, membership, choices: built.choices.len() })
                    .collect()
            };
            // One cube per dataset and filter serves every visual over them it can.
            let mut groups: BTreeMap<(&str, &[String]), Vec<usize>> = BTreeMap::new();
            for (i, plan) in plans.iter().enumerate().filter(|(_, p)| p.decomposable()) {
                groups.entry((plan.visual.dataset.value.as_str(), plan.filters.as_slice())).or_default().push(i);
            }
            let mut cubes: Vec<Option<Arc<visual::Cube>>> = (0..plans.len()).map(|_| None).collect();
            for (g, ((dataset, _), members)) in groups.iter().enumerate() {
                let group: Vec<&visual::Plan> = members.iter().map(|&i| &plans[i]).collect();
                let cube = Arc::new(self.cube(&format!("lb_cube_{g}"), &group, &applying(dataset)).await?);
                for &i in members {
                    cubes[i] = Some(cube.clone());
                }
            }
            let mut visuals = Vec::new();
            for (plan, cube) in plans.iter().zip(&cubes) {
                visuals.push(self.run_visual(plan, &applying(&plan.visual.dataset.value), cube.as_deref()).await?);
            }
            sheets.push(BuiltSheet { name: sheet.name.clone(), columns: sheet.columns, controls: controls.into_iter().map(|(_, built, _)| built).collect(), visuals });
        }
        Ok(Built { name: name.to_string(), title: spec.title.clone(), sheets })
    }

    /// A control's values and choices, and its membership table.
    async fn build_control(&self, control: &Control, source: &Source, filter: Option<&Located<String>>) -> Result<(BuiltControl, Membership)> {
        let (field, data_type) = source.field(&control.field, &control.dataset.value)?;
        let key = match control.kind {
            ControlKind::DateRange => {
                if !(data_type.is_temporal() || matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)) {
                    return Err(located_err(
                        control.field.line,
                        format!("control {}: a date range needs dates, and {field} is {}", control.name, crate::catalog::types::glue_type(&data_type)),
                    ));
                }
                format!("date_trunc('{}', CAST({} AS TIMESTAMP))", control.granularity.name(), quote(&field))
            }
            _ => quote(&field),
        };
        let cap = match control.kind {
            ControlKind::Dropdown | ControlKind::Slider => spec::MAX_CONTROL_VALUES,
            ControlKind::MultiSelect => spec::MAX_MULTI_SELECT_VALUES,
            ControlKind::DateRange => spec::MAX_DATE_RANGE_PERIODS,
        };
        let filter = filter.map(|f| format!(" WHERE ({})", f.value)).unwrap_or_default();
        // Any cap + 2 values tell whether there are too many; sorted here, not by the query: a
        // top-N over the distinct values would filter every row it scans.
        let sql = format!("SELECT {key} AS v FROM {}{filter} GROUP BY {key} LIMIT {}", source.from, cap + 2);
        let (schema, batches) = self.sql.collect_over(&sql, &source.database, source.tables.clone()).await.map_err(|e| at_line(e, control.line))?;
        let columns: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
        let raw = if columns.is_empty() {
            arrow_array::new_empty_array(schema.field(0).data_type())
        } else {
            datafusion::arrow::compute::concat(&columns).map_err(|e| service_err!(InternalFailure, "{e}"))?
        };
        let order = arrow_schema::SortOptions { descending: false, nulls_first: false };
        let raw = datafusion::arrow::compute::sort(raw.as_ref(), Some(order)).map_err(|e| service_err!(InternalFailure, "{e}"))?;
        // A slider or date range orders its values; a row with none is only in "all".
        let ordered = matches!(control.kind, ControlKind::Slider | ControlKind::DateRange);
        let count = if ordered { raw.len() - raw.null_count() } else { raw.len() };
        if count > cap {
            let what = if control.kind == ControlKind::DateRange { format!("more than {cap} {}s", control.granularity.name()) } else { format!("more than {cap} values") };
            return Err(located_err(
                control.line,
                format!("control {}: the field {field} has {what}; a {}'s choices are precomputed, so it holds at most {cap}", control.name, control.kind.name()),
            )
            .with_hint("filter the sheet (filter = \"…\"), control a field with fewer values, or (a date range) a coarser granularity"));
        }
        let labels: Vec<Value> = json_values(raw.as_ref());
        let values: Vec<String> = labels
            .iter()
            .take(count)
            .map(|v| if control.kind == ControlKind::DateRange { period_label(&label(v), control.granularity) } else { label(v) })
            .collect();
        let n = values.len();
        let mut choices: Vec<Vec<usize>> = vec![(0..n).collect()];
        match control.kind {
            ControlKind::Dropdown => choices.extend((0..n).map(|i| vec![i])),
            ControlKind::MultiSelect => {
                for mask in 1..(1usize << n).saturating_sub(1) {
                    choices.push((0..n).filter(|i| mask & (1 << i) != 0).collect());
                }
            }
            ControlKind::Slider => choices.extend((0..n).map(|i| match control.op {
                SliderOp::AtMost => (0..=i).collect(),
                SliderOp::AtLeast => (i..n).collect(),
                SliderOp::Equal => vec![i],
            })),
            ControlKind::DateRange => {
                for from in 0..n {
                    for to in from..n {
                        if (from, to) != (0, n - 1) {
                            choices.push((from..=to).collect());
                        }
                    }
                }
            }
        }
        // The membership table: "all" holds every value the field has, null included.
        let mut choice_ids: Vec<i64> = Vec::new();
        let mut members: Vec<u32> = Vec::new();
        for (c, choice) in choices.iter().enumerate() {
            let rows: Vec<usize> = if c == 0 { (0..raw.len()).collect() } else { choice.clone() };
            for r in rows {
                choice_ids.push(c as i64);
                members.push(r as u32);
            }
        }
        let taken = datafusion::arrow::compute::take(raw.as_ref(), &arrow_array::UInt32Array::from(members), None).map_err(|e| service_err!(InternalFailure, "{e}"))?;
        let schema = Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("__choice", DataType::Int64, false),
            arrow_schema::Field::new("__value", raw.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(arrow_array::Int64Array::from(choice_ids)), taken]).map_err(|e| service_err!(InternalFailure, "{e}"))?;
        let table = datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| service_err!(InternalFailure, "{e}"))?;
        let built = BuiltControl { name: control.name.clone(), kind: control.kind, field, op: control.op, granularity: control.granularity, values, choices };
        let by_value = (control.kind == ControlKind::Dropdown || (control.kind == ControlKind::Slider && control.op == SliderOp::Equal))
            .then(|| labels.iter().take(n).enumerate().map(|(i, v)| (v.to_string(), i + 1)).collect());
        Ok((built, Membership { key, table: Arc::new(table), by_value }))
    }
}

/// Sorts a frame and keeps its top N: by label or by the first measure (with a color
/// dimension, x values are ranked by the sum of their series); pivots in label order with
/// each level's total after its members.
fn shape(frame: &mut Frame, visual: &Visual) {
    let default = match visual.kind {
        VisualKind::Line
        | VisualKind::Area
        | VisualKind::Combo
        | VisualKind::Pivot
        | VisualKind::Heatmap
        | VisualKind::Histogram
        | VisualKind::Box
        | VisualKind::Waterfall => Sort { by: SortBy::Label, descending: false },
        _ => Sort { by: SortBy::Value, descending: true },
    };
    let sort = visual.sort.unwrap_or(default);
    if visual.kind == VisualKind::Pivot {
        frame.rows.sort_by(|a, b| {
            for i in 0..a.dims.len() {
                let order = a.totals[i].cmp(&b.totals[i]).then_with(|| compare(&a.dims[i], &b.dims[i]));
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
            }
            std::cmp::Ordering::Equal
        });
        return;
    }
    let Some(first) = frame.rows.first() else { return };
    if first.dims.is_empty() {
        return;
    }
    // Rank the first dimension's values.
    let mut scores: Vec<(Value, f64)> = Vec::new();
    for row in &frame.rows {
        let value = row.measures.first().and_then(Value::as_f64).unwrap_or(0.0);
        match scores.iter_mut().find(|(k, _)| k == &row.dims[0]) {
            Some((_, s)) => *s += value,
            None => scores.push((row.dims[0].clone(), value)),
        }
    }
    scores.sort_by(|a, b| {
        let order = match sort.by {
            SortBy::Label => compare(&a.0, &b.0),
            SortBy::Value => a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| compare(&a.0, &b.0).reverse()),
        };
        if sort.descending { order.reverse() } else { order }
    });
    if let Some(top) = visual.top {
        scores.truncate(top);
    }
    let rank: Vec<Value> = scores.into_iter().map(|(k, _)| k).collect();
    frame.rows.retain(|r| rank.contains(&r.dims[0]));
    frame.rows.sort_by(|a, b| {
        let ia = rank.iter().position(|k| k == &a.dims[0]);
        let ib = rank.iter().position(|k| k == &b.dims[0]);
        ia.cmp(&ib).then_with(|| a.dims.iter().skip(1).zip(b.dims.iter().skip(1)).map(|(x, y)| compare(x, y)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal))
    });
}

/// Numbers by value, text by its text, nulls last.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Greater,
        (_, Value::Null) => std::cmp::Ordering::Less,
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(std::cmp::Ordering::Equal),
        _ => label(a).cmp(&label(b)),
    }
}

/// A measure as shown: fractional numbers to 12 significant digits. A sum of doubles over
/// parallel partitions differs in its last bits from run to run (addition is not
/// associative); 12 digits keep every figure a dashboard shows and make a rerun identical.
pub fn settle(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            let rounded: f64 = format!("{f:.11e}").parse().unwrap_or(f);
            serde_json::Number::from_f64(rounded).map(Value::Number).unwrap_or(Value::Null)
        }
        other => other.clone(),
    }
}

/// A value as a control or axis label.
pub fn label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".to_string(),
        other => other.to_string(),
    }
}

/// A column as JSON values a chart understands: numbers (whole numbers stay whole), ISO
/// date-times as text, text, null.
pub fn json_values(array: &dyn Array) -> Vec<Value> {
    let data_type = array.data_type();
    if data_type.is_integer() {
        if let Ok(cast) = datafusion::arrow::compute::cast(array, &DataType::Int64)
            && let Some(ints) = cast.as_any().downcast_ref::<arrow_array::Int64Array>()
        {
            return ints.iter().map(|v| v.map_or(Value::Null, |i| json!(i))).collect();
        }
    }
    if data_type.is_numeric()
        && let Ok(cast) = datafusion::arrow::compute::cast(array, &DataType::Float64)
        && let Some(floats) = cast.as_any().downcast_ref::<Float64Array>()
    {
        return floats.iter().map(|v| v.and_then(|f| serde_json::Number::from_f64(f).map(Value::Number)).unwrap_or(Value::Null)).collect();
    }
    let options = FormatOptions::new()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    match ArrayFormatter::try_new(array, &options) {
        Ok(formatter) => (0..array.len()).map(|i| if array.is_null(i) { Value::Null } else { Value::String(formatter.value(i).to_string()) }).collect(),
        Err(_) => vec![Value::Null; array.len()],
    }
}

/// The rows of a batch list as JSON (tests and the kernel's text views).
pub fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<Value>> = batch.columns().iter().map(|c| json_values(c.as_ref())).collect();
        for r in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[r].clone()).collect());
        }
    }
    rows
}
