"""Continuous SQL applications through the kernel (#25, step a): `%%analytics create` with a
tumbling window over a stream into a catalog table, run by `%clock advance` on the manual
clock, described, drained, and the results read back with `%sql`."""

from __future__ import annotations

from kernel_harness import table_rows

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


ENRICH = """%%analytics create busy_pages
CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');
CREATE TABLE pages (page STRING, title STRING) WITH ('connector' = 'filesystem', 'path' = 's3://ref/pages.csv', 'format' = 'csv');
CREATE TABLE to_lake (page STRING, title STRING, window_start TIMESTAMP(3), views BIGINT)
WITH ('connector' = 'firehose', 'delivery-stream' = 'metrics', 'format' = 'json');
CREATE TABLE alerts (page STRING, views BIGINT) WITH ('connector' = 'kinesis', 'stream' = 'alerts', 'format' = 'json');
INSERT INTO to_lake
SELECT w.page, p.title, window_start, COUNT(*) AS views
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) w LEFT JOIN pages p ON w.page = p.page
GROUP BY w.page, p.title, window_start, window_end;
INSERT INTO alerts
SELECT page, COUNT(*) AS views FROM TABLE(HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '30' SECOND, INTERVAL '1' MINUTE))
GROUP BY page, window_start, window_end HAVING COUNT(*) >= 3;
"""


def test_reference_data_and_stream_and_firehose_sinks_through_the_kernel(start_kernel) -> None:
    kernel = start_kernel()
    kernel.ok("%clock manual --at 2026-01-01T10:00:00Z")
    for stream in ("clicks", "alerts"):
        kernel.ok(f"%stream create {stream} --shards 1")
    kernel.ok("%lake mb s3://ref")
    kernel.ok("%lake mb s3://lake")
    kernel.ok("%%lake put s3://ref/pages.csv\nhome,Home page\ncart,Shopping cart")
    kernel.ok("%firehose create metrics --destination s3://lake/metrics/ --buffer-interval 60s --newline")
    kernel.failing(ENRICH.replace("'alerts', 'format'", "'nope', 'format'"), "ResourceNotFoundException")
    kernel.ok(ENRICH)
    kernel.ok("%analytics start busy_pages")
    records = [("home", "10:00:05"), ("home", "10:00:20"), ("search", "10:00:30"), ("home", "10:00:40"), ("cart", "10:01:30")]
    kernel.ok("%%stream put clicks --partition-key k\n" + "\n".join(f'{{"page":"{p}","ts":"2026-01-01 {t}"}}' for p, t in records))
    # The watermark (10:01:25) passes 10:01:00: the first minute fires; its rows enter the
    # Firehose buffer, which delivers 60 s later.
    advanced = kernel.ok("%clock advance 1s").stream()
    assert "analytics busy_pages emitted 3 row(s)" in advanced, advanced
    delivered = kernel.ok("%clock advance 60s").stream()
    assert "firehose delivered 2 record(s) to s3://lake/metrics/" in delivered, delivered
    # In S3, enriched (search has no title); one alert: home's 3 views in [10:00, 10:01).
    kernel.ok("%sql CREATE DATABASE web")
    kernel.ok("%sql CREATE EXTERNAL TABLE web.metrics (page string, title string, window_start timestamp, views bigint) STORED AS JSONFILE LOCATION 's3://lake/metrics/'")
    rows = table_rows(kernel.ok("%sql SELECT page, title, views FROM web.metrics ORDER BY page").result["text/plain"])
    assert [r[0] for r in rows] == ["home", "search"], rows
    assert rows[0][1:] == ["Home page", "3"] and rows[1][2] == "1", rows
    alerts = kernel.ok("%stream read alerts").result["text/plain"]
    assert alerts.count('"views":3') == 1 and '"page":"home"' in alerts, alerts
    described = kernel.ok("%analytics describe busy_pages").stream()
    assert "records in 5" in described, described


