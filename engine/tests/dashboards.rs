//! Dashboards on the engine: SPICE and direct datasets (calculated fields, refresh, capacity,
//! schedules, reopen) and built dashboards whose every number — per control value too — is
//! what SQL gives for the same filter.

use std::time::Duration;

use bytes::Bytes;
use lakebook_engine::dashboards::build::{Built, BuiltControl, BuiltVisual, rows_of, settle};
use lakebook_engine::dashboards::{CalculatedField, DatasetSpec, IngestionStatus, Mode, Source};
use lakebook_engine::{Lakebook, S3Uri};
use serde_json::{Value, json};

const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
const PAGES: [&str; 5] = ["/", "/cart", "/help", "/product", "/search"];
const REFERRERS: [&str; 3] = ["ads", "direct", "search"];

/// Clicks where every number differs by device, so a control that filters nothing shows.
fn clicks(from: u32, to: u32) -> String {
    (from..to)
        .map(|i| {
            let device = DEVICES[(i % 7 % 3) as usize];
            let page = PAGES[(i * 7 % 11 % 5) as usize];
            let referrer = REFERRERS[(i % 5 % 3) as usize];
            format!(
                "{{\"user\":\"u{}\",\"device\":\"{device}\",\"page\":\"{page}\",\"referrer\":\"{referrer}\",\"ms\":{},\"ts\":\"2026-12-0{} {:02}:00:00\"}}\n",
                i % 13,
                (i * 37) % 500 + 20,
                1 + i % 3,
                i % 24
            )
        })
        .collect()
}

async fn put(lb: &Lakebook, uri: &str, data: &str) {
    let uri = S3Uri::parse(uri).unwrap();
    let _ = lb.lake().create_bucket(&uri.bucket);
    lb.lake().put(&uri, Bytes::from(data.to_string())).await.unwrap();
}

async fn setup(lb: &Lakebook) {
    put(lb, "s3://web/clicks/a.json", &clicks(0, 200)).await;
    lb.sql()
        .run(
            "CREATE DATABASE web; CREATE EXTERNAL TABLE web.clicks (user string, device string, page string, referrer string, ms int, ts string) \
             ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://web/clicks/'",
            "default",
        )
        .await
        .unwrap();
}

/// The query's rows, numbers settled as a dashboard shows them (12 significant digits).
async fn sql(lb: &Lakebook, query: &str) -> Vec<Vec<Value>> {
    let result = lb.sql().run(query, "web").await.unwrap().pop().unwrap();
    rows_of(&result.batches).into_iter().map(|row| row.iter().map(settle).collect()).collect()
}

fn dataset(name: &str, mode: Mode) -> DatasetSpec {
    DatasetSpec {
        name: name.into(),
        source: Source::Sql { sql: "SELECT * FROM clicks WHERE page <> '/help'".into(), database: "web".into() },
        mode,
        fields: vec![CalculatedField { name: "slow".into(), expression: "CASE WHEN ms > 300 THEN 'slow' ELSE 'fast' END".into() }],
        refresh: None,
    }
}

const SPEC: &str = r#"title = "Clicks"
dataset = "clicks"

[[sheet]]
name = "Overview"

[[sheet.control]]
name = "Device"
type = "dropdown"
field = "device"

[[sheet.visual]]
type = "kpi"
title = "Visitors"
value = "count_distinct(user)"
target = "count(*)"

[[sheet.visual]]
type = "bar"
title = "Top pages"
x = "page"
y = "count(*)"
top = 3

[[sheet.visual]]
type = "pie"
group = "slow"
value = "percentile(ms, 90)"

[[sheet.visual]]
type = "pivot"
rows = "referrer"
columns = "slow"
values = "count_distinct(user)"
"#;

fn visual<'a>(built: &'a Built, title: &str) -> &'a BuiltVisual {
    built.sheets[0].visuals.iter().find(|v| v.title == title).unwrap_or_else(|| panic!("no visual {title}"))
}

