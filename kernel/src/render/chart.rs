//! Plotly charts of a result: `application/vnd.plotly.v1+json` for JupyterLab's Plotly
//! renderer, a `text/html` fallback that draws the same figure with plotly.js embedded (no
//! network: nbconvert exports and front ends without the renderer), and a `text/plain` summary.
//!
//! plotly.js is 4.6 MB, so it rides along with the first chart of a kernel session only; later
//! charts' HTML finds `window.Plotly` already loaded, as plotly.py's offline mode does.

use std::collections::BTreeMap;

use arrow_array::{Array, Float64Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use plotly::common::{Fill, Mode, Title};
use plotly::histogram::HistFunc;
use plotly::layout::{Axis, BarMode};
use plotly::{Bar, Histogram, Layout, Pie, Plot, Scatter, Trace};
use serde_json::{Value, json};

use super::Bundle;
use crate::error::CellError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChartKind {
    Bar,
    Line,
    Scatter,
    Area,
    Pie,
    Histogram,
}

impl ChartKind {
    fn name(self) -> &'static str {
        match self {
            ChartKind::Bar => "bar",
            ChartKind::Line => "line",
            ChartKind::Scatter => "scatter",
            ChartKind::Area => "area",
            ChartKind::Pie => "pie",
            ChartKind::Histogram => "histogram",
        }
    }
}

/// The chart flags of every magic that can draw its rows (`%sql`, `%analytics peek`):
/// `--chart KIND --x COL --y COL [--color COL] [--title T]`, flattened into its clap args.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChartArgs {
    /// Draw the result as a chart instead of a table
    #[arg(long, value_enum, value_name = "KIND")]
    pub chart: Option<ChartKind>,
    /// Column for the x axis (pie: the slice labels)
    #[arg(long, value_name = "COL", requires = "chart")]
    pub x: Option<String>,
    /// Column for the y axis (pie: the slice sizes; histogram: optional weights)
    #[arg(long, value_name = "COL", requires = "chart")]
    pub y: Option<String>,
    /// One series per value of this column
    #[arg(long, value_name = "COL", requires = "chart")]
    pub color: Option<String>,
    /// The chart's title
    #[arg(long, value_name = "TEXT", requires = "chart")]
    pub title: Option<String>,
}

impl ChartArgs {
    /// What to draw (None without `--chart`); `default_title` when no `--title` is given.
    pub fn spec(&self, default_title: Option<String>) -> Result<Option<ChartSpec>, CellError> {
        let Some(kind) = self.chart else { return Ok(None) };
        let x = self.x.clone().ok_or_else(|| CellError::usage("--chart needs --x COLUMN (and --y COLUMN)"))?;
        Ok(Some(ChartSpec { kind, x, y: self.y.clone(), color: self.color.clone(), title: self.title.clone().or(default_title) }))
    }
}

/// What to draw: `--chart KIND --x COL --y COL [--color COL] [--title T]`.
#[derive(Debug, Clone)]
pub struct ChartSpec {
    pub kind: ChartKind,
    pub x: String,
    pub y: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
}

