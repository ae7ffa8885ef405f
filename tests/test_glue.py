"""`%glue`: Glue ETL SQL jobs through the kernel — a job from a cell body with arguments, a
run followed live to its node metrics, bookmarks that process only new files (and survive a
kernel restart and a kernel killed mid-run), retries, the concurrent-run limit, stop, and
errors by their Glue names."""

from __future__ import annotations

import os
import re
import signal
import time

from kernel_harness import Kernel, put_object, table_rows

CREATE = """%%glue job create clean --arg min=0 --job-bookmark-option job-bookmark-enable --worker-type G.2X --number-of-workers 4
INSERT INTO curated.events SELECT id, upper(v) FROM raw.events WHERE id >= ${min}"""

# A statement that runs far longer than any test (stopped or killed before it ends), in
# small steps, so the kernel's other work goes on meanwhile.
SLOW = "%%glue job create slow --arg n=1000000000000\nSELECT count(*) FROM range(0, ${n}) WHERE value % 7 = 3"


def lines(first: int, last: int) -> str:
    return "".join(f'{{"id":{i},"v":"item{i}"}}\n' for i in range(first, last))


def setup(kernel: Kernel) -> None:
    put_object(kernel.home, "raw/events/a.json", lines(0, 2))
    kernel.ok("%lake mb s3://curated")
    kernel.ok(
        "%%sql\nCREATE DATABASE raw;\nCREATE DATABASE curated;\n"
        "CREATE EXTERNAL TABLE raw.events (id int, v string) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://raw/events/';\n"
        "CREATE EXTERNAL TABLE curated.events (id int, v string) STORED AS PARQUET LOCATION 's3://curated/events/'"
    )
    kernel.ok(CREATE)


def runs_of(kernel: Kernel, job: str) -> list[tuple[str, str, str]]:
    """(id, attempt, state) of each run, newest first."""
    text = kernel.ok(f"%glue job runs {job}").result["text/plain"]
    return re.findall(r"(jr_[0-9a-f]{64}(?:_attempt_\d+)?)\s*┆ (\d+)\s*┆ (\w+)", text)


def count(kernel: Kernel) -> int:
    return int(table_rows(kernel.ok("%sql SELECT count(*) AS n FROM curated.events").result["text/plain"])[0][0])


def test_a_sql_job_runs_live_and_its_bookmark_reads_only_new_files(kernel: Kernel) -> None:
    setup(kernel)
    ex = kernel.ok("%glue job run clean", timeout=60)
    rows = table_rows(ex.result["text/plain"])
    assert rows[0][0].startswith("statement 1 (INSERT INTO"), rows
    assert rows[0][1] == "SUCCEEDED" and rows[0][2] == "2" and rows[0][4] == "2", rows
    assert rows[0][3] == str(len(lines(0, 2))), f"bytes read: the whole JSON file {rows}"
    # 4 G.2X workers for Glue's 1-minute minimum: 4 × 2 × 1/60 DPU-hours at $0.44.
    assert re.search(r"run jr_[0-9a-f]{64} of clean: SUCCEEDED · 2 records read · 2 records written · 0\.1333 DPU-hours · \$0\.0587", ex.stream()), ex.describe()
    assert count(kernel) == 2

    put_object(kernel.home, "raw/events/b.json", lines(2, 5))
    rows = table_rows(kernel.ok("%glue job run clean --arg min=3", timeout=60).result["text/plain"])
    assert rows[0][2] == "3" and rows[0][4] == "2", f"only b.json's rows, 3 and 4: {rows}"
    assert count(kernel) == 4
    rows = table_rows(kernel.ok("%glue job run clean", timeout=60).result["text/plain"])
    assert rows[0][4] == "0", rows
    described = kernel.ok("%glue job describe clean").stream()
    assert "bookmark: version 3, 2 file(s) processed: raw.events (2 file(s))" in described, described
    assert [r[2] for r in runs_of(kernel, "clean")] == ["SUCCEEDED"] * 3

    kernel.ok("%glue job reset-bookmark clean")
    rows = table_rows(kernel.ok("%glue job run clean", timeout=60).result["text/plain"])
    assert rows[0][4] == "5", rows
    listed = table_rows(kernel.ok("%glue job list").result["text/plain"])
    assert listed[0][:5] == ["clean", "G.2X", "4", "job-bookmark-enable", "SUCCEEDED"], listed