#[tokio::test]
async fn datasets_take_spice_snapshots_with_calculated_fields_and_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path()).unwrap();
    setup(&lb).await;
    let ds = lb.dashboards().create_dataset(dataset("clicks", Mode::Spice)).await.unwrap();
    let snapshot = ds.snapshot.clone().unwrap();
    let expected_rows = sql(&lb, "SELECT count(*) FROM clicks WHERE page <> '/help'").await[0][0].as_i64().unwrap() as u64;
    assert_eq!(snapshot.rows, expected_rows);
    // QuickSight's logical size: 8 bytes per number, 8 + UTF-8 length per text value.
    let text = sql(&lb, "SELECT sum(length(user) + length(device) + length(page) + length(referrer) + length(ts) + CASE WHEN ms > 300 THEN 4 ELSE 4 END) FROM clicks WHERE page <> '/help'").await;
    assert_eq!(snapshot.spice_bytes, expected_rows * 7 * 8 + text[0][0].as_i64().unwrap() as u64);
    let info = lb.dashboards().describe_dataset("clicks").await.unwrap();
    assert_eq!(info.columns.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["user", "device", "page", "referrer", "ms", "ts", "slow"]);
    assert_eq!((info.spice_used, info.spice_capacity), (snapshot.spice_bytes, 10_000_000_000));

    // New rows reach SPICE only by a refresh; a direct dataset sees them at once.
    lb.dashboards().create_dataset(dataset("live", Mode::DirectQuery)).await.unwrap();
    assert!(lb.dashboards().dataset("live").unwrap().snapshot.is_none());
    put(&lb, "s3://web/clicks/b.json", &clicks(200, 260)).await;
    let kpi = |built: &Built| visual(built, "n").frames[0].rows[0].measures[0].clone();
    let one = |ds: &str| format!("dataset = \"{ds}\"\n[[sheet]]\n[[sheet.visual]]\ntype = \"kpi\"\ntitle = \"n\"\nvalue = \"count(*)\"\n");
    let (_, spice) = lb.dashboards().create_dashboard("spice", &one("clicks"), false).await.unwrap();
    let (_, direct) = lb.dashboards().create_dashboard("direct", &one("live"), false).await.unwrap();
    let now_rows = sql(&lb, "SELECT count(*) FROM clicks WHERE page <> '/help'").await[0][0].clone();
    assert_eq!(kpi(&spice), json!(expected_rows));
    assert_eq!(kpi(&direct), now_rows);
    let ingestion = lb.dashboards().refresh_dataset("clicks").await.unwrap();
    assert_eq!((ingestion.status, json!(ingestion.rows)), (IngestionStatus::Completed, now_rows.clone()));
    assert_eq!(kpi(&lb.dashboards().build("spice").await.unwrap()), now_rows);
    let used = lb.dashboards().spice().0;

    // Capacity: an ingestion that does not fit fails, names the error and keeps the old rows.
    let err = lb.dashboards().set_spice_capacity(used - 1).unwrap_err();
    assert_eq!(err.code(), "InvalidParameterValueException");
    lb.dashboards().set_spice_capacity(used + 10).unwrap();
    put(&lb, "s3://web/clicks/c.json", &clicks(260, 300)).await;
    let failed = lb.dashboards().refresh_dataset("clicks").await.unwrap();
    assert_eq!(failed.status, IngestionStatus::Failed);
    assert!(failed.error.as_deref().unwrap().starts_with("INSUFFICIENT_SPICE_CAPACITY"), "{failed:?}");
    assert_eq!(kpi(&lb.dashboards().build("spice").await.unwrap()), now_rows);
    let err = lb.dashboards().create_dataset(DatasetSpec { name: "more".into(), ..dataset("x", Mode::Spice) }).await.unwrap_err();
    assert!(err.to_string().contains("INSUFFICIENT_SPICE_CAPACITY"), "{err}");
    assert!(lb.dashboards().dataset("more").unwrap().snapshot.is_none());

    // Bad datasets are refused before anything is kept.
    let mut bad = dataset("bad", Mode::Spice);
    bad.fields[0].expression = "ms +* 2".into();
    assert!(lb.dashboards().create_dataset(bad).await.is_err());
    let mut bad = dataset("bad", Mode::DirectQuery);
    bad.refresh = Some("rate(1 hour)".into());
    assert_eq!(lb.dashboards().create_dataset(bad).await.unwrap_err().code(), "InvalidParameterValueException");
    assert!(lb.dashboards().dataset("bad").is_err());
    assert_eq!(lb.dashboards().create_dataset(dataset("clicks", Mode::Spice)).await.unwrap_err().code(), "ResourceExistsException");

    // A reopen keeps datasets, their SPICE rows and dashboards.
    drop(lb);
    let lb = Lakebook::open(dir.path()).unwrap();
    assert_eq!(kpi(&lb.dashboards().build("spice").await.unwrap()), now_rows);
    assert_eq!(lb.dashboards().dataset("clicks").unwrap().ingestions.len(), 3);
    let spice_files = std::fs::read_dir(dir.path().join("dashboards/spice")).unwrap().count();
    assert_eq!(spice_files, 1, "replaced snapshots are removed");
    lb.dashboards().delete_dataset("clicks").unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join("dashboards/spice")).unwrap().count(), 0);
    assert_eq!(lb.dashboards().build("spice").await.unwrap_err().code(), "ResourceNotFoundException");
}

