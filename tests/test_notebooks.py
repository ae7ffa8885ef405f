"""Execute every notebooks/*.ipynb with nbclient on the 'lakebook' kernel.

Each notebook runs on a fresh LAKEBOOK_HOME with cwd = notebooks/. A cell may only produce an
error output when it is tagged `raises-exception` (and then it must). Per-notebook output
checks live in CHECKS, keyed by notebook file name, so new notebooks add theirs there; they
find cells by their nbformat cell id. Executed copies are kept in tests/artifacts/notebooks/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from kernel_harness import KERNEL_NAME, NOTEBOOKS, REPO
from nbclient import NotebookClient
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


def stream(nb: NotebookNode, cell_id: str, name: str = "stdout") -> str:
    return "".join(o.text for o in outputs(nb, cell_id, "stream") if o.name == name)


def error(nb: NotebookNode, cell_id: str) -> NotebookNode:
    errors = outputs(nb, cell_id, "error")
    assert len(errors) == 1, f"{cell_id}: expected one error, got {cell(nb, cell_id).outputs}"
    return errors[0]


# --- per-notebook checks ------------------------------------------------------------------


def check_tour(nb: NotebookNode) -> None:
    listing = result(nb, "lsmagic")
    assert "%lake" in listing and "%clock" in listing, listing

    assert result(nb, "clock-manual") == "2026-01-01T00:00:00Z (manual)"
    assert stream(nb, "mb").strip() == "make_bucket: demo"

    ls = result(nb, "ls")
    assert "web/2026/01/01/clicks.csv" in ls, ls
    assert re.search(r"\b1 rows? × 3 columns\b", ls), ls
    assert "web/2026/01/01/clicks.csv" in result(nb, "ls", "text/html")

    body = cell(nb, "put").source.split("\n", 1)[1]
    assert stream(nb, "cat") == body + "\n"

    crawl = result(nb, "crawl")
    assert re.search(r"web\s+┆ created\s+┆ 1\s+┆ 1\b", crawl), crawl
    described = result(nb, "describe")
    for column in ("user_id", "bigint", "ts", "timestamp", "partition_2"):
        assert column in described, described

    assert re.search(r"│ 1\s+┆ 2\s+│", result(nb, "sql")), result(nb, "sql")
    assert "<table" in result(nb, "sql", "text/html")
    check_chart(nb, "sql-chart", "bar", ["/docs", "/home", "/pricing"], [1, 1, 1])

    assert result(nb, "advance") == "2026-01-01T00:01:30Z (manual)"

    info = cell(nb, "info").outputs
    assert any(o.output_type == "execute_result" and "text/html" in o.data for o in info), info

    assert error(nb, "nosuchkey").ename == "NoSuchKey"

    # a fresh workspace: nothing in the tour warns
    for c in nb.cells:
        if c.cell_type == "code":
            assert stream(nb, c.id, "stderr") == "", (c.id, c.outputs)


def check_chart(nb: NotebookNode, cell_id: str, kind: str, x: list, y: list) -> None:
    """A chart result: a Plotly figure, an HTML fallback that draws it, a text summary."""
    figure = result(nb, cell_id, "application/vnd.plotly.v1+json")
    trace = figure["data"][0]
    assert trace["type"] == kind and trace["x"][: len(x)] == x and trace["y"][: len(y)] == y, trace
    html = result(nb, cell_id, "text/html")
    assert "Plotly.newPlot" in html, html[:500]
    assert "chart of" in result(nb, cell_id), result(nb, cell_id)


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


CHECKS: dict[str, Callable[[NotebookNode], None]] = {
    "03-athena.ipynb": check_athena,
    "00-tour.ipynb": check_tour,
    "02-crawl.ipynb": check_crawl,
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


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=[p.name for p in NOTEBOOK_PATHS])
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch, kernelspec) -> None:
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("LAKEBOOK_HOME", str(tmp_path / "home"))
    client = NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=120,
        startup_timeout=60,
        allow_errors=False,  # untagged errors raise CellExecutionError
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    try:
        client.execute()
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, ARTIFACTS / path.name)

    for c in nb.cells:
        if c.cell_type != "code":
            continue
        errors = [o for o in c.outputs if o.output_type == "error"]
        if "raises-exception" in c.metadata.get("tags", []):
            assert errors, f"{path.name}: cell {c.id} is tagged raises-exception but did not fail"
        else:
            assert not errors, f"{path.name}: cell {c.id} failed: {errors}"

    check = CHECKS.get(path.name)
    if check is not None:
        check(nb)