def test_failures_retries_and_errors_by_their_glue_names(kernel: Kernel) -> None:
    setup(kernel)
    kernel.ok("%%glue job create broken --max-retries 1\nSELECT 1;\nSELECT nope FROM raw.events")
    ex = kernel.failing("%glue job run broken", "JobRunFailed", timeout=60)
    assert "statement 2" in ex.content["evalue"] and "nope" in ex.content["evalue"], ex.describe()
    runs = runs_of(kernel, "broken")
    assert [(r[1], r[2]) for r in runs] == [("1", "FAILED"), ("0", "FAILED")], runs
    assert runs[0][0] == runs[1][0] + "_attempt_1"
    kernel.failing(CREATE, "AlreadyExistsException")
    kernel.ok(CREATE.replace("create clean", "create clean --if-not-exists", 1))
    ex = kernel.failing("%glue job create spark --script-location s3://scripts/etl.py", "InvalidInputException")
    assert "PySpark" in ex.content["evalue"], ex.describe()
    ex = kernel.failing("%glue job run claen", "EntityNotFoundException")
    assert "did you mean clean?" in "\n".join(ex.content["traceback"]), ex.describe()
    kernel.failing("%glue job run clean --arg nokey", "UsageError")
    kernel.failing("%glue job create x --worker-type G.3X\nSELECT 1", "InvalidInputException")


def test_concurrent_runs_are_limited_stop_and_interrupt_end_a_run(kernel: Kernel) -> None:
    kernel.ok(SLOW)
    run_id = kernel.ok("%glue job run slow --no-wait").result["text/plain"].strip()
    assert re.fullmatch(r"jr_[0-9a-f]{64}", run_id), run_id
    kernel.failing("%glue job run slow", "ConcurrentRunsExceededException")
    kernel.ok(f"%glue job stop slow {run_id}")
    assert runs_of(kernel, "slow")[0][2] == "STOPPED"
    # An interrupt while a cell follows a run stops the run.
    msg_id = kernel.execute_async("%glue job run slow")
    time.sleep(1.5)
    assert not kernel.has_reply(msg_id)
    kernel.send("control", "interrupt_request", {})
    assert kernel.reply(msg_id, timeout=10)["content"]["ename"] == "KeyboardInterrupt"
    assert [r[2] for r in runs_of(kernel, "slow")] == ["STOPPED", "STOPPED"]


def test_jobs_and_bookmarks_survive_a_restart_and_a_killed_run(start_kernel) -> None:
    first = start_kernel(name="first")
    setup(first)
    first.ok("%glue job run clean", timeout=60)
    first.ok(SLOW)
    first.execute_async("%glue job run slow")
    time.sleep(1.5)
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)

    second = start_kernel(name="second")
    assert runs_of(second, "slow")[0][2] == "FAILED"
    assert "kernel ended" in second.ok("%glue job runs slow").result["text/plain"]
    put_object(second.home, "raw/events/b.json", lines(2, 3))
    rows = table_rows(second.ok("%glue job run clean", timeout=60).result["text/plain"])
    assert rows[0][4] == "1", f"the bookmark kept a.json: {rows}"
    assert count(second) == 3


GRAPH = """{
  "node-1": {"S3CatalogSource": {"Name": "events", "Database": "raw", "Table": "events"}},
  "node-2": {"ApplyMapping": {"Name": "types", "Inputs": ["node-1"], "Mapping": [
      {"ToKey": "id", "FromPath": ["id"], "FromType": "int", "ToType": "long", "Dropped": false},
      {"ToKey": "label", "FromPath": ["v"], "FromType": "string", "ToType": "string", "Dropped": false}]}},
  "node-3": {"Filter": {"Name": "odd", "Inputs": ["node-2"], "LogicalOperator": "AND", "Filters": [
      {"Operation": "REGEX", "Negated": false, "Values": [{"Type": "COLUMNEXTRACTED", "Value": ["label"]}, {"Type": "CONSTANT", "Value": ["[13579]$"]}]}]}},
  "node-4": {"S3DirectTarget": {"Name": "out", "Inputs": ["node-3"], "Path": "s3://curated/odd/", "Format": "parquet",
      "SchemaChangePolicy": {"EnableUpdateCatalog": true, "UpdateBehavior": "UPDATE_IN_DATABASE", "Database": "curated", "Table": "odd"}}}
}"""