#[tokio::test]
async fn a_scheduled_refresh_runs_on_the_engine_clock() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path()).unwrap();
    lb.clock().set_manual(Some(lakebook_engine::clock::parse_time("2026-12-04T01:00:00Z").unwrap())).unwrap();
    setup(&lb).await;
    let ds = lb.dashboards().create_dataset(DatasetSpec { refresh: Some("rate(1 hour)".into()), ..dataset("clicks", Mode::Spice) }).await.unwrap();
    assert_eq!(ds.next_refresh.unwrap().to_rfc3339(), "2026-12-04T02:00:00+00:00");
    put(&lb, "s3://web/clicks/b.json", &clicks(200, 260)).await;
    lb.clock().advance(Duration::from_secs(59 * 60)).unwrap();
    assert!(lb.run_due_work().await.iter().all(|r| !r.contains("dataset")));
    lb.clock().advance(Duration::from_secs(60)).unwrap();
    let reports = lb.run_due_work().await;
    assert!(reports.iter().any(|r| r.starts_with("dataset clicks refreshed into SPICE")), "{reports:?}");
    let ds = lb.dashboards().dataset("clicks").unwrap();
    assert_eq!(ds.ingestions.last().unwrap().request_source, "SCHEDULED");
    assert_eq!(json!(ds.snapshot.unwrap().rows), sql(&lb, "SELECT count(*) FROM clicks WHERE page <> '/help'").await[0][0]);
    assert_eq!(ds.next_refresh.unwrap().to_rfc3339(), "2026-12-04T03:00:00+00:00");
}

