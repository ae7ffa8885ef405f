#!/usr/bin/env python3
"""TPC-H SF1 on a Ballista cluster with 1 and 2 executors next to the embedded engine, in one
run, through the kernel (not a test).

    .venv/bin/python bench/ballista.py [--reps 3] [--only q1,q6]

- Data: TPC-H SF1 Parquet from tpchgen-cli, generated once into $LAKEBOOK_CACHE/tpch-sf1 (as
  bench/tpch.py does), copied into a temporary workspace's lake and crawled.
- Each query runs once to warm up, then --reps times, with `%%sql --engine local` and with
  `%%sql --engine ballista://…` on a cluster `lakebook cluster start --executors N` started
  for N = 1 and 2 (one task per executor at a time) and stopped after. Times are the kernel's
  wall time per cell, medians.
- What it shows on this 2-core machine is overhead (planning on the scheduler, shuffles
  written to disk and fetched over Arrow Flight, executors sharing the same two cores); the
  speedup a cluster brings comes from executors on more machines, each with its own cores,
  memory bandwidth and disk.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from kernel_harness import Kernel, binary_path, prefer_venv_kernelspecs, table_rows  # noqa: E402
from tpch import TABLES, cache_dir, generate, read_queries  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(kernel: Kernel, code: str, reps: int) -> tuple[float, list[list[str]]]:
    """The median wall time of `reps` runs after a warm-up, and the rows the last one showed."""
    kernel.ok(code, timeout=1800)  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        shown = kernel.ok(code, timeout=1800)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), table_rows(shown.result["text/plain"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", help="comma-separated query names, e.g. q1,q6")
    args = parser.parse_args()
    prefer_venv_kernelspecs()
    data = cache_dir() / "tpch-sf1"
    generate(data)
    queries = read_queries(set(args.only.split(",")) if args.only else None)
    work = Path(tempfile.mkdtemp(prefix="lakebook-ballista-bench-"))
    (work / "home").mkdir()
    (work / "cwd").mkdir()
    kernel = Kernel(home=work / "home", cwd=work / "cwd", rundir=work / "run", name="bench")
    results: dict[str, dict[str, float]] = {name: {} for name in queries}
    try:
        kernel.ok("%lake mb s3://tpch")
        for table in TABLES:
            source = data / f"{table}.parquet"
            kernel.ok(f"%lake cp {source} s3://tpch/{table}/{table}.parquet", timeout=600)
        kernel.ok("%crawl s3://tpch/ --database tpch", timeout=600)
        answers: dict[str, list[list[str]]] = {}
        for name, sql in queries.items():
            results[name]["embedded"], answers[name] = timed(kernel, f"%%sql -d tpch --engine local\n{sql.rstrip(';')}", args.reps)
        for executors in (1, 2):
            home, port = work / f"cluster-{executors}", free_port()
            start = [str(binary_path()), "cluster", "start", "--executors", str(executors), "--port", str(port), "--home", str(home)]
            subprocess.run(start, check=True, capture_output=True)
            try:
                for name, sql in queries.items():
                    code = f"%%sql -d tpch --engine ballista://127.0.0.1:{port}\n{sql.rstrip(';')}"
                    results[name][f"ballista-{executors}"], rows = timed(kernel, code, args.reps)
                    if rows != answers[name]:
                        sys.exit(f"{name} on {executors} executor(s) answered other rows than the embedded engine")
            finally:
                subprocess.run([str(binary_path()), "cluster", "stop", "--home", str(home)], check=True, capture_output=True)
    finally:
        kernel.stop()
    print(f"TPC-H SF1, {os.cpu_count()} cores, medians of {args.reps} (ms); ratios to the embedded engine; same rows on every engine")
    print(f"{'query':<6} {'embedded':>10} {'1 executor':>12} {'ratio':>6} {'2 executors':>12} {'ratio':>6}")
    ratios: dict[str, list[float]] = {"ballista-1": [], "ballista-2": []}
    for name, r in results.items():
        line = f"{name:<6} {r['embedded']:>10.0f}"
        for key in ("ballista-1", "ballista-2"):
            ratio = r[key] / r["embedded"]
            ratios[key].append(ratio)
            line += f" {r[key]:>12.0f} {ratio:>6.2f}"
        print(line)
    for key, values in ratios.items():
        print(f"geometric mean {key} / embedded: {math.exp(sum(map(math.log, values)) / len(values)):.2f}")


if __name__ == "__main__":
    main()
