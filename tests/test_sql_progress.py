"""Live progress for long queries (#24): a %sql query running longer than the
`sql.progress_after` setting shows a display (elapsed time, rows and bytes scanned, files done
of total) updated in place, which ends as the usual footer; a quick query shows none."""

from __future__ import annotations

from pathlib import Path

from kernel_harness import put_object

LONG = "%sql SELECT count(DISTINCT value % 1000003) AS n FROM generate_series(1, 40000000) AS t(value)"


def test_progress_appears_updates_and_ends_as_the_footer(start_kernel, lake_home: Path) -> None:
    kernel = start_kernel()
    quick = kernel.ok("%sql SELECT 1 AS one")
    assert not quick.of_type("display_data"), quick.describe()

    assert kernel.ok("%set sql.progress_after 0s").stream() == "sql.progress_after = 0s\n"
    run = kernel.ok(LONG, timeout=300)
    displays = run.of_type("display_data")
    assert len(displays) == 1, run.describe()
    display_id = displays[0]["content"]["transient"]["display_id"]
    first = displays[0]["content"]["data"]["text/plain"]
    assert first.startswith("running ") and " rows · " in first and "scanned" in first, first
    updates = [m for m in run.of_type("update_display_data") if m["content"]["transient"]["display_id"] == display_id]
    assert updates, f"no update of the progress display: {run.describe()}"
    # The query is the cell's only output: the display clears and the footer is printed.
    assert run.of_type("clear_output"), run.describe()
    assert run.stream().startswith("1 row × 1 column"), run.stream()
    assert "1000003" in run.result["text/plain"], run.result

    # Files: the display counts the files the scan has read of those it will read.
    for day in ("01", "02", "03"):
        put_object(lake_home, f"lake/clicks/day={day}/a.csv", "user_id,page\n1,/home\n2,/cart\n")
    kernel.ok("%crawl s3://lake/clicks/ --database web")
    run = kernel.ok("%sql SELECT count(*) AS n FROM web.clicks")
    first = run.of_type("display_data")[0]["content"]["data"]
    assert "/3 files" in first["text/plain"] and "<progress" in first["text/html"], first
    assert "│ 6 " in run.result["text/plain"], run.result

    kernel.ok("%set sql.progress_after 1s")
    assert not kernel.ok("%sql SELECT 2 AS two").of_type("display_data")


def test_ctas_insert_and_redshift_queries_show_progress_too(start_kernel, lake_home: Path) -> None:
    kernel = start_kernel()
    kernel.ok("%set sql.progress_after 0s")
    for day in ("01", "02"):
        put_object(lake_home, f"lake/clicks/day={day}/a.csv", "user_id,page\n1,/home\n2,/cart\n")
    kernel.ok("%crawl s3://lake/clicks/ --database web")

    def shows_progress_then(run, footer_start: str, files: str = "/2 files") -> str:
        displays = run.of_type("display_data")
        assert len(displays) == 1, run.describe()
        first = displays[0]["content"]["data"]["text/plain"]
        assert first.startswith("running ") and files in first, first
        assert run.of_type("clear_output"), run.describe()
        assert run.stream().startswith(footer_start), run.stream()
        return run.stream()

    # Athena's CTAS and INSERT INTO read through the same watched query.
    ctas = kernel.ok("%sql CREATE TABLE web.pages WITH (format = 'PARQUET') AS SELECT page, user_id FROM web.clicks")
    text = shows_progress_then(ctas, "table web.pages created: 4 row(s)")
    assert "scanned" in text.splitlines()[-1], text
    insert = kernel.ok("%sql INSERT INTO web.pages SELECT page, user_id FROM web.clicks WHERE day = '01'")
    # Partition pruning leaves one file of two to read.
    shows_progress_then(insert, "2 row(s) inserted", files="/1 files")

    # A Redshift cluster's queries, and its CTAS, show the same display.
    kernel.ok("%redshift create wh --nodes 2")
    kernel.ok("%sql --cluster wh CREATE EXTERNAL SCHEMA spectrum FROM DATA CATALOG DATABASE 'web'")
    select = kernel.ok("%sql --cluster wh SELECT count(*) AS n FROM spectrum.clicks")
    shows_progress_then(select, "1 row × 1 column")
    assert "│ 4 " in select.result["text/plain"], select.result
    local = kernel.ok("%sql --cluster wh CREATE TABLE hits AS SELECT user_id, page FROM spectrum.clicks")
    shows_progress_then(local, "SELECT 4")

