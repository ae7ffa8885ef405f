#!/usr/bin/env python3
"""Continuous SQL throughput against Apache Flink (not a test).

    .venv/bin/python bench/analytics.py [--records 1000000]

The same JSON records (`user_id` of 1,000 users, `ts` advancing 1,000 events a second with
jitter under the watermark delay, so none is late) and the same SQL — a keyed tumbling-window
count, `GROUP BY user_id, window_start, window_end` over `TUMBLE(… INTERVAL '1' MINUTE)` —
run in the same run:

1. Lakebook (`cargo run --bin bench_analytics`): records loaded into a 2-shard stream,
   then the application started and drained into a JSON filesystem sink; timed from start
   to the drained stop.
2. Apache Flink 2.3 (PyFlink, the cached venv of tests/flink_oracle.py, Java 17): the same
   table over the records file (filesystem connector, JSON), parallelism 2, into a JSON
   filesystem sink; timed from submitting the INSERT to its end (JVM start and planning
   reported apart).

Both outputs are checked to count every record once. Target (issue #25): ≥ 1,000,000
events/s on 2 cores and faster than Flink.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LAKEBOOK_CACHE", Path.home() / ".cache" / "lakebook"))
sys.path.insert(0, str(ROOT / "tests"))
from flink_oracle import flink_python  # noqa: E402

TARGET = 1_000_000
QUERY = (
    "SELECT user_id, window_start, window_end, COUNT(*) AS n "
    "FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) "
    "GROUP BY user_id, window_start, window_end"
)

FLINK_JOB = r"""
import json, sys, time
started = time.perf_counter()
from pyflink.table import EnvironmentSettings, TableEnvironment
records, out = sys.argv[1], sys.argv[2]
env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.get_config().set("parallelism.default", "2")
env.execute_sql(f"CREATE TABLE clicks (user_id STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'filesystem', 'path' = 'file://{records}', 'format' = 'json')")
env.execute_sql(f"CREATE TABLE counts (user_id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), n BIGINT) WITH ('connector' = 'filesystem', 'path' = 'file://{out}', 'format' = 'json')")
ready = time.perf_counter()
env.execute_sql("INSERT INTO counts " + sys.argv[3]).wait()
done = time.perf_counter()
print(json.dumps({"startup_s": ready - started, "seconds": done - ready}))
"""


def records_file(count: int) -> Path:
    path = CACHE / "bench-analytics" / f"records-{count}.jsonl"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(31)
    base = datetime(2026, 1, 1, 0, 0, 0)
    with open(path.with_suffix(".tmp"), "w") as f:
        for i in range(count):
            ts = base + timedelta(milliseconds=i + rng.randint(-4000, 0))
            f.write(json.dumps({"user_id": f"u{rng.randint(1, 1000)}", "ts": ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]}) + "\n")
    path.with_suffix(".tmp").rename(path)
    return path


def lakebook(path: Path) -> dict:
    env = dict(os.environ, CARGO_TARGET_DIR=str(CACHE / "target"))
    out = subprocess.run(["cargo", "run", "-q", "--bin", "bench_analytics", "--", str(path)], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def flink(path: Path) -> dict:
    work = CACHE / "bench-analytics" / "flink"
    out_dir = work / f"out-{time.time_ns()}"
    out_dir.mkdir(parents=True)
    job = work / "job.py"
    job.write_text(FLINK_JOB)
    started = time.perf_counter()
    done = subprocess.run([str(flink_python()), str(job), str(path), str(out_dir), QUERY], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    result["records_counted"] = sum(json.loads(line)["n"] for f in out_dir.rglob("*") if f.is_file() and not f.name.startswith(".") for line in f.read_text().splitlines())
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    path = records_file(args.records)
    ours = lakebook(path)
    theirs = flink(path)
    theirs["events_per_s"] = args.records / theirs["seconds"]
    print(f"records: {args.records:,} ({path.stat().st_size / 1e6:.0f} MB of JSON)")
    print(f"Lakebook: {ours['seconds']:.2f} s, {ours['events_per_s']:,.0f} events/s, {ours['rows_out']:,} window rows, {ours['records_counted']:,} records counted")
    print(f"Flink:    {theirs['seconds']:.2f} s running the job ({theirs['startup_s']:.1f} s JVM and planning before it, {theirs['wall_s']:.1f} s in all), "
          f"{theirs['events_per_s']:,.0f} events/s, {theirs['records_counted']:,} records counted")
    print(f"ratio: Lakebook {theirs['seconds'] / ours['seconds']:.2f}x Flink's job speed ({theirs['wall_s'] / ours['seconds']:.2f}x its wall time); "
          f"target {TARGET:,} events/s: {'met' if ours['events_per_s'] >= TARGET else 'not met'}")
    assert ours["records_counted"] == args.records == theirs["records_counted"], (ours, theirs)


if __name__ == "__main__":
    main()
