"""Bounded memory through the real kernel: every query shares one pool sized by
LAKEBOOK_MEMORY. A sort over more rows than the pool holds spills to disk and completes with
SQL's answer; a hash join whose build side cannot fit (and cannot spill) fails with
EXCEEDED_LOCAL_MEMORY_LIMIT naming the pool, and the kernel goes on answering, Athena SQL and
a Redshift cluster alike. `%workspace info` shows the pool."""

from __future__ import annotations

from collections.abc import Callable

from kernel_harness import Kernel
from kernel_harness import table_rows as rows

POOL = "24MB"
# 4M rows numbered in an order that is not theirs: a sort of 64 MB, more than twice the pool.
SORT = "SELECT max(r) AS r, count(*) AS n FROM (SELECT value, row_number() OVER (ORDER BY value % 1009, value) AS r FROM generate_series(1, 4000000))"
# A self-join on 4M distinct keys: the build side's hash table is far over the pool.
JOIN = "SELECT count(*) AS n FROM generate_series(1, 4000000) AS a JOIN generate_series(1, 4000000) AS b ON a.value = b.value"


def test_a_query_larger_than_memory_spills_or_fails_clearly_and_the_kernel_stays_up(start_kernel: Callable[..., Kernel]) -> None:
    kernel = start_kernel(env={"LAKEBOOK_MEMORY": POOL})
    info = kernel.ok("%workspace info").result["text/plain"]
    assert "query memory" in info and "24.0 MB pool (LAKEBOOK_MEMORY=24MB)" in info, info

    sorted_ = kernel.ok(f"%%sql\n{SORT}", timeout=240)
    assert rows(sorted_.result["text/plain"]) == [["4000000", "4000000"]], sorted_.describe()

    failed = kernel.failing(f"%%sql\n{JOIN}", "EXCEEDED_LOCAL_MEMORY_LIMIT", timeout=240)
    text = failed.error["evalue"] + "\n".join(failed.error["traceback"])
    assert "24.0 MB memory pool (LAKEBOOK_MEMORY=24MB)" in text, failed.describe()

    # The same pool on a warehouse cluster; then both still answer.
    kernel.ok("%redshift create wh --nodes 1")
    kernel.failing(f"%%sql --cluster wh\n{JOIN}", "EXCEEDED_LOCAL_MEMORY_LIMIT", timeout=240)
    assert rows(kernel.ok("%%sql\nSELECT 40 + 2 AS answer").result["text/plain"]) == [["42"]]
    assert rows(kernel.ok("%%sql --cluster wh\nSELECT 40 + 2 AS answer").result["text/plain"]) == [["42"]]
