"""Rerunnable notebooks through the real kernel: every service's create cell run twice with
its `--if-not-exists` flag (or SQL's IF NOT EXISTS) gets no error the second time, while the
same create without it still fails as the service does; `%workspace info` counts what the
workspace holds and `%workspace reset --yes` empties it (the lock and input history stay)."""

from __future__ import annotations

import re

from kernel_harness import Kernel
from kernel_harness import table_rows as rows

# (create cell, the error the same create gives without its flag, or None when the service
# itself answers a repeated create without an error)
CREATES = [
    ("%lake mb s3://lake --if-not-exists", None),
    ("%stream create clicks --shards 2 --if-not-exists", "ResourceInUseException"),
    ("%catalog create-database web --if-not-exists", "AlreadyExistsException"),
    ("%crawl create nightly s3://lake/clicks/ --database web --schedule 'rate(1 day)' --if-not-exists", "AlreadyExistsException"),
    ("%sql workgroup create analysts --bytes-scanned-cutoff 10MB --if-not-exists", "InvalidRequestException"),
    ("%firehose create clicks-to-lake --source stream:clicks --destination s3://lake/ --if-not-exists", "ResourceInUseException"),
    ("%emr create wordcount --core 1 --if-not-exists", "ValidationException"),
    ("%redshift create wh --nodes 1 --if-not-exists", "ClusterAlreadyExists"),
    ("%%sql\nCREATE DATABASE IF NOT EXISTS shop", None),
    ("%%sql\nCREATE EXTERNAL TABLE IF NOT EXISTS shop.orders (id int, total double) STORED AS PARQUET LOCATION 's3://lake/orders/'", None),
    ("%%sql --cluster wh\nCREATE TABLE IF NOT EXISTS sales (id integer, amount decimal(10,2)) DISTSTYLE EVEN", None),
]


def test_every_create_cell_reruns_without_error(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-03-01T00:00:00Z")
    for cell, _ in CREATES:
        kernel.ok(cell)
    for cell, error in CREATES:
        again = kernel.ok(cell)
        assert again.stream("stderr") == "", again.describe()
        if "--if-not-exists" in cell:
            assert "already exists; kept as it is (--if-not-exists)" in again.stream(), again.describe()
        if error is not None:
            kernel.failing(cell.replace(" --if-not-exists", ""), error)
    # kept means kept: a rerun with other settings does not change the stream
    kernel.ok("%stream create clicks --shards 4 --if-not-exists")
    assert len(rows(kernel.ok("%stream describe clicks").result["text/plain"])) == 2


def test_workspace_info_and_reset(kernel: Kernel, lake_home) -> None:
    kernel.ok("%clock manual --at 2026-03-01T00:00:00Z")
    kernel.ok("%lake mb s3://lake")
    kernel.ok("%%lake put s3://lake/a.csv\nx\n1\n")
    kernel.ok("%stream create clicks --shards 1")
    kernel.ok("%redshift create wh --nodes 1")
    kernel.ok("%sql USE default")
    info = dict(rows(kernel.ok("%workspace info").result["text/plain"]))
    assert info["lake"].startswith("1 bucket(s), 1 object(s)"), info
    assert info["streams"] == "1 stream(s)" and info["redshift"] == "1 cluster(s)", info
    assert info["clock"] == "2026-03-01T00:00:00Z (manual)", info
    assert info["workspace"] == str(lake_home.resolve()), info

    refused = kernel.failing("%workspace reset", "UsageError")
    assert "--yes" in refused.error["evalue"]
    assert "1 stream(s)" in kernel.ok("%workspace info").result["text/plain"], "nothing was deleted without --yes"

    reset = kernel.ok("%workspace reset --yes")
    assert re.fullmatch(r"workspace \S+ reset: empty, on the system clock\n", reset.stream()), reset.describe()
    info = dict(rows(kernel.ok("%workspace info").result["text/plain"]))
    assert info["lake"].startswith("0 bucket(s), 0 object(s)") and info["streams"] == "0 stream(s)" and info["redshift"] == "0 cluster(s)", info
    assert info["clock"].endswith("(system)"), info
    assert sorted(p.name for p in lake_home.iterdir() if p.name not in ("catalog", "sql", "streams", "firehose", "emr", "redshift", "lake", "clock.json", "lake-buckets.json")) == [".lock", "kernel"]
    # the same notebook runs again from the top
    kernel.ok("%lake mb s3://lake")
    kernel.ok("%stream create clicks --shards 1")
    kernel.ok("%redshift create wh --nodes 1")
    history = (lake_home / "kernel" / "history.jsonl").read_text()
    assert "%workspace info" in history, "the input history survives a reset"