#[tokio::test]
async fn every_number_of_a_dashboard_is_what_sql_gives_for_each_control_value() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path()).unwrap();
    setup(&lb).await;
    lb.dashboards().create_dataset(dataset("clicks", Mode::Spice)).await.unwrap();
    let (dashboard, built) = lb.dashboards().create_dashboard("overview", SPEC, false).await.unwrap();
    assert_eq!(dashboard.version, 1);
    let control = &built.sheets[0].controls[0];
    assert_eq!((control.name.as_str(), control.values.clone()), ("Device", DEVICES.map(String::from).to_vec()));

    const BASE: &str = "FROM clicks WHERE page <> '/help'";
    let mut filters = vec![String::new()];
    filters.extend(DEVICES.iter().map(|d| format!(" AND device = '{d}'")));
    for (choice, filter) in filters.iter().enumerate() {
        let kpi = &visual(&built, "Visitors").frame(&[choice]).rows[0].measures;
        assert_eq!(kpi, &sql(&lb, &format!("SELECT count(DISTINCT user), count(*) {BASE}{filter}")).await[0], "choice {choice}");

        let bars: Vec<Vec<Value>> = visual(&built, "Top pages").frame(&[choice]).rows.iter().map(|r| vec![r.dims[0].clone(), r.measures[0].clone()]).collect();
        assert_eq!(bars, sql(&lb, &format!("SELECT page, count(*) AS n {BASE}{filter} GROUP BY page ORDER BY n DESC, page LIMIT 3")).await);

        let pie: Vec<Vec<Value>> = visual(&built, "percentile(ms, 90) by slow").frame(&[choice]).rows.iter().map(|r| vec![r.dims[0].clone(), r.measures[0].clone()]).collect();
        let expected = sql(
            &lb,
            &format!("SELECT CASE WHEN ms > 300 THEN 'slow' ELSE 'fast' END AS s, percentile_cont(0.9) WITHIN GROUP (ORDER BY ms) AS p {BASE}{filter} GROUP BY 1 ORDER BY p DESC"),
        )
        .await;
        assert_eq!(pie, expected, "choice {choice}");

        // The pivot: every cell, row subtotal, column subtotal and the grand total, each a
        // count distinct of its own rows.
        let pivot = &visual(&built, "count_distinct(user) by referrer, slow").frame(&[choice]).rows;
        assert_eq!(pivot.len(), 3 * 2 + 3 + 2 + 1, "{pivot:?}");
        for row in pivot {
            let mut conditions = String::new();
            if !row.totals[0] {
                conditions.push_str(&format!(" AND referrer = '{}'", row.dims[0].as_str().unwrap()));
            }
            if !row.totals[1] {
                conditions.push_str(&format!(" AND CASE WHEN ms > 300 THEN 'slow' ELSE 'fast' END = '{}'", row.dims[1].as_str().unwrap()));
            }
            assert_eq!(row.measures[0], sql(&lb, &format!("SELECT count(DISTINCT user) {BASE}{filter}{conditions}")).await[0][0], "{row:?}");
        }
        assert!(pivot.last().unwrap().totals.iter().all(|t| *t), "the grand total comes last");
    }
    // The control changes the numbers (the data differs by device).
    let kpi = visual(&built, "Visitors");
    assert_ne!(kpi.frame(&[1]).rows[0].measures, kpi.frame(&[2]).rows[0].measures);

    // Re-creating needs --replace; a replace bumps the version.
    assert_eq!(lb.dashboards().create_dashboard("overview", SPEC, false).await.unwrap_err().code(), "ResourceExistsException");
    assert_eq!(lb.dashboards().create_dashboard("overview", SPEC, true).await.unwrap().0.version, 2);
}

#[tokio::test]
async fn spec_errors_name_their_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path()).unwrap();
    setup(&lb).await;
    lb.dashboards().create_dataset(dataset("clicks", Mode::DirectQuery)).await.unwrap();
    let cases = [
        (SPEC.replace("x = \"page\"", "x = \"pge\""), "line 21: dataset clicks has no field pge. Did you mean page?"),
        (SPEC.replace("percentile(ms, 90)", "percentile(page, 90)"), "line 28: percentile(page, 90): page is string"),
        (SPEC.replace("field = \"device\"", "field = \"user\""), "control Device: the field user has more than 100 values"),
        (SPEC.replace("dataset = \"clicks\"", "dataset = \"clickz\""), "ResourceNotFoundException: line 2: dataset clickz does not exist"),
        (SPEC.replace("type = \"pie\"", "type = \"radar\""), "line 26: unknown visual type"),
    ];
    put(&lb, "s3://web/clicks/many.json", &(0..150).map(|i| format!("{{\"user\":\"many{i}\",\"device\":\"desktop\",\"page\":\"/\",\"ms\":1}}\n")).collect::<String>()).await;
    for (spec, expected) in cases {
        let err = lb.dashboards().create_dashboard("bad", &spec, false).await.unwrap_err();
        let text = format!("{}: {}", err.code(), err.message());
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
    }
    assert!(lb.dashboards().dashboards().is_empty(), "a bad spec keeps nothing");
}

const MORE: &str = r#"dataset = "clicks"
[[sheet]]
[[sheet.control]]
type = "dropdown"
field = "device"

[[sheet.visual]]
type = "histogram"
x = "ms"
bins = 5