/// The chart of `batch` as a mime bundle; `with_library` embeds plotly.js in the HTML (the
/// session's first chart).
pub fn chart(spec: &ChartSpec, batch: &RecordBatch, with_library: bool) -> Result<Bundle, CellError> {
    let x_index = column(batch, &spec.x, "--x")?;
    let y_index = match (&spec.y, spec.kind) {
        (Some(y), _) => Some(column(batch, y, "--y")?),
        (None, ChartKind::Histogram) => None,
        (None, kind) => {
            return Err(CellError::usage(format!("a {} chart needs --y COLUMN", kind.name())).with_detail(columns_line(batch)));
        }
    };
    if let Some(y) = y_index {
        let field = batch.schema().field(y).clone();
        if !field.data_type().is_numeric() && spec.kind != ChartKind::Scatter {
            return Err(CellError::usage(format!(
                "--y {} is {}, not a number; a {} chart plots numbers",
                field.name(),
                lakebook_engine::catalog::types::glue_type(field.data_type()),
                spec.kind.name()
            )));
        }
    }
    let color_index = spec.color.as_deref().map(|c| column(batch, c, "--color")).transpose()?;
    if color_index.is_some() && spec.kind == ChartKind::Pie {
        return Err(CellError::usage("a pie chart has one series: --color does not apply (the slices are the --x values)"));
    }

    let xs = values(batch.column(x_index).as_ref());
    let ys = y_index.map(|i| values(batch.column(i).as_ref()));
    let groups = match color_index {
        Some(i) => group_rows(&values(batch.column(i).as_ref())),
        None => vec![(String::new(), (0..batch.num_rows()).collect())],
    };
    let x_name = batch.schema().field(x_index).name().clone();
    let y_name = y_index.map(|i| batch.schema().field(i).name().clone());

    let mut plot = Plot::new();
    for (group, rows) in &groups {
        let pick = |column: &[Value]| -> Vec<Value> { rows.iter().map(|&r| column[r].clone()).collect() };
        let gx = pick(&xs);
        let gy = ys.as_deref().map(pick);
        let trace: Box<dyn Trace> = match (spec.kind, gy) {
            (ChartKind::Bar, Some(gy)) => Bar::new(gx, gy).name(group),
            (ChartKind::Line, Some(gy)) => Scatter::new(gx, gy).mode(Mode::Lines).name(group),
            (ChartKind::Scatter, Some(gy)) => Scatter::new(gx, gy).mode(Mode::Markers).name(group),
            (ChartKind::Area, Some(gy)) if groups.len() > 1 => Scatter::new(gx, gy).mode(Mode::Lines).stack_group("area").name(group),
            (ChartKind::Area, Some(gy)) => Scatter::new(gx, gy).mode(Mode::Lines).fill(Fill::ToZeroY).name(group),
            (ChartKind::Pie, Some(gy)) => Pie::new(gy).labels(gx.iter().map(label).collect()),
            (ChartKind::Histogram, Some(gy)) => Histogram::new_xy(gx, gy).hist_func(HistFunc::Sum).name(group),
            (ChartKind::Histogram, None) => Histogram::new(gx).name(group),
            (kind, None) => return Err(CellError::bug(format!("a {} chart reached drawing without --y", kind.name()))),
        };
        plot.add_trace(trace);
    }
    let y_title = match (&y_name, spec.kind) {
        (Some(y), ChartKind::Histogram) => format!("sum of {y}"),
        (Some(y), _) => y.clone(),
        (None, _) => "count".to_string(),
    };
    let mut layout = Layout::new().height(420);
    if spec.kind != ChartKind::Pie {
        layout = layout.x_axis(Axis::new().title(Title::from(x_name.as_str()))).y_axis(Axis::new().title(Title::from(y_title.as_str())));
    }
    if let Some(title) = &spec.title {
        layout = layout.title(Title::from(title.as_str()));
    }
    if spec.kind == ChartKind::Bar && groups.len() > 1 {
        layout = layout.bar_mode(BarMode::Group);
    }
    if color_index.is_none() {
        layout = layout.show_legend(false);
    }
    plot.set_layout(layout);

    let figure = serde_json::to_value(&plot).map_err(|e| CellError::bug(format!("serialising the chart: {e}")))?;
    let summary = summary(spec, &x_name, y_name.as_deref(), batch.num_rows(), &groups);
    let mut bundle = Bundle::new();
    bundle.insert("text/plain".into(), Value::String(summary));
    bundle.insert("text/html".into(), Value::String(html(&figure, with_library)));
    bundle.insert("application/vnd.plotly.v1+json".into(), figure);
    Ok(bundle)
}

/// The index of `name` in the result (case-insensitively, as SQL names are), or a usage error
/// listing the columns.
fn column(batch: &RecordBatch, name: &str, flag: &str) -> Result<usize, CellError> {
    let schema = batch.schema();
    if let Some(i) = schema.fields().iter().position(|f| f.name() == name).or_else(|| {
        schema.fields().iter().position(|f| f.name().eq_ignore_ascii_case(name))
    }) {
        return Ok(i);
    }
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let hint = lakebook_engine::error::closest(name, &names).map(|c| format!(" Did you mean {c}?")).unwrap_or_default();
    Err(CellError::usage(format!("{flag} {name}: the result has no column {name}.{hint}")).with_detail(columns_line(batch)))
}

