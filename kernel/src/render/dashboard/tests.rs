//! The dashboard drawing: figures, inline controls, the published page, the text view.

use lakebook_engine::dashboards::build::{BuiltControl, BuiltVisual, Row};
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
