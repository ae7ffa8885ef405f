"""`%dashboard` through the kernel: datasets (SPICE with calculated fields, direct), a
dashboard whose every visual type draws and whose dropdown control gives, for each value,
the numbers SQL gives for the same filter — checked in the figure the kernel sends and in
the published HTML file opened in headless Chromium from file:// with the network cut —
spec errors that name their line, SPICE capacity, and a restart that keeps everything.

Screenshots of the published dashboard go to tests/artifacts/dashboard/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from kernel_harness import REPO, Kernel, put_object, table_rows

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts" / "dashboard"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
DEVICES = ["desktop", "mobile", "tablet"]
PAGES = ["/", "/cart", "/help", "/product", "/search"]
REFERRERS = ["ads", "direct", "search"]

pytestmark = pytest.mark.timeout(300)


def clicks(first: int, last: int) -> str:
    out = []
    for i in range(first, last):
        device = DEVICES[i % 7 % 3]
        page = PAGES[i * 7 % 11 % 5]
        referrer = REFERRERS[i % 5 % 3]
        out.append(
            json.dumps({"user": f"u{i % 13}", "device": device, "page": page, "referrer": referrer, "ms": (i * 37) % 500 + 20, "hour": i % 24})
        )
    return "\n".join(out) + "\n"


SPEC = """%%dashboard create overview
title = "Clickstream"
dataset = "clicks"

[[sheet]]
name = "Overview"
columns = 3

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
type = "line"
title = "Load time by hour"
x = "hour"
y = ["avg(ms)", "percentile(ms, 90)"]

[[sheet.visual]]
type = "pie"
title = "Speed"
group = "speed"
value = "count(*)"
donut = true

[[sheet.visual]]
type = "table"
title = "Referrers"
group = "referrer"
values = ["count(*)", "count_distinct(user)"]

[[sheet.visual]]
type = "pivot"
title = "Users by referrer and speed"
rows = "referrer"
columns = "speed"
values = "count_distinct(user)"

[[sheet]]
name = "More"
columns = 4

[[sheet.control]]
name = "Device"
type = "dropdown"
field = "device"

[[sheet.visual]]
type = "bar"
title = "Stacked"
x = "referrer"
y = "count(*)"
color = "speed"
mode = "stacked"
orientation = "horizontal"

[[sheet.visual]]
type = "area"
x = "hour"
y = "count(*)"

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
type = "heatmap"
title = "Hour by referrer"
rows = "referrer"
columns = "hour"
value = "count(*)"
span = 2

[[sheet.visual]]
type = "treemap"
group = ["referrer", "page"]
value = "count(*)"

[[sheet.visual]]
type = "histogram"
x = "ms"
bins = 10

[[sheet.visual]]
type = "box"
group = "speed"
value = "ms"

[[sheet.visual]]
type = "gauge"
value = "avg(ms)"
target = "max(ms)"

[[sheet.visual]]
type = "funnel"
group = "page"
value = "count_distinct(user)"

