"""Execute every notebooks/*.ipynb on the 'lakebook' kernel twice in a row in one workspace
(a rerun in place, as "Restart kernel and run all" or CI in the same folder does): with
`jupyter nbconvert --execute` as it is, then with `papermill` and its `parameters` cell's value
changed. Both runs use the same LAKEBOOK_HOME, with cwd = notebooks/; a notebook starts clean
on purpose with `%workspace reset --yes` in its setup cell. A cell may only produce an error
output when it is tagged `raises-exception` (and then it must); teaching cells use
`%%lakebook-allow-error` (papermill stops at any error output). Per-notebook output checks
live in CHECKS, keyed by notebook file name, so new notebooks add theirs there; they find
cells by their nbformat cell id. Both runs must pass them and show the same outputs apart
from timings. Executed copies are kept in tests/artifacts/notebooks/.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernel_harness import KERNEL_NAME, NOTEBOOKS, REPO, table_rows
from nbformat import NotebookNode

ARTIFACTS = REPO / "tests" / "artifacts" / "notebooks"
NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


# --- output accessors --------------------------------------------------------------------


def cell(nb: NotebookNode, cell_id: str) -> NotebookNode:
    for c in nb.cells:
        if c.get("id") == cell_id:
            return c
    raise AssertionError(f"no cell with id {cell_id!r}")


def outputs(nb: NotebookNode, cell_id: str, output_type: str) -> list[NotebookNode]:
    return [o for o in cell(nb, cell_id).outputs if o.output_type == output_type]


def result(nb: NotebookNode, cell_id: str, mime: str = "text/plain") -> str:
    results = outputs(nb, cell_id, "execute_result")
    assert len(results) == 1, f"{cell_id}: expected one execute_result, got {cell(nb, cell_id).outputs}"
    return results[0].data[mime]


def display(nb: NotebookNode, cell_id: str, mime: str = "text/plain", index: int = 0) -> Any:
    """data of a cell's display_data output (as redrawn in place by later cells)."""
    shown = outputs(nb, cell_id, "display_data")
    assert len(shown) > index, f"{cell_id}: expected display_data, got {cell(nb, cell_id).outputs}"
    return shown[index].data[mime]


def stream(nb: NotebookNode, cell_id: str, name: str = "stdout") -> str:
    return "".join(o.text for o in outputs(nb, cell_id, "stream") if o.name == name)


def shown(nb: NotebookNode, cell_id: str) -> str:
    """Everything a cell showed as text, in order: stdout and every display's text/plain (a
    cell of several magics shows the earlier results as display_data)."""
    parts = []
    for o in cell(nb, cell_id).outputs:
        if o.output_type == "stream" and o.name == "stdout":
            parts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            parts.append(o.data.get("text/plain", "") + "\n")
    return "".join(parts)


def error(nb: NotebookNode, cell_id: str) -> NotebookNode:
    """The error a cell showed: its error output, or for a `%%lakebook-allow-error` teaching
    cell the error it printed on stderr (`Name: message`, then the hint lines)."""
    if cell(nb, cell_id).source.startswith("%%lakebook-allow-error"):
        lines = re.sub(r"\x1b\[[0-9;]*m", "", stream(nb, cell_id, "stderr")).splitlines()
        assert lines, f"{cell_id}: the teaching cell showed no error: {cell(nb, cell_id).outputs}"
        ename, _, first = lines[0].partition(": ")
        rest = lines[1:]
        hints = next((i for i, line in enumerate(rest) if line.startswith("hint: ")), len(rest))
        return NotebookNode(ename=ename, evalue="\n".join([first, *rest[:hints]]), traceback=lines)
    errors = outputs(nb, cell_id, "error")
    assert len(errors) == 1, f"{cell_id}: expected one error, got {cell(nb, cell_id).outputs}"
    return errors[0]


# --- per-notebook checks ------------------------------------------------------------------


