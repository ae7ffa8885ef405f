#!/usr/bin/env python3
"""Glue ETL throughput against DuckDB (not a test).

    .venv/bin/python bench/glue.py [--mb 1000]

The same JSON lines files (events with `event_id`, `ts`, `user_id`, `event_type`, `amount`,
`country` and one of 7 `day`s; about `--mb` MB in 8 files, made once under
$LAKEBOOK_CACHE/bench-glue/) become Parquet partitioned by `day`, in the same run:

1. Lakebook (`cargo run --bin bench_glue`): the files in the lake as a JSON table, a
   Glue Studio visual job (catalog source → S3 target, Parquet, snappy, PartitionKeys day);
   timed from StartJobRun to SUCCEEDED (staging and commit included).
2. DuckDB (2 threads): `COPY (SELECT * FROM read_json(…, columns = …)) TO … (FORMAT parquet,
   PARTITION_BY (day))`; timed around the statement.

Both outputs are read back with DuckDB and must hold every record. Target (issue #27):
≥ 1.0× DuckDB's MB/s. With `--reps N` the two run alternately N times each and the medians are
compared (a run here varies by up to ±20% with the machine's load, for both).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LAKEBOOK_CACHE", Path.home() / ".cache" / "lakebook"))
FILES = 8
COLUMNS = {"event_id": "VARCHAR", "ts": "VARCHAR", "user_id": "VARCHAR", "event_type": "VARCHAR", "amount": "DOUBLE", "country": "VARCHAR", "day": "VARCHAR"}


def json_files(mb: int) -> tuple[Path, int]:
    folder = CACHE / "bench-glue" / f"json-{mb}mb"
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rng = random.Random(27)
        types = ["page_view", "add_to_cart", "purchase", "search", "login"]
        countries = ["US", "DE", "FR", "JP", "BR", "IN", "GB", "NO"]
        target = mb * 1_000_000 // FILES
        n = 0
        for i in range(FILES):
            size = 0
            with open(folder / f"part-{i:02d}.json", "w") as f:
                while size < target:
                    day = f"2026-12-{1 + n % 7:02d}"
                    line = json.dumps({
                        "event_id": f"e{n:012d}", "ts": f"{day} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
                        "user_id": f"u{rng.randint(1, 100_000)}", "event_type": rng.choice(types), "amount": round(rng.random() * 500, 2),
                        "country": rng.choice(countries), "day": day,
                    }) + "\n"  # fmt: skip
                    f.write(line)
                    size += len(line)
                    n += 1
        done.write_text(str(n))
    records = int(done.read_text())
    return folder, records


def lakebook(folder: Path) -> dict:
    env = dict(os.environ, CARGO_TARGET_DIR=str(CACHE / "target"))
    out = subprocess.run(["cargo", "run", "-q", "--bin", "bench_glue", "--", str(folder)], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def duckdb_copy(folder: Path, out: Path) -> tuple[float, float]:
    """Seconds and CPU seconds (user + system, DuckDB's threads run in this process)."""
    import duckdb

    shutil.rmtree(out, ignore_errors=True)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items()) + "}"
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    con.execute(f"COPY (SELECT * FROM read_json('{folder}/*.json', format = 'newline_delimited', columns = {columns})) TO '{out}' (FORMAT parquet, PARTITION_BY (day))")
    seconds, used = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    return seconds, used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=1, help="alternate runs of each; medians are compared")
    args = parser.parse_args()
    try:
        import duckdb
    except ImportError:
        sys.exit("DuckDB is the peer: .venv/bin/pip install duckdb")
    folder, records = json_files(args.mb)
    size = sum(f.stat().st_size for f in folder.glob("*.json"))
    out = CACHE / "bench-glue" / "duckdb-out"
    runs, peer = [], []
    for _ in range(max(1, args.reps)):
        runs.append(lakebook(folder))
        peer.append(duckdb_copy(folder, out))
    peer_cpu = statistics.median(c for _, c in peer)
    peer = [s for s, _ in peer]
    theirs_rows = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{out}/*/*.parquet')").fetchone()[0]
    ours = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    seconds = statistics.median(peer)
    theirs_mb_s = size / 1e6 / seconds
    ours_mb_s = size / 1e6 / statistics.median(r["seconds"] for r in runs)
    print(f"input: {size / 1e6:,.0f} MB of JSON lines, {records:,} records, {FILES} files")
    if len(runs) > 1:
        ours_each = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        peer_each = ", ".join(f"{s:.2f}" for s in peer)
        print(f"medians of {len(runs)} alternate runs each; Lakebook {ours_each} s; DuckDB {peer_each} s")
    print(f"Lakebook visual job: {statistics.median(r['seconds'] for r in runs):.2f} s, {ours_mb_s:.1f} MB/s, {ours['records_written']:,} records written "
          f"in {ours['files_out']} files, {ours['partitions']} partitions, {ours['bytes_out'] / 1e6:.0f} MB")
    print(f"DuckDB COPY:         {seconds:.2f} s, {theirs_mb_s:.1f} MB/s, {theirs_rows:,} records")
    ours_cpu = statistics.median(r["cpu_seconds"] for r in runs)
    print(f"CPU (user + system, median): Lakebook {ours_cpu:.2f} s, DuckDB {peer_cpu:.2f} s: {ours_cpu / peer_cpu:.2f}x")
    ratio = ours_mb_s / theirs_mb_s
    print(f"ratio: Lakebook {ratio:.2f}x DuckDB's MB/s; target 1.0x: {'met' if ratio >= 1.0 else 'NOT met'}")
    assert all(r["records_written"] == r["records_read"] == records for r in runs) and theirs_rows == records, (runs, records, theirs_rows)


if __name__ == "__main__":
    main()