[[sheet.visual]]
type = "box"
group = "referrer"
value = "ms"

[[sheet.visual]]
type = "heatmap"
rows = "referrer"
columns = "slow"
value = "count(*)"

[[sheet.visual]]
type = "combo"
x = "referrer"
y = "count(*)"
lines = "avg(ms)"

[[sheet.visual]]
type = "scatter"
group = "page"
x = "avg(ms)"
y = "count(*)"
size = "count_distinct(user)"

[[sheet.visual]]
type = "treemap"
group = ["referrer", "page"]
value = "count(*)"

[[sheet.visual]]
type = "funnel"
group = "page"
value = "count_distinct(user)"

[[sheet.visual]]
type = "waterfall"
group = "referrer"
value = "sum(ms)"

[[sheet.visual]]
type = "gauge"
value = "avg(ms)"
target = "max(ms)"

[[sheet.visual]]
type = "area"
title = "Area"
x = "referrer"
y = "count(*)"
color = "slow"
mode = "stacked"
"#;

#[tokio::test]
async fn the_other_visual_types_get_sqls_numbers_per_control_value() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path()).unwrap();
    setup(&lb).await;
    lb.dashboards().create_dataset(dataset("clicks", Mode::DirectQuery)).await.unwrap();
    let (_, built) = lb.dashboards().create_dashboard("more", MORE, false).await.unwrap();
    const BASE: &str = "FROM clicks WHERE page <> '/help'";
    let rows = |v: &BuiltVisual, choice: usize| -> Vec<Vec<Value>> { v.frame(&[choice]).rows.iter().map(|r| r.dims.iter().chain(&r.measures).cloned().collect()).collect() };
    let (lo, hi) = {
        let r = sql(&lb, &format!("SELECT CAST(min(ms) AS DOUBLE), CAST(max(ms) AS DOUBLE) {BASE}")).await;
        (r[0][0].as_f64().unwrap(), r[0][1].as_f64().unwrap())
    };
    let width = (hi - lo) / 5.0;
    for (choice, filter) in std::iter::once(String::new()).chain(DEVICES.iter().map(|d| format!(" AND device = '{d}'"))).enumerate() {
        // Histogram: five bins over the whole range; a choice changes counts, not edges.
        let histogram = visual(&built, "distribution of ms");
        assert_eq!(histogram.bin_width, Some(width));
        let expected = sql(
            &lb,
            &format!("SELECT {lo:?} + LEAST(CAST(FLOOR((CAST(ms AS DOUBLE) - {lo:?}) / {width:?}) AS BIGINT), 4) * {width:?} AS b, count(ms) {BASE}{filter} GROUP BY 1 ORDER BY 1"),
        )
        .await;
        assert_eq!(rows(histogram, choice).len(), expected.len());
        for (got, want) in rows(histogram, choice).iter().zip(&expected) {
            assert!((got[0].as_f64().unwrap() - want[0].as_f64().unwrap()).abs() < 1e-9 && got[1] == want[1], "{got:?} {want:?}");
        }
        // Box: the five numbers of each group.
        let expected = sql(
            &lb,
            &format!(
                "SELECT referrer, min(ms), percentile_cont(0.25) WITHIN GROUP (ORDER BY ms), median(ms), percentile_cont(0.75) WITHIN GROUP (ORDER BY ms), max(ms) {BASE}{filter} GROUP BY referrer ORDER BY referrer"
            ),
        )
        .await;
        assert_eq!(rows(visual(&built, "ms by referrer"), choice), expected, "box {choice}");
        let cells = sql(&lb, &format!("SELECT referrer, CASE WHEN ms > 300 THEN 'slow' ELSE 'fast' END AS s, count(*) {BASE}{filter} GROUP BY 1, 2 ORDER BY 1, 2")).await;
        assert_eq!(rows(visual(&built, "count(*) by referrer, slow"), choice), cells, "heatmap {choice}");
        let combo = sql(&lb, &format!("SELECT referrer, count(*), avg(ms) {BASE}{filter} GROUP BY referrer ORDER BY referrer")).await;
        assert_eq!(rows(visual(&built, "count(*), avg(ms) by referrer"), choice), combo);
        let scatter = sql(&lb, &format!("SELECT page, avg(ms) AS a, count(*), count(DISTINCT user) {BASE}{filter} GROUP BY page ORDER BY a DESC, page")).await;
        assert_eq!(rows(visual(&built, "avg(ms), count(*), count_distinct(user) by page"), choice), scatter);
        let funnel = sql(&lb, &format!("SELECT page, count(DISTINCT user) AS n {BASE}{filter} GROUP BY page ORDER BY n DESC, page")).await;
        assert_eq!(rows(visual(&built, "count_distinct(user) by page"), choice), funnel);
        let waterfall = sql(&lb, &format!("SELECT referrer, sum(ms) {BASE}{filter} GROUP BY referrer ORDER BY referrer")).await;
        assert_eq!(rows(visual(&built, "sum(ms) by referrer"), choice), waterfall);
        let gauge = sql(&lb, &format!("SELECT avg(ms), max(ms) {BASE}{filter}")).await;
        assert_eq!(rows(visual(&built, "avg(ms)"), choice), gauge);
        let treemap = rows(visual(&built, "count(*) by referrer, page"), choice);
        let total: i64 = treemap.iter().map(|r| r[2].as_i64().unwrap()).sum();
        assert_eq!(json!(total), sql(&lb, &format!("SELECT count(*) {BASE}{filter}")).await[0][0]);
    }
    let combo = visual(&built, "count(*), avg(ms) by referrer");
    assert_eq!((combo.line_measures, combo.measures.len()), (1, 2));
    // A histogram of text, a box of a measure, and keys of another visual type are refused.
    for (from, to, expected) in [
        ("x = \"ms\"\nbins = 5", "x = \"page\"", "line 9: a histogram bins numbers, and page is string"),
        ("value = \"ms\"", "value = \"avg(ms)\"", "line 15: a box visual's `value` is a numeric field"),
        ("lines = \"avg(ms)\"", "lines = \"avg(ms)\"\ndonut = true", "line 28: a combo visual has no `donut`"),
    ] {
        let err = lb.dashboards().create_dashboard("bad", &MORE.replacen(from, to, 1), false).await.unwrap_err();
        assert!(err.message().contains(expected), "{expected:?} not in {:?}", err.message());
    }
}