def check_tour(nb: NotebookNode) -> None:
    listing = result(nb, "lsmagic")
    assert "%lake" in listing and "%clock" in listing, listing
    assert stream(nb, "parameters") == "bucket = demo\n", stream(nb, "parameters")
    assert result(nb, "clock-manual") == "2026-01-01T00:58:00Z (manual)"
    assert "make_bucket: demo" in stream(nb, "stream-create")
    assert "Created stream clicks (provisioned, 2 shard(s)" in stream(nb, "stream-create")

    # four minutes at 10/s, delivered every minute by both delivery streams
    generated = stream(nb, "stream-generate")
    assert generated.startswith(
        "Generated 2400 record(s) into clicks over 4m (10/s): 2400 stored, 0 throttled, 0 failed."
        " Manual clock advanced to 2026-01-01T01:02:00Z.\n"
    ), generated
    parquet = re.findall(r"firehose delivered (\d+) record\(s\) to s3://demo/clicks/dt=2026-01-01/hour=(\d\d)/clicks-parquet-1-2026-01-01-(\d\d-\d\d)-00-[0-9a-f-]{36}\.parquet", generated)
    assert parquet == [("600", "00", "00-58"), ("600", "00", "00-59"), ("600", "01", "01-00"), ("600", "01", "01-01")], generated
    assert len(re.findall(r"firehose delivered 600 record\(s\) to s3://demo/raw/2026/01/01/0[01]/clicks-raw-1-", generated)) == 4, generated
    ls = result(nb, "ls")
    assert "4 rows × 3 columns" in ls and "<table" in result(nb, "ls", "text/html"), ls

    crawl = result(nb, "crawl")
    assert re.search(r"clicks\s+┆ created\s+┆ 1\s+┆ 2\b", crawl), crawl
    assert [r[:2] for r in table_rows(result(nb, "partitions"))] == [["2026-01-01", "00"], ["2026-01-01", "01"]], result(nb, "partitions")

    # the same query over both partitions and over one: the pruned scan reads about half
    everything, pruned = table_rows(result(nb, "sql-all")), table_rows(result(nb, "sql-pruned"))
    assert [r[0] for r in everything] == ["page_view", "click", "add_to_cart", "purchase"], everything
    assert sum(int(r[1]) for r in everything) == 2400 and sum(int(r[1]) for r in pruned) == 1200, (everything, pruned)
    scanned = [scanned_kb(result(nb, c)) for c in ("sql-all", "sql-pruned")]
    assert 0.4 < scanned[1] / scanned[0] < 0.6, scanned
    assert "at Athena's price" in result(nb, "sql-pruned")
    pages = ["/", "/account", "/cart", "/checkout", "/product", "/search"]
    figure = check_chart(nb, "sql-chart", "bar", pages, [])
    assert sum(figure["data"][0]["y"]) == sum(int(r[1]) for r in everything if r[0] == "page_view"), figure["data"][0]

    # the second aggregate: events per referrer over the raw copy, by MapReduce
    assert "COMPLETED → s3://demo/referrers/" in shown(nb, "emr-step"), shown(nb, "emr-step")
    counted = [line.split() for line in stream(nb, "emr-output").splitlines()]
    assert [c[1] for c in counted] == ["bing", "direct", "email", "facebook", "google"], counted
    assert sum(int(c[0]) for c in counted) == 2400, counted

    # the last three minutes of the stream on the engine clock (01:03:30 after the cluster booted)
    windows = table_rows(result(nb, "stream-sql"))
    assert [r[:2] for r in windows] == [["2026-01-01 01:00:00", "300"], ["2026-01-01 01:01:00", "600"]], windows
    assert result(nb, "advance") == "2026-01-01T01:04:30Z (manual)"

    # the continuous query: three minutes close on the watermark, the fourth on drain
    assert stream(nb, "analytics-create").startswith("Created application per_minute: READY."), stream(nb, "analytics-create")
    assert stream(nb, "analytics-start") == "analytics per_minute emitted 12 row(s)\nper_minute: RUNNING\n", stream(nb, "analytics-start")
    minutes = ["2026-01-01 00:58:00", "2026-01-01 00:59:00", "2026-01-01 01:00:00"]
    figure = result(nb, "analytics-peek", "application/vnd.plotly.v1+json")
    traces = sorted(figure["data"], key=lambda t: t["name"])
    assert [t["name"] for t in traces] == ["add_to_cart", "click", "page_view", "purchase"], traces
    assert all(t["type"] == "bar" and t["x"] == minutes for t in traces), traces
    # every event of each closed minute counted once: 10/s is 600 a minute
    assert [sum(t["y"][i] for t in traces) for i in range(3)] == [600, 600, 600], traces
    assert "Plotly.newPlot" in result(nb, "analytics-peek", "text/html")
    assert stream(nb, "analytics-drain") == "per_minute: READY (16 row(s) emitted in all)\n", stream(nb, "analytics-drain")
    assert "part-per_minute-" in result(nb, "analytics-drain"), result(nb, "analytics-drain")

    # the small dashboard: its KPI for "all" is SQL's distinct users over the table
    assert re.match(r"Created dataset tour-clicks \(SPICE\): 2400 rows in SPICE", stream(nb, "dashboard-dataset")), stream(nb, "dashboard-dataset")
    figure = display(nb, "dashboard", PLOTLY_MIME)
    assert [t["type"] for t in figure["data"]] == ["indicator", "bar", "pie"], figure["data"]
    assert [b["label"] for b in figure["layout"]["updatemenus"][0]["buttons"]] == ["All", "desktop", "mobile", "tablet"]
    assert sum(figure["data"][1]["y"]) == 2400 and 0 < figure["data"][0]["value"] <= 500, figure["data"]

    info = cell(nb, "info").outputs
    assert any(o.output_type == "execute_result" and "text/html" in o.data for o in info), info
    assert error(nb, "nosuchkey").ename == "NoSuchKey"

    # a fresh workspace: nothing in the tour warns
    for c in nb.cells:
        if c.cell_type == "code" and not c.source.startswith("%%lakebook-allow-error"):
            assert stream(nb, c.id, "stderr") == "", (c.id, c.outputs)


def scanned_kb(footer: str) -> float:
    m = re.search(r"([\d.]+) (B|KB|MB) scanned", footer)
    assert m, footer
    return float(m.group(1)) * {"B": 0.001, "KB": 1, "MB": 1000}[m.group(2)]


def check_chart(nb: NotebookNode, cell_id: str, kind: str, x: list, y: list) -> dict:
    """A chart result: a Plotly figure (the bundle VS Code, JupyterLab and Notebook 7 draw), an
    HTML fallback that draws it (nbconvert, classic), a text summary; and no dataresource
    bundle, which JupyterLab cannot render and VS Code shows blank."""
    figure = result(nb, cell_id, "application/vnd.plotly.v1+json")
    trace = figure["data"][0]
    assert trace["type"] == kind and trace["x"][: len(x)] == x and trace["y"][: len(y)] == y, trace
    html = result(nb, cell_id, "text/html")
    assert "Plotly.newPlot" in html, html[:500]
    assert "chart of" in result(nb, cell_id), result(nb, cell_id)
    bundle = outputs(nb, cell_id, "execute_result")[0].data
    assert "application/vnd.dataresource+json" not in bundle, list(bundle)
    return figure


def check_crawl(nb: NotebookNode) -> None:
    first = result(nb, "crawl1")
    assert re.search(r"clicks\s+┆ created\s+┆ 1\s+┆ 2\b", first), first
    assert re.search(r"orders\s+┆ created\s+┆ 1\s+┆ 2\b", first), first
    assert re.search(r"products\s+┆ created", first), first
    assert "s3://lake/orders/2026/02/broken.json" in first and "invalid JSON" in first, first
    tables = result(nb, "tables")
    assert "csv (delimiter ',', header)" in tables and "year, month, day" in tables, tables
    assert "partition_0, partition_1" in tables and "parquet" in tables, tables
    orders = result(nb, "describe-json")
    assert "array<struct<sku:string,qty:bigint>>" in orders, orders
    assert orders.index("order_id") < orders.index("user_id") < orders.index("items"), orders
    second = result(nb, "crawl2")
    assert re.search(r"clicks\s+┆ updated\s+┆ 2\s+┆ 1\b.*referrer", second), second
    assert "s3://lake/clicks/year=2026/month=01/day=03/" in result(nb, "partitions")
    versions = result(nb, "versions")
    assert re.search(r"│ 1 .*ts timestamp\s+┆", versions) and "referrer string" in versions, versions
    assert "scheduled crawler nightly ran" in stream(nb, "tick")
    assert "nightly" in result(nb, "list")
    typo = error(nb, "typo")
    assert typo.ename == "EntityNotFoundException" and "did you mean shop.clicks?" in "\n".join(typo.traceback)


