"""Continuous SQL applications through the kernel (#25, step a): `%%analytics create` with a
tumbling window over a stream into a catalog table, run by `%clock advance` on the manual
clock, described, drained, and the results read back with `%sql`."""

from __future__ import annotations

APP = """%%analytics create per_minute
CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');
INSERT INTO web.views
SELECT page, window_start, COUNT(*) AS views
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY page, window_start, window_end;
"""


def test_a_tumbling_window_application_runs_on_the_engine_clock(start_kernel) -> None:
    kernel = start_kernel()
    kernel.ok("%clock manual --at 2026-01-01T10:00:00Z")
    kernel.ok("%stream create clicks --shards 1")
    kernel.ok("%lake mb s3://lake")
    kernel.ok("%sql CREATE DATABASE web")
    kernel.ok("%sql CREATE EXTERNAL TABLE web.views (page string, window_start timestamp, views bigint) STORED AS JSONFILE LOCATION 's3://lake/views/'")
    created = kernel.ok(APP)
    assert "Created application per_minute: READY" in created.stream(), created.stream()
    # Rerunnable: the same create with --if-not-exists keeps it.
    kernel.ok(APP.replace("create per_minute", "create per_minute --if-not-exists"))

    records = "\n".join(
        f'{{"page":"{page}","ts":"2026-01-01 {ts}"}}'
        for page, ts in [("home", "10:00:05"), ("cart", "10:00:50"), ("home", "10:00:30"), ("home", "10:01:07")]
    )
    kernel.ok("%%stream put clicks --partition-key k\n" + records)
    started = kernel.ok("%analytics start per_minute")
    assert "analytics per_minute emitted 2 row(s)" in started.stream(), started.stream()
    assert started.stream().rstrip().endswith("per_minute: RUNNING"), started.stream()

    kernel.ok('%%stream put clicks --partition-key k\n{"page":"home","ts":"2026-01-01 10:00:10"}')
    kernel.ok("%clock advance 1s")
    described = kernel.ok("%analytics describe per_minute").stream()
    assert "records in 5, out 2, late records dropped 1" in described, described
    assert "watermark 2026-01-01 10:01:02.000" in described, described

    stopped = kernel.ok("%analytics stop per_minute --drain")
    assert "per_minute: READY (3 row(s) emitted in all)" in stopped.stream(), stopped.stream()
    rows = kernel.ok("%sql SELECT page, views FROM web.views ORDER BY window_start, page")
    text = rows.result["text/plain"]
    assert text.index("cart") < text.index("home"), text
    assert text.count("home") == 2 and text.count("cart") == 1, text
    assert [line.split("┆")[1].strip(" │") for line in text.splitlines() if "home" in line] == ["2", "1"], text

    listed = kernel.ok("%analytics list").result["text/plain"]
    assert "per_minute" in listed and "READY" in listed, listed
    kernel.failing("%analytics stop per_minute", "ResourceInUseException")
    kernel.failing("%%analytics create broken\nINSERT INTO nowhere SELECT 1", "InvalidApplicationConfigurationException")
    kernel.ok("%analytics delete per_minute")
    kernel.failing("%analytics describe per_minute", "ResourceNotFoundException")
