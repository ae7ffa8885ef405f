//! Each visual type as Plotly traces: a trace's fixed attributes and how to fill its data
//! from any frame of its visual.

use std::collections::BTreeMap;

use lakebook_engine::dashboards::build::{BuiltVisual, Frame, Row, label};
use lakebook_engine::dashboards::spec::VisualKind;
use serde_json::{Map, Value, json};

use super::{COLORS, Cell};

/// A trace and how to fill its data attributes for one frame.
pub(super) struct Trace {
    pub(super) base: Value,
    pub(super) fill: Box<dyn Fn(&Frame) -> Map<String, Value>>,
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

/// A fill of one label per row (its first dimension) under `labels` and its first measure
/// under `values`: a pie's slices, a funnel's stages.
fn labelled(labels: &'static str, values: &'static str) -> Box<dyn Fn(&Frame) -> Map<String, Value>> {
    Box::new(move |frame: &Frame| {
        let rows = leaves(frame);
        let mut data = Map::new();
        data.insert(labels.into(), column(&rows, |r| json!(label(&r.dims[0]))));
        data.insert(values.into(), column(&rows, |r| r.measures[0].clone()));
        data
    })
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

pub(super) fn traces(visual: &BuiltVisual, index: usize, cell: Cell) -> Vec<Trace> {
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
            out.push(Trace { base, fill: labelled("y", "x") });
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
            out.push(Trace { base, fill: labelled("labels", "values") });
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
            let header: Vec<Value> = visual.dims.iter().chain(&visual.measures).map(|h| json!(format!("<b>{}</b>", crate::render::escape(h)))).collect();
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
        Value::Array(header.into_iter().map(|h| json!(format!("<b>{}</b>", crate::render::escape(&h)))).collect())
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