def scanned(table_text: str) -> int:
    m = re.search(r"· (\d+) B scanned", table_text)
    assert m, table_text
    return int(m.group(1))


def check_athena(nb: NotebookNode) -> None:
    counts = result(nb, "count")
    assert re.search(r"01\s+┆ 4\s+┆ 158.75", counts) and "3 rows × 3 columns" in counts, counts
    assert "$0.00005 at Athena's price" in counts, counts
    full, pruned = result(nb, "full"), result(nb, "pruned")
    assert re.search(r"│ 11\s+│", full) and re.search(r"│ 3\s+│", pruned), (full, pruned)
    assert scanned(pruned) * 3 < scanned(full) * 2, (full, pruned)
    plan = result(nb, "explain")
    assert "day=02" in plan and "day=01" not in plan, plan
    assert re.search(r"kitchen\s+┆ 3\s+┆ 34.63", result(nb, "parquet"))
    assert re.search(r"/home\s+┆ 6", result(nb, "reuse"))
    check_chart(nb, "chart", "bar", ["01", "03"], [1, 1])  # the /docs series
    assert len(result(nb, "chart", "application/vnd.plotly.v1+json")["data"]) == 4  # one series per page
    assert "window.Plotly = Plotly" in result(nb, "chart", "text/html"), "the first chart embeds plotly.js"
    assert "window.Plotly = Plotly" not in result(nb, "rechart", "text/html"), "only the first one does"
    assert result(nb, "rechart", "application/vnd.plotly.v1+json")["data"][0]["mode"] == "lines"
    ctas = stream(nb, "ctas")
    assert "table web.daily_pages created: 8 row(s) in 3 file(s) under s3://lake/derived/daily_pages/" in ctas, ctas
    listing = result(nb, "ctas-ls")
    assert all(f"daily_pages/day=0{d}/" in listing for d in (1, 2, 3)) and ".parquet" in listing, listing
    assert "1 row(s) inserted into web.daily_pages" in stream(nb, "insert")
    assert re.search(r"04\s+┆ 9\s+│", result(nb, "ctas-query")), result(nb, "ctas-query")
    assert "is in the catalog" in stream(nb, "external")
    assert stream(nb, "msck").count("Repair: Added partition to metastore pages_copy:day=") == 4
    assert re.search(r"│ 9\s+│", result(nb, "copy-count")), result(nb, "copy-count")
    assert "queries cancelled past 10.0 MB" in stream(nb, "wg-create")
    assert re.search(r"│ 11\s+│", result(nb, "wg-query"))
    history = result(nb, "history")
    assert "s3://team-results/athena/" in history and "analysts" in history, history
    assert history.count("SUCCEEDED") >= 7 and "s3://lakebook-query-results/" in history, history
    assert error(nb, "typo").ename == "TABLE_NOT_FOUND"
    syntax = error(nb, "syntax")
    assert syntax.ename == "SYNTAX_ERROR" and any("WHER day" in line for line in syntax.traceback), syntax


SEQ = "49{:012d}{:042d}".format  # a sequence number: 49, the shard number, the shard's counter


