#!/usr/bin/env python3
"""Warehouse benchmark (not a test): TPC-H SF1 loaded with COPY into a 2-node Redshift-style
cluster, queried next to the same files queried in place through the catalog (Athena-style)
and next to DuckDB, in one run.

    .venv/bin/python bench/redshift.py [--reps 5] [--only q1,q6] [--data DIR] [--builds dev|release]

Data and queries as bench/tpch.py (tpchgen-cli SF1 Parquet, shared/bench/tpch/q*.sql).
`bench_tpch --redshift` places the files in a lake, catalogues them, creates the cluster
(tables distributed on their join keys, lineitem and orders sorted on their dates, the small
tables DISTSTYLE ALL), COPYs every table from the lake, then runs each query once to warm up
and --reps times in place and on the cluster, taking turns. DuckDB runs first, query by query.
The claim to check: the loaded warehouse is faster than querying in place. Both answers must
equal DuckDB's on every query (compared as bench/tpch.py compares them); else it exits 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tpch  # noqa: E402  (the same data, queries, DuckDB setup and build)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", help="comma-separated query names, e.g. q1,q6")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--builds", default="dev", choices=["dev", "release"], help="the cargo profile to measure")
    args = parser.parse_args()

    data = args.data or tpch.cache_dir() / "tpch-sf1"
    if args.data is None:
        tpch.generate(data)
    queries = tpch.read_queries(set(args.only.split(",")) if args.only else None)
    binary = tpch.build_example(args.builds)
    meter = tpch.LoadMeter()
    con = tpch.duckdb_connection(data)
    duck = {name: tpch.run_duckdb(con, sql, args.reps) for name, sql in queries.items()}
    argv = [str(binary), str(data), "--reps", str(args.reps), "--only", ",".join(queries), "--redshift"]
    out = subprocess.run(argv, capture_output=False, stdout=subprocess.PIPE, text=True, check=True)
    run = tpch.json.loads(out.stdout.strip().splitlines()[-1])
    others = meter.others_share()

    print(f"TPC-H SF1 Parquet from tpchgen-cli {metadata.version('tpchgen-cli')}; DuckDB {duckdb.__version__}, "
          f"{tpch.THREADS} threads; Lakebook {run['profile']}, Tokio workers={run['tokio_workers']}")
    loads = run["copy_seconds"]
    print(f"COPY into the 2-node cluster: {sum(loads.values()):.0f} s in all ("
          + ", ".join(f"{t} {s:.1f} s" for t, s in loads.items()) + ")")
    print(f"median of {args.reps} runs after 1 warm-up, in ms")
    header = f"{'query':<6}{'duckdb':>9}{'in place':>10}{'loaded':>9}{'loaded/in place':>17}{'loaded/duckdb':>15}{'in place/duckdb':>17}  check"
    print(header)
    print("-" * len(header))
    vs_place, vs_duck, place_duck, mismatches = [], [], [], []
    for name in queries:
        d, q = duck[name], run["queries"][name]
        place, loaded = q.get("engine", {}), q.get("redshift", {})
        notes = [f"{label}: {r['error']}" for label, r in (("in place", place), ("loaded", loaded)) if "error" in r]
        if not q.get("results_agree", False):
            notes.append("results differ")
        for label, r in (("in place", place), ("loaded", loaded)):
            why = tpch.result_mismatch(d["result"], r.get("result"))
            if why:
                notes.append(f"{label} result differs from DuckDB's: {why}")
                mismatches.append(name)
        if "median_ms" in place and "median_ms" in loaded:
            vs_place.append(loaded["median_ms"] / place["median_ms"])
            vs_duck.append(loaded["median_ms"] / d["median_ms"])
            place_duck.append(place["median_ms"] / d["median_ms"])
            ratios = f"{vs_place[-1]:>16.2f}x{vs_duck[-1]:>14.2f}x{place_duck[-1]:>16.2f}x"
        else:
            ratios = f"{'-':>17}{'-':>15}{'-':>17}"
        ms = lambda r: f"{r['median_ms']:.0f}" if "median_ms" in r else "FAILED"  # noqa: E731
        print(f"{name:<6}{d['median_ms']:>9.0f}{ms(place):>10}{ms(loaded):>9}{ratios}  {'; '.join(notes) or 'same rows as DuckDB'}")
    print("-" * len(header))
    if vs_place:
        g = tpch.geomean(vs_place)
        print(f"geometric mean  loaded/in place {g:.2f}x ({'the loaded warehouse is faster' if g < 1 else 'the loaded warehouse is NOT faster'}), "
              f"loaded/duckdb {tpch.geomean(vs_duck):.2f}x, in place/duckdb {tpch.geomean(place_duck):.2f}x")
    print(f"other processes used {others:.0%} of the machine's CPU during the run")
    if mismatches:
        sys.exit(f"results differ from DuckDB's on {', '.join(sorted(set(mismatches)))}")


if __name__ == "__main__":
    main()