[[sheet.visual]]
type = "waterfall"
group = "referrer"
value = "count(*)"
"""


def setup(kernel: Kernel) -> None:
    put_object(kernel.home, "web/clicks/a.json", clicks(0, 240))
    kernel.ok(
        "%%sql\nCREATE DATABASE web;\n"
        "CREATE EXTERNAL TABLE web.clicks (user string, device string, page string, referrer string, ms int, hour int) "
        "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://web/clicks/'"
    )
    ex = kernel.ok(
        "%%dashboard dataset create clicks --database web --field \"speed=CASE WHEN ms > 300 THEN 'slow' ELSE 'fast' END\"\n"
        "SELECT * FROM clicks WHERE page <> '/help'"
    )
    assert re.search(r"Created dataset clicks \(SPICE\): 1\d\d rows in SPICE \(\d", ex.stream()), ex.describe()


def sql_value(kernel: Kernel, query: str) -> list[list[str]]:
    return table_rows(kernel.ok(f"%sql {query}").result["text/plain"])


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_a_dashboard_draws_every_visual_and_its_control_gives_sqls_numbers(kernel: Kernel) -> None:
    setup(kernel)
    info = kernel.ok("%dashboard dataset describe clicks").result["text/plain"]
    assert re.search(r"mode\s+┆ SPICE", info) and re.search(r"field speed\s+┆ string = CASE WHEN ms > 300", info), info
    assert re.search(r"spice_free\s+┆ 10\.0 GB of 10\.0 GB", info) and re.search(r"ingestion-1\s+┆ FULL_REFRESH COMPLETED", info), info
    rows = int(sql_value(kernel, "SELECT count(*) FROM web.clicks WHERE page <> '/help'")[0][0])
    assert re.search(rf"rows\s+┆ {rows}\b", info), info

    ex = kernel.ok(SPEC)
    shown = ex.of_type("display_data")
    assert len(shown) == 2 and not ex.of_type("execute_result"), ex.describe()
    assert all(m["content"]["transient"]["display_id"] for m in shown), "each sheet can be redrawn in place"
    bundle = shown[0]["content"]["data"]
    figure = bundle[PLOTLY_MIME]
    more = shown[1]["content"]["data"][PLOTLY_MIME]
    assert [t["type"] for t in more["data"]] == [
        "bar", "bar", "scatter", "bar", "scatter", "scatter", "heatmap", "treemap", "bar", "box", "indicator", "funnel", "waterfall"
    ], [t["type"] for t in more["data"]]
    types = [t["type"] for t in figure["data"]]
    assert types == ["indicator", "bar", "scatter", "scatter", "pie", "table", "table"], types
    text = bundle["text/plain"]
    assert "control Device (dropdown, 3 values)" in text, text
    assert "plotly.js, embedded for offline use" in bundle["text/html"], "the first drawing carries plotly.js"

    base = "FROM web.clicks WHERE page <> '/help'"
    buttons = figure["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == ["All", *DEVICES]
    for choice, label in enumerate(["All", *DEVICES]):
        where = "" if label == "All" else f" AND device = '{label}'"
        update = buttons[choice]["args"][0]
        visitors, total = sql_value(kernel, f"SELECT count(DISTINCT user), count(*) {base}{where}")[0]
        assert update["value"][0] == int(visitors) and update["delta.reference"][0] == int(total), (label, update["value"])
        top = sql_value(kernel, f"SELECT page, count(*) AS n {base}{where} GROUP BY page ORDER BY n DESC, page LIMIT 3")
        assert update["x"][1] == [p for p, _ in top] and update["y"][1] == [int(n) for _, n in top], label
        p90 = sql_value(kernel, f"SELECT hour, percentile_cont(0.9) WITHIN GROUP (ORDER BY ms) {base}{where} GROUP BY hour ORDER BY hour")
        assert update["x"][3] == [int(h) for h, _ in p90] and update["y"][3] == pytest.approx([number(v) for _, v in p90]), label
        pivot = update["cells.values"][6]
        slow_users = sql_value(kernel, f"SELECT referrer, count(DISTINCT user) {base}{where} AND ms > 300 GROUP BY referrer ORDER BY referrer")
        assert pivot[0][:-1] == [r for r, _ in slow_users] and pivot[2][:-1] == [int(n) for _, n in slow_users], (label, pivot)
        grand = sql_value(kernel, f"SELECT count(DISTINCT user) {base}{where}")[0][0]
        assert pivot[0][-1] == "<b>Total</b>" and pivot[-1][-1] == int(grand), pivot
    assert buttons[1]["args"][0]["delta.reference"][0] != buttons[2]["args"][0]["delta.reference"][0], "the control changes the numbers"

    # A second drawing does not carry plotly.js again.
    again = kernel.ok("%dashboard show overview").of_type("display_data")[0]["content"]["data"]
    assert "plotly.js, embedded" not in again["text/html"] and again[PLOTLY_MIME]["data"] == figure["data"]

    # Spec errors name their line; nothing is kept.
    err = kernel.failing(SPEC.replace("overview", "broken").replace('x = "page"', 'x = "pgae"'), "InvalidParameterValueException")
    assert "line 23: dataset clicks has no field pgae. Did you mean page?" in err.error["evalue"], err.describe()
    err = kernel.failing(SPEC.replace("overview", "broken").replace('type = "pie"', 'type = "radar"'), "InvalidParameterValueException")
    assert err.error["evalue"].startswith("line 34: unknown visual type"), err.describe()
    kernel.failing("%dashboard show broken", "ResourceNotFoundException")
    kernel.failing(SPEC, "ResourceExistsException")
    assert "already exists; kept" in kernel.ok(SPEC.replace("create overview", "create overview --if-not-exists")).stream()


def test_publish_writes_one_offline_file_that_draws_and_filters_in_chromium(kernel: Kernel, tmp_path: Path) -> None:
    setup(kernel)
    kernel.ok(SPEC)
    kernel.failing("%dashboard publish overview s3://reports/overview.html", "NoSuchBucket")
    kernel.ok("%lake mb s3://reports")
    out = kernel.ok("%dashboard publish overview s3://reports/overview.html").stream()
    size = re.search(r"Published dashboard overview to s3://reports/overview.html: ([\d.]+) (MB|KB)", out)
    assert size and (float(size.group(1)) < 2.0 or size.group(2) == "KB"), out
    assert "(2 sheet(s)" in out, out
    published = kernel.home / "lake" / "reports" / "overview.html"
    local = tmp_path / "out" / "overview.html"
    kernel.ok(f"%dashboard publish overview {local}")
    assert local.read_bytes() == published.read_bytes()
    base = "FROM web.clicks WHERE page <> '/help'"
    expected = {
        label: sql_value(kernel, f"SELECT count(DISTINCT user) {base}{'' if label == 'All' else f' AND device = {chr(39)}{label}{chr(39)}'}")[0][0]
        for label in ["All", "mobile"]
    }

    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():  # fail, never skip
        raise RuntimeError(f"{CHROMIUM} not found: run install/setup.sh")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            requests: list[str] = []

            def refuse(route) -> None:
                if not route.request.url.startswith("file://"):
                    requests.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            context.route("**/*", refuse)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(local.as_uri())
            page.wait_for_selector("#status", state="detached", timeout=60_000)
            # Every visual type drew.
            one, two = page.locator("#sheet-0"), page.locator("#sheet-1")
            assert one.locator(".indicatorlayer .number").count() == 1
            assert one.locator(".barlayer .point").count() == 3
            assert one.locator(".scatterlayer .trace").count() == 2
            assert one.locator(".pielayer .slice").count() == 2
            assert one.locator(".table").count() == 2
            # The second sheet: every other visual type has marks on the page.
            for name, selector, least in [
                ("stacked and histogram bars, combo bars", ".barlayer .point", 6 + 3 + 5),
                ("area, combo line, scatter", ".scatterlayer .trace", 3),
                ("area fill", ".scatterlayer .fills path", 1),
                ("scatter points", ".scatterlayer .points .point", 4 + 3),
                ("heat map", ".heatmaplayer image, .imagelayer image, g.hm image", 1),
                ("tree map", ".treemaplayer .slice", 3 + 4),
                ("box", ".boxlayer .trace path", 2),
                ("gauge", ".indicatorlayer .angular", 1),
                ("funnel", ".funnellayer .point", 4),
                ("waterfall", ".waterfalllayer .point", 4),
            ]:
                assert two.locator(selector).count() >= least, (name, selector, two.locator(selector).count())
            kpi = one.locator(".indicatorlayer .number").text_content() or ""
            assert number(kpi) == number(expected["All"]), kpi
            page.screenshot(path=str(ARTIFACTS / "published-all.png"), full_page=True)
            # Choose "mobile" in the page's dropdown: the KPI shows SQL's count for mobile.
            page.select_option("#controls-0 select[aria-label='Device']", label="mobile")
            page.wait_for_function(
                "(v) => document.querySelector('.indicatorlayer .number').textContent.replace(/,/g, '') == v",
                arg=expected["mobile"],
                timeout=10_000,
            )
            traces = page.evaluate("document.getElementById('sheet-0').data.map(t => t.value ?? null)")
            assert traces[0] == int(expected["mobile"]), traces
            page.screenshot(path=str(ARTIFACTS / "published-mobile.png"), full_page=True)
            assert not requests, f"the page asked the network for {requests}"
            assert not errors, errors
        finally:
            browser.close()


def test_spice_capacity_direct_datasets_and_a_restart(kernel: Kernel, start_kernel) -> None:
    setup(kernel)
    kernel.ok("%dashboard dataset create live --database web --mode direct --sql \"SELECT * FROM clicks\"")
    spec = 'dataset = "DS"\n[[sheet]]\n[[sheet.visual]]\ntype = "kpi"\ntitle = "n"\nvalue = "count(*)"\n'
    kernel.ok("%%dashboard create spice\n" + spec.replace("DS", "clicks"))
    created = kernel.ok("%%dashboard create direct\n" + spec.replace("DS", "live")).of_type("display_data")[0]
    assert not kernel.ok("%sql SELECT 1").of_type("update_display_data"), "nothing changed, nothing is redrawn"
    put_object(kernel.home, "web/clicks/b.json", clicks(240, 300))

    def kpi(name: str) -> int:
        return kernel.ok(f"%dashboard show {name}").of_type("display_data")[0]["content"]["data"][PLOTLY_MIME]["data"][0]["value"]

    total = int(sql_value(kernel, "SELECT count(*) FROM web.clicks")[0][0])
    kept = int(sql_value(kernel, "SELECT count(*) FROM web.clicks WHERE page <> '/help'")[0][0])
    assert kpi("direct") == total, "a direct dataset reads its source at every build"
    # New files under the direct dataset's table: the next cell redraws its dashboard in place.
    ex = kernel.ok("%sql SELECT 2")
    assert not ex.of_type("update_display_data"), "the cell that showed it redrew the earlier display already"
    put_object(kernel.home, "web/clicks/b2.json", clicks(300, 310))
    ex = kernel.ok("%sql SELECT 3")
    updates = [u for u in ex.of_type("update_display_data") if u["content"]["transient"]["display_id"] == created["content"]["transient"]["display_id"]]
    assert len(updates) == 1 and updates[0]["content"]["data"][PLOTLY_MIME]["data"][0]["value"] == total + 10, ex.describe()
    assert "Redrew dashboard direct in place (2 display(s))." in ex.stream(), ex.describe()
    total += 10
    kept = int(sql_value(kernel, "SELECT count(*) FROM web.clicks WHERE page <> '/help'")[0][0])
    assert kpi("spice") < kept, "SPICE keeps the rows of its last ingestion"
    ex = kernel.ok("%dashboard dataset refresh clicks")
    assert re.search(rf"Refreshed dataset clicks \(ingestion-2\): {kept} rows", ex.stream()), ex.describe()
    # Every display of the SPICE dashboard shown so far (create, show) is redrawn in place;
    # the direct one, whose data did not change through a refresh, is left alone.
    assert "Redrew dashboard spice in place (2 display(s))." in ex.stream(), ex.describe()
    updates = ex.of_type("update_display_data")
    assert len(updates) == 2 and all(u["content"]["data"][PLOTLY_MIME]["data"][0]["value"] == kept for u in updates), ex.describe()
    assert kpi("spice") == kept

    used = kernel.ok("%dashboard capacity").result["text/plain"]
    assert re.match(r"SPICE: [\d.]+ KB used of 10\.0 GB", used), used
    kernel.failing("%dashboard capacity 1KB", "InvalidParameterValueException")
    kernel.ok("%dashboard capacity 30KB")
    put_object(kernel.home, "web/clicks/c.json", clicks(300, 900))
    err = kernel.failing("%dashboard dataset refresh clicks", "LimitExceededException")
    assert "INSUFFICIENT_SPICE_CAPACITY" in err.error["evalue"], err.describe()
    assert kpi("spice") == kept, "a failed ingestion keeps the rows already in SPICE"
    kernel.failing('%dashboard dataset create d2 --database web --mode direct --sql "SELECT 1" --refresh "rate(1 hour)"', "InvalidParameterValueException")
    kernel.failing("%dashboard dataset create bad --database web --sql \"SELECT nope FROM clicks\"", "COLUMN_NOT_FOUND")

    kernel.stop()
    again = start_kernel()
    listing = again.ok("%dashboard dataset list").result["text/plain"]
    assert [r[:2] for r in table_rows(listing)] == [["clicks", "SPICE"], ["live", "DIRECT_QUERY"]], listing
    assert again.ok("%dashboard show spice").of_type("display_data")[0]["content"]["data"][PLOTLY_MIME]["data"][0]["value"] == kept
    assert [r[0] for r in table_rows(again.ok("%dashboard list").result["text/plain"])] == ["direct", "spice"]
    again.ok("%dashboard delete direct")
    again.failing("%dashboard show direct", "ResourceNotFoundException")


CONTROLS = """%%dashboard create controls
dataset = "days"