fn columns_line(batch: &RecordBatch) -> String {
    let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    format!("columns: {}", names.join(", "))
}

/// A column as JSON values Plotly understands: numbers, ISO date-times, text, null.
fn values(array: &dyn Array) -> Vec<Value> {
    let data_type = array.data_type();
    if data_type.is_numeric()
        && let Ok(cast) = arrow_cast::cast(array, &DataType::Float64)
        && let Some(floats) = cast.as_any().downcast_ref::<Float64Array>()
    {
        return floats.iter().map(|v| v.map_or(Value::Null, |f| json!(f))).collect();
    }
    let options = FormatOptions::new()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    match ArrayFormatter::try_new(array, &options) {
        Ok(formatter) => {
            (0..array.len()).map(|i| if array.is_null(i) { Value::Null } else { Value::String(formatter.value(i).to_string()) }).collect()
        }
        Err(_) => vec![Value::Null; array.len()],
    }
}

fn label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".to_string(),
        other => other.to_string(),
    }
}

/// Rows grouped by the colour column's value, groups in order of first appearance.
fn group_rows(colors: &[Value]) -> Vec<(String, Vec<usize>)> {
    let mut order: Vec<String> = Vec::new();
    let mut rows: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, value) in colors.iter().enumerate() {
        let key = label(value);
        if !rows.contains_key(&key) {
            order.push(key.clone());
        }
        rows.entry(key).or_default().push(i);
    }
    order.into_iter().map(|k| (k.clone(), rows.remove(&k).unwrap_or_default())).collect()
}

/// "bar chart of revenue by region (5 rows, 2 series: EU, US)"
fn summary(spec: &ChartSpec, x: &str, y: Option<&str>, rows: usize, groups: &[(String, Vec<usize>)]) -> String {
    let what = match (spec.kind, y) {
        (ChartKind::Histogram, None) => format!("histogram of {x}"),
        (ChartKind::Histogram, Some(y)) => format!("histogram of {x} weighted by {y}"),
        (ChartKind::Pie, Some(y)) => format!("pie chart of {y} by {x}"),
        (kind, Some(y)) => format!("{} chart of {y} by {x}", kind.name()),
        (kind, None) => format!("{} chart of {x}", kind.name()),
    };
    let title = spec.title.as_deref().map(|t| format!("{t}: ")).unwrap_or_default();
    let mut text = format!("{title}{what} ({rows} row{})", if rows == 1 { "" } else { "s" });
    if groups.len() > 1 {
        let names: Vec<&str> = groups.iter().take(8).map(|(g, _)| g.as_str()).collect();
        let more = if groups.len() > 8 { ", …" } else { "" };
        text = format!("{text}, {} series by {}: {}{more}", groups.len(), spec.color.as_deref().unwrap_or(""), names.join(", "));
    }
    text
}