def check_streams(nb: NotebookNode) -> None:
    created = result(nb, "create")
    assert "Created stream orders (provisioned, 4 shard(s)" in stream(nb, "create")
    for shard in range(4):  # four even ranges: shard i starts at i·2^126
        assert re.search(rf"shardId-00000000000{shard} ┆ OPEN .*┆ {shard * 2**126}\s+┆", created), created

    # MD5 routing: the hash key of each partition key, and the shard whose range holds it
    alice = result(nb, "put-alice")
    assert re.search(rf"alice\s+┆ 132283552702735894323332391932430538300 ┆ shardId-000000000001 ┆ {SEQ(1, 1)}", alice), alice
    more = shown(nb, "put-more")
    for key, shard in (("bob", 2), ("dave", 0), ("judy", 3)):
        assert re.search(rf"{key}\s+┆ \d+\s+┆ shardId-00000000000{shard} ┆ {SEQ(shard, 1)}", more), more
    described = result(nb, "describe")
    assert len(re.findall(r"┆ OPEN .*┆ 1\s+┆ \d+\s+│", described)) == 4, described  # one record per shard

    # PutRecords: per-record results, one failure
    batch = result(nb, "put-batch")
    assert "FailedRecordCount: 1 · 1 PutRecords call(s)" in batch, batch
    assert re.search(r"│\s+┆\s+┆\s+┆ InvalidArgumentException ┆ a partition key is 1 to 256 characters", batch), batch
    assert re.search(rf"dave\s+┆ shardId-000000000000 ┆ {SEQ(0, 2)}", batch), batch
    assert re.search(rf"alice\s+┆ shardId-000000000001 ┆ {SEQ(1, 2)}", batch), batch

    # every iterator type on shard 0 (dave's tea at 10:00, then dave's pot, frank's mug, grace's tin at 10:01)
    items = lambda cell_id: re.findall(r'"item": "(\w+)"', result(nb, cell_id))  # noqa: E731
    assert items("get-trim") == ["tea", "pot"], result(nb, "get-trim")
    assert re.search(r"NextShardIterator: [0-9a-f]{40,}\nMillisBehindLatest: 30000\n", stream(nb, "get-trim"))
    assert items("get-at-seq") == ["pot", "mug", "tin"], result(nb, "get-at-seq")
    assert items("get-after-seq") == ["mug", "tin"], result(nb, "get-after-seq")
    assert items("get-at-ts") == ["pot", "mug", "tin"], result(nb, "get-at-ts")
    assert "0 rows" in result(nb, "get-latest") and "MillisBehindLatest: 0\n" in stream(nb, "get-latest")

    # throttling on the manual clock: 1,000 records/s and 5 reads/s per shard
    assert "Generated 3000 record(s) into sensors over 2s (1500/s): 2000 stored, 1000 throttled, 0 failed." in stream(nb, "gen-throttled")
    assert "ProvisionedThroughputExceededException" in stream(nb, "gen-throttled", "stderr")
    assert shown(nb, "get-5").count("1 row × 4 columns") == 5, shown(nb, "get-5")
    throttled = error(nb, "get-6th")
    assert throttled.ename == "ProvisionedThroughputExceededException", throttled
    assert "1 row × 4 columns" in result(nb, "get-next-second")
    assert "3000 stored, 0 throttled" in shown(nb, "limits-off"), shown(nb, "limits-off")

    # resharding: lineage, and parent-before-child reads keep a key's records in order
    assert "Split shardId-000000000001 into shardId-000000000004 and shardId-000000000005." in stream(nb, "split")
    split = result(nb, "split")
    assert re.search(r"shardId-000000000001 ┆ CLOSED", split), split
    assert len(re.findall(r"shardId-00000000000[45] ┆ OPEN\s+┆ shardId-000000000001 ┆", split)) == 2, split
    after = result(nb, "put-after-split")
    assert after.count("┆ shardId-000000000005 ┆") == 2 and "FailedRecordCount: 0" in after, after
    read = result(nb, "read")
    alice_rows = re.findall(r'(shardId-\d+) ┆ \d+ ┆ [\d:\- ]+┆ alice\s+┆ \{"user": "alice", "item": "(\w+)"', read)
    assert alice_rows == [("shardId-000000000001", "book"), ("shardId-000000000001", "pan"),
                          ("shardId-000000000005", "lamp"), ("shardId-000000000005", "pen")], read  # fmt: skip
    shard_order = re.findall(r"│ (shardId-\d+) ┆", read)
    assert shard_order == sorted(shard_order) and len(shard_order) == 11, read
    assert "6 shard(s) read, parents before children" in read
    assert "Scaled orders to 4 open shard(s): shardId-000000000006, shardId-000000000007, shardId-000000000008 and shardId-000000000009" in stream(nb, "scale")
    scaled = result(nb, "scale")
    assert scaled.count("┆ CLOSED ┆") == 6 and scaled.count("┆ OPEN   ┆") == 4, scaled
    assert re.search(r"shardId-000000000007 ┆ OPEN\s+┆ shardId-000000000004 ┆ shardId-000000000005\s+┆", scaled), scaled

    # the seeded generator
    assert "{{random.weightedArrayElement(" in stream(nb, "show-template") and "date.epochMillis" in stream(nb, "show-template")
    assert (
        "Generated 3000 record(s) into clicks over 1m (50/s): 3000 stored, 0 throttled, 0 failed."
        " Manual clock advanced to 2026-03-01T10:06:00Z." in shown(nb, "generate")
    ), shown(nb, "generate")

    # consumers: checkpoints advance, shard 0 is finished before shard 1, children wait for parents
    assert "Registered consumer billing" in stream(nb, "consumer-register")
    first, second = result(nb, "consume-1"), result(nb, "consume-2")
    assert items("consume-1") == ["tea", "pot", "mug"], first
    assert "checkpoints: shardId-000000000000: …3, shardId-000000000001: TRIM_HORIZON," in first, first
    assert items("consume-2") == ["tin", "book", "pan"], second
    assert "checkpoints: shardId-000000000000: SHARD_END, shardId-000000000001: SHARD_END, shardId-000000000002: TRIM_HORIZON" in second
    leases = result(nb, "leases")
    assert re.search(r"shardId-000000000000 ┆ SHARD_END\s+┆ 2\s+┆", leases), leases
    assert re.search(r"shardId-000000000007 ┆ TRIM_HORIZON ┆ \d+\s+┆ shardId-000000000004, shardId-000000000005 │", leases), leases

    # SQL over the stream: JSON fields as columns, 10-second windows of 500 events
    peek = result(nb, "sql-peek")
    assert re.search(r"string\s+┆ string\s+┆ timestamp\s+┆ string\s+┆ string\s+┆ double", peek), peek
    windows = result(nb, "sql-windows")
    rows = re.findall(r"2026-03-01 (10:05:\d0) ┆ (\w+)\s+┆ (\d+)", windows)
    assert len(rows) == 24 and ("10:05:00", "page_view", "293") in rows and ("10:05:50", "purchase", "35") in rows, windows
    per_window: dict[str, int] = {}
    for start, _, n in rows:
        per_window[start] = per_window.get(start, 0) + int(n)
    assert per_window == {f"10:05:{s}0": 500 for s in range(6)}, per_window
    check_chart(nb, "sql-chart", "bar", ["2026-03-01 10:05:00", "2026-03-01 10:05:10"], [65, 57])  # add_to_cart
    assert [t["name"] for t in result(nb, "sql-chart", "application/vnd.plotly.v1+json")["data"]] == [
        "add_to_cart", "click", "page_view", "purchase"]  # fmt: skip
    joined = result(nb, "sql-join")
    assert re.search(r"│ search\s+┆ 86\s+┆ 11816.81 │", joined) and "4 rows × 3 columns" in joined, joined

    assert stream(nb, "delete").count("Deleted stream") == 3 and "0 rows" in result(nb, "delete")
    # only the throttled generator warns
    for c in nb.cells:
        if c.cell_type == "code" and c.id != "gen-throttled" and not c.source.startswith("%%lakebook-allow-error"):
            assert stream(nb, c.id, "stderr") == "", (c.id, c.outputs)