[[sheet]]
name = "Controls"

[[sheet.control]]
name = "Day"
type = "date_range"
field = "day"

[[sheet.control]]
name = "Referrer"
type = "multi_select"
field = "referrer"

[[sheet.control]]
name = "From hour"
type = "slider"
field = "hour"
op = ">="

[[sheet.visual]]
type = "kpi"
title = "Visitors"
value = "count_distinct(user)"
target = "count(*)"

[[sheet.visual]]
type = "bar"
x = "page"
y = "count(*)"
"""

DAY = "CASE hour % 3 WHEN 0 THEN '2026-03-01' WHEN 1 THEN '2026-03-02' ELSE '2026-03-03' END"


def test_controls_combine_in_the_published_page_and_a_scheduled_refresh_redraws_in_place(kernel: Kernel, tmp_path: Path) -> None:
    setup(kernel)
    kernel.ok("%clock manual --at 2026-03-04T00:00:00Z")
    kernel.ok(f'%dashboard dataset create days --database web --table clicks --field "day={DAY}" --refresh "rate(1 hour)"')
    ex = kernel.ok(CONTROLS)
    shown = ex.of_type("display_data")
    figure = shown[0]["content"]["data"][PLOTLY_MIME]
    display_id = shown[0]["content"]["transient"]["display_id"]
    # Inline, the first control (a date range) is Plotly's slider of start days; the others
    # stay at All and say so.
    steps = figure["layout"]["sliders"][0]["steps"]
    assert [s["label"] for s in steps] == ["All", "2026-03-02 – 2026-03-03", "2026-03-03 – 2026-03-03"], steps
    later = sql_value(kernel, f"SELECT count(DISTINCT user) FROM web.clicks WHERE {DAY} >= '2026-03-02'")[0][0]
    assert steps[1]["args"][0]["value"][0] == int(later), (steps[1]["args"][0], later)
    assert "Referrer, From hour at All here" in json.dumps(figure["layout"]["annotations"]), figure["layout"]["annotations"]

    # More rows land; the dataset's hourly refresh runs when the clock reaches it, and the
    # dashboard shown above is redrawn in place with them.
    before = figure["data"][0]["delta"]["reference"]
    assert before == 240, figure["data"][0]
    put_object(kernel.home, "web/clicks/b.json", clicks(240, 400))
    assert not kernel.ok("%clock advance 30m").of_type("update_display_data"), "nothing is redrawn before the refresh"
    ex = kernel.ok("%clock advance 30m")
    updates = ex.of_type("update_display_data")
    assert [u["content"]["transient"]["display_id"] for u in updates] == [display_id], ex.describe()
    kpi = updates[0]["content"]["data"][PLOTLY_MIME]["data"][0]
    now = int(sql_value(kernel, "SELECT count(DISTINCT user) FROM web.clicks")[0][0])
    assert (kpi["value"], kpi["delta"]["reference"]) == (now, 400), kpi
    assert "Redrew dashboard controls in place (1 display(s))." in ex.stream(), ex.describe()

    local = tmp_path / "controls.html"
    kernel.ok(f"%dashboard publish controls {local}")
    where = f"{DAY} BETWEEN '2026-03-02' AND '2026-03-03' AND referrer IN ('direct', 'search') AND hour >= 12"
    expected = sql_value(kernel, f"SELECT count(DISTINCT user) FROM web.clicks WHERE {where}")[0][0]
    pages = sql_value(kernel, f"SELECT page, count(*) AS n FROM web.clicks WHERE {where} GROUP BY page ORDER BY n DESC, page")

    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():  # fail, never skip
        raise RuntimeError(f"{CHROMIUM} not found: run install/setup.sh")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://") else route.abort())
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(local.as_uri())
            page.wait_for_selector("#status", state="detached", timeout=60_000)
            assert number(page.locator(".indicatorlayer .number").text_content() or "") == now
            page.select_option("select[aria-label='Day from']", label="2026-03-02")
            page.locator("[data-control='Referrer'] input[value='0']").uncheck()
            page.evaluate(
                "() => { const r = document.querySelector(\"[data-control='From hour'] input\"); r.value = 13; r.dispatchEvent(new Event('input')); }"
            )
            assert page.locator("[data-control='From hour'] output").text_content() == "≥ 12"
            page.wait_for_function(
                "(v) => document.querySelector('.indicatorlayer .number').textContent.replace(/,/g, '') == v", arg=expected, timeout=10_000
            )
            bars = page.evaluate("() => { const t = document.getElementById('sheet-0').data[1]; return [t.x, t.y]; }")
            assert bars == [[p for p, _ in pages], [int(n) for _, n in pages]], (bars, pages)
            page.screenshot(path=str(ARTIFACTS / "published-controls.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()


def test_a_dashboard_over_a_continuous_applications_sink_redraws_as_its_windows_close(kernel: Kernel) -> None:
    from test_analytics import APP

    kernel.ok("%clock manual --at 2026-01-01T10:00:00Z")
    kernel.ok("%stream create clicks --shards 1")
    kernel.ok("%lake mb s3://lake")
    kernel.ok("%sql CREATE DATABASE web")
    kernel.ok("%sql CREATE EXTERNAL TABLE web.views (page string, window_start timestamp, views bigint) STORED AS JSONFILE LOCATION 's3://lake/views/'")
    kernel.ok(APP)
    kernel.ok("%dashboard dataset create views --database web --table views --mode direct")
    shown = kernel.ok('%%dashboard create live\ndataset = "views"\n[[sheet]]\n[[sheet.visual]]\ntype = "kpi"\nvalue = "sum(views)"\n')
    display = shown.of_type("display_data")[0]
    assert display["content"]["data"][PLOTLY_MIME]["data"][0]["value"] is None, "no window has closed"
    display_id = display["content"]["transient"]["display_id"]

    def redrawn(ex) -> list[int]:
        return [
            u["content"]["data"][PLOTLY_MIME]["data"][0]["value"]
            for u in ex.of_type("update_display_data")
            if u["content"]["transient"]["display_id"] == display_id
        ]

    records = "\n".join(
        f'{{"page":"{page}","ts":"2026-01-01 {ts}"}}' for page, ts in [("home", "10:00:05"), ("cart", "10:00:50"), ("home", "10:00:30"), ("home", "10:01:07")]
    )
    kernel.ok("%%stream put clicks --partition-key k\n" + records)
    # The first minute closes when the application starts: its rows land in the sink, and
    # the dashboard over it is redrawn in place by that cell.
    assert redrawn(kernel.ok("%analytics start per_minute")) == [3]
    assert redrawn(kernel.ok("%clock advance 1s")) == [], "nothing new in the sink, nothing redrawn"
    assert redrawn(kernel.ok("%analytics stop per_minute --drain")) == [4]
