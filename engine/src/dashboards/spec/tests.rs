//! The spec parser: lines in every error, every control and visual key.

use super::*;

const GOOD: &str = r#"title = "Clicks"
dataset = "clicks"

[[sheet]]
name = "Overview"

[[sheet.control]]
type = "dropdown"
field = "device"

[[sheet.visual]]
type = "kpi"
value = "count_distinct(user_id)"

[[sheet.visual]]
type = "bar"
x = "page"
y = "count(*)"
sort = "value desc"
top = 5
orientation = "horizontal"

[[sheet.visual]]
type = "pivot"
rows = ["device"]
columns = "referrer"
values = ["sum(amount)", "percentile(amount, 90)"]
"#;

#[test]
fn a_spec_parses_with_its_lines() {
    let spec = parse(GOOD).unwrap();
    assert_eq!(spec.title.as_deref(), Some("Clicks"));
    let sheet = &spec.sheets[0];
    assert_eq!(sheet.columns, 2);
    let control = &sheet.controls[0];
    assert_eq!((control.name.as_str(), control.field.line, control.dataset.value.as_str()), ("device", 9, "clicks"));
    assert_eq!((control.kind, control.op, control.granularity), (ControlKind::Dropdown, SliderOp::AtMost, Granularity::Day));
    assert_eq!(sheet.visuals.len(), 3);
    let bar = &sheet.visuals[1];
    assert_eq!((bar.kind, bar.horizontal, bar.top, bar.line), (VisualKind::Bar, true, Some(5), 15));
    assert_eq!(bar.sort, Some(Sort { by: SortBy::Value, descending: true }));
    assert_eq!(bar.title, "count(*) by page");
    let pivot = &sheet.visuals[2];
    assert_eq!(pivot.pivot_rows, 1);
    assert_eq!(pivot.dims.iter().map(|d| d.value.as_str()).collect::<Vec<_>>(), ["device", "referrer"]);
    assert_eq!(pivot.measures[1].value.percentile, Some(90.0));
    assert_eq!(pivot.measures[1].line, 27);
}

#[test]
fn errors_name_their_line() {
    let cases = [
        (GOOD.replace("type = \"bar\"", "type = \"radar\""), "line 16: unknown visual type \"radar\""),
        (GOOD.replace("count_distinct(user_id)", "mode(user_id)"), "line 13: \"mode(user_id)\": unknown aggregation"),
        (GOOD.replace("top = 5", "top = 5\ncolour = \"x\""), "line 21: unknown field `colour`"),
        (GOOD.replace("value = \"count_distinct(user_id)\"", "value = \"count_distinct(user_id)\"\nx = \"page\""), "line 14: a kpi visual has no `x`"),
        (GOOD.replace("type = \"dropdown\"", "type = \"knob\""), "line 8: unknown control type \"knob\""),
        (GOOD.replace("field = \"device\"", "field = \"device\"\nop = \"<\""), "line 10: a dropdown control has no `op`"),
        (GOOD.replace("type = \"dropdown\"", "type = \"slider\"").replace("field = \"device\"", "field = \"device\"\nop = \"<\""), "line 10: a slider's op is"),
        (GOOD.replace("type = \"dropdown\"", "type = \"date_range\"").replace("field = \"device\"", "field = \"day\"\ngranularity = \"fortnight\""), "line 10: a date range's granularity"),
        (GOOD.replace("[[sheet.visual]]\ntype = \"kpi\"", "[[sheet.control]]\ntype = \"slider\"\nfield = \"device\"\n\n[[sheet.visual]]\ntype = \"kpi\""), "line 11: sheet \"Overview\" has two controls named \"device\""),
        (GOOD.replace("percentile(amount, 90)", "percentile(amount)"), "line 27: \"percentile(amount)\": percentile takes"),
        (GOOD.replace("dataset = \"clicks\"\n", ""), "line 6: which dataset?"),
        (GOOD.replace("rows = [\"device\"]", "rows = [\"referrer\"]"), "used twice"),
        ("title = \"x\"".to_string(), "no [[sheet]]"),
        ("[[sheet]\n".to_string(), "line 1:"),
    ];
    for (text, expected) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
        assert!(err.starts_with("InvalidParameterValueException"), "{err}");
    }
}

#[test]
fn a_sheet_holds_several_controls_of_every_kind() {
    let text = GOOD.replace(
        "[[sheet.visual]]\ntype = \"kpi\"",
        "[[sheet.control]]\nname = \"When\"\ntype = \"date_range\"\nfield = \"day\"\ngranularity = \"Month\"\n\n\
         [[sheet.control]]\ntype = \"slider\"\nfield = \"hour\"\nop = \">=\"\n\n\
         [[sheet.control]]\ntype = \"multi_select\"\nfield = \"referrer\"\n\n[[sheet.visual]]\ntype = \"kpi\"",
    );
    let spec = parse(&text).unwrap();
    let controls: Vec<(&str, ControlKind, SliderOp, Granularity, usize)> =
        spec.sheets[0].controls.iter().map(|c| (c.name.as_str(), c.kind, c.op, c.granularity, c.line)).collect();
    assert_eq!(
        controls,
        [
            ("device", ControlKind::Dropdown, SliderOp::AtMost, Granularity::Day, 7),
            ("When", ControlKind::DateRange, SliderOp::AtMost, Granularity::Month, 11),
            ("hour", ControlKind::Slider, SliderOp::AtLeast, Granularity::Day, 17),
            ("referrer", ControlKind::MultiSelect, SliderOp::AtMost, Granularity::Day, 22),
        ]
    );
}

#[test]
fn measures_parse() {
    let m = Measure::parse(" count(*) ").unwrap();
    assert_eq!((m.agg, m.field, m.label.as_str()), (Agg::Count, None, "count(*)"));
    let m = Measure::parse("AVG(\"Load Time\")").unwrap();
    assert_eq!((m.agg, m.field.as_deref()), (Agg::Avg, Some("Load Time")));
    for bad in ["sum(*)", "sum()", "sum(a, 2)", "percentile(a, 100)", "sum(a b)", "sum a", "sum(a"] {
        assert!(Measure::parse(bad).is_err(), "{bad}");
    }
}
