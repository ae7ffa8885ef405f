"""%set variables through the real kernel: ${NAME} in magic lines and SQL bodies (not in
data bodies), $${…} escapes, listing and deleting, and errors naming the missing variable."""

from __future__ import annotations

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
