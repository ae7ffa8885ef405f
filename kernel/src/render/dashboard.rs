//! A built dashboard drawn with Plotly: each sheet is one figure whose visuals sit in a grid
//! (cartesian visuals on their own axes, pies, KPIs and tables in their own domains). Inline,
//! the sheet's first control is Plotly's own dropdown or slider whose choices restyle every
//! trace with the numbers the engine precomputed for that choice — so it works wherever the
//! figure is drawn, untrusted notebooks included (no script of ours runs there); Plotly's
//! menus cannot combine, so the other controls stay at "all" inline.
//!
//! `page` is the published file: one HTML document with every sheet, plotly.js embedded
//! gzip-compressed (unpacked by the browser's DecompressionStream), no network, and HTML
//! controls (select, check boxes, range, from/to) that combine: each visual's frame for the
//! chosen combination is restyled in.

use std::collections::BTreeMap;

use lakebook_engine::dashboards::build::{Built, BuiltControl, BuiltSheet, BuiltVisual, Frame, Row, label};
use lakebook_engine::dashboards::spec::{ControlKind, SliderOp, VisualKind};
use serde_json::{Map, Value, json};

use super::Bundle;
use super::chart::{chart_id, plotly_js, plotly_js_script};

/// One grid row's height in pixels.
const ROW_HEIGHT: usize = 340;
/// Room above the grid for the control.
const TOP: usize = 70;
const COLORS: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Where a visual sits: its domain in paper coordinates.
#[derive(Debug, Clone, Copy)]
struct Cell {
    x: (f64, f64),
    y: (f64, f64),
}

/// Visuals flow left to right into `columns`, each taking `span` columns.
fn grid(sheet: &BuiltSheet) -> (Vec<Cell>, usize) {
    let columns = sheet.columns.max(1);
    let mut places = Vec::new();
    let (mut row, mut col) = (0usize, 0usize);
    for visual in &sheet.visuals {
        let span = visual.span.min(columns);
        if col + span > columns {
            row += 1;
            col = 0;
        }
        places.push((row, col, span));
        col += span;
    }
    let rows = row + 1;
    let height = (rows * ROW_HEIGHT + TOP) as f64;
    let cells = places
        .into_iter()
        .map(|(row, col, span)| {
            let gap_x = 0.06;
            let x0 = col as f64 / columns as f64;
            let x1 = (col + span) as f64 / columns as f64;
            // Room for the title above and the axis labels below.
            let top = 1.0 - (TOP as f64 + (row * ROW_HEIGHT) as f64 + 34.0) / height;
            let bottom = 1.0 - (TOP as f64 + ((row + 1) * ROW_HEIGHT) as f64 - 46.0) / height;
            Cell { x: (x0 + if col == 0 { 0.0 } else { gap_x / 2.0 }, x1 - if col + span == columns { 0.0 } else { gap_x / 2.0 }), y: (bottom.max(0.0), top.min(1.0)) }
        })
        .collect();
    (cells, rows)
}

/// A trace and how to fill its data attributes for one frame.
struct Trace {
    base: Value,
    fill: Box<dyn Fn(&Frame) -> Map<String, Value>>,
}

fn column(rows: &[&Row], get: impl Fn(&Row) -> Value) -> Value {
    Value::Array(rows.iter().map(|r| get(r)).collect())
}

/// Axis values: text labels for text, numbers as they are (a numeric axis).
fn axis_values(values: &[Value]) -> Value {
    if values.iter().all(|v| v.is_number() || v.is_null()) { Value::Array(values.to_vec()) } else { Value::Array(values.iter().map(|v| json!(label(v))).collect()) }
}

/// Numbers by value, anything else by its label.
fn compare_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => label(a).cmp(&label(b)),
    }
}

/// The rows a chart draws (a pivot's totals aside).
fn leaves(frame: &Frame) -> Vec<&Row> {
    frame.rows.iter().filter(|r| !r.totals.iter().any(|t| *t)).collect()
}

/// The series of a colored bar or line: every color value any frame has, in first-seen order.
fn series(visual: &BuiltVisual) -> Vec<Value> {
    let mut names: Vec<Value> = Vec::new();
    for frame in &visual.frames {
        for row in &frame.rows {
            if let Some(v) = row.dims.get(1)
                && !names.contains(v)
            {
                names.push(v.clone());
            }
        }
    }
    names
}