def test_a_kill_9_mid_window_loses_nothing_and_emits_each_window_once(start_kernel) -> None:
    kernel = start_kernel()
    kernel.ok("%clock manual --at 2026-01-01T10:00:00Z")
    kernel.ok("%stream create clicks --shards 2")
    kernel.ok("%lake mb s3://lake")
    kernel.ok(
        "%%analytics create counts\n"
        "CREATE TABLE clicks (page STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)"
        " WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');\n"
        "CREATE TABLE out (page STRING, window_start TIMESTAMP(3), views BIGINT)"
        " WITH ('connector' = 'filesystem', 'path' = 's3://lake/counts/', 'format' = 'json');\n"
        "INSERT INTO out SELECT page, window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))"
        " GROUP BY page, window_start, window_end;"
    )
    kernel.ok("%analytics start counts")

    def put(lines: list[tuple[str, str]]) -> None:
        body = "\n".join(f'{{"page":"{p}","ts":"2026-01-01 {t}"}}' for p, t in lines)
        kernel.ok("%%stream put clicks --partition-key-field page\n" + body)

    put([("a", "10:00:01"), ("b", "10:00:02"), ("a", "10:00:30")])
    kernel.ok("%clock advance 1s")  # read into the open minute, state and positions saved
    before = kernel.ok("%analytics describe counts").stream()
    assert "records in 3, out 0" in before and "3 record(s) in open windows" in before, before
    kernel.proc.kill()  # kill -9, mid-window
    kernel.proc.wait(10)

    kernel = start_kernel()
    after = kernel.ok("%analytics describe counts").stream()
    assert "counts: RUNNING" in after and "records in 3, out 0" in after and "3 record(s) in open windows" in after, after
    put([("a", "10:00:50"), ("b", "10:01:20"), ("a", "10:01:30")])
    kernel.ok("%clock advance 1s")
    kernel.ok("%analytics stop counts --drain")
    kernel.ok("%sql CREATE DATABASE web")
    kernel.ok("%sql CREATE EXTERNAL TABLE web.counts (page string, window_start timestamp, views bigint) STORED AS JSONFILE LOCATION 's3://lake/counts/'")
    rows = table_rows(kernel.ok("%sql SELECT page, CAST(window_start AS varchar) AS w, views FROM web.counts ORDER BY w, page").result["text/plain"])
    assert [(r[0], r[1][11:16], r[2]) for r in rows] == [("a", "10:00", "3"), ("b", "10:00", "1"), ("a", "10:01", "1"), ("b", "10:01", "1")], rows


def test_peek_follows_results_live_on_the_system_clock(start_kernel) -> None:
    kernel = start_kernel()
    kernel.ok("%stream create clicks --shards 1")
    kernel.ok("%lake mb s3://lake")
    kernel.ok(
        "%%analytics create live\n"
        "CREATE TABLE clicks (page STRING, pt AS PROCTIME()) WITH ('connector' = 'kinesis', 'stream' = 'clicks', 'format' = 'json');\n"
        "CREATE TABLE out (page STRING, window_end TIMESTAMP(3), views BIGINT) WITH ('connector' = 'filesystem', 'path' = 's3://lake/live/', 'format' = 'json');\n"
        "INSERT INTO out SELECT page, window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(pt), INTERVAL '1' SECOND)) GROUP BY page, window_start, window_end;"
    )
    kernel.failing("%analytics peek live --sink nope", "InvalidArgumentException")
    kernel.ok('%%stream put clicks --partition-key k\n{"page":"home"}\n{"page":"home"}\n{"page":"cart"}')
    kernel.ok("%analytics start live")
    # The records sit in the current second's window; it fires once the clock passes its end,
    # in the background, and the display is updated in place.
    run = kernel.ok("%analytics peek live --follow 4s", timeout=30)
    shown = run.of_type("display_data")
    assert len(shown) == 1 and shown[0]["content"]["transient"].get("display_id"), run.describe()
    updates = run.of_type("update_display_data")
    assert updates, run.describe()
    assert all(u["content"]["transient"]["display_id"] == shown[0]["content"]["transient"]["display_id"] for u in updates)
    final = updates[-1]["content"]["data"]["text/plain"]
    rows = {r[0]: r[2] for r in table_rows(final)}
    assert rows == {"home": "2", "cart": "1"}, final
    # Without --follow: the same rows, once.
    assert table_rows(kernel.ok("%analytics peek live --limit 1").result["text/plain"])[0][0] in ("home", "cart")
    kernel.ok("%clock manual")
    kernel.failing("%analytics peek live --follow 2s", "InvalidArgumentException")