/// A page-unique element id that is the same on every run of a notebook (so a rerun writes
/// the same output): the figure's hash and how many charts this kernel drew before it.
pub(crate) fn chart_id(figure: &Value) -> String {
    use sha2::Digest as _;
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let digest = sha2::Sha256::digest(format!("{n}/{figure}").as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("lakebook-chart-{hex}")
}

/// The figure drawn by plotly.js: the library embedded the first time, then reused.
fn html(figure: &Value, with_library: bool) -> String {
    let id = chart_id(figure);
    let library = if with_library { plotly_js_script() } else { String::new() };
    // `</` inside the JSON would end the script element early.
    let figure = figure.to_string().replace("</", "<\\/");
    format!(
        "{library}<div id=\"{id}\" class=\"plotly-graph-div\" style=\"height:420px; width:100%;\"></div>\n\
         <script type=\"text/javascript\">(function () {{\n\
         var fig = {figure};\n\
         function draw() {{ window.Plotly.newPlot(\"{id}\", fig.data, fig.layout, {{responsive: true}}); }}\n\
         if (window.Plotly) {{ draw(); }} else {{ document.getElementById(\"{id}\").textContent = \
         \"plotly.js is not loaded on this page: re-run the first chart cell of the notebook.\"; }}\n\
         }})();</script>"
    )
}

/// plotly.js in a script element, run with `define`, `module` and `exports` hidden so that a
/// page with RequireJS (classic Notebook) or a CommonJS shim still gets `window.Plotly`
/// instead of an anonymous module. Loaded only when the page does not have Plotly yet.
pub(crate) fn plotly_js_script() -> String {
    let library = plotly_js();
    format!(
        "<script type=\"text/javascript\">/* plotly.js, embedded for offline use */\n\
         if (!window.Plotly) {{ (function (define, module, exports, require) {{\n{library}\n}}).call(window); }}\n\
         </script>\n"
    )
}

/// plotly.js itself (the plotly crate's `offline_js_sources()` is plotly.js followed by
/// MathJax; only plotly.js is needed).
pub(crate) fn plotly_js() -> String {
    let sources = Plot::offline_js_sources();
    sources.split_once('>').and_then(|(_, rest)| rest.split_once("</script>")).map(|(js, _)| js.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("region", Arc::new(StringArray::from(vec!["EU", "US", "EU"])) as ArrayRef),
            ("year", Arc::new(StringArray::from(vec!["2025", "2025", "2026"])) as ArrayRef),
            ("revenue", Arc::new(Int64Array::from(vec![10, 20, 30])) as ArrayRef),
        ])
        .unwrap()
    }

    fn spec(kind: ChartKind, y: Option<&str>, color: Option<&str>) -> ChartSpec {
        ChartSpec { kind, x: "year".into(), y: y.map(Into::into), color: color.map(Into::into), title: Some("Sales".into()) }
    }

    #[test]
    fn a_bar_chart_has_one_trace_per_colour_and_embeds_plotly_when_asked() {
        let first = chart(&spec(ChartKind::Bar, Some("revenue"), Some("region")), &batch(), true).unwrap();
        let figure = &first["application/vnd.plotly.v1+json"];
        let data = figure["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0]["type"], "bar");
        assert_eq!(data[0]["name"], "EU");
        assert_eq!(data[0]["x"], json!(["2025", "2026"]));
        assert_eq!(data[0]["y"], json!([10.0, 30.0]));
        assert_eq!(figure["layout"]["title"]["text"], "Sales");
        assert_eq!(first["text/plain"], "Sales: bar chart of revenue by year (3 rows), 2 series by region: EU, US");
        let html = first["text/html"].as_str().unwrap();
        assert!(html.contains("window.Plotly = Plotly"), "the first chart carries plotly.js");
        // plotly.js is 4.6 MB; MathJax (which offline_js_sources() appends) would add 2 MB more.
        assert!(html.len() < 5_000_000, "only plotly.js is embedded, not MathJax: {} bytes", html.len());
        let second = chart(&spec(ChartKind::Line, Some("revenue"), None), &batch(), false).unwrap();
        let html = second["text/html"].as_str().unwrap();
        assert!(!html.contains("window.Plotly = Plotly") && html.contains("Plotly.newPlot"));
        assert!(html.len() < 10_000);
    }

    #[test]
    fn kinds_map_to_plotly_traces() {
        let pie = chart(&spec(ChartKind::Pie, Some("revenue"), None), &batch(), false).unwrap();
        assert_eq!(pie["application/vnd.plotly.v1+json"]["data"][0]["labels"], json!(["2025", "2025", "2026"]));
        let hist = chart(&spec(ChartKind::Histogram, None, None), &batch(), false).unwrap();
        assert_eq!(hist["application/vnd.plotly.v1+json"]["data"][0]["type"], "histogram");
        let area = chart(&spec(ChartKind::Area, Some("revenue"), None), &batch(), false).unwrap();
        assert_eq!(area["application/vnd.plotly.v1+json"]["data"][0]["fill"], "tozeroy");
    }

    #[test]
    fn bad_columns_are_usage_errors_with_a_suggestion() {
        let err = chart(&spec(ChartKind::Bar, Some("revenu"), None), &batch(), false).unwrap_err();
        assert!(err.evalue.contains("Did you mean revenue?"), "{}", err.evalue);
        let err = chart(&spec(ChartKind::Bar, None, None), &batch(), false).unwrap_err();
        assert!(err.evalue.contains("needs --y"), "{}", err.evalue);
        let err = chart(&spec(ChartKind::Line, Some("region"), None), &batch(), false).unwrap_err();
        assert!(err.evalue.contains("not a number"), "{}", err.evalue);
    }
}
