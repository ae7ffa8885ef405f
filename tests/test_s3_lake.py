"""The lake on a real S3-compatible store (issue #30): an S3 server (moto's, from PyPI) started
here on 127.0.0.1, the kernel's lake put on a prefix of one of its buckets with `%lake connect`
or LAKEBOOK_LAKE, and boto3 on the other side of the same keys. The tour runs over it and shows
what it shows on the local lake; crawl, SQL, CTAS, Firehose, COPY/UNLOAD and EMR give the same
tables as on the local lake; errors carry S3's names; the kernel stays up."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import nbformat
import pytest
from kernel_harness import NOTEBOOKS, Kernel
from kernel_harness import table_rows as rows
from test_notebooks import BIN, CHECKS, shown_outputs

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lakebook-test", "AWS_SECRET_ACCESS_KEY": "lakebook-test-secret", "AWS_REGION": "us-east-1"}


class S3Server:
    def __init__(self, endpoint: str, proc: subprocess.Popen) -> None:
        self.endpoint, self.proc = endpoint, proc
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def keys(self, bucket: str, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, stopped after the test."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 30
    while True:
        try:
            server.client.list_buckets()
            break
        except Exception:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "moto.log").read_text()
            time.sleep(0.2)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def connect(kernel: Kernel, s3: S3Server, url: str = "s3://team/lakebook") -> None:
    said = kernel.ok(f"%lake connect {url} --endpoint {s3.endpoint}").stream()
    assert f"the lake is on {url} at {s3.endpoint}: bucket b is {url}/b" in said, said


def info(kernel: Kernel) -> dict[str, str]:
    return {r[0]: r[1] for r in rows(kernel.ok("%lake info").result["text/plain"])}


def test_objects_cross_between_lakebook_and_boto3_and_errors_have_s3_names(start_kernel, s3: S3Server) -> None:
    s3.client.create_bucket(Bucket="team")
    kernel = start_kernel(env=CREDENTIALS)
    connect(kernel, s3)
    assert info(kernel)["lake (S3, %lake connect)"] == f"s3://team/lakebook at {s3.endpoint}"

    kernel.ok("%lake mb s3://raw")
    kernel.ok("%%lake put s3://raw/in/a.csv\nid,name\n1,ann")
    # Lakebook's bucket raw is the folder lakebook/raw/ of the store's bucket team
    assert s3.get("team", "lakebook/raw/in/a.csv") == b"id,name\n1,ann\n"
    s3.client.put_object(Bucket="team", Key="lakebook/raw/in/b.csv", Body=b"id,name\n2,bob\n")
    s3.client.put_object(Bucket="team", Key="lakebook/shared/x.txt", Body=b"from boto3\n")
    assert kernel.ok("%lake cat s3://raw/in/b.csv").stream() == "id,name\n2,bob\n"
    listed = rows(kernel.ok("%lake ls s3://raw/in/").result["text/plain"])
    assert [(r[0], r[1]) for r in listed] == [("in/a.csv", "14"), ("in/b.csv", "14")], listed
    buckets = [r[0] for r in rows(kernel.ok("%lake ls").result["text/plain"])]
    assert buckets == ["raw", "shared"], buckets  # a folder boto3 made is a bucket too
    kernel.ok("%lake cp s3://raw/in/a.csv s3://shared/copied.csv")
    assert s3.get("team", "lakebook/shared/copied.csv") == b"id,name\n1,ann\n"
    kernel.ok("%lake rm s3://raw/in/b.csv")
    assert s3.keys("team", "lakebook/raw/") == ["lakebook/raw/in/a.csv"]
    assert info(kernel)["objects"] == "3"

    kernel.failing("%lake cat s3://raw/in/missing.csv", "NoSuchKey")
    kernel.failing("%lake ls s3://nobucket/", "NoSuchBucket")
    # a store bucket that does not exist, or a store that does not answer: S3's error names,
    # and the lake stays where it was
    failed = kernel.failing(f"%lake connect s3://no-such-team --endpoint {s3.endpoint}", "NoSuchBucket")
    assert "the lake stays where it was" in failed.error["evalue"] + "".join(failed.error["traceback"]), failed.describe()
    kernel.failing(f"%lake connect s3://team --endpoint http://127.0.0.1:{free_port()}", "EndpointConnectionError", timeout=90)
    kernel.failing("%lake connect /tmp/lake", "InvalidArgument")
    assert kernel.ok("%lake cat s3://raw/in/a.csv").stream() == "id,name\n1,ann\n"

    # the setting is the workspace's: a new kernel finds the lake on S3; no credentials in it
    kernel.stop()
    kernel = start_kernel(env=CREDENTIALS)
    assert kernel.ok("%lake cat s3://shared/x.txt").stream() == "from boto3\n"
    setting = (kernel.home / "lake-connection.json").read_text()
    assert "lakebook-test" not in setting and s3.endpoint in setting, setting
    # a reset empties the workspace but neither deletes the objects on S3 nor moves the lake
    kernel.ok("%workspace reset --yes")
    assert kernel.ok("%lake cat s3://shared/x.txt").stream() == "from boto3\n"

    said = kernel.ok("%lake disconnect").stream()
    assert f"the objects on s3://team/lakebook at {s3.endpoint} stay there" in said, said
    kernel.failing("%lake ls s3://raw/", "NoSuchBucket")
    assert "lake directory" in info(kernel)
    assert s3.keys("team", "lakebook/raw/") == ["lakebook/raw/in/a.csv"]


def test_headless_runs_put_the_lake_on_s3_with_an_environment_variable(start_kernel, s3: S3Server) -> None:
    s3.client.create_bucket(Bucket="ci-runs")
    s3.client.put_object(Bucket="ci-runs", Key="run-7/inbox/events/data.json", Body=b'{"n": 1}\n{"n": 2}\n')
    env = {**CREDENTIALS, "LAKEBOOK_LAKE": "s3://ci-runs/run-7", "AWS_ENDPOINT_URL": s3.endpoint}
    kernel = start_kernel(env=env)
    assert info(kernel)["lake (S3, $LAKEBOOK_LAKE)"] == "s3://ci-runs/run-7"
    kernel.ok("%crawl s3://inbox/events/ --database ci")
    total = rows(kernel.ok("%%sql\nSELECT sum(n) AS total FROM ci.events").result["text/plain"])
    assert total == [["3"]], total
    kernel.failing(f"%lake connect s3://team --endpoint {s3.endpoint}", "InvalidArgument")


# The crawl → SQL → CTAS → Firehose → Redshift COPY / UNLOAD → EMR → Glue job path, run on the
# local lake and on S3: every table it shows must be the same.
SALES = "id,customer,amount\n1,acme,10.50\n2,globex,7.25\n3,acme,2.00\n4,initech,3.00\n"
PATH = [
    "%clock manual --at 2026-03-01T00:00:00Z",
    "%lake mb s3://shop",
    "%%lake put s3://shop/sales/part-1.csv\n" + SALES,
    "%crawl s3://shop/sales/ --database shop",
    "%%sql\nSELECT customer, sum(amount) AS total FROM shop.sales GROUP BY customer ORDER BY customer",
    "%%sql\nCREATE TABLE shop.big WITH (format = 'PARQUET', external_location = 's3://shop/big/') AS SELECT id, customer, amount FROM shop.sales WHERE amount > 2.5",
    "%%sql\nSELECT id, customer, amount FROM shop.big ORDER BY id",
    "%%sql\nINSERT INTO shop.big SELECT id + 10, customer, amount FROM shop.sales WHERE customer = 'initech'",
    "%%sql\nSELECT count(*) AS n, sum(amount) AS total FROM shop.big",
    "%firehose create orders --destination s3://shop/orders/ --buffer-interval 60s --newline",
    '%%firehose put orders\n{"id": 1, "total": 5}\n{"id": 2, "total": 7}\n{"id": 3, "total": 9}',
    "%firehose flush orders",
    "%crawl s3://shop/orders/ --database shop",
    "%%sql\nSELECT count(*) AS n, sum(total) AS total FROM shop.orders",
    "%redshift create wh --nodes 2",
    "%%sql --cluster wh\nCREATE TABLE sales (id integer, customer varchar(10), amount decimal(10,2)) DISTKEY(customer)",
    "%%sql --cluster wh\nCOPY sales FROM 's3://shop/sales/' IAM_ROLE default FORMAT AS CSV IGNOREHEADER 1",
    "%%sql --cluster wh\nUNLOAD ('SELECT customer, sum(amount) AS total FROM sales GROUP BY customer') TO 's3://shop/unload/totals_' IAM_ROLE default FORMAT PARQUET",
    "%%sql --cluster wh\nSELECT customer, amount FROM sales ORDER BY id",
    "%crawl s3://shop/unload/ --database shop",
    "%%sql\nSELECT customer, total FROM shop.unload ORDER BY customer",
    "%emr create books --core 2",
    "%emr step books --name count --mapper 'cut -d, -f2' --reducer 'uniq -c' --input s3://shop/sales/ --output s3://shop/customers/",
    "%lake cat s3://shop/customers/part-00000",
    "%%sql\nCREATE DATABASE curated;\nCREATE EXTERNAL TABLE curated.loud (id int, customer string) STORED AS PARQUET LOCATION 's3://shop/loud/'",
    "%%glue job create loud --job-bookmark-option job-bookmark-enable\nINSERT INTO curated.loud SELECT id, upper(customer) FROM shop.sales",
    "%glue job run loud",
    "%%lake put s3://shop/sales/part-2.csv\nid,customer,amount\n5,umbrella,1.00",
    "%glue job run loud",  # the bookmark: only the new file
    "%%sql\nSELECT id, customer FROM curated.loud ORDER BY id",
    "%lake ls s3://shop/ --recursive",
]


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def run_path(kernel: Kernel) -> list[object]:
    """What each cell of PATH showed: its table's rows and its text; CTAS file names and Glue
    run ids are random (as AWS's), so those are blanked, and so are timings."""
    shown: list[object] = []
    for code in PATH:
        ex = kernel.ok(code, timeout=120)
        if ex.of_type("execute_result"):
            table = [[UUID.sub("<uuid>", cell) for cell in row] for row in rows(ex.result["text/plain"])]
            # an object's time on S3 is the store's, not the engine clock's: keys and sizes
            # (which UNLOAD slice writes which group varies from run to run, as on Redshift)
            if code.startswith("%lake ls"):
                shown.append((sorted(r[0] for r in table), sorted(r[1] for r in table)))
            else:  # a Glue run's last column is its elapsed time
                shown.append([r[:-1] for r in table] if code.startswith("%glue job run") else table)
        text = re.sub(r"jr_[0-9a-f]{64}", "jr_<id>", re.sub(r"\b\d+(\.\d+)? ?(ms|s)\b", "<t>", ex.stream()))
        shown.append(UUID.sub("<uuid>", text))
    return shown


def test_the_services_give_the_same_results_on_s3_as_on_the_local_lake(start_kernel, s3: S3Server, tmp_path: Path) -> None:
    local = start_kernel(home=tmp_path / "local-home", env=CREDENTIALS)
    expected = run_path(local)
    assert any(isinstance(t, list) and t for t in expected)

    s3.client.create_bucket(Bucket="team")
    remote = start_kernel(home=tmp_path / "s3-home", env=CREDENTIALS)
    connect(remote, s3, "s3://team/lake")
    assert run_path(remote) == expected
    keys = s3.keys("team", "lake/shop/")
    assert "lake/shop/sales/part-1.csv" in keys and "lake/shop/customers/_SUCCESS" in keys, keys
    assert not [k for k in keys if "_temporary" in k or "_staging" in k], keys  # every commit finished
    # what Lakebook wrote, read by another tool: the CTAS table's Parquet through DuckDB
    import duckdb

    parquet = [k for k in keys if k.startswith("lake/shop/big/")]
    assert parquet, keys
    tables = []
    for i, key in enumerate(parquet):
        path = tmp_path / f"big-{i}.parquet"
        path.write_bytes(s3.get("team", key))
        tables.append(str(path))
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet({tables!r})").fetchall()[0][0]
    assert n == 4, (n, parquet)


def test_the_tour_shows_on_s3_what_it_shows_on_the_local_lake(s3: S3Server, tmp_path: Path, kernelspec) -> None:
    s3.client.create_bucket(Bucket="tour")
    tour = NOTEBOOKS / "00-tour.ipynb"
    shown = {}
    for name, extra in (("local", {}), ("s3", {"LAKEBOOK_LAKE": "s3://tour/lake", "AWS_ENDPOINT_URL": s3.endpoint})):
        home, out = tmp_path / f"{name}-home", tmp_path / f"tour-{name}.ipynb"
        env = {**os.environ, **CREDENTIALS, **extra, "LAKEBOOK_HOME": str(home)}
        done = subprocess.run(
            [str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute", str(tour), "--output", str(out), "--ExecutePreprocessor.timeout=300"],
            cwd=NOTEBOOKS, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-6000:]
        nb = nbformat.read(out, as_version=4)
        CHECKS["00-tour.ipynb"](nb)
        shown[name] = shown_outputs(nb, home)
    local, remote = shown["local"], shown["s3"]
    assert "lake (S3, $LAKEBOOK_LAKE)" in str(remote["info"]) and "lake directory" in str(local["info"])
    # the cells listing objects show their times: the engine clock's on disk, the store's on S3
    for listing in ("ls", "analytics-drain"):
        for side in (local, remote):
            side[listing] = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<time>", str(side[listing]))
    differ = [c for c in local if c != "info" and local[c] != remote[c]]
    assert not differ, "\n".join(f"{c}:\n  local: {local[c]}\n  s3:    {remote[c]}" for c in differ)[:6000]
    assert len(s3.keys("tour", "lake/demo/clicks/")) == 4