def test_a_visual_job_from_a_cell_and_from_the_lake(kernel: Kernel) -> None:
    setup(kernel)
    put_object(kernel.home, "raw/events/b.json", lines(2, 6))
    ex = kernel.ok(f"%%glue job create odd --type visual --job-bookmark-option job-bookmark-enable\n{GRAPH}")
    assert "visual, 4 node(s)" in ex.stream(), ex.describe()
    rows = table_rows(kernel.ok("%glue job run odd", timeout=60).result["text/plain"])
    assert [r[0] for r in rows] == ["CatalogSource node events (node-1)", "ApplyMapping node types (node-2)", "Filter node odd (node-3)", "S3Target node out (node-4)"], rows
    assert rows[0][2] == "6" and rows[3][4] == "3", rows
    ids = table_rows(kernel.ok("%sql SELECT id FROM curated.odd ORDER BY id").result["text/plain"])
    assert [r[0] for r in ids] == ["1", "3", "5"], ids
    # The same graph from a file in the lake, a column misspelt: the error names the node.
    put_object(kernel.home, "scripts/odd.json", GRAPH.replace('["v"]', '["w"]'))
    kernel.ok("%glue job create odd2 --script-location s3://scripts/odd.json")
    ex = kernel.failing("%glue job run odd2", "JobRunFailed", timeout=60)
    assert "ApplyMapping node types (node-2)" in ex.content["evalue"] and "did you mean v?" not in ex.content["evalue"], ex.describe()
    kernel.failing('%%glue job create bad --type visual\n{"n": {"KafkaSource": {}}}', "InvalidInputException")


def test_a_run_killed_at_any_point_leaves_the_target_and_the_bookmark_consistent(start_kernel, lake_home) -> None:
    """kill -9 while a visual job reads, writes or commits: after a restart the target holds
    exactly the rows of the files the bookmark says were processed (nothing half written,
    nothing twice), no staged file is left, and the next run completes the work."""
    per_file = 50000  # rows; half of them odd
    first = start_kernel(name="setup")
    setup(first)
    first.ok(f"%%glue job create odd --type visual --job-bookmark-option job-bookmark-enable\n{GRAPH}")
    first.stop()

    def processed_and_count(kernel: Kernel) -> tuple[int, int]:
        described = kernel.ok("%glue job describe odd").stream()
        match = re.search(r"bookmark: version \d+, (\d+) file\(s\) processed", described)
        done = int(match.group(1)) if match else 0
        exists = "odd" in kernel.ok("%sql SHOW TABLES IN curated").result["text/plain"]
        rows = int(table_rows(kernel.ok("%sql SELECT count(*) FROM curated.odd").result["text/plain"])[0][0]) if exists else 0
        return done, rows

    def expected(done: int) -> int:
        return 0 if done == 0 else 1 + (done - 1) * per_file // 2  # a.json's id 1, then half of each big file

    outcomes = []
    files = 0
    for trial, delay in enumerate([0.05, 0.4, 0.8, 1.2, 6.0]):
        # New files every trial, so every run has work to be killed in the middle of.
        for _ in range(4):
            start = 1000 + files * per_file
            put_object(lake_home, f"raw/events/big{files:02}.json", lines(start, start + per_file))
            files += 1
        kernel = start_kernel(name=f"trial{trial}")
        before = processed_and_count(kernel)
        kernel.execute_async("%glue job run odd")
        time.sleep(delay)
        os.kill(kernel.pid, signal.SIGKILL)
        kernel.proc.wait(timeout=10)
        after = start_kernel(name=f"after{trial}")
        done, rows = processed_and_count(after)
        assert rows == expected(done), f"trial {trial} (kill after {delay} s): {done} file(s) processed but {rows} row(s)"
        assert done in (before[0], 1 + files), f"trial {trial}: the bookmark moved part way ({before[0]} → {done} of {1 + files})"
        staged = [p for p in lake_home.rglob("*") if "_lakebook_staging" in p.parts]
        assert staged == [], staged
        outcomes.append(done == before[0])
        after.stop()
    assert True in outcomes and False in outcomes, f"every kill landed on the same side of the commit: {outcomes}"
    last = start_kernel(name="last")
    last.ok("%glue job run odd", timeout=120)
    assert processed_and_count(last) == (1 + files, expected(1 + files))
    rows = table_rows(last.ok("%glue job run odd", timeout=120).result["text/plain"])
    assert rows[3][4] == "0", rows


def test_triggers_start_jobs_on_a_schedule_and_chain_them(kernel: Kernel) -> None:
    setup(kernel)
    kernel.ok("%clock manual --at 2026-12-04T01:00:00Z")
    kernel.ok("%%glue job create report\nSELECT count(*) FROM curated.events")
    kernel.ok('%glue trigger create nightly --type scheduled --schedule "cron(0 2 * * ? *)" --action job:clean --start')
    kernel.ok("%glue trigger create then-report --type conditional --when job:clean=SUCCEEDED --action job:report --start")
    kernel.failing('%glue trigger create bad --type scheduled --schedule "cron(0 2 * * *)" --action job:clean', "InvalidInputException")
    kernel.failing("%glue trigger create odd --type conditional --when job:clean=DONE --action job:report", "InvalidInputException")
    assert "trigger" not in kernel.ok("%clock advance 59m").stream()
    shown = kernel.ok("%clock advance 1m").stream()
    assert re.search(r"trigger nightly started job clean: run jr_[0-9a-f]{64} SUCCEEDED", shown), shown
    assert re.search(r"trigger then-report started job report: run jr_[0-9a-f]{64} SUCCEEDED", shown), shown
    assert count(kernel) == 2
    listed = table_rows(kernel.ok("%glue trigger list").result["text/plain"])
    assert [(r[0], r[1], r[2], r[5]) for r in listed] == [("nightly", "SCHEDULED", "ACTIVATED", "1"), ("then-report", "CONDITIONAL", "ACTIVATED", "1")], listed
    kernel.ok("%glue trigger stop nightly")
    assert "trigger" not in kernel.ok("%clock advance 1d").stream()
    kernel.ok("%glue trigger create now --type on-demand --action job:report")
    assert "started job report" in kernel.ok("%glue trigger start now").stream()


