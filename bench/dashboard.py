#!/usr/bin/env python3
"""Dashboard build time and page size against DuckDB + plotly.py (not a test).

    .venv/bin/python bench/dashboard.py [--reps 3]

TPC-H SF1 `lineitem` (Parquet from tpchgen-cli, made once as bench/tpch.py makes it) and one
dashboard of 8 visuals with a dropdown control over `l_shipmode` (7 values, so every visual
is aggregated 8 times: each mode and all), built in the same run by:

1. Lakebook, through the kernel (`jupyter_client`, kernelspec 'lakebook'): a direct-query
   dataset over the catalog table, then `%%dashboard create` (every aggregate, the figure)
   and `%dashboard publish` to a local file, timed together from the client.
2. The peer: DuckDB (2 threads) runs the same aggregates — one GROUPING SETS query per visual
   (the control's field in and out) — and plotly.py builds the same figure (subplots, the same traces, a
   dropdown restyling them) and writes it with `write_html(include_plotlyjs=True)`.

Printed: each side's median time, the ratio (target: Lakebook faster, < 1.0×), each page's
size (target: Lakebook's < 2 MB), and a check that both sides' KPIs agree for every choice.
Run ./install/setup.sh --no-tour first (the binary and the kernelspec).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import plotly.graph_objects as go
from jupyter_client.manager import KernelManager
from plotly.subplots import make_subplots

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tpch import THREADS, cache_dir, generate  # noqa: E402

SPEC = """%%dashboard create lineitem --replace
title = "TPC-H lineitem"
dataset = "lineitem"

[[sheet]]
name = "Shipping"
columns = 4

[[sheet.control]]
name = "Ship mode"
type = "dropdown"
field = "l_shipmode"

[[sheet.visual]]
type = "kpi"
title = "Revenue"
value = "sum(l_extendedprice)"

[[sheet.visual]]
type = "kpi"
title = "Orders"
value = "count_distinct(l_orderkey)"

[[sheet.visual]]
type = "bar"
title = "Quantity by return flag"
x = "l_returnflag"
y = "sum(l_quantity)"

[[sheet.visual]]
type = "line"
title = "Lines shipped per year"
x = "ship_year"
y = "count(*)"

[[sheet.visual]]
type = "pie"
title = "Lines by instruction"
group = "l_shipinstruct"
value = "count(*)"

[[sheet.visual]]
type = "table"
title = "Discounts"
group = ["l_returnflag", "l_linestatus"]
values = ["avg(l_discount)", "max(l_tax)"]

[[sheet.visual]]
type = "pivot"
title = "Quantity by flag and status"
rows = "l_returnflag"
columns = "l_linestatus"
values = "sum(l_quantity)"

