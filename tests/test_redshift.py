"""%redshift and %sql --cluster through the real kernel: DDL with DISTKEY/SORTKEY laid out
across slices, COPY with bad rows and MAXERROR, INSERT/UPDATE/DELETE, UNLOAD layouts, a
Spectrum join with the Data Catalog, zone-map pruning in bytes scanned, errors with
Redshift's names, and tables surviving a kernel restart."""

from __future__ import annotations

import re

from kernel_harness import Kernel
from kernel_harness import table_rows as rows

SALES = """id,customer,amount,sold_at
1,acme,10.50,2026-01-01 10:00:00
2,globex,7.25,2026-01-02 11:00:00
3,acme,abc,2026-01-03 12:00:00
4,initech,3.00,2026-01-04 13:00:00
5,initech,"4.00",2026-01-05 14:00:00"""


def setup(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-03-01T00:00:00Z")
    kernel.ok("%lake mb s3://lake")
    kernel.ok("%%lake put s3://lake/sales/part1.csv\n" + SALES)
    kernel.ok("%redshift create wh --nodes 2")
    kernel.ok("%%sql --cluster wh\nCREATE TABLE sales (id integer, customer varchar(10), amount decimal(10,2), sold_at timestamp) DISTKEY(customer) SORTKEY(sold_at)")


def test_copy_reports_bad_rows_and_respects_maxerror(kernel: Kernel) -> None:
    setup(kernel)
    failed = kernel.failing("%%sql --cluster wh\nCOPY sales FROM 's3://lake/sales/' IAM_ROLE default FORMAT AS CSV IGNOREHEADER 1", "LoadError")
    assert "Load into table 'sales' failed. Check 'stl_load_errors' system table for details." == failed.error["evalue"], failed.describe()
    errors = rows(kernel.ok("%%sql --cluster wh\nSELECT filename, line_number, colname, raw_field_value, err_code FROM stl_load_errors").result["text/plain"])
    assert errors == [["s3://lake/sales/part1.csv", "4", "amount", "abc", "1207"]], errors
    assert rows(kernel.ok("%%sql --cluster wh\nSELECT count(*) AS n FROM sales").result["text/plain"]) == [["0"]]  # nothing loaded

    loaded = kernel.ok("%%sql --cluster wh\nCOPY sales FROM 's3://lake/sales/' CSV IGNOREHEADER 1 MAXERROR 5").stream()
    assert "4 record(s) loaded successfully from 1 file(s). 1 record(s) could not be loaded" in loaded, loaded
    totals = rows(kernel.ok("%%sql --cluster wh\nSELECT customer, sum(amount) AS total FROM sales GROUP BY customer ORDER BY customer").result["text/plain"])
    assert totals == [["acme", "10.50"], ["globex", "7.25"], ["initech", "7.00"]], totals

    # KEY distribution: each customer's rows on one slice; 4 slices on 2 nodes
    info = rows(kernel.ok("%%sql --cluster wh\nSELECT \"table\", diststyle, sortkey1, tbl_rows FROM svv_table_info").result["text/plain"])
    assert info == [["sales", "KEY(customer)", "sold_at", "4"]], info
    described = kernel.ok("%redshift describe wh")
    assert "2 node(s), 4 slices" in described.stream()
    per_slice = rows(described.result["text/plain"])[0][4].split()
    assert len(per_slice) == 4 and sorted(per_slice) in (["0", "1", "1", "2"], ["0", "0", "2", "2"], ["0", "0", "1", "3"]), per_slice
    # the planner knows the slices are hash partitioned on the DISTKEY: grouping by it moves no rows
    plan = kernel.ok("%%sql --cluster wh\nEXPLAIN SELECT customer, count(*) FROM sales GROUP BY customer").result["text/plain"]
    assert "AggregateExec" in plan and "RepartitionExec: partitioning=Hash" not in plan, plan
    plan = kernel.ok("%%sql --cluster wh\nEXPLAIN SELECT id, count(*) FROM sales GROUP BY id").result["text/plain"]
    assert "RepartitionExec: partitioning=Hash" in plan, plan


def test_dml_unload_and_spectrum(kernel: Kernel) -> None:
    setup(kernel)
    kernel.ok("%%sql --cluster wh\nCOPY sales FROM 's3://lake/sales/' CSV IGNOREHEADER 1 MAXERROR 1")
    changed = kernel.ok(
        "%%sql --cluster wh\nUPDATE sales SET amount = amount * 2 WHERE customer = 'acme';\nDELETE FROM sales WHERE id = 4;\n"
        "INSERT INTO sales VALUES (6, 'hooli', 1.5, '2026-02-01 00:00:00');\nSELECT id, customer, amount FROM sales ORDER BY id"
    )
    assert changed.stream().startswith("UPDATE 1\nDELETE 1\nINSERT 0 1\n"), changed.describe()
    assert rows(changed.result["text/plain"]) == [["1", "acme", "21.00"], ["2", "globex", "7.25"], ["5", "initech", "4.00"], ["6", "hooli", "1.50"]]

    unloaded = kernel.ok("%%sql --cluster wh\nUNLOAD ('SELECT * FROM sales ORDER BY id') TO 's3://lake/unload/sales_' FORMAT PARQUET").stream()
    assert "4 record(s) unloaded successfully to 4 file(s)" in unloaded, unloaded
    listing = kernel.ok("%lake ls s3://lake/unload/").result["text/plain"]
    assert all(f"unload/sales_000{s}_part_00.parquet" in listing for s in range(4)), listing
    kernel.failing("%%sql --cluster wh\nUNLOAD ('SELECT 1') TO 's3://lake/unload/sales_' FORMAT PARQUET", "InvalidParameterValue")
    kernel.ok("%%sql --cluster wh\nUNLOAD ('SELECT id, customer FROM sales') TO 's3://lake/by-customer/' CSV HEADER PARTITION BY (customer) PARALLEL OFF")
    assert kernel.ok("%lake cat s3://lake/by-customer/customer=acme/000").stream() == "id\n1\n"

    # Spectrum: the unloaded files, crawled, joined with the managed table
    kernel.ok("%crawl s3://lake/unload/ --database web")
    joined = kernel.ok(
        "%%sql --cluster wh\nCREATE EXTERNAL SCHEMA spectrum FROM DATA CATALOG DATABASE 'web' IAM_ROLE default;\n"
        "SELECT s.customer, sum(l.amount) AS amount FROM spectrum.unload s JOIN sales l ON s.id = l.id GROUP BY 1 ORDER BY 1"
    )
    assert rows(joined.result["text/plain"]) == [["acme", "21.00"], ["globex", "7.25"], ["hooli", "1.50"], ["initech", "4.00"]], joined.describe()
    kernel.failing("%%sql --cluster wh\nCREATE EXTERNAL SCHEMA x FROM DATA CATALOG DATABASE 'nope'", "EntityNotFoundException")


def test_sort_key_zone_maps_prune_and_errors(kernel: Kernel) -> None:
    kernel.ok("%redshift create big --nodes 1")
    kernel.ok("%%sql --cluster big\nCREATE TABLE t (a bigint, b varchar(20)) DISTSTYLE EVEN SORTKEY(a);\nINSERT INTO t SELECT value, 'row ' || value FROM generate_series(1, 200000)")

    def scanned(sql: str) -> float:
        text = kernel.ok(f"%%sql --cluster big\n{sql}").result["text/plain"]
        m = re.search(r"· ([\d.]+) (B|KB|MB) scanned", text)
        assert m, text
        return float(m.group(1)) * {"B": 1, "KB": 1e3, "MB": 1e6}[m.group(2)]

    narrow, wide = scanned("SELECT sum(a) FROM t WHERE a < 100"), scanned("SELECT sum(a) FROM t")
    assert 0 < narrow < wide / 4, (narrow, wide)

    # Spectrum reads the lake: the same rows unloaded, crawled and scanned in place
    kernel.ok("%lake mb s3://lake")
    kernel.ok("%%sql --cluster big\nUNLOAD ('SELECT * FROM t') TO 's3://lake/t/' FORMAT PARQUET")
    kernel.ok("%crawl s3://lake/t/ --database web")
    kernel.ok("%%sql --cluster big\nCREATE EXTERNAL SCHEMA spectrum FROM DATA CATALOG DATABASE 'web'")
    external = kernel.ok("%%sql --cluster big\nSELECT count(*) AS n, sum(a) AS total FROM spectrum.t").result["text/plain"]
    assert rows(external)[0] == ["200000", "20000100000"] and re.search(r"Spectrum scanned [\d.]+ (KB|MB) of the lake", external), external

    kernel.failing("%redshift create big", "ClusterAlreadyExists")
    missing = kernel.failing("%%sql --cluster big\nSELECT * FROM tt", "UndefinedTable")
    assert "did you mean public.t?" in "\n".join(missing.error["traceback"]), missing.describe()
    kernel.failing("%%sql --cluster bgi\nSELECT 1", "ClusterNotFound")
    kernel.failing("%%sql --cluster big\nCREATE TABLE u (a geometry)", "FeatureNotSupported")
    kernel.failing("%%sql --cluster big\nCOPY t FROM 's3://nobucket/x' CSV", "NoSuchBucket")
    kernel.failing("%%sql --cluster big\nSELEC 1", "SYNTAX_ERROR")
    assert "1 row" in kernel.ok("%%sql --cluster big\nSELECT count(*) FROM t").result["text/plain"]


def test_connect_and_a_restart_keep_the_tables(start_kernel) -> None:
    first = start_kernel(name="first")
    setup(first)
    first.ok("%%sql --cluster wh\nCOPY sales FROM 's3://lake/sales/' CSV IGNOREHEADER 1 MAXERROR 1")
    first.ok("%redshift connect wh")
    assert rows(first.ok("%sql SELECT count(*) AS n FROM sales").result["text/plain"]) == [["4"]]
    first.ok("%redshift disconnect")
    first.failing("%sql SELECT count(*) FROM sales", "TABLE_NOT_FOUND")  # Athena has no such table
    first.stop()

    second = start_kernel(name="second")
    assert rows(second.ok("%%sql --cluster wh\nSELECT count(*) AS n FROM sales").result["text/plain"]) == [["4"]]
    assert rows(second.ok("%%sql --cluster wh\nSELECT count(*) AS n FROM stl_load_errors").result["text/plain"]) == [["1"]]
    second.ok("%redshift delete wh")
    second.failing("%redshift describe wh", "ClusterNotFound")


def test_snapshots_on_the_manual_clock_and_restore(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-03-01T00:00:00Z")
    kernel.failing("%redshift create wh --retention 40", "InvalidRetentionPeriod")
    kernel.ok("%redshift create wh --nodes 1")
    kernel.ok("%%sql --cluster wh\nCREATE TABLE t (a int);\nINSERT INTO t VALUES (1), (2)")
    assert "kept until deleted" in kernel.ok("%redshift snapshot wh before-delete").stream()
    kernel.ok("%%sql --cluster wh\nDELETE FROM t WHERE a = 1")
    took = kernel.ok("%clock advance 8h").stream()
    assert "Redshift took automated snapshot rs:wh-2026-03-01-08-00-00 of wh" in took, took
    snaps = kernel.ok("%redshift snapshots wh").result["text/plain"]
    assert re.search(r"before-delete\s+┆ wh\s+┆ manual", snaps) and re.search(r"rs:wh-2026-03-01-08-00-00 ┆ wh\s+┆ automated", snaps), snaps
    # a day later: the first automated snapshot's retention (1 day) has ended; a new one was taken
    later = kernel.ok("%clock advance 24h").stream()
    assert "deleted automated snapshot rs:wh-2026-03-01-08-00-00" in later and "automated snapshot rs:wh-2026-03-02-08-00-00" in later, later

    def count(cluster: str) -> list[list[str]]:
        return rows(kernel.ok(f"%%sql --cluster {cluster}\nSELECT count(*) AS n FROM t").result["text/plain"])

    kernel.ok("%redshift restore before-delete --as wh2")
    assert count("wh2") == [["2"]] and count("wh") == [["1"]]
    kernel.ok("%redshift delete wh --final-snapshot last-state")
    left = kernel.ok("%redshift snapshots").result["text/plain"]
    assert "last-state" in left and "before-delete" in left and "automated" not in left, left
    kernel.ok("%redshift restore last-state --as wh3")
    assert count("wh3") == [["1"]]
    kernel.failing("%redshift restore last-state --as wh3", "ClusterAlreadyExists")
    kernel.failing("%redshift restore nope --as wh4", "ClusterSnapshotNotFound")
    kernel.ok("%redshift delete-snapshot before-delete")
    assert count("wh2") == [["2"]]  # a restored cluster does not depend on its snapshot


def test_firehose_delivers_into_a_table_through_the_kernel(kernel: Kernel) -> None:
    setup(kernel)
    created = kernel.ok(
        "%firehose create to-wh --destination redshift:wh.clicks --intermediate s3://lake/stage/ "
        "--copy-options \"JSON 'auto'\" --retry-duration 10m --error-prefix stage-errors/ --buffer-interval 60s --newline"
    )
    assert "→ redshift:wh.clicks via s3://lake/stage/" in created.stream(), created.describe()
    unusable = kernel.failing("%firehose create x --destination redshift:wh.clicks", "UsageError")
    assert "--intermediate" in unusable.error["evalue"]
    kernel.failing("%firehose create x --destination redshift:nope.clicks --intermediate s3://lake/x/", "ClusterNotFound")

    # No table yet: the COPY fails and waits for its retry; the staged batch stays pending.
    kernel.ok("%%firehose put to-wh\n{\"page\": \"/a\", \"n\": 1}\n{\"page\": \"/b\", \"n\": 2}")
    flushed = kernel.ok("%firehose flush to-wh")
    assert "to-wh: COPY into wh.clicks failed (attempt 1)" in flushed.stream() and "next attempt at 2026-03-01T00:05:00Z" in flushed.stream(), flushed.describe()
    described = kernel.ok("%firehose describe to-wh")
    assert "COPY clicks FROM '<manifest>' MANIFEST JSON 'auto'; failed COPYs retried for 10m" in described.stream(), described.describe()
    pending = [d["content"]["data"] for d in described.of_type("display_data") if "staged, waiting for COPY" in d["content"]["data"].get("text/plain", "")]
    assert pending and "s3://lake/stage/manifests/2026/03/01/00/to-wh-1-" in pending[0]["text/plain"], described.describe()

    kernel.ok("%%sql --cluster wh\nCREATE TABLE clicks (page varchar(20), n int)")
    advanced = kernel.ok("%clock advance 5m")
    assert "firehose to-wh: COPY into wh.clicks loaded 2 row(s) from s3://lake/stage/manifests/" in advanced.stream(), advanced.describe()
    assert rows(kernel.ok("%%sql --cluster wh\nSELECT page, n FROM clicks ORDER BY n").result["text/plain"]) == [["/a", "1"], ["/b", "2"]]

    # A COPY that keeps failing is skipped after the retry duration, its manifest kept for a backfill.
    kernel.ok("%%firehose put to-wh\n{\"page\": \"/c\", \"n\": \"three\"}")
    kernel.ok("%clock advance 1m")  # interval trigger: staged, COPY fails (LoadError)
    skipped = kernel.ok("%clock advance 10m").stream()
    assert "the retry duration is over, so the batch is skipped: its manifest is s3://lake/stage-errors/manifests/2026/03/01/00/to-wh-1-" in skipped, skipped
    listing = kernel.ok("%lake ls s3://lake/stage-errors/ --recursive").result["text/plain"]
    assert "stage-errors/manifests/2026/03/01/00/to-wh-1-" in listing, listing
    metrics = kernel.ok("%firehose describe to-wh").stream()
    assert "loaded into wh.clicks: 2 row(s); 1 batch(es) skipped after their retries" in metrics, metrics