def test_a_workflow_chains_a_crawler_and_jobs_and_shows_each_runs_graph(kernel: Kernel) -> None:
    setup(kernel)
    kernel.ok("%crawl create landing s3://raw/events/ --database landing")
    kernel.ok("%%glue job create broken\nSELECT nope FROM curated.events")
    create = "%glue workflow create daily --description 'landing to curated' --property min=1 --max-concurrent-runs 1 --if-not-exists"
    kernel.ok(create)
    kernel.failing("%glue workflow run daily", "InvalidInputException")
    kernel.ok("%glue trigger create kickoff --type on-demand --workflow daily --action crawler:landing --if-not-exists")
    kernel.failing("%glue trigger create again --type on-demand --workflow daily --action job:clean", "InvalidInputException")
    kernel.ok("%glue trigger create then-clean --type conditional --workflow daily --when crawler:landing=SUCCEEDED --action job:clean --action job:broken")
    # Rerunning the setup cells keeps what is there.
    assert "kept" in kernel.ok(create).stream() and "kept" in kernel.ok("%glue trigger create kickoff --type on-demand --workflow daily --action crawler:landing --if-not-exists").stream()

    ex = kernel.ok("%glue workflow run daily", timeout=90)
    text = ex.result["text/plain"]
    assert re.search(r"workflow daily · run wr_[0-9a-f]{64} COMPLETED · 3 actions, 2 succeeded, 1 failed", text), text
    assert "trigger:kickoff [FIRED] ─▶ crawler:landing [SUCCEEDED]" in text, text
    assert "crawler:landing [SUCCEEDED] ─▶ trigger:then-clean [FIRED]" in text, text
    assert "trigger:then-clean [FIRED] ─▶ job:clean [SUCCEEDED]" in text and "job:broken [FAILED]" in text, text
    assert "job:broken: " in text and "nope" in text, "the failure's cause is shown"
    html = ex.result["text/html"]
    assert html.count("<rect") == 5 and html.count("<line") == 4 and "#f8d7da" in html, html
    # The run property min=1 reached the job's ${min}: only id 1 of 0 and 1.
    assert count(kernel) == 1
    runs = table_rows(kernel.ok("%glue workflow runs daily").result["text/plain"])
    assert [(r[1], r[2], r[5], r[6], r[7]) for r in runs] == [("COMPLETED", "kickoff", "3", "2", "1")], runs
    described = kernel.ok("%glue workflow describe daily")
    assert "landing to curated" in described.stream() and "job:clean [SUCCEEDED]" in described.result["text/plain"]
    listed = table_rows(kernel.ok("%glue trigger list").result["text/plain"])
    assert {(r[0], r[-1]) for r in listed} == {("kickoff", "daily"), ("then-clean", "daily")}, listed

    # An interrupt while a cell follows a workflow run stops the run and its job.
    kernel.ok(SLOW)
    kernel.ok("%glue workflow create slowflow")
    kernel.ok("%glue trigger create go --type on-demand --workflow slowflow --action job:slow")
    msg_id = kernel.execute_async("%glue workflow run slowflow")
    time.sleep(1.5)
    assert not kernel.has_reply(msg_id)
    kernel.send("control", "interrupt_request", {})
    assert kernel.reply(msg_id, timeout=10)["content"]["ename"] == "KeyboardInterrupt"
    deadline = time.time() + 10
    while time.time() < deadline:
        runs = table_rows(kernel.ok("%glue workflow runs slowflow").result["text/plain"])
        if runs[0][1] == "STOPPED":
            break
        time.sleep(0.2)
    assert runs[0][1] == "STOPPED", runs
    assert runs_of(kernel, "slow")[0][2] == "STOPPED"
    kernel.ok("%glue workflow delete slowflow")
    assert "go" not in {r[0] for r in table_rows(kernel.ok("%glue trigger list").result["text/plain"])}
    kernel.failing("%glue workflow describe slowflow", "EntityNotFoundException")