def check_firehose(nb: NotebookNode) -> None:
    # the transform's result states: one record dropped (a bot), one failed processing
    put = result(nb, "put")
    assert put.count("-dropped") == 1 and "6 rows × 3 columns · FailedPutCount: 0" in put, put
    buffers = result(nb, "describe")
    assert re.search(r"│ data\s+┆ 4\s+┆", buffers) and re.search(r"│ error: processing-failed ┆ 1\s+┆", buffers), buffers
    assert "1 dropped" in stream(nb, "describe"), stream(nb, "describe")
    # the interval counts from the oldest record; the prefix is evaluated on its arrival time
    assert "delivered" not in stream(nb, "advance-30")
    due = stream(nb, "advance-60")
    assert "firehose delivered 4 record(s) to s3://weblogs/data/webaccess/year=2026/month=03/day=02/webaccess-1-2026-03-02-23-59-30-" in due, due
    assert "firehose delivered 1 record(s) (processing-failed) to s3://weblogs/error/webaccess/processing-failed/year=2026/month=03/day=02/" in due, due
    assert "to s3://weblogs/data/webaccess/year=2026/month=03/day=03/webaccess-1-2026-03-03-00-00-30-" in stream(nb, "flush")
    listing = result(nb, "ls")
    assert "3 rows × 3 columns" in listing, listing
    doc = json.loads(stream(nb, "error-doc"))
    assert doc["errorCode"] == "Lambda.ProcessingFailed" and base64.b64decode(doc["rawData"]) == b"this line is not an access log line", doc
    assert re.search(r"webaccess ┆ created ┆ 1\s+┆ 2\s+┆", result(nb, "crawl"))
    rows = re.findall(r"│ (\d\d)\s+┆ (\d+)\s+┆ (\d+)\s+┆ (\d+)\s+│", result(nb, "sql"))
    assert rows == [("02", "200", "2", "5950"), ("02", "302", "1", "0"), ("02", "404", "1", "153"), ("03", "200", "1", "412"), ("03", "500", "1", "97")], rows

    # dynamic partitioning: one buffer per key value, the record without a key goes to the errors
    buffers = result(nb, "dp-describe")
    for customer, n in (("acme", 2), ("globex", 1), ("initech", 1)):
        assert re.search(rf"│ customer={customer}\s+┆ {n}\s+┆", buffers), buffers
    assert re.search(r"│ error: partitioning-failed ┆ 1\s+┆", buffers), buffers
    flushed = result(nb, "dp-flush")
    assert all(f"s3://weblogs/orders/customer={c}/orders-1-2026-03-03-00-01-30-" in flushed for c in ("acme", "globex", "initech")), flushed
    assert "s3://weblogs/orders-errors/partitioning-failed/orders-1-2026-03-03-00-01-30-" in flushed, flushed

    # stream source → Parquet: every minute's buffer delivered once, hourly partitions, pruning
    delivered = re.findall(r"firehose delivered (\d+) record\(s\) to s3://lake/clicks/year=2026/month=03/day=03/hour=(\d\d)/clicks-to-lake-1-\S+\.parquet", shown(nb, "generate"))
    assert delivered == [("1500", "09"), ("1500", "09"), ("1500", "10"), ("1500", "10")], shown(nb, "generate")
    assert "6000 record(s) in (1736205 bytes), 6000 delivered in 4 object(s)" in stream(nb, "stream-describe")
    assert "4 rows × 3 columns" in result(nb, "stream-ls")
    assert re.search(r"clicks ┆ created ┆ 1\s+┆ 2\s+┆", result(nb, "stream-crawl"))
    counts = result(nb, "stream-count")
    assert re.search(r"│ 09\s+┆ 3000\s+┆", counts) and re.search(r"│ 10\s+┆ 3000\s+┆", counts), counts
    full, pruned = result(nb, "stream-all-hours"), result(nb, "stream-pruned")
    assert re.search(r"page_view\s+┆ 1812\s+┆ 281132.01", pruned), pruned
    assert full_events(full) == 6000 and full_events(pruned) == 3000, (full, pruned)
    assert scanned_bytes(pruned) * 10 < scanned_bytes(full) * 6, (full, pruned)

    assert error(nb, "put-to-stream-source").ename == "InvalidArgumentException"
    assert error(nb, "bad-buffer").ename == "InvalidArgumentException"
    for c in nb.cells:
        if c.cell_type == "code" and not c.source.startswith("%%lakebook-allow-error"):
            assert stream(nb, c.id, "stderr") == "", (c.id, c.outputs)


def full_events(table_text: str) -> int:
    return sum(int(n) for n in re.findall(r"│ \w+\s+┆ (\d+)\s+┆ [\d.]+\s+│", table_text))


def scanned_bytes(table_text: str) -> float:
    """The footer's data scanned, in bytes (`716 B`, `14.8 KB` …)."""
    m = re.search(r"· ([\d.]+) (B|KB|MB) scanned", table_text)
    assert m, table_text
    return float(m.group(1)) * {"B": 1, "KB": 1e3, "MB": 1e6}[m.group(2)]


def check_emr(nb: NotebookNode) -> None:
    # the expected counts, computed here from the corpus cells with the mapper's own rule
    corpus = "".join(cell(nb, f"corpus-{i}").source.split("\n", 1)[1] + "\n" for i in (1, 2, 3))
    counts: dict[str, int] = {}
    for word in re.findall(r"[a-z']+", corpus.lower()):
        counts[word] = counts.get(word, 0) + 1
    lines = len(corpus.splitlines())

    def counter(cell_id: str, name: str) -> int:
        m = re.search(rf"│ {name}\s+┆ (\d+)\s+│", result(nb, cell_id))
        assert m, (name, result(nb, cell_id))
        return int(m.group(1))

    assert "STARTING" in stream(nb, "create") and "4 slot(s)" in stream(nb, "create"), stream(nb, "create")
    assert "COMPLETED → s3://books/counts/" in stream(nb, "step"), stream(nb, "step")
    assert counter("step", "Map input records") == lines
    assert counter("step", "Map output records") == sum(counts.values())
    assert counter("step", "Reduce output records") == counter("step", "Reduce input groups") == len(counts)
    assert counter("step", "Launched map tasks") == 6 and counter("step", "Launched reduce tasks") == 2  # 256-byte splits of 3 books
    assert "counts/_SUCCESS" in result(nb, "output") and "counts/part-00001" in result(nb, "output")
    part = [line.split("\t") for line in stream(nb, "part").splitlines()]
    assert [k for k, _ in part] == sorted(k for k, _ in part) and part, part  # a reducer's keys arrive sorted
    assert all(counts[k] == int(v) for k, v in part), part
    # the combiner: same result, fewer records and bytes in the shuffle
    assert counter("combiner", "Combine input records") == counter("step", "Map output records")
    assert counter("combiner", "Reduce input records") == counter("combiner", "Combine output records") < counter("step", "Reduce input records")
    assert counter("combiner", "Reduce shuffle bytes") < counter("step", "Reduce shuffle bytes")
    assert counter("combiner", "Reduce output records") == len(counts)
    # the SQL step's top words, charted
    assert "COMPLETED → s3://books/top-words/" in stream(nb, "sql-step") and "SUCCEEDED" in result(nb, "sql-step")
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    check_chart(nb, "chart", "bar", [w for w, _ in top], [n for _, n in top])
    # the lost task node: its tasks ran again elsewhere, the output is the same
    assert counter("loss-step", "Killed map tasks") >= 1 and counter("loss-step", "Launched map tasks") > 6
    assert counter("loss-step", "Reduce output records") == len(counts)
    assert re.search(r"TASK\s+┆ SPOT\s+┆ LOST", shown(nb, "loss-describe")), shown(nb, "loss-describe")
    assert re.search(rf"│ {len(counts)}\s+┆ {len(counts)}\s+│", result(nb, "loss-same")), result(nb, "loss-same")
    # errors
    assert error(nb, "exists").ename == "StepFailed" and "already exists" in error(nb, "exists").evalue
    failed = error(nb, "fail")
    assert failed.ename == "StepFailed" and "failed 4 times" in failed.evalue and "no such column" in failed.evalue, failed
    assert re.search(r"wordcount ┆ TERMINATED", result(nb, "terminate")), result(nb, "terminate")