[[sheet.visual]]
type = "heatmap"
title = "Lines by year and instruction"
rows = "l_shipinstruct"
columns = "ship_year"
value = "count(*)"
"""

# The peer's aggregates: the same grouping sets, the control field in and out.
PEER = {
    "Revenue": ([], "sum(l_extendedprice)"),
    "Orders": ([], "count(DISTINCT l_orderkey)"),
    "Quantity by return flag": (["l_returnflag"], "sum(l_quantity)"),
    "Lines shipped per year": (["ship_year"], "count(*)"),
    "Lines by instruction": (["l_shipinstruct"], "count(*)"),
    "Discounts": (["l_returnflag", "l_linestatus"], "avg(l_discount), max(l_tax)"),
    "Quantity by flag and status": (["l_returnflag", "l_linestatus"], "sum(l_quantity)"),
    "Lines by year and instruction": (["l_shipinstruct", "ship_year"], "count(*)"),
}


def run_cell(client, code: str, timeout: float = 600) -> dict:
    msg_id = client.execute(code)
    result = {}
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error":
            raise RuntimeError(f"{code.splitlines()[0]}: {content['ename']}: {content['evalue']}")
        if kind in ("execute_result", "display_data"):
            result = content["data"]
        if kind == "stream":
            result.setdefault("stdout", "")
            result["stdout"] += content["text"]
        if kind == "status" and content["execution_state"] == "idle":
            return result


def lakebook(data: Path, out: Path, reps: int) -> tuple[list[float], dict]:
    home = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    km = KernelManager(kernel_name="lakebook")
    km.start_kernel(env=dict(os.environ, LAKEBOOK_HOME=str(home)))
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    try:
        run_cell(client, "%lake mb s3://tpch")
        target = home / "lake" / "tpch" / "lineitem"
        target.mkdir(parents=True, exist_ok=True)
        source = data / "lineitem.parquet"
        os.link(source, target / "lineitem.parquet") if source.is_file() else None
        if not source.is_file():
            for part in sorted((data / "lineitem").glob("*.parquet")):
                os.link(part, target / part.name)
        run_cell(client, "%crawl s3://tpch/lineitem/ --database tpch")
        run_cell(client, '%dashboard dataset create lineitem --table tpch.lineitem --mode direct --field "ship_year=date_part(\'year\', l_shipdate)"')
        times = []
        figure = {}
        for _ in range(reps):
            start = time.perf_counter()
            figure = run_cell(client, SPEC)["application/vnd.plotly.v1+json"]
            run_cell(client, f"%dashboard publish lineitem {out}")
            times.append(time.perf_counter() - start)
        return times, figure
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def peer(data: Path, out: Path, reps: int) -> tuple[list[float], dict]:
    pattern = data / "lineitem.parquet" if (data / "lineitem.parquet").is_file() else data / "lineitem" / "*.parquet"
    times = []
    kpis = {}
    for _ in range(reps):
        start = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"SET threads={THREADS}")
        con.execute(f"CREATE VIEW li AS SELECT *, date_part('year', l_shipdate) AS ship_year FROM read_parquet('{pattern}')")
        modes = [r[0] for r in con.execute("SELECT DISTINCT l_shipmode FROM li ORDER BY 1").fetchall()]
        frames: dict[str, dict] = {}
        for title, (dims, measures) in PEER.items():
            sets = f"({', '.join(dims + ['l_shipmode'])}), ({', '.join(dims)})"
            select = ", ".join(dims + ["l_shipmode", "grouping(l_shipmode) AS gc", measures])
            rows = con.execute(f"SELECT {select} FROM li GROUP BY GROUPING SETS ({sets})").fetchall()
            by_choice: dict[str, list] = {}
            for row in rows:
                choice = "All" if row[len(dims) + 1] else row[len(dims)]
                by_choice.setdefault(choice, []).append(row[: len(dims)] + row[len(dims) + 2 :])
            frames[title] = by_choice
        fig = make_subplots(
            rows=2, cols=4,
            specs=[[{"type": "domain"}, {"type": "domain"}, {"type": "xy"}, {"type": "xy"}], [{"type": "domain"}, {"type": "domain"}, {"type": "domain"}, {"type": "xy"}]],
            subplot_titles=list(PEER),
        )  # fmt: skip

        def traces(choice: str) -> list:
            f = {k: sorted(v.get(choice, []), key=lambda r: tuple(str(x) for x in r)) for k, v in frames.items()}
            return [
                go.Indicator(mode="number", value=f["Revenue"][0][0]),
                go.Indicator(mode="number", value=f["Orders"][0][0]),
                go.Bar(x=[r[0] for r in f["Quantity by return flag"]], y=[float(r[1]) for r in f["Quantity by return flag"]]),
                go.Scatter(x=[r[0] for r in f["Lines shipped per year"]], y=[r[1] for r in f["Lines shipped per year"]], mode="lines+markers"),
                go.Pie(labels=[r[0] for r in f["Lines by instruction"]], values=[r[1] for r in f["Lines by instruction"]], hole=0),
                go.Table(header={"values": ["flag", "status", "avg discount", "max tax"]}, cells={"values": [list(c) for c in zip(*f["Discounts"])]}),
                go.Table(header={"values": ["flag", "status", "quantity"]}, cells={"values": [list(c) for c in zip(*f["Quantity by flag and status"])]}),
                go.Heatmap(
                    y=[r[0] for r in f["Lines by year and instruction"]], x=[r[1] for r in f["Lines by year and instruction"]], z=[r[2] for r in f["Lines by year and instruction"]]
                ),
            ]

        places = [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4)]
        for trace, (r, c) in zip(traces("All"), places):
            fig.add_trace(trace, row=r, col=c)
        buttons = []
        for choice in ["All", *modes]:
            ts = traces(choice)
            update = {"value": [getattr(t, "value", None) for t in ts], "x": [getattr(t, "x", None) for t in ts], "y": [getattr(t, "y", None) for t in ts]}
            buttons.append({"label": choice, "method": "restyle", "args": [update]})
        fig.update_layout(updatemenus=[{"buttons": buttons}], height=800)
        fig.write_html(str(out), include_plotlyjs=True)
        times.append(time.perf_counter() - start)
        kpis = {choice: (frames["Revenue"][choice][0][0], frames["Orders"][choice][0][0]) for choice in ["All", *modes]}
    return times, kpis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    data = cache_dir() / "tpch-sf1"
    generate(data)
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-out-"))
    ours_html, theirs_html = work / "lakebook.html", work / "plotly.html"
    ours, figure = lakebook(data, ours_html, args.reps)
    theirs, kpis = peer(data, theirs_html, args.reps)
    # Both sides' KPIs for every choice (the Lakebook figure's dropdown carries them).
    buttons = figure["layout"]["updatemenus"][0]["buttons"]
    for button in buttons:
        revenue, orders = button["args"][0]["value"][0], button["args"][0]["value"][1]
        want = kpis[button["label"]]
        assert abs(revenue - float(want[0])) <= 1e-6 * abs(float(want[0])) and orders == want[1], (button["label"], revenue, orders, want)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(json.dumps({"lakebook_s": ours, "duckdb_plotly_s": theirs}))
    print(f"8 visuals × {len(buttons)} choices over TPC-H SF1 lineitem ({THREADS} threads each):")
    print(f"  Lakebook  (aggregate + figure + publish): {o:6.2f} s   page {ours_html.stat().st_size / 1e6:5.2f} MB")
    print(f"  DuckDB + plotly.py (same aggregates, write_html): {t:6.2f} s   page {theirs_html.stat().st_size / 1e6:5.2f} MB")
    print(f"  ratio: {o / t:.2f}× the peer's time (target < 1.0×); page target < 2 MB; KPIs agree for every choice")


if __name__ == "__main__":
    main()
