#!/usr/bin/env python3
"""Firehose JSON → Parquet delivery against DuckDB converting the same JSON lines (not a test).

    .venv/bin/python bench/firehose.py [--records 400000] [--reps 3] [--builds dev,release]

- Lakebook: `bench_firehose N --json FILE` (built as the kernel is; `--builds dev,release`
  measures the dev and the release profile in the same run, taking turns): clickstream
  records put into a delivery stream that converts to Parquet with a catalog table's schema, then
  a forced delivery, twice; timed is the second delivery (buffer → Parquet object in the lake),
  the steady state of a stream that delivers buffer after buffer (the first buffer warms up the
  process, its allocator's pages above all; its delivery is printed too). It also prints
  Firehose's conversion alone and the bare conversion on one thread (arrow-json + one Parquet
  writer, no buffer, no lake) of the same records.
- DuckDB (2 threads): `COPY (SELECT * FROM read_json(FILE, columns = …)) TO … (FORMAT parquet)`
  on the same lines, which bench_firehose wrote to FILE; both sides' Parquet must hold every record.
- Medians of --reps runs each, in one run; the ratio is Lakebook's MB/s over DuckDB's.
  Targets (issue #31): ≥ 0.8× now, 1.0× the goal.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LAKEBOOK_CACHE", Path.home() / ".cache" / "lakebook"))

# the catalog table bench_firehose converts with, in DuckDB's words
COLUMNS = {
    "event_id": "VARCHAR", "event_time": "TIMESTAMP", "user_id": "VARCHAR", "session_id": "VARCHAR",
    "event_type": "VARCHAR", "page": "VARCHAR", "product_id": "VARCHAR", "price": "DOUBLE",
    "device": "VARCHAR", "country": "VARCHAR", "referrer": "VARCHAR", "ip": "VARCHAR",
}


def build(profile: str) -> Path:
    """Builds bench_firehose first, so compiling is never timed."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or CACHE / "target")
    flags = ["--release"] if profile == "release" else []
    subprocess.run(["cargo", "build", "-q", *flags, "--bin", "bench_firehose"], cwd=ROOT, env=dict(os.environ, CARGO_TARGET_DIR=str(target)), check=True)
    return target / ("release" if profile == "release" else "debug") / "bench_firehose"


def lakebook(binary: Path, records: int, json_file: Path) -> dict:
    out = subprocess.run([str(binary), str(records), "--json", str(json_file)], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def duckdb_copy(json_file: Path, out: Path) -> tuple[float, int]:
    import duckdb

    out.unlink(missing_ok=True)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items()) + "}"
    started = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_json('{json_file}', format = 'newline_delimited', columns = {columns})) "
                f"TO '{out}' (FORMAT parquet, COMPRESSION snappy)")
    seconds = time.perf_counter() - started
    return seconds, con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=400_000)  # ~116 MB: one 128 MB buffer
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--builds", default="dev", help="cargo profiles to measure in one run: dev, release or dev,release")
    args = parser.parse_args()
    builds = args.builds.split(",")
    if not builds or any(b not in ("dev", "release") for b in builds) or len(set(builds)) != len(builds):
        sys.exit(f"--builds takes dev, release or dev,release, not {args.builds!r}")
    try:
        import duckdb  # noqa: F401
    except ImportError:
        sys.exit("DuckDB is the peer: .venv/bin/pip install duckdb")
    with tempfile.TemporaryDirectory() as tmp:
        json_file = Path(tmp) / "records.json"
        binaries = {b: build(b) for b in builds}
        ours: dict[str, list[dict]] = {b: [] for b in builds}
        theirs = []
        for _ in range(args.reps):  # all take turns
            for profile, binary in binaries.items():
                ours[profile].append(lakebook(binary, args.records, json_file))
            theirs.append(duckdb_copy(json_file, Path(tmp) / "duckdb.parquet"))
        size = json_file.stat().st_size
    mb = size / 1e6
    their_s = statistics.median(s for s, _ in theirs)
    their_mb_s = mb / their_s
    print(f"input: {mb:,.0f} MB of JSON lines, {args.records:,} records; medians of {args.reps}")
    print(f"DuckDB read_json → COPY (2 threads): {their_s:.2f} s, {their_mb_s:.1f} MB/s")
    delivery = {}
    for profile, runs in ours.items():
        delivery[profile] = statistics.median(r["delivery_mb_per_s"] for r in runs)
        first = statistics.median(r["first_delivery_mb_per_s"] for r in runs)
        bare_mb_s = statistics.median(r["bare_conversion_one_thread_mb_per_s"] for r in runs)
        conv_mb_s = statistics.median(r["conversion_mb_per_s"] for r in runs)
        print(f"Lakebook ({profile} build) Firehose delivery: {delivery[profile]:.1f} MB/s, the first in a fresh process {first:.1f} MB/s "
              f"({first / their_mb_s:.2f}x DuckDB; its conversion alone: {conv_mb_s:.1f} MB/s; "
              f"bare arrow-json + Parquet on one thread: {bare_mb_s:.1f} MB/s)")
        ratio = delivery[profile] / their_mb_s
        print(f"  ratio: Lakebook ({profile}) {ratio:.2f}x DuckDB's MB/s; ≥ 0.8x: {'met' if ratio >= 0.8 else 'NOT met'}; "
              f"1.0x: {'met' if ratio >= 1.0 else 'NOT met'}")
        assert all(r["records"] == args.records for r in runs), runs
    if len(builds) == 2:
        print(f"release / dev delivery MB/s: {delivery['release'] / delivery['dev']:.2f}x")
    assert all(rows == args.records for _, rows in theirs), theirs


if __name__ == "__main__":
    main()