def check_redshift(nb: NotebookNode) -> None:
    def rows(cell_id: str) -> list[list[str]]:
        return table_rows(result(nb, cell_id))

    assert "6000 record(s) loaded successfully from 4 file(s)" in stream(nb, "copy"), stream(nb, "copy")
    layout = rows("describe")[0]
    assert layout[:4] == ["public.clicks", "KEY(user_id)", "event_time", "6000"], layout
    per_slice = [int(n) for n in layout[4].split()]
    assert len(per_slice) == 4 and sum(per_slice) == 6000 and min(per_slice) > 1000, per_slice  # 500 users hash evenly
    # in place and loaded: the same answer
    assert rows("athena") == rows("redshift") and len(rows("athena")) == 4, (result(nb, "athena"), result(nb, "redshift"))
    assert "at Athena's price" in result(nb, "athena") and "query 3 on analytics" in result(nb, "redshift")
    spectrum = rows("spectrum")
    assert sum(int(r[1]) for r in spectrum) == 6000 and [r[0] for r in spectrum] == ["Americas", "Asia Pacific", "Europe"], spectrum
    assert re.search(r"Spectrum scanned [\d.]+ KB of the lake", result(nb, "spectrum")), result(nb, "spectrum")
    assert "4 record(s) unloaded successfully to 1 file(s)" in stream(nb, "unload") and "reports/by-type/000.parquet" in result(nb, "unload-ls")
    page_views = int(next(r[1] for r in rows("athena") if r[0] == "page_view"))
    deleted = int(re.search(r"DELETE (\d+)", stream(nb, "mistake")).group(1))
    assert deleted > page_views, (deleted, page_views)  # every page view, before and after 10:00
    assert rows("counts") == [["6000"]], result(nb, "counts")
    assert "Redshift took automated snapshot rs:analytics-2026-03-03-18-02-00 of analytics" in stream(nb, "advance"), stream(nb, "advance")
    assert error(nb, "bad-copy").ename == "LoadError"
    assert rows("load-errors") == [["3", "country", "MEXICO", "1204", "String length exceeds DDL length (6 > 2)"]], result(nb, "load-errors")
    # Firehose into the cluster: two staged batches, the first COPY fails (no table), both load at the retry
    generated = stream(nb, "firehose-generate")
    assert generated.count("to s3://lake/stage/2026/03/03/18/clicks-to-wh-1-") == 2, generated
    assert 'COPY into analytics.live_clicks failed (attempt 1): UndefinedTable: relation "public.live_clicks" does not exist; next attempt at 2026-03-03T18:08:00Z' in generated, generated
    assert any("staged, waiting for COPY" in o.get("data", {}).get("text/plain", "") for o in cell(nb, "firehose-pending").outputs)
    retried = stream(nb, "firehose-retry")
    assert retried.count("COPY into analytics.live_clicks loaded 300 row(s) from s3://lake/stage/manifests/2026/03/03/18/clicks-to-wh-1-") == 2, retried
    assert rows("firehose-count")[0][:2] == ["600", "351"], result(nb, "firehose-count")


def check_analytics(nb: NotebookNode) -> None:
    generated = stream(nb, "generate")
    assert "Generated 7200 record(s)" in generated and "analytics page_metrics emitted 6 row(s)" in generated, generated
    described = stream(nb, "describe")
    assert "records in 7200, out 12, late records dropped 0" in described, described
    drained = stream(nb, "drain")
    assert "page_metrics: READY (18 row(s) emitted in all)" in drained and "firehose delivered 6 record(s)" in drained, drained
    # Every click counted once in the metrics Firehose delivered to S3, per funnel step.
    funnels = table_rows(result(nb, "query"))
    assert [r[0] for r in funnels] == ["browse", "buy", "consider", "other"], funnels
    assert sum(int(r[1]) for r in funnels) == 7200, funnels
    alerts = table_rows(result(nb, "alert-stream"))
    counts = [json.loads(r[4])["purchases"] for r in alerts]
    assert counts and all(c > 95 for c in counts), alerts
    assert PLOTLY_MIME in outputs(nb, "peek", "execute_result")[0].data, cell(nb, "peek").outputs