const CONTROLS: &str = r#"dataset = "clicks"
[[sheet]]
[[sheet.control]]
name = "Day"
type = "date_range"
field = "ts"

[[sheet.control]]
name = "Referrers"
type = "multi_select"
field = "referrer"

[[sheet.control]]
name = "Pages up to"
type = "slider"
field = "page"

[[sheet.visual]]
type = "kpi"
title = "Visitors"
value = "count_distinct(user)"
target = "count(*)"

[[sheet.visual]]
type = "bar"
title = "Median by page"
x = "page"
y = "median(ms)"

[[sheet.visual]]
type = "table"
title = "Distinct times"
group = "device"
values = ["count_distinct(ms)", "avg(ms)"]
"#;

/// The SQL condition a control's choice stands for.
fn condition(control: &BuiltControl, choice: usize, column: &str) -> String {
    if choice == 0 {
        return String::new();
    }
    let members: Vec<String> = control.choices[choice].iter().map(|&i| format!("'{}'", control.values[i])).collect();
    format!(" AND {column} IN ({})", members.join(", "))
}

#[tokio::test]
async fn every_combination_of_date_range_multi_select_and_slider_is_what_sql_gives() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path()).unwrap();
    setup(&lb).await;
    lb.dashboards().create_dataset(dataset("clicks", Mode::Spice)).await.unwrap();
    let (_, built) = lb.dashboards().create_dashboard("controls", CONTROLS, false).await.unwrap();
    let controls = &built.sheets[0].controls;
    let days = &controls[0];
    assert_eq!(days.values, ["2026-12-01", "2026-12-02", "2026-12-03"]);
    assert_eq!(days.choices.len(), 6, "all, and every other from–to range: {:?}", days.choices);
    assert_eq!(days.choice_of(&[1, 2]), Some(4));
    let referrers = &controls[1];
    assert_eq!((referrers.values.clone(), referrers.choices.len()), (REFERRERS.map(String::from).to_vec(), 7));
    let pages = &controls[2];
    assert_eq!(pages.values, ["/", "/cart", "/product", "/search"]);
    assert_eq!(pages.choices[2], [0, 1], "a slider at /cart keeps the pages up to /cart");

    const BASE: &str = "FROM clicks WHERE page <> '/help'";
    let (kpi, bar, table) = (&built.sheets[0].visuals[0], &built.sheets[0].visuals[1], &built.sheets[0].visuals[2]);
    assert_eq!((kpi.radix.clone(), kpi.frames.len()), (vec![6, 7, 5], 210));
    let mut differing = std::collections::BTreeSet::new();
    for d in 0..6 {
        for r in 0..7 {
            for p in 0..5 {
                let filter = format!(
                    "{}{}{}",
                    condition(days, d, "substr(ts, 1, 10)"),
                    condition(referrers, r, "referrer"),
                    condition(pages, p, "page")
                );
                // A choice no row has still shows its counts (zero).
                let measures = &kpi.frame(&[d, r, p]).rows[0].measures;
                let expected = sql(&lb, &format!("SELECT count(DISTINCT user), count(*) {BASE}{filter}")).await;
                assert_eq!(measures, &expected[0], "({d}, {r}, {p}){filter}");
                differing.insert(format!("{measures:?}"));
                if (d + r + p) % 4 == 0 {
                    let bars: Vec<Vec<Value>> = bar.frame(&[d, r, p]).rows.iter().map(|row| vec![row.dims[0].clone(), row.measures[0].clone()]).collect();
                    let expected = sql(&lb, &format!("SELECT page, median(ms) AS m {BASE}{filter} GROUP BY page ORDER BY m DESC, page")).await;
                    assert_eq!(bars, expected, "({d}, {r}, {p}){filter}");
                }
                // Count distinct of an integer: sets of values from the shared cube, unioned.
                if (d + r + p) % 3 == 0 {
                    let rows: Vec<Vec<Value>> = table.frame(&[d, r, p]).rows.iter().map(|row| [row.dims.clone(), row.measures.clone()].concat()).collect();
                    let expected = sql(&lb, &format!("SELECT device, count(DISTINCT ms) AS n, avg(ms) {BASE}{filter} GROUP BY device ORDER BY n DESC, device")).await;
                    assert_eq!(rows, expected, "({d}, {r}, {p}){filter}");
                }
            }
        }
    }
    assert!(differing.len() > 50, "the controls change the numbers: {} distinct KPIs", differing.len());

    // Controls that cannot be precomputed say so, on their line.
    let cases = [
        (CONTROLS.replace("field = \"ts\"", "field = \"ms\""), "line 6: control Day: a date range needs dates, and ms is int"),
        (CONTROLS.replace("field = \"referrer\"", "field = \"user\""), "line 8: control Referrers: the field user has more than 8 values"),
        (
            CONTROLS.replace("[[sheet.visual]]\ntype = \"kpi\"", "[[sheet.control]]\ntype = \"dropdown\"\nfield = \"user\"\n\n[[sheet.visual]]\ntype = \"kpi\""),
            "line 18: the sheet's controls make 2940 combinations of choices with control user",
        ),
    ];
    for (spec, expected) in cases {
        let err = lb.dashboards().create_dashboard("bad", &spec, false).await.unwrap_err();
        assert!(err.message().contains(expected), "{expected:?} not in {:?}", err.message());
    }
}

