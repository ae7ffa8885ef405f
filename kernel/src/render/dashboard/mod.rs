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

use lakebook_engine::dashboards::build::{Built, BuiltControl, BuiltSheet, Frame, label};
use lakebook_engine::dashboards::spec::{ControlKind, SliderOp, VisualKind};
use serde_json::{Map, Value, json};

use super::Bundle;
use super::chart::{chart_id, plotly_js_script};

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


mod page;
mod traces;
#[cfg(test)]
mod tests;

pub use page::page;
use traces::traces;