def check_rust(nb: NotebookNode) -> None:
    readings = 24 * 60 // 5 * 20
    assert result(nb, "generate") == str(readings), result(nb, "generate")
    assert result(nb, "put-records") == f'"{readings} stored, 0 failed"', cell(nb, "put-records").outputs
    assert result(nb, "put-table") == str(readings), cell(nb, "put-table").outputs
    by_site = table_rows(result(nb, "sql"))
    assert [r[0] for r in by_site] == ["east", "north", "south", "west"] and all(r[1] == str(readings // 4) for r in by_site), by_site
    spikes = result(nb, "polars")
    assert "shape: (3, 5)" in spikes and all(s in spikes for s in ("s-03", "s-11", "s-17")), spikes
    figure = result(nb, "chart", PLOTLY_MIME)
    assert [t["name"] for t in figure["data"]] == ["north (s-00)", "south (s-01)", "east (s-02)", "west (s-03)"], figure["data"]
    assert all(len(t["x"]) == 24 * 60 // 5 for t in figure["data"])
    counted = table_rows(result(nb, "spikes"))
    assert sum(int(r[1]) for r in counted) == 3, counted


def check_glue(nb: NotebookNode) -> None:
    def rows(cell_id: str) -> list[list[str]]:
        return table_rows(result(nb, cell_id))

    run = r"run jr_[0-9a-f]{64} of clean-orders: SUCCEEDED"
    # 2 G.1X workers for Glue's 1-minute minimum: 2/60 DPU-hours at $0.44
    assert re.search(rf"{run} · 5 records read · 4 records written · 0\.0333 DPU-hours · \$0\.0147", stream(nb, "job-run")), stream(nb, "job-run")
    source = rows("job-run")[0]
    assert source[0] == "CatalogSource node raw orders (source)" and int(source[3]) > 0, result(nb, "job-run")
    columns = result(nb, "columns").splitlines()[1]
    assert all(c in columns for c in ("order_id", "customer", "amount", "day")) and "coupon" not in columns and "debug" not in columns, columns
    assert rows("sql1") == [["2026-12-01", "4", "84.75"]], result(nb, "sql1")
    # the bookmark: the second run reads only the new day's file (3 records, "n/a" filtered)
    assert re.search(rf"{run} · 3 records read · 2 records written", stream(nb, "job-run2")), stream(nb, "job-run2")
    assert "bookmark: version 2, 2 file(s) processed: raw.orders (2 file(s))" in stream(nb, "bookmark"), stream(nb, "bookmark")
    assert rows("sql2") == [["2026-12-01", "4", "84.75"], ["2026-12-02", "2", "24.99"]], result(nb, "sql2")
    chain = stream(nb, "chain")
    assert re.search(r"trigger clean-after-crawl started job clean-orders: run jr_[0-9a-f]{64} SUCCEEDED", chain), chain
    assert "trigger curate-after-clean ran crawler curated-orders" in chain, chain
    assert rows("sql3")[-1] == ["2026-12-03", "2", "93.1"], result(nb, "sql3")
    graph = result(nb, "workflow-run")
    assert re.search(r"workflow nightly · run wr_[0-9a-f]{64} COMPLETED · 3 actions, 3 succeeded", graph), graph
    for edge in ("trigger:nightly-start [FIRED] ─▶ crawler:raw-orders [SUCCEEDED]", "trigger:nightly-clean [FIRED] ─▶ job:clean-orders [SUCCEEDED]",
                 "trigger:nightly-curate [FIRED] ─▶ crawler:curated-orders [SUCCEEDED]"):  # fmt: skip
        assert edge in graph, graph
    svg = result(nb, "workflow-run", "text/html")
    assert "<svg" in svg and svg.count("<rect") == 6 and svg.count("<line") == 5, svg
    assert [r[1:3] + r[5:8] for r in rows("workflow-runs")] == [["COMPLETED", "nightly-start", "3", "3", "0"]], result(nb, "workflow-runs")
    assert rows("sql4")[-1] == ["2026-12-04", "3", "120.5"] and len(rows("sql4")) == 4, result(nb, "sql4")
    assert error(nb, "pyspark").ename == "InvalidInputException" and "PySpark" in error(nb, "pyspark").evalue
    assert error(nb, "bad-graph").ename == "InvalidInputException" and "nowhere" in error(nb, "bad-graph").evalue


def check_dashboard(nb: NotebookNode) -> None:
    assert re.match(r"Created dataset clicks \(SPICE\): 2400 rows in SPICE \([\d.]+ KB\)", stream(nb, "dataset")), stream(nb, "dataset")
    describe = result(nb, "describe")
    assert re.search(r"field weekday\s+┆ string = to_char", describe) and re.search(r"rows\s+┆ 2400", describe), describe
    # The dashboard as the notebook keeps it: redrawn in place by the refresh further down.
    figure = display(nb, "dashboard", PLOTLY_MIME)
    types = [t["type"] for t in figure["data"]]
    assert types == ["indicator", "indicator", "indicator", "scatter", "scatter", "pie", "bar", "heatmap", "table"], types
    assert "controls Referrer (dropdown, 4 values), Days (date_range, 7 days)" in display(nb, "dashboard"), display(nb, "dashboard")
    buttons = figure["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == ["All", "direct", "email", "facebook", "google"], buttons
    assert "Days at All here" in json.dumps(figure["layout"]["annotations"])
    google = table_rows(result(nb, "check"))[0][0]
    assert buttons[4]["args"][0]["value"][0] == int(google), (buttons[4]["args"][0]["value"], google)
    assert figure["data"][3]["x"] == [f"2026-03-0{d}" for d in range(1, 8)], figure["data"][3]
    weekdays = figure["data"][7]["y"]
    assert weekdays == ["1 Mon", "2 Tue", "3 Wed", "4 Thu", "5 Fri", "6 Sat", "7 Sun"], weekdays
    assert sum(sum(v or 0 for v in row) for row in figure["data"][7]["z"]) == 3000, "the refresh redrew it"
    published = stream(nb, "publish")
    size = re.search(r"Published dashboard clickstream to s3://lake/reports/clickstream\.html: ([\d.]+) MB \(1 sheet\(s\)", published)
    assert size and float(size.group(1)) < 2.0, published
    assert "reports/clickstream.html" in result(nb, "publish"), result(nb, "publish")
    # SPICE keeps the first ingestion's rows until the refresh, which redraws the dashboard
    assert table_rows(display(nb, "before"))[0][0] == "3000", display(nb, "before")
    assert re.search(r"rows\s+┆ 2400\b", result(nb, "before")), result(nb, "before")
    after = stream(nb, "after")
    assert "Refreshed dataset clicks (ingestion-2): 3000 rows" in after and "Redrew dashboard clickstream in place (1 display(s))." in after, after
    bad = error(nb, "bad-field")
    assert bad.ename == "InvalidParameterValueException" and "line 6: dataset clicks has no field browser" in bad.evalue, bad


CHECKS: dict[str, Callable[[NotebookNode], None]] = {
    "10-dashboard.ipynb": check_dashboard,
    "09-glue-etl.ipynb": check_glue,
    "06-rust.ipynb": check_rust,
    "08-analytics.ipynb": check_analytics,
    "01-streams.ipynb": check_streams,
    "03-athena.ipynb": check_athena,
    "00-tour.ipynb": check_tour,
    "02-crawl.ipynb": check_crawl,
    "04-firehose.ipynb": check_firehose,
    "05-emr.ipynb": check_emr,
    "07-redshift.ipynb": check_redshift,
}


# --- the test ------------------------------------------------------------------------------


def test_every_notebook_has_a_kernelspec_and_no_committed_outputs() -> None:
    assert NOTEBOOK_PATHS, "no notebooks found"
    for path in NOTEBOOK_PATHS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == KERNEL_NAME, path.name
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, f"{path.name}: {c.id} has outputs"



# The parameter each notebook's papermill run changes, and the other value it gets. The
# value has the default's length, so tables keep their widths and objects that name it
# (manifests, catalog locations) keep their sizes: with the other value mapped back, the run
# must show exactly what the default run shows, timings aside.
OTHER_VALUE = {"bucket": {"demo": "labs", "lake": "labs", "books": "texts"}, "stream": {"orders": "trades"}}
TIMING = re.compile(r"\b\d+(\.\d+)? ?(ns|µs|ms|s)\b")
# Table columns that hold timing figures.
TIMING_COLUMNS = {"engine_ms", "elapsed", "elapsed_ms", "duration"}
# Cells whose outputs depend on real concurrency, not on the clock: which task node a
# `lose-node --after-maps N` takes and how many attempts it kills depend on which of the
# parallel map processes finished first. Both runs still pass the notebook's checks.
CONCURRENT = {"05-emr.ipynb": {"loss-step", "loss-describe"}}
BIN = Path(sys.executable).parent
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def parameter(nb: NotebookNode) -> tuple[str, str]:
    """(name, default) from the notebook's `parameters` cell: `%set NAME VALUE`."""
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged `parameters` (for papermill)"
    m = re.fullmatch(r"%set (\w+) (\S+)", cells[0].source.strip())
    assert m, cells[0].source
    return m.group(1), m.group(2)


def run(argv: list, home: Path, cell_timeout: int) -> None:
    env = {**os.environ, "LAKEBOOK_HOME": str(home)}
    done = subprocess.run([str(a) for a in argv], cwd=NOTEBOOKS, env=env, capture_output=True, text=True, timeout=max(600, 2 * cell_timeout))
    assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"


def mapped_back(path: Path, other: str, default: str) -> NotebookNode:
    """The notebook at `path` with `other` written as `default` wherever it stands alone or as
    part of a name (`labs_clicks`), and in hex where an id encodes it (shard iterators)."""
    text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(other)}(?![A-Za-z0-9])", default, path.read_text())
    text = text.replace(other.encode().hex(), default.encode().hex())
    return nbformat.reads(text, as_version=4)


def without_timing_columns(text: str) -> str:
    """A box table's text with the cells of TIMING_COLUMNS blanked."""
    lines, blank = text.split("\n"), []
    for i, line in enumerate(lines):
        cells = re.split(r"[│┆]", line)
        if not blank:
            blank = [j for j, c in enumerate(cells) if c.strip() in TIMING_COLUMNS]
        elif len(cells) > max(blank):
            lines[i] = "┆".join("<t>" if j in blank else c for j, c in enumerate(cells))
    return "\n".join(lines)


def shown_outputs(nb: NotebookNode, home: Path) -> dict[str, list]:
    """Per code cell, what it showed, with timing figures and the workspace path taken out and
    box-table padding collapsed (a timing's width pads its column). `%clock system` shows the
    wall clock, and papermill's injected cell is its own."""
    def clean(text: str) -> str:
        text = TIMING.sub("<t>", text.replace(str(home), "<home>"))
        return re.sub(r" {2,}|─{2,}|═{2,}", lambda m: m.group(0)[0], text)

    shown = {}
    for c in nb.cells:
        if c.cell_type != "code" or "injected-parameters" in c.metadata.get("tags", []) or "%clock system" in c.source:
            continue
        items = []
        for o in c.outputs:
            if o.output_type == "stream":
                items.append((o.name, clean(o.text)))
            elif o.output_type == "error":
                items.append(("error", o.ename, clean(o.evalue)))
            else:
                # text/plain and the figure: the HTML mirrors them (and embeds plotly.js, whose
                # source the name mapping would touch)
                plain = without_timing_columns(o.data.get("text/plain", ""))
                items.append((o.output_type, clean(plain), json.dumps(o.data.get(PLOTLY_MIME), sort_keys=True)))
        shown[c.id] = items
    return shown


# Seconds a cell may take, per notebook: the Rust lab's first `lakebook::` cell builds Polars
# (~6.5 min on a machine whose evcxr cache is cold), its chart cell the plotly crate.
CELL_TIMEOUT = {"06-rust.ipynb": 900}


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.timeout(2400)) if p.name in CELL_TIMEOUT else p for p in NOTEBOOK_PATHS],
    ids=[p.name for p in NOTEBOOK_PATHS],
)
def test_notebook_runs_in_nbconvert_and_papermill(path: Path, tmp_path: Path, kernelspec) -> None:
    """nbconvert runs the notebook as it is, then papermill reruns it in the same workspace with
    its parameter changed; both pass the notebook's checks, and show the same outputs (so a
    rerun in place is identical, timings aside)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name, default = parameter(nbformat.read(path, as_version=4))
    other = OTHER_VALUE[name][default]
    converted, papermilled = ARTIFACTS / path.name, ARTIFACTS / f"{path.stem}.papermill.ipynb"
    home = tmp_path / "workspace"
    timeout = CELL_TIMEOUT.get(path.name, 180)
    run([BIN / "jupyter", "nbconvert", "--to", "notebook", "--execute", path, "--output", converted,
         f"--ExecutePreprocessor.timeout={timeout}", "--ExecutePreprocessor.startup_timeout=60"], home, timeout)  # fmt: skip
    run([BIN / "papermill", path, papermilled, "-p", name, other, "--cwd", NOTEBOOKS, "--execution-timeout", str(timeout)], home, timeout)

    first = nbformat.read(converted, as_version=4)
    second = mapped_back(papermilled, other, default)
    injected = [c for c in nbformat.read(papermilled, as_version=4).cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f"%set {name} {other}" in injected[0].source, injected
    for nb in (first, second):
        check_errors(nb, path.name)
        check = CHECKS.get(path.name)
        if check is not None:
            check(nb)
    a, b = shown_outputs(first, home), shown_outputs(second, home)
    assert a.keys() == b.keys()
    differ = [cell_id for cell_id in a if a[cell_id] != b[cell_id] and cell_id not in CONCURRENT.get(path.name, ())]
    assert not differ, "\n".join(f"{i}:\n  nbconvert: {a[i]}\n  papermill: {b[i]}" for i in differ)[:6000]


def check_errors(nb: NotebookNode, name: str) -> None:
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        errors = [o for o in c.outputs if o.output_type == "error"]
        if "raises-exception" in c.metadata.get("tags", []):
            assert errors, f"{name}: cell {c.id} is tagged raises-exception but did not fail"
        else:
            assert not errors, f"{name}: cell {c.id} failed: {errors}"