/// Sums, counts, averages and extremes come from a cube (one grouped scan shared by the
/// sheet's visuals): decimals average to four more places, truncated, as SQL's AVG does, and
/// null amounts count as SQL counts them.
#[tokio::test]
async fn a_cube_gives_sqls_sums_averages_and_extremes_of_decimals_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path()).unwrap();
    setup(&lb).await;
    lb.sql()
        .run(
            "CREATE TABLE web.orders AS SELECT device, referrer, CASE WHEN ms % 7 = 0 THEN NULL ELSE CAST(ms / 3.0 AS DECIMAL(12, 2)) END AS amount, ms FROM web.clicks",
            "default",
        )
        .await
        .unwrap();
    let spec = DatasetSpec { source: Source::Sql { sql: "SELECT * FROM orders".into(), database: "web".into() }, fields: vec![], ..dataset("orders", Mode::DirectQuery) };
    lb.dashboards().create_dataset(spec).await.unwrap();
    let dashboard = r#"dataset = "orders"
[[sheet]]
name = "Orders"
[[sheet.control]]
name = "Device"
type = "dropdown"
field = "device"
[[sheet.visual]]
type = "kpi"
title = "Amounts"
value = "avg(amount)"
[[sheet.visual]]
type = "table"
title = "By referrer"
group = "referrer"
values = ["sum(amount)", "avg(amount)", "min(amount)", "max(amount)", "count(amount)", "count(*)", "avg(ms)"]
"#;
    let (_, built) = lb.dashboards().create_dashboard("orders", dashboard, false).await.unwrap();
    let mut filters = vec![String::new()];
    filters.extend(DEVICES.iter().map(|d| format!(" WHERE device = '{d}'")));
    for (choice, filter) in filters.iter().enumerate() {
        let kpi = &visual(&built, "Amounts").frame(&[choice]).rows[0].measures;
        assert_eq!(kpi, &sql(&lb, &format!("SELECT avg(amount) FROM orders{filter}")).await[0], "choice {choice}");
        let table: Vec<Vec<Value>> = visual(&built, "By referrer").frame(&[choice]).rows.iter().map(|r| [r.dims.clone(), r.measures.clone()].concat()).collect();
        let expected = sql(
            &lb,
            &format!("SELECT referrer, sum(amount) AS s, avg(amount), min(amount), max(amount), count(amount), count(*), avg(ms) FROM orders{filter} GROUP BY referrer ORDER BY s DESC, referrer"),
        )
        .await;
        assert_eq!(table, expected, "choice {choice}");
    }
    // An average of two-place decimals has six places, as SQL's: not a double's seventeen.
    let avg = visual(&built, "Amounts").frame(&[0]).rows[0].measures[0].as_f64().unwrap();
    assert_eq!(avg, (avg * 1e6).round() / 1e6);
}

