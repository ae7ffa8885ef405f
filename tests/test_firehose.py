"""%firehose through the real kernel: the workshop's direct-put delivery stream (prefix and
error prefix with expressions, 60 s buffer) delivering on `%clock advance`, buffer fill in
describe, a stream source, flush, and AWS-named errors that leave the kernel running."""

from __future__ import annotations

import json
import re

from kernel_harness import Kernel

PREFIX = "data/webaccess/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/"
ERRORS = "error/webaccess/!{firehose:error-output-type}/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/"


def test_direct_put_delivers_on_the_interval_with_the_workshop_prefix(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-04-05T06:07:08Z")
    kernel.ok("%lake mb s3://weblogs")
    created = kernel.ok(
        f"%firehose create webaccess --destination s3://weblogs/ --prefix '{PREFIX}' --error-prefix '{ERRORS}' --buffer-interval 60s --newline"
    )
    assert "buffer 5 MB or 1m" in created.stream(), created.describe()
    body = "\n".join(json.dumps({"ip": f"10.0.0.{i}", "path": "/"}) for i in range(4))
    put = kernel.ok("%%firehose put webaccess\n" + body)
    assert "FailedPutCount: 0" in put.result["text/plain"]
    described = kernel.ok("%firehose describe webaccess")
    assert re.search(r"data\s*┆ 4 ", described.result["text/plain"]), described.describe()
    kernel.ok("%clock advance 59s")
    delivered = kernel.ok("%clock advance 1s")
    out = delivered.stream()
    assert "firehose delivered 4 record(s) to s3://weblogs/data/webaccess/year=2026/month=04/day=05/webaccess-1-2026-04-05-06-07-08-" in out, out
    listing = kernel.ok("%lake ls s3://weblogs/ --recursive").result["text/plain"]
    assert "data/webaccess/year=2026/month=04/day=05/webaccess-1-2026-04-05-06-07-08-" in listing, listing
    key = re.search(r"(data/webaccess/\S+)", out).group(1)
    text = kernel.ok(f"%lake cat s3://weblogs/{key}").stream()
    assert text.count("\n") == 4 and "10.0.0.3" in text, text


def test_stream_source_flush_and_errors(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-04-05T06:00:00Z")
    kernel.ok("%lake mb s3://lake")
    kernel.ok("%stream create clicks --shards 1")
    kernel.ok("%firehose create tolake --source stream:clicks --destination s3://lake/raw/ --buffer-interval 300s")
    kernel.ok("%stream generate clicks --template clickstream --rate 10/s --duration 3s --seed 1")
    described = kernel.ok("%firehose describe tolake").stream()
    assert "30 record(s) in" in described, described
    flushed = kernel.ok("%firehose flush tolake").result["text/plain"]
    assert "s3://lake/raw/2026/04/05/06/tolake-1-2026-04-05-06-00-00-" in flushed, flushed
    assert "nothing to deliver" in kernel.ok("%firehose flush tolake").stream()
    kernel.failing("%firehose put tolake --data x", "InvalidArgumentException")
    kernel.failing("%firehose create bad --destination s3://nobucket/", "InvalidArgumentException")
    kernel.failing("%firehose create bad --destination s3://lake/ --prefix 'x/!{timestamp:yyyy}/'", "InvalidArgumentException")
    kernel.failing("%firehose create bad --destination s3://lake/ --buffer-size 200MB", "InvalidArgumentException")
    kernel.failing("%firehose create bad --destination s3://lake/ --compression lz4", "InvalidArgumentException")
    ex = kernel.failing("%firehose describe tolak", "ResourceNotFoundException")
    assert "did you mean tolake?" in "\n".join(ex.content["traceback"])
    assert "tolake" in kernel.ok("%firehose list").result["text/plain"]


def test_buffers_and_metrics_survive_a_kernel_restart(start_kernel) -> None:
    first = start_kernel(name="first")
    first.ok("%clock manual --at 2026-04-05T06:00:00Z")
    first.ok("%lake mb s3://lake")
    first.ok("%firehose create keep --destination s3://lake/raw/ --buffer-interval 60s --newline")
    first.ok("%%firehose put keep\n" + "\n".join(f'{{"n": {i}}}' for i in range(3)))
    first.stop()

    second = start_kernel(name="second")
    described = second.ok("%firehose describe keep")
    assert "metrics: 3 record(s) in" in described.stream(), described.describe()
    assert re.search(r"data\s*┆ 3 ", described.result["text/plain"]), described.describe()
    delivered = second.ok("%clock advance 60s").stream()
    assert "firehose delivered 3 record(s) to s3://lake/raw/2026/04/05/06/keep-1-2026-04-05-06-00-00-" in delivered, delivered
    assert "delivered" not in second.ok("%clock advance 60s").stream()
