"""%crawl and %catalog through the real kernel: the catalog survives a kernel restart,
completion offers database and table names, Shift-Tab on a table shows its schema, and bad
files are reported in the summary without failing the cell."""

from __future__ import annotations

import time
from pathlib import Path

from kernel_harness import put_object


def seed(home: Path) -> None:
    put_object(home, "lake/web/day=01/a.csv", "id,page\n1,/home\n2,/cart\n")
    put_object(home, "lake/web/day=02/a.csv", "id,page\n3,/home\n")
    put_object(home, "lake/junk/blob.bin", bytes([0, 159, 146, 150, 0, 1]))


def test_catalog_survives_a_kernel_restart(start_kernel, lake_home: Path) -> None:
    seed(lake_home)
    first = start_kernel(name="first")
    crawl = first.ok("%crawl s3://lake/ --database web")
    summary = crawl.result["text/plain"]
    assert "web" in summary and "created" in summary, summary
    assert "s3://lake/junk/blob.bin" in summary and "binary" in summary, summary
    first.stop()

    second = start_kernel(name="second")
    tables = second.ok("%catalog tables web").result["text/plain"]
    assert "s3://lake/web/" in tables, tables
    described = second.ok("%catalog describe web.web").result["text/plain"]
    assert "partition key" in described and "bigint" in described, described
    partitions = second.ok("%catalog partitions web.web").result["text/plain"]
    assert "s3://lake/web/day=02/" in partitions, partitions


def test_completion_and_inspection_of_tables(start_kernel, lake_home: Path) -> None:
    seed(lake_home)
    kernel = start_kernel()
    kernel.ok("%crawl s3://lake/web/ --database web")
    code = "%catalog describe web.w"
    reply, _ = kernel.request("shell", "complete_request", {"code": code, "cursor_pos": len(code)})
    assert reply["content"]["matches"] == ["web.web"], reply["content"]
    assert reply["content"]["cursor_start"] == len("%catalog describe ")
    code = "%catalog partitions web.web"
    reply, _ = kernel.request("shell", "inspect_request", {"code": code, "cursor_pos": len(code) - 2, "detail_level": 0})
    assert reply["content"]["found"] is True
    text = reply["content"]["data"]["text/plain"]
    assert "web.web" in text and "page" in text and "partition key" in text, text


def test_missing_table_is_entity_not_found_with_a_suggestion(start_kernel, lake_home: Path) -> None:
    seed(lake_home)
    kernel = start_kernel()
    kernel.ok("%crawl s3://lake/web/ --database web")
    error = kernel.failing("%catalog describe web.wbe", "EntityNotFoundException").error
    assert any("did you mean web.web?" in line for line in error["traceback"]), error


def test_sql_over_crawled_tables_and_interrupting_a_long_query(start_kernel, lake_home: Path) -> None:
    seed(lake_home)
    kernel = start_kernel()
    kernel.ok("%crawl s3://lake/web/ --database web")
    table = kernel.ok("%sql --database web SELECT day, count(*) AS n FROM web GROUP BY day ORDER BY day").result["text/plain"]
    assert "2 rows × 2 columns" in table and "B scanned" in table, table

    # A query that would run for minutes is cancelled by an interrupt within a second.
    msg_id = kernel.execute_async("%sql SELECT sum(value) FROM generate_series(1, 100000000000)")
    time.sleep(1.0)
    assert not kernel.has_reply(msg_id), "the query should still be running"
    sent = time.monotonic()
    kernel.send("control", "interrupt_request", {})
    reply = kernel.reply(msg_id, timeout=5)
    assert time.monotonic() - sent < 1.0
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    history = kernel.ok("%sql history").result["text/plain"]
    assert "CANCELLED" in history, history
    assert "1 row" in kernel.ok("%sql SELECT 1 AS one").result["text/plain"]
