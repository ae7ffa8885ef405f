//! The dashboard spec: the TOML a `%%dashboard create` cell holds.
//!
//! ```toml
//! title = "Clickstream"            # optional
//! dataset = "clicks"               # the default dataset of every control and visual
//!
//! [[sheet]]
//! name = "Overview"
//! columns = 2                      # the grid's columns (default 2)
//! filter = "device <> 'bot'"       # a SQL predicate on the sheet's rows (optional)
//!
//! [[sheet.control]]                # controls re-filter every visual over their dataset
//! name = "Device"
//! type = "dropdown"                # dropdown, multi_select, slider, date_range
//! field = "device"
//! # slider:     op = "<=" (default), ">=" or "=": the rows the chosen value keeps
//! # date_range: granularity = "day" (default), "week", "month", "quarter" or "year"
//!
//! [[sheet.visual]]
//! type = "bar"                     # bar, line, pie, kpi, table, pivot
//! title = "Top pages"
//! x = "page"                       # bar / line: the dimension on the axis
//! y = ["count(*)"]                 # one measure or a list
//! sort = "value desc"              # value|label asc|desc
//! top = 10
//! span = 2                         # grid columns the visual takes (default 1)
//! ```
//!
//! A measure is `agg(field)`: sum, count, count_distinct, avg, min, max, median, or
//! `percentile(field, P)` (continuous, 0 < P < 100); `count(*)` counts rows. Every error
//! names the spec's line.

use serde::Deserialize;
use toml::Spanned;

use crate::error::Result;
use crate::service_err;

/// How many values a dropdown or slider may have: every choice is precomputed (so count
/// distinct and percentiles stay exact in the browser), so the published page grows with them.
pub const MAX_CONTROL_VALUES: usize = 100;
/// How many values a multi-select may have: each of its 2^n − 1 selections is precomputed.
pub const MAX_MULTI_SELECT_VALUES: usize = 8;
/// How many periods a date range may span: each of its n(n+1)/2 ranges is precomputed.
pub const MAX_DATE_RANGE_PERIODS: usize = 62;
/// How many combinations of choices a sheet's controls may make together.
pub const MAX_CHOICES: usize = 2_000;
/// How many visuals one sheet may hold.
pub const MAX_VISUALS: usize = 30;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    title: Option<Spanned<String>>,
    dataset: Option<Spanned<String>>,
    #[serde(default)]
    sheet: Vec<Spanned<RawSheet>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSheet {
    name: Option<Spanned<String>>,
    columns: Option<Spanned<i64>>,
    filter: Option<Spanned<String>>,
    dataset: Option<Spanned<String>>,
    #[serde(default)]
    control: Vec<Spanned<RawControl>>,
    #[serde(default)]
    visual: Vec<Spanned<RawVisual>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    field: Spanned<String>,
    dataset: Option<Spanned<String>>,
    op: Option<Spanned<String>>,
    granularity: Option<Spanned<String>>,
}

/// One name or a list of them (`y = "count(*)"` or `y = ["sum(a)", "avg(b)"]`): kept as a
/// TOML value because spans do not survive serde's untagged enums.
type OneOrMany = toml::Value;

/// The strings of a one-or-many value, each with the value's span.
fn items(text: &str, value: &Spanned<OneOrMany>) -> Result<Vec<Spanned<String>>> {
    let span = value.span();
    let one = |v: &toml::Value| v.as_str().map(|s| Spanned::new(span.clone(), s.to_string()));
    match value.get_ref() {
        toml::Value::Array(values) => values.iter().map(|v| one(v).ok_or_else(|| spec_err(text, span.start, "a list of field names or measures holds strings"))).collect(),
        v => one(v).map(|s| vec![s]).ok_or_else(|| spec_err(text, span.start, "write a string or a list of strings")),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVisual {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    title: Option<Spanned<String>>,
    dataset: Option<Spanned<String>>,
    filter: Option<Spanned<String>>,
    span: Option<Spanned<i64>>,
    x: Option<Spanned<String>>,
    y: Option<Spanned<OneOrMany>>,
    color: Option<Spanned<String>>,
    group: Option<Spanned<OneOrMany>>,
    value: Option<Spanned<String>>,
    values: Option<Spanned<OneOrMany>>,
    target: Option<Spanned<String>>,
    rows: Option<Spanned<OneOrMany>>,
    columns: Option<Spanned<OneOrMany>>,
    subtotals: Option<Spanned<bool>>,
    orientation: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    donut: Option<Spanned<bool>>,
    sort: Option<Spanned<String>>,
    top: Option<Spanned<i64>>,
    lines: Option<Spanned<OneOrMany>>,
    size: Option<Spanned<String>>,
    bins: Option<Spanned<i64>>,
}

/// A parsed, checked spec (field names are checked against the datasets when it is built).
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub title: Option<String>,
    pub sheets: Vec<Sheet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    pub name: String,
    pub columns: usize,
    pub filter: Option<Located<String>>,
    pub controls: Vec<Control>,
    pub visuals: Vec<Visual>,
}

/// A value with the spec line it came from (1-based), so later checks can name the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// One value, or all.
    Dropdown,
    /// Any set of values (all when none or every one is ticked).
    MultiSelect,
    /// One value of an ordered field, keeping the rows `op` it.
    Slider,
    /// A contiguous range of periods of a date field.
    DateRange,
}

