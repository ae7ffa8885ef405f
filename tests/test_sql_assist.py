"""SQL assistance through the kernel (#24), as JupySQL and jupyterlab-sql-editor users expect:
in %sql lines and %%sql cells, on Athena and on a Redshift cluster, completion offers the
columns of the tables in the statement's FROM / JOIN clauses (through their aliases too),
tables, databases, functions and keywords; Shift-Tab on a column shows its type and whether it
is a partition key, on a function its signature."""

from __future__ import annotations

from pathlib import Path

from kernel_harness import put_object


def seed(home: Path) -> None:
    put_object(home, "lake/clicks/day=01/a.csv", "user_id,page,ms\n1,/home,120\n2,/cart,80\n")
    put_object(home, "lake/users/u.csv", "user_id,name\n1,ana\n2,bo\n")


def complete(kernel, code: str, cursor: int | None = None) -> dict:
    cursor = len(code) if cursor is None else cursor
    reply, _ = kernel.request("shell", "complete_request", {"code": code, "cursor_pos": cursor})
    return reply["content"]


def inspect(kernel, code: str, cursor: int) -> str:
    reply, _ = kernel.request("shell", "inspect_request", {"code": code, "cursor_pos": cursor, "detail_level": 0})
    assert reply["content"]["found"] is True, (code, reply["content"])
    return reply["content"]["data"]["text/plain"]


def test_columns_through_aliases_and_joins_functions_and_keywords(start_kernel, lake_home: Path) -> None:
    seed(lake_home)
    kernel = start_kernel()
    kernel.ok("%crawl s3://lake/ --database web")
    kernel.ok("%sql USE web")

    # An alias: the columns of the table it stands for, written as the user types them.
    code = "%sql SELECT c.pa FROM clicks c"
    content = complete(kernel, code, len("%sql SELECT c.pa"))
    assert content["matches"] == ["c.page"], content
    assert content["cursor_start"] == len("%sql SELECT "), content

    # A join of two tables: each alias completes its own table's columns; a bare word offers both.
    cell = "%%sql\nSELECT u.na, c.\nFROM web.clicks AS c\nJOIN users u ON u.user_id = c.user_id"
    assert complete(kernel, cell, cell.index("u.na") + 4)["matches"] == ["u.name"]
    assert complete(kernel, cell, cell.index("c.") + 2)["matches"] == ["c.user_id", "c.page", "c.ms", "c.day"]
    cell2 = "%%sql\nSELECT us FROM clicks c JOIN users u ON u.user_id = c.user_id"
    assert "user_id" in complete(kernel, cell2, len("%%sql\nSELECT us"))["matches"]

    # Functions (DataFusion's, as the user is typing them) and keywords.
    matches = complete(kernel, "%sql SELECT approx_dis")["matches"]
    assert "approx_distinct" in matches, matches
    assert "GROUP BY" in complete(kernel, "%sql SELECT page FROM clicks GRO")["matches"]
    # Databases and db.table.
    assert complete(kernel, "%sql SELECT * FROM web.cl")["matches"] == ["web.clicks"]

    # Shift-Tab: a column's type and role, through an alias or not; a function's signature.
    code = "%sql SELECT c.page FROM clicks c"
    text = inspect(kernel, code, len("%sql SELECT c.pa"))
    assert "page" in text and "string" in text and "column of web.clicks" in text, text
    text = inspect(kernel, "%sql SELECT day FROM clicks", len("%sql SELECT d"))
    assert "partition key of web.clicks" in text, text
    text = inspect(kernel, "%sql SELECT approx_distinct(page) FROM clicks", len("%sql SELECT appr"))
    assert "approx_distinct(" in text, text


def test_redshift_cluster_tables_and_spectrum(start_kernel, lake_home: Path) -> None:
    seed(lake_home)
    kernel = start_kernel()
    kernel.ok("%crawl s3://lake/ --database web")
    kernel.ok("%redshift create wh --nodes 1")
    kernel.ok("%sql --cluster wh CREATE TABLE sales (salesid integer, region varchar(10), qty integer)")
    kernel.ok("%sql --cluster wh CREATE EXTERNAL SCHEMA spectrum FROM DATA CATALOG DATABASE 'web' IAM_ROLE default")

    code = "%sql --cluster wh SELECT s.re FROM sales s"
    assert complete(kernel, code, len("%sql --cluster wh SELECT s.re"))["matches"] == ["s.region"]
    code = "%sql --cluster wh SELECT * FROM spectrum.cl"
    assert complete(kernel, code)["matches"] == ["spectrum.clicks"]
    # After %redshift connect, %%sql cells run there and complete there.
    kernel.ok("%redshift connect wh")
    cell = "%%sql\nSELECT x.pa, s.qt FROM spectrum.clicks x JOIN sales s ON s.salesid = x.user_id"
    assert complete(kernel, cell, cell.index("x.pa") + 4)["matches"] == ["x.page"]
    assert complete(kernel, cell, cell.index("s.qt") + 4)["matches"] == ["s.qty"]
    cell = "%%sql\nSELECT s.qty FROM sales s"
    text = inspect(kernel, cell, cell.index("s.qt") + 3)
    assert "qty integer" in text and "column of public.sales" in text, text
