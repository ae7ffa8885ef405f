"""%set variables through the real kernel: ${NAME} in magic lines and SQL bodies (not in
data bodies), $${…} escapes, listing and deleting, and errors naming the missing variable."""

from __future__ import annotations

import re

from kernel_harness import Kernel


def test_variables_expand_in_lines_and_sql(kernel: Kernel) -> None:
    assert kernel.ok("%set bucket demo-bucket").stream() == "bucket = demo-bucket\n"
    kernel.ok("%set day 2026-01-02")
    kernel.ok("%lake mb s3://${bucket}")
    # a data body keeps ${…} as typed
    kernel.ok("%%lake put s3://${bucket}/raw/${day}.txt\nprice is ${price}")
    assert kernel.ok("%lake cat s3://demo-bucket/raw/2026-01-02.txt").stream() == "price is ${price}\n"
    table = kernel.ok("%%sql\nSELECT '${day}' AS day, '$${day}' AS literal").result["text/plain"]
    assert "2026-01-02" in table and "${day}" in table, table
    assert "x = a b c" in kernel.ok("%set x a b c").stream()
    listed = kernel.ok("%set").result["text/plain"]
    assert "bucket" in listed and "a b c" in listed and "3 rows × 2 columns" in listed, listed
    missing = kernel.failing("%lake ls s3://${buckte}", "UndefinedVariable")
    assert "did you mean bucket?" in "\n".join(missing.error["traceback"]), missing.describe()
    kernel.ok("%set --delete x")
    kernel.failing("%set x", "UndefinedVariable")
    kernel.failing("%set 1x y", "UsageError")
    kernel.failing("%lake ls s3://${bucket", "UsageError")


def shown(text: str) -> list[int]:
    """The numbers in a one-column text table's body rows."""
    return [int(v) for v in re.findall(r"^│ (\d+) +│$", text, flags=re.M)]


def test_display_max_rows_setting(kernel: Kernel) -> None:
    """%set display.max_rows N: query results up to N rows show whole, longer ones head, tail
    and the row count; %sql --limit still wins; bad values are usage errors."""
    query = "%sql SELECT value AS n FROM generate_series(1, 60) AS t(value)"
    default = kernel.ok(query).result["text/plain"]
    assert shown(default) == [*range(1, 11), *range(51, 61)] and "60 rows" in default, default
    assert kernel.ok("%set display.max_rows 100").stream() == "display.max_rows = 100\n"
    assert shown(kernel.ok(query).result["text/plain"]) == list(range(1, 61))
    assert kernel.ok("%set display.max_rows").stream() == "display.max_rows = 100\n"
    kernel.ok("%set display.max_rows 6")
    assert shown(kernel.ok(query).result["text/plain"]) == [1, 2, 3, 58, 59, 60]
    limited = kernel.ok("%sql --limit 2 SELECT value AS n FROM generate_series(1, 60) AS t(value)").result["text/plain"]
    assert shown(limited) == [1, 2], limited
    kernel.failing("%set display.max_rows lots", "UsageError")
    error = kernel.failing("%set display.max_row 5", "UsageError").error
    assert "Did you mean display.max_rows?" in error["evalue"], error
    # Settings are not variables: ${display.max_rows} is not one, and the listing leaves it out.
    assert "display.max_rows" not in kernel.ok("%set").result["text/plain"]