fn traces(visual: &BuiltVisual, index: usize, cell: Cell) -> Vec<Trace> {
    let axis = if index == 1 { String::new() } else { index.to_string() };
    let domain = json!({"x": [cell.x.0, cell.x.1], "y": [cell.y.0, cell.y.1]});
    let mut out = Vec::new();
    match visual.kind {
        VisualKind::Bar | VisualKind::Line | VisualKind::Area | VisualKind::Combo => {
            let colored = visual.dims.len() > 1;
            let names: Vec<Value> = if colored { series(visual) } else { visual.measures.iter().map(|m| json!(m)).collect() };
            let bars = names.len() - if visual.kind == VisualKind::Combo { visual.line_measures } else { 0 };
            for (s, name) in names.iter().enumerate() {
                let mut base = json!({
                    "name": label(name),
                    "xaxis": format!("x{axis}"),
                    "yaxis": format!("y{axis}"),
                    "legendgroup": format!("v{index}"),
                    "showlegend": names.len() > 1,
                    "marker": {"color": COLORS[s % COLORS.len()]},
                });
                let as_bar = visual.kind == VisualKind::Bar || (visual.kind == VisualKind::Combo && s < bars);
                if as_bar {
                    base["type"] = json!("bar");
                    if visual.horizontal {
                        base["orientation"] = json!("h");
                    }
                    if visual.stacked {
                        // Stacked within this visual only: one offset group, each series
                        // starting where the previous ones end.
                        base["offsetgroup"] = json!(format!("v{index}"));
                    }
                } else {
                    base["type"] = json!("scatter");
                    base["mode"] = json!("lines+markers");
                    if visual.kind == VisualKind::Combo {
                        // A combo's lines read against their own axis on the right.
                        base["yaxis"] = json!(format!("y{}", 100 + index));
                    }
                    if visual.kind == VisualKind::Area {
                        base["mode"] = json!("lines");
                        if visual.stacked {
                            base["stackgroup"] = json!(format!("v{index}"));
                        } else {
                            base["fill"] = json!("tozeroy");
                        }
                    }
                }
                let (horizontal, stacked) = (visual.horizontal, visual.stacked && visual.kind == VisualKind::Bar);
                let names = names.clone();
                let fill = move |frame: &Frame| {
                    let rows = leaves(frame);
                    let mut xs: Vec<Value> = Vec::new();
                    for r in &rows {
                        if !xs.contains(&r.dims[0]) {
                            xs.push(r.dims[0].clone());
                        }
                    }
                    let value_at = |x: &Value, series: usize| -> Value {
                        rows.iter()
                            .find(|r| &r.dims[0] == x && if colored { r.dims[1] == names[series] } else { true })
                            .map(|r| if colored { r.measures[0].clone() } else { r.measures[series].clone() })
                            .unwrap_or(Value::Null)
                    };
                    let ys: Vec<Value> = xs.iter().map(|x| value_at(x, s)).collect();
                    let mut data = Map::new();
                    let (kx, ky) = if horizontal { ("y", "x") } else { ("x", "y") };
                    data.insert(kx.into(), axis_values(&xs));
                    data.insert(ky.into(), Value::Array(ys));
                    if stacked {
                        let base: Vec<Value> = xs.iter().map(|x| json!((0..s).map(|p| value_at(x, p).as_f64().unwrap_or(0.0)).sum::<f64>())).collect();
                        data.insert("base".into(), Value::Array(base));
                    }
                    data
                };
                out.push(Trace { base, fill: Box::new(fill) });
            }
        }
        VisualKind::Scatter => {
            let sized = visual.measures.len() > 2;
            let base = json!({"type": "scatter", "mode": "markers+text", "textposition": "top center", "xaxis": format!("x{axis}"), "yaxis": format!("y{axis}"),
                "showlegend": false, "marker": {"color": COLORS[0], "opacity": 0.8}});
            // Marker areas scaled so the largest is 40 px across, the same scale for every choice.
            let largest = visual.frames.iter().flat_map(|f| &f.rows).filter_map(|r| r.measures.get(2).and_then(Value::as_f64)).fold(0.0f64, f64::max);
            let fill = move |frame: &Frame| {
                let rows = leaves(frame);
                let mut data = Map::new();
                data.insert("x".into(), column(&rows, |r| r.measures[0].clone()));
                data.insert("y".into(), column(&rows, |r| r.measures[1].clone()));
                data.insert("text".into(), column(&rows, |r| json!(label(&r.dims[0]))));
                if sized {
                    let size = |r: &Row| json!(if largest > 0.0 { 6.0 + 34.0 * (r.measures[2].as_f64().unwrap_or(0.0).max(0.0) / largest).sqrt() } else { 10.0 });
                    data.insert("marker.size".into(), column(&rows, size));
                }
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Heatmap => {
            let base = json!({"type": "heatmap", "xaxis": format!("x{axis}"), "yaxis": format!("y{axis}"), "colorscale": "Blues", "showscale": false, "hoverongaps": false});
            let fill = |frame: &Frame| {
                let rows = leaves(frame);
                let (mut ys, mut xs): (Vec<Value>, Vec<Value>) = (Vec::new(), Vec::new());
                for r in &rows {
                    if !ys.contains(&r.dims[0]) {
                        ys.push(r.dims[0].clone());
                    }
                    if !xs.contains(&r.dims[1]) {
                        xs.push(r.dims[1].clone());
                    }
                }
                xs.sort_by(compare_values);
                let z: Vec<Value> = ys
                    .iter()
                    .map(|y| Value::Array(xs.iter().map(|x| rows.iter().find(|r| &r.dims[0] == y && &r.dims[1] == x).map(|r| r.measures[0].clone()).unwrap_or(Value::Null)).collect()))
                    .collect();
                let mut data = Map::new();
                data.insert("x".into(), axis_values(&xs));
                data.insert("y".into(), axis_values(&ys));
                data.insert("z".into(), Value::Array(z));
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Histogram => {
            let width = visual.bin_width.unwrap_or(1.0);
            let base = json!({"type": "bar", "xaxis": format!("x{axis}"), "yaxis": format!("y{axis}"), "showlegend": false, "width": width, "marker": {"color": COLORS[0], "line": {"color": "white", "width": 1}}});
            let fill = move |frame: &Frame| {
                let rows = leaves(frame);
                let mut data = Map::new();
                data.insert("x".into(), column(&rows, |r| json!(r.dims[0].as_f64().unwrap_or(0.0) + width / 2.0)));
                data.insert("y".into(), column(&rows, |r| r.measures[0].clone()));
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Box => {
            let grouped = !visual.dims.is_empty();
            let base = json!({"type": "box", "xaxis": format!("x{axis}"), "yaxis": format!("y{axis}"), "showlegend": false, "marker": {"color": COLORS[0]}, "name": visual.title});
            let fill = move |frame: &Frame| {
                let rows = leaves(frame);
                let mut data = Map::new();
                data.insert("x".into(), column(&rows, |r| if grouped { json!(label(&r.dims[0])) } else { json!("all") }));
                for (m, key) in ["lowerfence", "q1", "median", "q3", "upperfence"].iter().enumerate() {
                    data.insert((*key).into(), column(&rows, |r| r.measures[m].clone()));
                }
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Funnel => {
            let base = json!({"type": "funnel", "xaxis": format!("x{axis}"), "yaxis": format!("y{axis}"), "showlegend": false, "textinfo": "value+percent initial", "marker": {"color": COLORS[0]}});
            let fill = |frame: &Frame| {
                let rows = leaves(frame);
                let mut data = Map::new();
                data.insert("y".into(), column(&rows, |r| json!(label(&r.dims[0]))));
                data.insert("x".into(), column(&rows, |r| r.measures[0].clone()));
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Waterfall => {
            let base = json!({"type": "waterfall", "xaxis": format!("x{axis}"), "yaxis": format!("y{axis}"), "showlegend": false, "connector": {"line": {"color": "#8a99a8"}}});
            let fill = |frame: &Frame| {
                let rows = leaves(frame);
                let mut x: Vec<Value> = rows.iter().map(|r| json!(label(&r.dims[0]))).collect();
                let mut y: Vec<Value> = rows.iter().map(|r| r.measures[0].clone()).collect();
                let mut measure: Vec<Value> = vec![json!("relative"); rows.len()];
                x.push(json!("Total"));
                y.push(json!(0));
                measure.push(json!("total"));
                let mut data = Map::new();
                data.insert("x".into(), Value::Array(x));
                data.insert("y".into(), Value::Array(y));
                data.insert("measure".into(), Value::Array(measure));
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Treemap => {
            let nested = visual.dims.len() > 1;
            let base = json!({"type": "treemap", "domain": domain, "textinfo": "label+value", "branchvalues": "remainder"});
            let fill = move |frame: &Frame| {
                let rows = leaves(frame);
                let (mut ids, mut labels, mut parents, mut values) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                if nested {
                    let mut seen: Vec<String> = Vec::new();
                    for r in &rows {
                        let parent = label(&r.dims[0]);
                        if !seen.contains(&parent) {
                            seen.push(parent.clone());
                            ids.push(json!(parent));
                            labels.push(json!(parent));
                            parents.push(json!(""));
                            values.push(json!(0));
                        }
                    }
                }
                for r in &rows {
                    let (name, parent) = if nested { (label(&r.dims[1]), label(&r.dims[0])) } else { (label(&r.dims[0]), String::new()) };
                    ids.push(json!(if nested { format!("{parent}/{name}") } else { name.clone() }));
                    labels.push(json!(name));
                    parents.push(json!(parent));
                    values.push(r.measures[0].clone());
                }
                let mut data = Map::new();
                data.insert("ids".into(), Value::Array(ids));
                data.insert("labels".into(), Value::Array(labels));
                data.insert("parents".into(), Value::Array(parents));
                data.insert("values".into(), Value::Array(values));
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Gauge => {
            let has_target = visual.has_target;
            // Without a target the dial ends at the value over everything ("All").
            let all = visual.frames[0].rows.first().and_then(|r| r.measures[0].as_f64()).unwrap_or(0.0);
            let base = json!({"type": "indicator", "mode": "gauge+number", "domain": domain, "number": {"valueformat": ",.4~g"},
                "gauge": {"bar": {"color": COLORS[0]}, "axis": {"range": [0, if all > 0.0 { all } else { 1.0 }]}}});
            let fill = move |frame: &Frame| {
                let mut data = Map::new();
                let row = frame.rows.first();
                data.insert("value".into(), row.map(|r| r.measures[0].clone()).unwrap_or(Value::Null));
                if has_target {
                    let target = row.and_then(|r| r.measures.last()).and_then(Value::as_f64).unwrap_or(0.0);
                    data.insert("gauge.axis.range".into(), json!([0, if target > 0.0 { target } else { 1.0 }]));
                }
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Pie => {
            let mut base = json!({"type": "pie", "domain": domain, "sort": false, "textinfo": "label+percent", "showlegend": false});
            if visual.donut {
                base["hole"] = json!(0.45);
            }
            let fill = |frame: &Frame| {
                let rows = leaves(frame);
                let mut data = Map::new();
                data.insert("labels".into(), column(&rows, |r| json!(label(&r.dims[0]))));
                data.insert("values".into(), column(&rows, |r| r.measures[0].clone()));
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Kpi => {
            let has_target = visual.has_target;
            let mut base = json!({"type": "indicator", "mode": if has_target { "number+delta" } else { "number" }, "domain": domain, "number": {"valueformat": ",.4~g"}});
            if has_target {
                base["delta"] = json!({"relative": false, "valueformat": ",.4~g"});
            }
            let fill = move |frame: &Frame| {
                let mut data = Map::new();
                let row = frame.rows.first();
                data.insert("value".into(), row.map(|r| r.measures[0].clone()).unwrap_or(Value::Null));
                if has_target {
                    data.insert("delta.reference".into(), row.and_then(|r| r.measures.last().cloned()).unwrap_or(Value::Null));
                }
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Table => {
            let header: Vec<Value> = visual.dims.iter().chain(&visual.measures).map(|h| json!(format!("<b>{}</b>", super::escape(h)))).collect();
            let base = json!({"type": "table", "domain": domain, "header": {"values": header, "fill": {"color": "#e8eef7"}, "align": "left"}, "cells": {"align": "left"}});
            let fill = |frame: &Frame| {
                let rows = leaves(frame);
                let mut columns: Vec<Value> = Vec::new();
                let width = rows.first().map(|r| r.dims.len()).unwrap_or(0);
                for d in 0..width {
                    columns.push(column(&rows, |r| json!(label(&r.dims[d]))));
                }
                let measures = rows.first().map(|r| r.measures.len()).unwrap_or(0);
                for m in 0..measures {
                    columns.push(column(&rows, |r| r.measures[m].clone()));
                }
                let mut data = Map::new();
                data.insert("cells.values".into(), Value::Array(columns));
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
        VisualKind::Pivot => {
            let pivot = Pivot::of(visual);
            let base = json!({"type": "table", "domain": domain, "header": {"values": pivot.header(visual), "fill": {"color": "#e8eef7"}, "align": "left"}, "cells": {"align": "left"}});
            let fill = move |frame: &Frame| {
                let mut data = Map::new();
                data.insert("cells.values".into(), pivot.cells(frame));
                data
            };
            out.push(Trace { base, fill: Box::new(fill) });
        }
    }
    out
}

/// A pivot table's shape: its row and column keys over every frame, so a control keeps the
/// columns fixed and only the numbers change.
struct Pivot {
    rows: usize,
    columns: Vec<Vec<Value>>,
    measures: usize,
    subtotals: bool,
}

impl Pivot {
    fn of(visual: &BuiltVisual) -> Self {
        let mut columns: Vec<Vec<Value>> = Vec::new();
        for frame in &visual.frames {
            for row in &frame.rows {
                if row.totals[visual.pivot_rows..].iter().any(|t| *t) {
                    continue;
                }
                let key = row.dims[visual.pivot_rows..].to_vec();
                if !columns.contains(&key) {
                    columns.push(key);
                }
            }
        }
        columns.sort_by_key(|k| k.iter().map(label).collect::<Vec<_>>());
        Self { rows: visual.pivot_rows, columns, measures: visual.measures.len(), subtotals: visual.subtotals && visual.dims.len() > visual.pivot_rows }
    }

    fn header(&self, visual: &BuiltVisual) -> Value {
        let mut header: Vec<String> = visual.dims[..self.rows].to_vec();
        let keys: Vec<String> = self.columns.iter().map(|k| k.iter().map(label).collect::<Vec<_>>().join(" · ")).chain(self.subtotals.then(|| "Total".to_string())).collect();
        for key in keys {
            for m in &visual.measures {
                header.push(if self.measures == 1 && !key.is_empty() { key.clone() } else if key.is_empty() { m.clone() } else { format!("{key} · {m}") });
            }
        }
        Value::Array(header.into_iter().map(|h| json!(format!("<b>{}</b>", super::escape(&h)))).collect())
    }

    fn cells(&self, frame: &Frame) -> Value {
        // Row keys in frame order (the engine sorts each level's total after its members).
        let mut row_keys: Vec<(Vec<Value>, Vec<bool>)> = Vec::new();
        let mut cells: BTreeMap<(String, String), &Row> = BTreeMap::new();
        let key_text = |values: &[Value], totals: &[bool]| values.iter().zip(totals).map(|(v, t)| if *t { "\u{1}".to_string() } else { label(v) }).collect::<Vec<_>>().join("\u{0}");
        for row in &frame.rows {
            let (r, c) = (&row.dims[..self.rows], &row.dims[self.rows..]);
            let (rt, ct) = (&row.totals[..self.rows], &row.totals[self.rows..]);
            let row_key = (r.to_vec(), rt.to_vec());
            if !row_keys.contains(&row_key) {
                row_keys.push(row_key);
            }
            cells.insert((key_text(r, rt), key_text(c, ct)), row);
        }
        let mut columns: Vec<Vec<Value>> = vec![Vec::new(); self.rows];
        let column_keys: Vec<String> = self
            .columns
            .iter()
            .map(|k| key_text(k, &vec![false; k.len()]))
            .chain(self.subtotals.then(|| key_text(&vec![Value::Null; self.columns.first().map_or(0, Vec::len)], &vec![true; self.columns.first().map_or(0, Vec::len)])))
            .collect();
        let mut values: Vec<Vec<Value>> = vec![Vec::new(); column_keys.len() * self.measures];
        for (r, rt) in &row_keys {
            for (i, (v, t)) in r.iter().zip(rt).enumerate() {
                let first_total = rt.iter().position(|t| *t);
                columns[i].push(json!(match (t, first_total) {
                    (true, Some(f)) if f == i => "<b>Total</b>".to_string(),
                    (true, _) => String::new(),
                    (false, _) => label(v),
                }));
            }
            let rk = key_text(r, rt);
            for (c, ck) in column_keys.iter().enumerate() {
                let row = cells.get(&(rk.clone(), ck.clone()));
                for m in 0..self.measures {
                    values[c * self.measures + m].push(row.map(|row| row.measures[m].clone()).unwrap_or(Value::Null));
                }
            }
        }
        Value::Array(columns.into_iter().chain(values).map(Value::Array).collect())
    }
}

/// Whether a visual is drawn on x/y axes (the others sit in a domain of their own).
fn cartesian(kind: VisualKind) -> bool {
    !matches!(kind, VisualKind::Pie | VisualKind::Kpi | VisualKind::Gauge | VisualKind::Table | VisualKind::Pivot | VisualKind::Treemap)
}

/// Fills one trace's data attributes from a frame of its visual.
type Fill = Box<dyn Fn(&Frame) -> Map<String, Value>>;

/// A sheet's figure at "all", and how to fill each trace (by visual) for any frame.
struct Drawn {
    figure: Value,
    fills: Vec<(usize, Fill)>,
}

/// A sheet's figure with every control at "all" and no menus.
fn draw(sheet: &BuiltSheet) -> Drawn {
    let (cells, rows) = grid(sheet);
    let mut data: Vec<Value> = Vec::new();
    let mut fills: Vec<(usize, Box<dyn Fn(&Frame) -> Map<String, Value>>)> = Vec::new();
    let mut layout = json!({
        "height": rows * ROW_HEIGHT + TOP,
        "margin": {"l": 60, "r": 30, "t": TOP, "b": 30},
        "barmode": "group",
        "showlegend": true,
        "legend": {"orientation": "h", "y": 1.0, "x": 1.0, "xanchor": "right", "yanchor": "bottom"},
        "annotations": [],
        "template": {"layout": {"font": {"family": "Helvetica, Arial, sans-serif", "size": 12}, "paper_bgcolor": "white", "plot_bgcolor": "#f7f9fc"}},
    });
    for (i, (visual, cell)) in sheet.visuals.iter().zip(&cells).enumerate() {
        let index = i + 1;
        if cartesian(visual.kind) {
            let suffix = if index == 1 { String::new() } else { index.to_string() };
            let y_anchor = format!("y{suffix}");
            let x_anchor = format!("x{suffix}");
            layout[format!("xaxis{suffix}")] = json!({"domain": [cell.x.0, cell.x.1], "anchor": y_anchor, "automargin": true});
            layout[format!("yaxis{suffix}")] = json!({"domain": [cell.y.0, cell.y.1], "anchor": x_anchor, "automargin": true});
            if visual.horizontal || visual.kind == VisualKind::Funnel {
                layout[format!("yaxis{suffix}")]["autorange"] = json!("reversed");
            }
            if visual.kind == VisualKind::Heatmap {
                layout[format!("yaxis{suffix}")]["type"] = json!("category");
                layout[format!("xaxis{suffix}")]["type"] = json!("category");
            }
            if visual.kind == VisualKind::Combo {
                layout[format!("yaxis{}", 100 + index)] = json!({"overlaying": format!("y{suffix}"), "side": "right", "anchor": x_anchor, "showgrid": false, "automargin": true});
            }
        }
        layout["annotations"].as_array_mut().unwrap_or(&mut Vec::new()).push(json!({
            "text": format!("<b>{}</b>", super::escape(&visual.title)),
            "x": cell.x.0, "xanchor": "left", "xref": "paper",
            "y": cell.y.1, "yanchor": "bottom", "yref": "paper", "yshift": 8,
            "showarrow": false, "font": {"size": 14},
        }));
        for trace in traces(visual, index, *cell) {
            let mut base = trace.base;
            let all = (trace.fill)(&visual.frames[0]);
            set_all(&mut base, &all);
            data.push(base);
            fills.push((i, trace.fill));
        }
    }
    Drawn { figure: json!({"data": data, "layout": layout}), fills }
}

/// The restyle that shows the sheet's controls at `choices`: every attribute any trace
/// fills, per trace.
fn restyle(sheet: &BuiltSheet, fills: &[(usize, Fill)], choices: &[usize]) -> Value {
    let per_trace: Vec<Map<String, Value>> = fills.iter().map(|(v, fill)| fill(sheet.visuals[*v].frame(choices))).collect();
    json!([Value::Object(merged(&per_trace)), (0..per_trace.len()).collect::<Vec<_>>()])
}

/// Per-trace attribute maps as one restyle update: each attribute any trace has, as a list
/// over the traces (null where a trace lacks it).
fn merged(per_trace: &[Map<String, Value>]) -> Map<String, Value> {
    let mut keys: Vec<&String> = per_trace.iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut update = Map::new();
    for key in keys {
        update.insert(key.clone(), Value::Array(per_trace.iter().map(|m| m.get(key).cloned().unwrap_or(Value::Null)).collect()));
    }
    update
}

/// What a control offers inline, as (label, choice): every value alone for a dropdown or
/// multi-select, each value for a slider, each start for a date range (ending at the last
/// period); "All" first.
fn inline_choices(control: &BuiltControl) -> Vec<(String, usize)> {
    let n = control.values.len();
    let mut out = vec![("All".to_string(), 0)];
    match control.kind {
        // A dropdown's choice i + 1 is value i, even when it is the only one.
        ControlKind::Dropdown => out.extend(control.values.iter().enumerate().map(|(i, v)| (v.clone(), i + 1))),
        ControlKind::MultiSelect => {
            out.extend(control.values.iter().enumerate().filter_map(|(i, v)| control.choice_of(&[i]).map(|c| (v.clone(), c))));
        }
        ControlKind::Slider => {
            let op = match control.op {
                SliderOp::AtMost => "≤ ",
                SliderOp::AtLeast => "≥ ",
                SliderOp::Equal => "",
            };
            out.extend(control.values.iter().enumerate().map(|(i, v)| (format!("{op}{v}"), i + 1)));
        }
        ControlKind::DateRange => {
            out.extend((1..n).filter_map(|from| control.choice_of(&(from..n).collect::<Vec<_>>()).map(|c| (format!("{} – {}", control.values[from], control.values[n - 1]), c))));
        }
    }
    out
}

/// One sheet as a Plotly figure; its first control is a Plotly dropdown (a slider for a
/// slider or date range).
pub fn figure(sheet: &BuiltSheet) -> Value {
    let Drawn { mut figure, fills } = draw(sheet);
    let Some(control) = sheet.controls.first() else { return figure };
    let layout = &mut figure["layout"];
    let choices = inline_choices(control);
    let at = |choice: usize| -> Vec<usize> { std::iter::once(choice).chain(std::iter::repeat_n(0, sheet.controls.len() - 1)).collect() };
    let slider = matches!(control.kind, ControlKind::Slider | ControlKind::DateRange);
    if slider {
        let steps: Vec<Value> = choices.iter().map(|(name, choice)| json!({"label": name, "method": "restyle", "args": restyle(sheet, &fills, &at(*choice))})).collect();
        let prefix = if control.kind == ControlKind::DateRange { format!("{}: from ", control.name) } else { format!("{}: ", control.name) };
        layout["sliders"] = json!([{
            "active": 0, "steps": steps, "currentvalue": {"prefix": prefix, "font": {"size": 13}},
            "x": 0.0, "xanchor": "left", "len": 0.5, "y": 1.0, "yanchor": "bottom", "yref": "paper", "pad": {"t": 0, "b": 10},
        }]);
        layout["margin"]["t"] = json!(TOP + 60);
        layout["height"] = json!(layout["height"].as_u64().unwrap_or(0) + 60);
    } else {
        let buttons: Vec<Value> = choices.iter().map(|(name, choice)| json!({"label": name, "method": "restyle", "args": restyle(sheet, &fills, &at(*choice))})).collect();
        layout["updatemenus"] = json!([{
            "type": "dropdown", "active": 0, "buttons": buttons, "showactive": true,
            "x": 0.0, "xanchor": "left", "y": 1.0, "yanchor": "bottom", "yref": "paper", "pad": {"t": 0, "b": 0},
        }]);
        layout["annotations"].as_array_mut().unwrap_or(&mut Vec::new()).push(json!({
            "text": format!("{}:", super::escape(&control.name)), "x": 0.0, "xref": "paper", "xanchor": "right",
            "y": 1.0, "yref": "paper", "yanchor": "bottom", "yshift": 6, "xshift": -8, "showarrow": false,
        }));
        layout["margin"]["l"] = json!(110);
    }
    if sheet.controls.len() > 1 {
        let others: Vec<&str> = sheet.controls[1..].iter().map(|c| c.name.as_str()).collect();
        layout["annotations"].as_array_mut().unwrap_or(&mut Vec::new()).push(json!({
            "text": format!("<i>{} at All here; the published page combines every control</i>", super::escape(&others.join(", "))),
            "x": 1.0, "xref": "paper", "xanchor": "right", "y": 1.0, "yref": "paper", "yanchor": "bottom", "yshift": 30,
            "showarrow": false, "font": {"size": 11, "color": "#5b6b7b"},
        }));
    }
    figure
}

/// A sheet as the published page's script draws it: the figure without menus, its
/// controls, and per visual its traces and their data in every frame.
fn page_sheet(sheet: &BuiltSheet) -> Value {
    let Drawn { figure, fills } = draw(sheet);
    let visuals: Vec<Value> = sheet
        .visuals
        .iter()
        .enumerate()
        .map(|(v, visual)| {
            let traces: Vec<usize> = fills.iter().enumerate().filter(|(_, (owner, _))| *owner == v).map(|(t, _)| t).collect();
            let frames: Vec<Value> = if visual.controls.is_empty() {
                Vec::new()
            } else {
                visual.frames.iter().map(|frame| Value::Array(traces.iter().map(|&t| Value::Object((fills[t].1)(frame))).collect())).collect()
            };
            json!({"controls": visual.controls, "radix": visual.radix, "traces": traces, "frames": frames})
        })
        .collect();
    let controls: Vec<Value> = sheet
        .controls
        .iter()
        .map(|c| json!({"name": c.name, "kind": c.kind.name(), "op": c.op, "values": c.values, "choices": c.choices}))
        .collect();
    json!({"figure": figure, "controls": controls, "visuals": visuals})
}

/// Sets `a.b` style keys of a restyle map on a trace.
fn set_all(trace: &mut Value, values: &Map<String, Value>) {
    for (key, value) in values {
        let mut target = &mut *trace;
        let parts: Vec<&str> = key.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            if target.get(*part).is_none() {
                target[*part] = json!({});
            }
            target = &mut target[*part];
        }
        target[parts[parts.len() - 1]] = value.clone();
    }
}

/// The sheet's controls for the summary line: `, controls Referrer (dropdown, 4 values), …`.
fn controls_text(sheet: &BuiltSheet) -> String {
    if sheet.controls.is_empty() {
        return String::new();
    }
    let each: Vec<String> = sheet
        .controls
        .iter()
        .map(|c| {
            let unit = if c.kind == ControlKind::DateRange { format!("{}s", c.granularity.name()) } else { "values".to_string() };
            format!("{} ({}, {} {unit})", c.name, c.kind.name(), c.values.len())
        })
        .collect();
    format!(", control{} {}", if each.len() > 1 { "s" } else { "" }, each.join(", "))
}

/// A short text of what each visual shows for "all": the `text/plain` view.
pub fn summary(built: &Built, sheet: &BuiltSheet) -> String {
    let mut lines = vec![format!(
        "dashboard {}{} — sheet {}: {} visual(s){}",
        built.name,
        built.title.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
        sheet.name,
        sheet.visuals.len(),
        controls_text(sheet)
    )];
    for visual in &sheet.visuals {
        let frame = &visual.frames[0];
        let number = |v: &Value| match v.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            Some(f) => format!("{f:.4}").trim_end_matches('0').trim_end_matches('.').to_string(),
            None => label(v),
        };
        let text = match visual.kind {
            VisualKind::Kpi => frame.rows.first().map(|r| r.measures.iter().map(number).collect::<Vec<_>>().join(" vs ")).unwrap_or_default(),
            _ => {
                let rows = &frame.rows;
                let shown: Vec<String> = rows
                    .iter()
                    .take(8)
                    .map(|r| {
                        let dims: Vec<String> = r.dims.iter().zip(&r.totals).map(|(d, t)| if *t { "Total".to_string() } else { label(d) }).collect();
                        format!("{} = {}", dims.join(" · "), r.measures.iter().map(number).collect::<Vec<_>>().join(", "))
                    })
                    .collect();
                let more = if rows.len() > 8 { format!("; … {} more", rows.len() - 8) } else { String::new() };
                format!("{}{more}", shown.join("; "))
            }
        };
        lines.push(format!("  {} [{}]: {text}", visual.title, visual.kind.name()));
    }
    lines.join("\n")
}

/// One sheet as a notebook display: the figure, its HTML drawing and the text summary.
pub fn sheet_bundle(built: &Built, sheet: &BuiltSheet, with_library: bool) -> Bundle {
    let figure = figure(sheet);
    let height = figure["layout"]["height"].as_u64().unwrap_or(400);
    let id = chart_id(&figure);
    let library = if with_library { plotly_js_script() } else { String::new() };
    let json = figure.to_string().replace("</", "<\\/");
    let html = format!(
        "{library}<div id=\"{id}\" class=\"plotly-graph-div lakebook-dashboard\" style=\"height:{height}px; width:100%;\"></div>\n\
         <script type=\"text/javascript\">(function () {{\n\
         var fig = {json};\n\
         if (window.Plotly) {{ window.Plotly.newPlot(\"{id}\", fig.data, fig.layout, {{responsive: true}}); }} else {{ document.getElementById(\"{id}\").textContent = \
         \"plotly.js is not loaded on this page: re-run the first chart cell of the notebook.\"; }}\n\
         }})();</script>"
    );
    let mut bundle = Bundle::new();
    bundle.insert("text/plain".into(), Value::String(summary(built, sheet)));
    bundle.insert("text/html".into(), Value::String(html));
    bundle.insert("application/vnd.plotly.v1+json".into(), figure);
    bundle
}

/// Text gzip-compressed and base64-encoded, for a page to unpack with DecompressionStream.
fn pack(text: &str, level: flate2::Compression) -> String {
    use base64::Engine as _;
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    let _ = encoder.write_all(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap_or_default())
}

/// plotly.js packed, made once per kernel.
fn packed_plotly() -> &'static str {
    static PACKED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PACKED.get_or_init(|| pack(&plotly_js(), flate2::Compression::best()))
}

/// The published page's controls: each sheet's controls as HTML elements whose state picks
/// a choice per control; each visual shows the frame of its controls' choices.
const CONTROLS_JS: &str = r#"
function controls(s, sheet) {
  if (!sheet.controls.length) return;
  var box = document.getElementById('controls-' + s);
  var state = sheet.controls.map(function () { return 0; });
  var redraw = function () {
    var traces = [], maps = [];
    sheet.visuals.forEach(function (v) {
      if (!v.controls.length) return;
      var index = 0, stride = 1;
      v.controls.forEach(function (c, k) { index += Math.min(state[c], v.radix[k] - 1) * stride; stride *= v.radix[k]; });
      var frame = v.frames[index] || v.frames[0];
      v.traces.forEach(function (t, j) { traces.push(t); maps.push(frame[j]); });
    });
    if (!traces.length) return;
    var keys = {};
    maps.forEach(function (m) { Object.keys(m).forEach(function (k) { keys[k] = true; }); });
    var update = {};
    Object.keys(keys).forEach(function (k) { update[k] = maps.map(function (m) { return k in m ? m[k] : null; }); });
    window.Plotly.restyle('sheet-' + s, update, traces);
  };
  var make = function (tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (a) { e.setAttribute(a, attrs[a]); });
    if (text !== undefined) e.textContent = text;
    return e;
  };
  sheet.controls.forEach(function (c, k) {
    var byMembers = {};
    c.choices.forEach(function (members, i) { if (!(members.join(',') in byMembers)) byMembers[members.join(',')] = i; });
    var pick = function (members) {
      state[k] = (members.length === 0 || members.length === c.values.length) ? 0 : (byMembers[members.join(',')] || 0);
      redraw();
    };
    var wrap = make('div', {'class': 'control', 'data-control': c.name, 'data-kind': c.kind});
    wrap.appendChild(make('b', {}, c.name + ':'));
    var options = function (select, labels) { labels.forEach(function (l, i) { select.appendChild(make('option', {value: String(i)}, l)); }); };
    if (c.kind === 'dropdown') {
      var select = make('select', {'aria-label': c.name});
      options(select, ['All'].concat(c.values));
      select.onchange = function () { state[k] = select.selectedIndex; redraw(); };
      wrap.appendChild(select);
    } else if (c.kind === 'multi_select') {
      var boxes = make('span', {'class': 'boxes'});
      var ticks = c.values.map(function (v, i) {
        var label = make('label', {});
        var tick = make('input', {type: 'checkbox', value: String(i)});
        tick.checked = true;
        tick.onchange = function () { pick(ticks.filter(function (t) { return t.checked; }).map(function (t) { return +t.value; })); };
        label.appendChild(tick);
        label.appendChild(document.createTextNode(' ' + v));
        boxes.appendChild(label);
        return tick;
      });
      wrap.appendChild(boxes);
    } else if (c.kind === 'slider') {
      var range = make('input', {type: 'range', min: '0', max: String(c.values.length), step: '1', value: '0', 'aria-label': c.name});
      var shown = make('output', {}, 'All');
      var op = c.op === '=' ? '' : c.op === '<=' ? '≤ ' : '≥ ';
      range.oninput = function () {
        var i = +range.value;
        shown.textContent = i === 0 ? 'All' : op + c.values[i - 1];
        state[k] = i;
        redraw();
      };
      wrap.appendChild(range);
      wrap.appendChild(shown);
    } else if (c.kind === 'date_range') {
      var from = make('select', {'aria-label': c.name + ' from'}), to = make('select', {'aria-label': c.name + ' to'});
      options(from, c.values);
      options(to, c.values);
      to.selectedIndex = c.values.length - 1;
      var change = function () {
        var a = Math.min(from.selectedIndex, to.selectedIndex), b = Math.max(from.selectedIndex, to.selectedIndex);
        var members = [];
        for (var i = a; i <= b; i++) members.push(i);
        pick(members);
      };
      from.onchange = change;
      to.onchange = change;
      wrap.appendChild(make('span', {}, 'from'));
      wrap.appendChild(from);
      wrap.appendChild(make('span', {}, 'to'));
      wrap.appendChild(to);
    }
    box.appendChild(wrap);
  });
}
"#;

/// The published dashboard: one self-contained HTML file, every sheet, offline.
pub fn page(built: &Built) -> String {
    let title = built.title.clone().unwrap_or_else(|| built.name.clone());
    let mut sheets = String::new();
    let mut figures = Vec::new();
    for (i, sheet) in built.sheets.iter().enumerate() {
        let drawn = page_sheet(sheet);
        let height = drawn["figure"]["layout"]["height"].as_u64().unwrap_or(400);
        sheets.push_str(&format!(
            "<section><h2>{}</h2><div id=\"controls-{i}\" class=\"controls\"></div><div id=\"sheet-{i}\" class=\"plotly-graph-div lakebook-dashboard\" style=\"height:{height}px; width:100%;\"></div></section>\n",
            super::escape(&sheet.name)
        ));
        figures.push(drawn);
    }
    // The figures and every frame of their controls ride packed too: repeated labels and
    // numbers compress several times over.
    let figures = pack(&Value::Array(figures).to_string(), flate2::Compression::default());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <meta name=\"generator\" content=\"Lakebook\">\n\
         <style>body {{ font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #1b2733; }} h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; border-bottom: 1px solid #dde3ea; }} \
         .controls {{ display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; margin: 8px 0; font-size: 14px; }} \
         .control {{ display: flex; gap: 6px; align-items: center; }} .control .boxes {{ display: flex; flex-wrap: wrap; gap: 8px; }}</style>\n\
         </head><body>\n<h1>{t}</h1>\n<p id=\"status\">Drawing…</p>\n{sheets}\
         <script id=\"plotly-gz\" type=\"application/octet-stream\">{packed}</script>\n\
         <script id=\"figures-gz\" type=\"application/octet-stream\">{figures}</script>\n\
         <script type=\"text/javascript\">\n\
         {script}\n\
         async function unpack(id) {{\n\
           var text = atob(document.getElementById(id).textContent.trim());\n\
           var bytes = new Uint8Array(text.length);\n\
           for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);\n\
           return await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).text();\n\
         }}\n\
         (async function () {{\n\
           var status = document.getElementById('status');\n\
           try {{\n\
             (new Function('define', 'module', 'exports', 'require', await unpack('plotly-gz'))).call(window);\n\
             var figures = JSON.parse(await unpack('figures-gz'));\n\
             for (var s = 0; s < figures.length; s++) {{\n\
               await window.Plotly.newPlot('sheet-' + s, figures[s].figure.data, figures[s].figure.layout, {{responsive: true}});\n\
               controls(s, figures[s]);\n\
             }}\n\
             status.remove();\n\
           }} catch (e) {{ status.textContent = 'This dashboard could not be drawn: ' + e; }}\n\
         }})();\n\
         </script>\n</body></html>\n",
        t = super::escape(&title),
        packed = packed_plotly(),
        script = CONTROLS_JS,
    )
}

#[cfg(test)]
mod tests {
    use lakebook_engine::dashboards::build::{BuiltControl, BuiltVisual};
    use lakebook_engine::dashboards::spec::ControlKind;

    use super::*;

    fn row(dims: &[Value], totals: &[bool], measures: &[Value]) -> Row {
        Row { dims: dims.to_vec(), totals: totals.to_vec(), measures: measures.to_vec() }
    }

    fn visual(kind: VisualKind, dims: &[&str], measures: &[&str], frames: Vec<Frame>) -> BuiltVisual {
        BuiltVisual {
            kind,
            title: format!("{kind:?}"),
            span: 1,
            dims: dims.iter().map(|d| d.to_string()).collect(),
            pivot_rows: 1,
            measures: measures.iter().map(|m| m.to_string()).collect(),
            has_target: false,
            horizontal: false,
            stacked: false,
            donut: false,
            subtotals: true,
            controls: vec![0],
            radix: vec![2],
            line_measures: 0,
            bin_width: None,
            frames,
        }
    }

    fn control(kind: ControlKind, name: &str, values: &[&str]) -> BuiltControl {
        let n = values.len();
        let mut choices: Vec<Vec<usize>> = vec![(0..n).collect()];
        match kind {
            ControlKind::DateRange => {
                for from in 0..n {
                    for to in from..n {
                        if (from, to) != (0, n - 1) {
                            choices.push((from..=to).collect());
                        }
                    }
                }
            }
            _ => choices.extend((0..n).map(|i| vec![i])),
        }
        BuiltControl {
            name: name.into(),
            kind,
            field: name.to_lowercase(),
            op: SliderOp::AtMost,
            granularity: lakebook_engine::dashboards::spec::Granularity::Day,
            values: values.iter().map(|v| v.to_string()).collect(),
            choices,
        }
    }

    fn sheet() -> BuiltSheet {
        let bar = visual(
            VisualKind::Bar,
            &["page"],
            &["count(*)"],
            vec![
                Frame { rows: vec![row(&[json!("/a")], &[false], &[json!(5)]), row(&[json!("/b")], &[false], &[json!(3)])] },
                Frame { rows: vec![row(&[json!("/b")], &[false], &[json!(2)])] },
            ],
        );
        let kpi = visual(VisualKind::Kpi, &[], &["count(*)"], vec![Frame { rows: vec![row(&[], &[], &[json!(8)])] }, Frame { rows: vec![row(&[], &[], &[json!(2)])] }]);
        let pivot = visual(
            VisualKind::Pivot,
            &["device", "ref"],
            &["n"],
            vec![
                Frame {
                    rows: vec![
                        row(&[json!("d"), json!("x")], &[false, false], &[json!(1)]),
                        row(&[json!("d"), Value::Null], &[false, true], &[json!(1)]),
                        row(&[Value::Null, json!("x")], &[true, false], &[json!(1)]),
                        row(&[Value::Null, Value::Null], &[true, true], &[json!(1)]),
                    ],
                },
                Frame::default(),
            ],
        );
        BuiltSheet {
            name: "S".into(),
            columns: 2,
            controls: vec![control(ControlKind::Dropdown, "Device", &["m"])],
            visuals: vec![bar, kpi, pivot],
        }
    }

    #[test]
    fn a_sheet_is_one_figure_whose_dropdown_restyles_every_trace() {
        let fig = figure(&sheet());
        let data = fig["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!((data[0]["type"].as_str(), &data[0]["x"], &data[0]["y"]), (Some("bar"), &json!(["/a", "/b"]), &json!([5, 3])));
        assert_eq!((data[1]["type"].as_str(), &data[1]["value"]), (Some("indicator"), &json!(8)));
        assert_eq!(data[2]["cells"]["values"], json!([["d", "<b>Total</b>"], [1, 1], [1, 1]]));
        assert_eq!(data[2]["header"]["values"], json!(["<b>device</b>", "<b>x</b>", "<b>Total</b>"]));
        let buttons = fig["layout"]["updatemenus"][0]["buttons"].as_array().unwrap();
        assert_eq!(buttons.iter().map(|b| b["label"].as_str().unwrap()).collect::<Vec<_>>(), ["All", "m"]);
        let m = &buttons[1]["args"][0];
        assert_eq!(m["x"], json!([["/b"], null, null]));
        assert_eq!(m["y"], json!([[2], null, null]));
        assert_eq!(m["value"], json!([null, 2, null]));
        assert_eq!(m["cells.values"][2], json!([[], [], []]));
        assert_eq!(buttons[1]["args"][1], json!([0, 1, 2]));
        // The bar's axes sit in the first cell, the KPI and the pivot in their own domains.
        assert!(fig["layout"]["xaxis"]["domain"][1].as_f64().unwrap() < 0.5);
        assert!(data[1]["domain"]["x"][0].as_f64().unwrap() > 0.5);
    }

    #[test]
    fn a_date_range_is_a_slider_inline_and_other_controls_stay_at_all() {
        let mut sheet = sheet();
        // Three days and a device dropdown: the bar's frames are indexed day-range first.
        let days = control(ControlKind::DateRange, "Day", &["2026-03-01", "2026-03-02", "2026-03-03"]);
        assert_eq!(days.choices.len(), 6);
        assert_eq!(days.choice_of(&[1, 2]), Some(4));
        assert_eq!(days.choice_of(&[0, 1, 2]), Some(0));
        sheet.controls.insert(0, days);
        let frames: Vec<Frame> = (0..12).map(|i| Frame { rows: vec![row(&[json!("/a")], &[false], &[json!(i)])] }).collect();
        sheet.visuals = vec![BuiltVisual { controls: vec![0, 1], radix: vec![6, 2], ..visual(VisualKind::Bar, &["page"], &["n"], frames) }];
        assert_eq!(sheet.visuals[0].frame_index(&[4, 1]), 10);
        let fig = figure(&sheet);
        assert!(fig["layout"].get("updatemenus").is_none());
        let steps = fig["layout"]["sliders"][0]["steps"].as_array().unwrap();
        let labels: Vec<&str> = steps.iter().map(|s| s["label"].as_str().unwrap()).collect();
        assert_eq!(labels, ["All", "2026-03-02 – 2026-03-03", "2026-03-03 – 2026-03-03"]);
        // "from the 2nd" is choice 4 with the device at All: frame 4.
        assert_eq!(steps[1]["args"][0]["y"], json!([[4]]));
        let notes = fig["layout"]["annotations"].to_string();
        assert!(notes.contains("Device at All here; the published page combines every control"), "{notes}");
        let built = Built { name: "d".into(), title: None, sheets: vec![sheet] };
        let text = summary(&built, &built.sheets[0]);
        assert!(text.contains("1 visual(s), controls Day (date_range, 3 days), Device (dropdown, 1 values)"), "{text}");
    }

    #[test]
    fn the_published_page_carries_plotly_compressed_and_the_figures() {
        let built = Built { name: "d".into(), title: Some("Sales <2026>".into()), sheets: vec![sheet()] };
        let html = page(&built);
        assert!(html.contains("<title>Sales &lt;2026&gt;</title>"));
        assert!(html.contains("DecompressionStream('gzip')") && html.contains("function controls(s, sheet)"));
        assert!(!html.contains("\"updatemenus\""), "the page draws its own controls");
        let packed = html.split("<script id=\"figures-gz\" type=\"application/octet-stream\">").nth(1).and_then(|rest| rest.split("</script>").next()).unwrap();
        let figures = {
            use base64::Engine as _;
            use std::io::Read as _;
            let bytes = base64::engine::general_purpose::STANDARD.decode(packed).unwrap();
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).unwrap();
            text
        };
        assert!(figures.contains("\"choices\":[[0],[0]]") && figures.contains("\"frames\":[[{\"x\":[\"/a\",\"/b\"]"), "the page carries every frame: {figures}");
        assert!(html.len() < 2_000_000, "plotly.js rides compressed: {} bytes", html.len());
        assert!(!html.contains("http://") && !html.contains("https://cdn"), "nothing is fetched");
        let text = summary(&built, &built.sheets[0]);
        assert!(text.contains("Bar [bar]: /a = 5; /b = 3"), "{text}");
        assert!(text.contains("Kpi [kpi]: 8"), "{text}");
    }
}