/// A direct dashboard over a stream: its data version moves when records arrive (and only
/// then), and its next build counts them.
#[tokio::test]
async fn a_direct_dashboard_over_a_stream_follows_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path()).unwrap();
    lb.streams().create("taps", Some(1), None).unwrap();
    let put_taps = |from: u32, to: u32| {
        for line in clicks(from, to).lines() {
            lb.streams().put_record("taps", "k", Bytes::from(line.to_string()), None).unwrap();
        }
    };
    put_taps(0, 30);
    let spec = DatasetSpec { source: Source::Sql { sql: "SELECT device, ms FROM streams.taps".into(), database: "default".into() }, fields: vec![], ..dataset("taps", Mode::DirectQuery) };
    lb.dashboards().create_dataset(spec).await.unwrap();
    let dashboard = "dataset = \"taps\"\n[[sheet]]\nname = \"Taps\"\n[[sheet.visual]]\ntype = \"kpi\"\ntitle = \"Taps\"\nvalue = \"count(*)\"\n";
    lb.dashboards().create_dashboard("taps", dashboard, false).await.unwrap();
    let count = |built: &Built| visual(built, "Taps").frame(&[]).rows[0].measures[0].clone();
    let before = lb.dashboards().data_version("taps").await.unwrap();
    assert_eq!(count(&lb.dashboards().build("taps").await.unwrap()), json!(30));
    assert_eq!(lb.dashboards().data_version("taps").await.unwrap(), before);
    put_taps(30, 42);
    assert_ne!(lb.dashboards().data_version("taps").await.unwrap(), before);
    assert_eq!(count(&lb.dashboards().build("taps").await.unwrap()), json!(42));
}
