//! The published dashboard: one self-contained HTML file with every sheet, plotly.js and the
//! figures packed (gzip, base64, unpacked by the browser's DecompressionStream), and HTML
//! controls that combine.

use lakebook_engine::dashboards::build::{Built, BuiltSheet};
use serde_json::{Value, json};

use super::{Drawn, draw};
use crate::render::chart::plotly_js;

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
            crate::render::escape(&sheet.name)
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
        t = crate::render::escape(&title),
        packed = packed_plotly(),
        script = CONTROLS_JS,
    )
}