impl ControlKind {
    pub fn name(self) -> &'static str {
        match self {
            ControlKind::Dropdown => "dropdown",
            ControlKind::MultiSelect => "multi_select",
            ControlKind::Slider => "slider",
            ControlKind::DateRange => "date_range",
        }
    }
}

/// Which rows a slider's value keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SliderOp {
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "=")]
    Equal,
}

/// A date range's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Granularity {
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Quarter => "quarter",
            Granularity::Year => "year",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    pub name: String,
    pub kind: ControlKind,
    pub op: SliderOp,
    pub granularity: Granularity,
    pub field: Located<String>,
    pub dataset: Located<String>,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisualKind {
    Bar,
    Line,
    Area,
    Combo,
    Scatter,
    Pie,
    Heatmap,
    Treemap,
    Histogram,
    Box,
    Kpi,
    Gauge,
    Table,
    Pivot,
    Funnel,
    Waterfall,
}

impl VisualKind {
    pub const ALL: [(&'static str, VisualKind); 16] = [
        ("bar", VisualKind::Bar),
        ("line", VisualKind::Line),
        ("area", VisualKind::Area),
        ("combo", VisualKind::Combo),
        ("scatter", VisualKind::Scatter),
        ("pie", VisualKind::Pie),
        ("heatmap", VisualKind::Heatmap),
        ("treemap", VisualKind::Treemap),
        ("histogram", VisualKind::Histogram),
        ("box", VisualKind::Box),
        ("kpi", VisualKind::Kpi),
        ("gauge", VisualKind::Gauge),
        ("table", VisualKind::Table),
        ("pivot", VisualKind::Pivot),
        ("funnel", VisualKind::Funnel),
        ("waterfall", VisualKind::Waterfall),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// The keys a visual of this kind takes (beyond type, title, dataset, filter, span).
    fn keys(self) -> &'static [&'static str] {
        match self {
            VisualKind::Bar => &["x", "y", "color", "orientation", "mode", "sort", "top"],
            VisualKind::Line => &["x", "y", "color", "sort", "top"],
            VisualKind::Area => &["x", "y", "color", "mode", "sort", "top"],
            VisualKind::Combo => &["x", "y", "lines", "sort", "top"],
            VisualKind::Scatter => &["group", "x", "y", "size", "top", "sort"],
            VisualKind::Pie => &["group", "value", "donut", "sort", "top"],
            VisualKind::Heatmap => &["rows", "columns", "value"],
            VisualKind::Treemap => &["group", "value", "sort", "top"],
            VisualKind::Histogram => &["x", "bins"],
            VisualKind::Box => &["group", "value"],
            VisualKind::Kpi => &["value", "target"],
            VisualKind::Gauge => &["value", "target"],
            VisualKind::Table => &["group", "values", "sort", "top"],
            VisualKind::Pivot => &["rows", "columns", "values", "subtotals"],
            VisualKind::Funnel => &["group", "value", "sort", "top"],
            VisualKind::Waterfall => &["group", "value", "sort", "top"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agg {
    Sum,
    Count,
    CountDistinct,
    Avg,
    Min,
    Max,
    Median,
    Percentile,
}

impl Agg {
    const NAMES: [(&'static str, Agg); 11] = [
        ("sum", Agg::Sum),
        ("count", Agg::Count),
        ("count_distinct", Agg::CountDistinct),
        ("distinct_count", Agg::CountDistinct),
        ("avg", Agg::Avg),
        ("average", Agg::Avg),
        ("min", Agg::Min),
        ("max", Agg::Max),
        ("median", Agg::Median),
        ("percentile", Agg::Percentile),
        ("percentile_cont", Agg::Percentile),
    ];

    /// Whether the aggregation needs a numeric field (min and max also take text and dates).
    pub fn numeric(self) -> bool {
        matches!(self, Agg::Sum | Agg::Avg | Agg::Median | Agg::Percentile)
    }
}

/// `sum(amount)`, `count(*)`, `percentile(latency, 95)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measure {
    pub agg: Agg,
    /// None for `count(*)`.
    pub field: Option<String>,
    /// The percentile, 0 < p < 100.
    pub percentile: Option<f64>,
    /// The text as written: the measure's label.
    pub label: String,
}

impl Measure {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let trimmed = text.trim();
        let (name, rest) = trimmed.split_once('(').ok_or_else(|| format!("{trimmed:?} is not a measure: write agg(field), e.g. sum(amount) or count(*)"))?;
        let inner = rest.trim_end().strip_suffix(')').ok_or_else(|| format!("{trimmed:?}: the measure has no closing parenthesis"))?;
        let name = name.trim().to_ascii_lowercase();
        let agg = Agg::NAMES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a).ok_or_else(|| {
            format!("{trimmed:?}: unknown aggregation {name:?}; the aggregations are sum, count, count_distinct, avg, min, max, median, percentile(field, P)")
        })?;
        let mut parts = inner.splitn(2, ',');
        let field = parts.next().unwrap_or_default().trim();
        let extra = parts.next().map(str::trim);
        let field = match field {
            "*" if agg == Agg::Count => None,
            "*" => return Err(format!("{trimmed:?}: only count takes *")),
            "" => return Err(format!("{trimmed:?}: the measure names no field")),
            f => Some(field_name(f).ok_or_else(|| format!("{trimmed:?}: {f:?} is not a field name"))?),
        };
        let percentile = match (agg, extra) {
            (Agg::Percentile, Some(p)) => {
                let p: f64 = p.parse().map_err(|_| format!("{trimmed:?}: the percentile {p:?} is not a number"))?;
                if !(p > 0.0 && p < 100.0) {
                    return Err(format!("{trimmed:?}: the percentile must be between 0 and 100 (exclusive)"));
                }
                Some(p)
            }
            (Agg::Percentile, None) => return Err(format!("{trimmed:?}: percentile takes the field and P, e.g. percentile(latency, 95)")),
            (_, Some(_)) => return Err(format!("{trimmed:?}: {name} takes one field")),
            (_, None) => None,
        };
        Ok(Self { agg, field, percentile, label: trimmed.to_string() })
    }
}

/// A field as written: a bare identifier or a double-quoted name.
fn field_name(text: &str) -> Option<String> {
    let text = text.trim();
    if let Some(quoted) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return (!quoted.is_empty() && !quoted.contains('"')).then(|| quoted.to_string());
    }
    let mut chars = text.chars();
    let first = chars.next()?;
    ((first.is_alphabetic() || first == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')).then(|| text.to_string())
}

/// A field name as a measure's argument: bare when it is an identifier, else double-quoted.
fn quoted(name: &str) -> String {
    if field_name(name).as_deref() == Some(name) && !name.starts_with('"') { name.to_string() } else { format!("\"{name}\"") }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    Label,
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sort {
    pub by: SortBy,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Visual {
    pub kind: VisualKind,
    pub title: String,
    pub dataset: Located<String>,
    pub filter: Option<Located<String>>,
    pub span: usize,
    /// The grouping fields, in order: bar/line x then color; pie/table group; pivot rows then columns.
    pub dims: Vec<Located<String>>,
    /// How many of `dims` are a pivot's rows (the rest are its columns).
    pub pivot_rows: usize,
    pub measures: Vec<Located<Measure>>,
    /// A KPI's comparison: its value against this measure.
    pub target: Option<Located<Measure>>,
    pub subtotals: bool,
    pub horizontal: bool,
    pub stacked: bool,
    pub donut: bool,
    pub sort: Option<Sort>,
    pub top: Option<usize>,
    /// A combo's last measures, drawn as lines on a second axis.
    pub line_measures: usize,
    /// A histogram's numeric field and its number of bins.
    pub histogram: Option<(Located<String>, usize)>,
    pub line: usize,
}

/// Where a byte offset is in the text, as a 1-based line.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).unwrap_or(text).matches('\n').count() + 1
}

fn spec_err(text: &str, offset: usize, message: impl std::fmt::Display) -> crate::error::Error {
    service_err!(InvalidParameterValueException, "line {}: {message}", line_of(text, offset))
}

/// Parses and checks a spec's shape; field names are checked when the dashboard is built.
pub fn parse(text: &str) -> Result<Spec> {
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        let message = e.message().trim().replace('\n', " ");
        service_err!(InvalidParameterValueException, "line {line}: {message}")
            .with_hint("the spec is TOML: title, dataset, then [[sheet]] tables with [[sheet.control]] and [[sheet.visual]] (see `%dashboard?`)")
    })?;
    let default_dataset = raw.dataset.as_ref().map(|d| Located { value: d.get_ref().clone(), line: line_of(text, d.span().start) });
    if raw.sheet.is_empty() {
        return Err(spec_err(text, 0, "the dashboard has no [[sheet]]"));
    }
    let mut sheets = Vec::new();
    for (number, sheet) in raw.sheet.into_iter().enumerate() {
        let sheet_start = sheet.span().start;
        let sheet = sheet.into_inner();
        let name = sheet.name.map(Spanned::into_inner).unwrap_or_else(|| format!("Sheet {}", number + 1));
        let columns = match sheet.columns {
            Some(c) if !(1..=6).contains(c.get_ref()) => return Err(spec_err(text, c.span().start, "columns is between 1 and 6")),
            Some(c) => *c.get_ref() as usize,
            None => 2,
        };
        let located = |s: &Spanned<String>| Located { value: s.get_ref().clone(), line: line_of(text, s.span().start) };
        let sheet_dataset = sheet.dataset.as_ref().map(located).or_else(|| default_dataset.clone());
        let dataset_for = |own: &Option<Spanned<String>>, at: usize| -> Result<Located<String>> {
            own.as_ref().map(located).or_else(|| sheet_dataset.clone()).ok_or_else(|| {
                spec_err(text, at, "which dataset? give `dataset = \"NAME\"` at the top of the spec, on the sheet or here")
            })
        };
        let filter = sheet.filter.as_ref().map(located);
        let mut controls: Vec<Control> = Vec::new();
        for control in sheet.control {
            let at = control.span().start;
            let control = control.into_inner();
            let kind = match control.kind.get_ref().as_str() {
                "dropdown" => ControlKind::Dropdown,
                "multi_select" => ControlKind::MultiSelect,
                "slider" => ControlKind::Slider,
                "date_range" => ControlKind::DateRange,
                other => {
                    return Err(spec_err(
                        text,
                        control.kind.span().start,
                        format!("unknown control type {other:?}; the control types are: dropdown, multi_select, slider, date_range"),
                    ));
                }
            };
            let field = located(&control.field);
            if field_name(&field.value).is_none() {
                return Err(spec_err(text, control.field.span().start, format!("{:?} is not a field name", field.value)));
            }
            let op = match &control.op {
                None => SliderOp::AtMost,
                Some(op) if kind != ControlKind::Slider => return Err(spec_err(text, op.span().start, format!("a {} control has no `op` (a slider has)", kind.name()))),
                Some(op) => match op.get_ref().trim() {
                    "<=" => SliderOp::AtMost,
                    ">=" => SliderOp::AtLeast,
                    "=" => SliderOp::Equal,
                    other => return Err(spec_err(text, op.span().start, format!("a slider's op is \"<=\", \">=\" or \"=\", not {other:?}"))),
                },
            };
            let granularity = match &control.granularity {
                None => Granularity::Day,
                Some(g) if kind != ControlKind::DateRange => {
                    return Err(spec_err(text, g.span().start, format!("a {} control has no `granularity` (a date_range has)", kind.name())));
                }
                Some(g) => match g.get_ref().trim().to_ascii_lowercase().as_str() {
                    "day" => Granularity::Day,
                    "week" => Granularity::Week,
                    "month" => Granularity::Month,
                    "quarter" => Granularity::Quarter,
                    "year" => Granularity::Year,
                    other => return Err(spec_err(text, g.span().start, format!("a date range's granularity is day, week, month, quarter or year, not {other:?}"))),
                },
            };
            let control_name = control.name.map(Spanned::into_inner).unwrap_or_else(|| field.value.clone());
            if controls.iter().any(|c| c.name == control_name) {
                return Err(spec_err(text, at, format!("sheet {name:?} has two controls named {control_name:?}")));
            }
            controls.push(Control {
                name: control_name,
                kind,
                op,
                granularity,
                dataset: dataset_for(&control.dataset, at)?,
                field: Located { value: field_name(&field.value).unwrap_or_default(), line: field.line },
                line: line_of(text, at),
            });
        }
        if sheet.visual.is_empty() {
            return Err(spec_err(text, sheet_start, format!("sheet {name:?} has no [[sheet.visual]]")));
        }
        if sheet.visual.len() > MAX_VISUALS {
            return Err(spec_err(text, sheet.visual[MAX_VISUALS].span().start, format!("a sheet holds at most {MAX_VISUALS} visuals")));
        }
        let mut visuals = Vec::new();
        for visual in sheet.visual {
            visuals.push(visual_of(text, visual, &dataset_for)?);
        }
        sheets.push(Sheet { name, columns, filter, controls, visuals });
    }
    Ok(Spec { title: raw.title.map(Spanned::into_inner), sheets })
}

fn visual_of(text: &str, visual: Spanned<RawVisual>, dataset_for: &dyn Fn(&Option<Spanned<String>>, usize) -> Result<Located<String>>) -> Result<Visual> {
    let at = visual.span().start;
    let line = line_of(text, at);
    let v = visual.into_inner();
    let kind_text = v.kind.get_ref().to_ascii_lowercase();
    let kind = VisualKind::ALL.iter().find(|(n, _)| *n == kind_text).map(|(_, k)| *k).ok_or_else(|| {
        let names: Vec<&str> = VisualKind::ALL.iter().map(|(n, _)| *n).collect();
        spec_err(text, v.kind.span().start, format!("unknown visual type {:?}; the visual types are: {}", v.kind.get_ref(), names.join(", ")))
    })?;
    // Keys that belong to other kinds of visual are a mistake worth naming.
    let given: [(&str, Option<usize>); 18] = [
        ("lines", v.lines.as_ref().map(|s| s.span().start)),
        ("size", v.size.as_ref().map(|s| s.span().start)),
        ("bins", v.bins.as_ref().map(|s| s.span().start)),
        ("x", v.x.as_ref().map(|s| s.span().start)),
        ("y", v.y.as_ref().map(|s| s.span().start)),
        ("color", v.color.as_ref().map(|s| s.span().start)),
        ("group", v.group.as_ref().map(|s| s.span().start)),
        ("value", v.value.as_ref().map(|s| s.span().start)),
        ("values", v.values.as_ref().map(|s| s.span().start)),
        ("target", v.target.as_ref().map(|s| s.span().start)),
        ("rows", v.rows.as_ref().map(|s| s.span().start)),
        ("columns", v.columns.as_ref().map(|s| s.span().start)),
        ("subtotals", v.subtotals.as_ref().map(|s| s.span().start)),
        ("orientation", v.orientation.as_ref().map(|s| s.span().start)),
        ("mode", v.mode.as_ref().map(|s| s.span().start)),
        ("donut", v.donut.as_ref().map(|s| s.span().start)),
        ("sort", v.sort.as_ref().map(|s| s.span().start)),
        ("top", v.top.as_ref().map(|s| s.span().start)),
    ];
    for (key, start) in given {
        if let Some(start) = start
            && !kind.keys().contains(&key)
        {
            return Err(spec_err(text, start, format!("a {} visual has no `{key}`; it takes {}", kind.name(), kind.keys().join(", "))));
        }
    }
    let dim = |s: &Spanned<String>| -> Result<Located<String>> {
        let name = field_name(s.get_ref()).ok_or_else(|| spec_err(text, s.span().start, format!("{:?} is not a field name", s.get_ref())))?;
        Ok(Located { value: name, line: line_of(text, s.span().start) })
    };
    let dims_of = |s: &Option<Spanned<OneOrMany>>| -> Result<Vec<Located<String>>> {
        match s {
            None => Ok(Vec::new()),
            Some(s) => items(text, s)?.iter().map(&dim).collect(),
        }
    };
    let measure = |s: &Spanned<String>| -> Result<Located<Measure>> {
        let m = Measure::parse(s.get_ref()).map_err(|e| spec_err(text, s.span().start, e))?;
        Ok(Located { value: m, line: line_of(text, s.span().start) })
    };
    let measures_of = |s: &Option<Spanned<OneOrMany>>| -> Result<Vec<Located<Measure>>> {
        match s {
            None => Ok(Vec::new()),
            Some(s) => items(text, s)?.iter().map(&measure).collect(),
        }
    };
    let need = |what: &str| spec_err(text, at, format!("a {} visual needs `{what}`", kind.name()));
    let mut dims = Vec::new();
    let mut pivot_rows = 0;
    let mut measures = Vec::new();
    let mut line_measures = 0;
    let mut histogram = None;
    match kind {
        VisualKind::Bar | VisualKind::Line | VisualKind::Area | VisualKind::Combo => {
            dims.push(dim(v.x.as_ref().ok_or_else(|| need("x"))?)?);
            if let Some(color) = &v.color {
                dims.push(dim(color)?);
            }
            measures = measures_of(&v.y)?;
            if measures.is_empty() {
                return Err(need("y"));
            }
            if v.color.is_some() && measures.len() > 1 {
                return Err(spec_err(text, at, "with `color` a visual plots one measure in `y` (one series per color value)"));
            }
            if kind == VisualKind::Combo {
                let lines = measures_of(&v.lines)?;
                if lines.is_empty() {
                    return Err(need("lines"));
                }
                line_measures = lines.len();
                measures.extend(lines);
            }
        }
        VisualKind::Scatter => {
            dims = dims_of(&v.group)?;
            if dims.len() != 1 {
                return Err(spec_err(text, at, "a scatter visual needs one field in `group` (a point per value)"));
            }
            measures.push(measure(v.x.as_ref().ok_or_else(|| need("x"))?)?);
            let y = match &v.y {
                Some(y) => items(text, y)?,
                None => Vec::new(),
            };
            measures.push(measure(y.first().ok_or_else(|| need("y"))?)?);
            if let Some(size) = &v.size {
                measures.push(measure(size)?);
            }
        }
        VisualKind::Pie | VisualKind::Funnel | VisualKind::Waterfall => {
            dims = dims_of(&v.group)?;
            if dims.len() != 1 {
                return Err(spec_err(text, at, format!("a {} visual needs one field in `group`", kind.name())));
            }
            measures.push(measure(v.value.as_ref().ok_or_else(|| need("value"))?)?);
        }
        VisualKind::Treemap => {
            dims = dims_of(&v.group)?;
            if !(1..=2).contains(&dims.len()) {
                return Err(spec_err(text, at, "a treemap visual groups by one field, or two (parent, child)"));
            }
            measures.push(measure(v.value.as_ref().ok_or_else(|| need("value"))?)?);
        }
        VisualKind::Heatmap => {
            dims = dims_of(&v.rows)?;
            dims.extend(dims_of(&v.columns)?);
            if dims.len() != 2 {
                return Err(spec_err(text, at, "a heatmap visual needs one field in `rows` and one in `columns`"));
            }
            pivot_rows = 1;
            measures.push(measure(v.value.as_ref().ok_or_else(|| need("value"))?)?);
        }
        VisualKind::Histogram => {
            let field = dim(v.x.as_ref().ok_or_else(|| need("x"))?)?;
            let bins = match &v.bins {
                Some(b) if !(1..=200).contains(b.get_ref()) => return Err(spec_err(text, b.span().start, "bins is between 1 and 200")),
                Some(b) => *b.get_ref() as usize,
                None => 20,
            };
            measures.push(Located { value: Measure::parse(&format!("count({})", quoted(&field.value))).map_err(|e| spec_err(text, at, e))?, line: field.line });
            histogram = Some((field, bins));
        }
        VisualKind::Box => {
            dims = dims_of(&v.group)?;
            if dims.len() > 1 {
                return Err(spec_err(text, at, "a box visual groups by at most one field"));
            }
            let value = v.value.as_ref().ok_or_else(|| need("value"))?;
            let field = dim(value).map_err(|_| spec_err(text, value.span().start, "a box visual's `value` is a numeric field (its five numbers are computed)"))?;
            let f = quoted(&field.value);
            for m in [format!("min({f})"), format!("percentile({f}, 25)"), format!("median({f})"), format!("percentile({f}, 75)"), format!("max({f})")] {
                measures.push(Located { value: Measure::parse(&m).map_err(|e| spec_err(text, at, e))?, line: field.line });
            }
        }
        VisualKind::Kpi | VisualKind::Gauge => measures.push(measure(v.value.as_ref().ok_or_else(|| need("value"))?)?),
        VisualKind::Table => {
            dims = dims_of(&v.group)?;
            measures = measures_of(&v.values)?;
            if dims.is_empty() && measures.is_empty() {
                return Err(need("group or values"));
            }
        }
        VisualKind::Pivot => {
            dims = dims_of(&v.rows)?;
            pivot_rows = dims.len();
            dims.extend(dims_of(&v.columns)?);
            measures = measures_of(&v.values)?;
            if pivot_rows == 0 {
                return Err(need("rows"));
            }
            if measures.is_empty() {
                return Err(need("values"));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &dims {
        if !seen.insert(d.value.to_ascii_lowercase()) {
            return Err(spec_err(text, at, format!("the field {} is used twice in one visual", d.value)));
        }
    }
    let span = match &v.span {
        Some(s) if !(1..=6).contains(s.get_ref()) => return Err(spec_err(text, s.span().start, "span is between 1 and 6")),
        Some(s) => *s.get_ref() as usize,
        None => 1,
    };
    let horizontal = match &v.orientation {
        None => false,
        Some(o) => match o.get_ref().as_str() {
            "vertical" => false,
            "horizontal" => true,
            other => return Err(spec_err(text, o.span().start, format!("orientation {other:?}: vertical or horizontal"))),
        },
    };
    let stacked = match &v.mode {
        None => false,
        Some(m) => match m.get_ref().as_str() {
            "clustered" => false,
            "stacked" => true,
            other => return Err(spec_err(text, m.span().start, format!("mode {other:?}: clustered or stacked"))),
        },
    };
    let sort = match &v.sort {
        None => None,
        Some(s) => {
            let mut words = s.get_ref().split_whitespace();
            let by = match words.next() {
                Some("value") => SortBy::Value,
                Some("label") => SortBy::Label,
                _ => return Err(spec_err(text, s.span().start, format!("sort {:?}: write `value desc`, `value asc`, `label asc` or `label desc`", s.get_ref()))),
            };
            let descending = match (words.next(), words.next()) {
                (None | Some("asc"), None) => false,
                (Some("desc"), None) => true,
                _ => return Err(spec_err(text, s.span().start, format!("sort {:?}: the order is asc or desc", s.get_ref()))),
            };
            Some(Sort { by, descending })
        }
    };
    let top = match &v.top {
        None => None,
        Some(t) if !(1..=10_000).contains(t.get_ref()) => return Err(spec_err(text, t.span().start, "top is between 1 and 10000")),
        Some(t) => Some(*t.get_ref() as usize),
    };
    Ok(Visual {
        kind,
        title: v.title.map(Spanned::into_inner).unwrap_or_else(|| match (kind, &histogram, v.value.as_ref()) {
            (VisualKind::Histogram, Some((field, _)), _) => format!("distribution of {}", field.value),
            (VisualKind::Box, _, Some(value)) if dims.is_empty() => value.get_ref().clone(),
            (VisualKind::Box, _, Some(value)) => format!("{} by {}", value.get_ref(), dims[0].value),
            _ => default_title(kind, &dims, &measures),
        }),
        dataset: dataset_for(&v.dataset, at)?,
        filter: v.filter.as_ref().map(|f| Located { value: f.get_ref().clone(), line: line_of(text, f.span().start) }),
        span,
        dims,
        pivot_rows,
        measures,
        target: v.target.as_ref().map(measure).transpose()?,
        subtotals: v.subtotals.map(Spanned::into_inner).unwrap_or(true),
        horizontal,
        stacked,
        donut: v.donut.map(Spanned::into_inner).unwrap_or(false),
        sort,
        top,
        line_measures,
        histogram,
        line,
    })
}

fn default_title(kind: VisualKind, dims: &[Located<String>], measures: &[Located<Measure>]) -> String {
    let what: Vec<&str> = measures.iter().map(|m| m.value.label.as_str()).collect();
    let by: Vec<&str> = dims.iter().map(|d| d.value.as_str()).collect();
    match (what.is_empty(), by.is_empty()) {
        (false, false) => format!("{} by {}", what.join(", "), by.join(", ")),
        (false, true) => what.join(", "),
        (true, false) => by.join(", "),
        (true, true) => kind.name().to_string(),
    }
}

#[cfg(test)]
mod tests;
