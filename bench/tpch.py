#!/usr/bin/env python3
"""TPC-H benchmark: Lakebook's engine next to DuckDB and bare DataFusion, in one run (not a test).

    .venv/bin/python bench/tpch.py [--reps 5] [--only q1,q6] [--data DIR] [--builds dev,release]

- Data: TPC-H scale factor 1 as Parquet from `tpchgen-cli` (PyPI), generated once into
  $LAKEBOOK_CACHE/tpch-sf1 (default ~/.cache/lakebook/tpch-sf1) and reused after that.
- Queries: shared/bench/tpch/q*.sql (1, 3, 5, 6, 9, 18), unchanged.
- DuckDB (PyPI `duckdb`): `SET threads=2`, one view per table over read_parquet of the files.
- Lakebook: `cargo run --bin bench_tpch`, which places the files in a
  temporary lake, catalogues them with the crawler and runs every query through the engine
  (`Lakebook::sql().run`) and through bare DataFusion on the same files, on 2 Tokio workers.
  `--builds` names the cargo profiles to measure in the same run: `dev` (dependencies and the
  engine at opt-level 2, what `install/setup.sh` builds) and/or `release` (opt-level 3, thin
  LTO); with both, the table adds the release build's times and release/dev.
- Results: the engine's rows must equal DuckDB's on every query (numbers to 1e-6, or 1e-12 of
  their size: DataFusion's avg of a decimal is a decimal of scale 6, DuckDB's a double); a
  mismatch is printed and the run exits with status 1.

Every query runs once to warm up, then --reps times (DuckDB, then the Rust side, query by
query); the table shows medians (--stat best: the fastest run) and warns when other processes
took CPU meanwhile. Targets:
engine/DuckDB geometric mean <= 1.5 (goal 1.0), engine/bare DataFusion <= 1.05.
"""

from __future__ import annotations

import argparse
import decimal
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT.parent / "shared" / "bench" / "tpch"
TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]
THREADS = 2
TARGET_DUCKDB = 1.5
TARGET_BARE = 1.05


def cache_dir() -> Path:
    return Path(os.environ.get("LAKEBOOK_CACHE") or Path.home() / ".cache" / "lakebook")


def tpchgen() -> str:
    beside = Path(sys.executable).parent / "tpchgen-cli"
    found = str(beside) if beside.exists() else shutil.which("tpchgen-cli")
    if not found:
        sys.exit("tpchgen-cli is missing: .venv/bin/pip install -r install/requirements.txt")
    return found


def generate(data: Path) -> None:
    """SF1 Parquet with tpchgen-cli's defaults, written aside and renamed into place whole."""
    if all((data / f"{t}.parquet").is_file() or (data / t).is_dir() for t in TABLES):
        return
    partial = data.with_name(data.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"generating TPC-H SF1 Parquet into {data} …", flush=True)
    start = time.perf_counter()
    subprocess.run([tpchgen(), "parquet", "-s", "1", "--output-dir", str(partial)], check=True)
    shutil.rmtree(data, ignore_errors=True)
    partial.rename(data)
    print(f"generated in {time.perf_counter() - start:.1f} s", flush=True)


def read_queries(only: set[str] | None) -> dict[str, str]:
    found = {p.stem: p.read_text().strip() for p in QUERIES.glob("q*.sql")}
    names = sorted(found, key=lambda n: int(n[1:]))
    return {n: found[n] for n in names if only is None or n in only}


def duckdb_connection(data: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET threads={THREADS}")
    for t in TABLES:
        pattern = data / f"{t}.parquet" if (data / f"{t}.parquet").is_file() else data / t / "*.parquet"
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{pattern}')")
    return con


def run_duckdb(con: duckdb.DuckDBPyConnection, sql: str, reps: int) -> dict:
    result = con.execute(sql).fetchall()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        con.execute(sql).fetchall()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "best_ms": min(times), "rows": len(result), "result": result}


def same_value(duck: object, text: str | None) -> bool:
    """DuckDB's value against the engine's text of it (see the docstring: numbers to 1e-6)."""
    if duck is None or text is None:
        return duck is None and text is None
    if isinstance(duck, (int, float, decimal.Decimal)) and not isinstance(duck, bool):
        try:
            ours = decimal.Decimal(text)
        except decimal.InvalidOperation:
            return False
        theirs = decimal.Decimal(str(duck))
        return abs(ours - theirs) <= decimal.Decimal("1e-6") + abs(theirs) * decimal.Decimal("1e-12")
    return str(duck) == text


def result_mismatch(duck: list[tuple], ours: list[list] | None) -> str | None:
    """Why the engine's rows differ from DuckDB's, or None when they are the same."""
    if ours is None:
        return "no result"
    if len(duck) != len(ours):
        return f"{len(ours)} rows vs DuckDB's {len(duck)}"
    for i, (theirs, mine) in enumerate(zip(duck, ours)):
        if len(theirs) != len(mine) or not all(same_value(a, b) for a, b in zip(theirs, mine)):
            return f"row {i + 1}: {mine} vs DuckDB's {list(theirs)}"
    return None


def build_example(build: str = "dev") -> Path:
    """Builds the Rust side first, so compiling is never timed (nor counted as load)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or cache_dir() / "target")
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    flags = ["--release"] if build == "release" else []
    subprocess.run(["cargo", "build", "-q", *flags, "--bin", "bench_tpch"], cwd=ROOT, env=env, check=True)
    return target / ("release" if build == "release" else "debug") / "bench_tpch"


def run_lakebook(binary: Path, data: Path, name: str, reps: int) -> dict:
    cmd = [str(binary), str(data), "--queries", str(QUERIES), "--reps", str(reps), "--only", name]
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class LoadMeter:
    """How much CPU other processes took while we measured: the machine has few cores, and a
    build running beside the benchmark skews every number."""

    def __init__(self) -> None:
        self.start = (self._machine(), self._ours())

    @staticmethod
    def _machine() -> tuple[float, float]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        return (sum(fields) - fields[3] - fields[4]) / tick, sum(fields) / tick

    @staticmethod
    def _ours() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def others_share(self) -> float:
        """CPU used by other processes, as a share of all the machine's CPU time."""
        (busy0, total0), ours0 = self.start
        (busy1, total1), ours1 = self._machine(), self._ours()
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / max(total1 - total0, 1e-9)


def ratios(key: str, run: dict, *against: tuple[dict, list[float]]) -> list[str]:
    """`run`'s time over each other run's, appended to that run's list of ratios and printed
    ("-" where a time is missing; none when `run` has none)."""
    shown = ["-"] * len(against)
    for i, (other, into) in enumerate(against):
        if key in run and key in other:
            into.append(run[key] / other[key])
            shown[i] = f"{into[-1]:.2f}x"
    return shown


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="measured runs per query after one warm-up")
    parser.add_argument("--stat", choices=["median", "best"], default="median", help="which run per query to compare")
    parser.add_argument("--only", help="comma-separated query names, e.g. q1,q6")
    parser.add_argument("--data", type=Path, help="TPC-H Parquet directory (default: generated in the cache)")
    parser.add_argument("--builds", default="dev", help="cargo profiles to measure in one run: dev, release or dev,release")
    args = parser.parse_args()
    builds = args.builds.split(",")
    if not builds or any(b not in ("dev", "release") for b in builds) or len(set(builds)) != len(builds):
        sys.exit(f"--builds takes dev, release or dev,release, not {args.builds!r}")

    data = args.data or cache_dir() / "tpch-sf1"
    if args.data is None:
        generate(data)
    queries = read_queries(set(args.only.split(",")) if args.only else None)
    if not queries:
        sys.exit(f"no queries in {QUERIES}")

    binaries = {b: build_example(b) for b in builds}
    con = duckdb_connection(data)
    meter = LoadMeter()
    # Query by query, DuckDB then Lakebook (each build), so all see the machine in the same state.
    duck: dict[str, dict] = {}
    runs: dict[str, dict[str, dict]] = {b: {} for b in builds}
    for name, sql in queries.items():
        duck[name] = run_duckdb(con, sql, args.reps)
        for build, binary in binaries.items():
            run = run_lakebook(binary, data, name, args.reps)
            runs[build][name] = run["queries"][name]
            print(f"{name}: duckdb {duck[name]['median_ms']:.0f} ms, engine ({build}) "
                  f"{runs[build][name].get('engine', {}).get('median_ms', float('nan')):.0f} ms", file=sys.stderr, flush=True)
    others = meter.others_share()
    lake = runs[builds[0]]

    size = sum(f.stat().st_size for f in data.rglob("*.parquet")) / 1e6
    print(f"TPC-H SF1 Parquet from tpchgen-cli {metadata.version('tpchgen-cli')} ({size:.0f} MB in {data})")
    print(f"DuckDB {duckdb.__version__} vs Lakebook's engine (DataFusion) vs bare DataFusion, "
          f"{THREADS} threads each (DuckDB threads={THREADS}; Tokio workers={run['tokio_workers']}, "
          f"target_partitions={run['target_partitions']})")
    print(f"Lakebook built with the {' and the '.join(builds)} profile(s); the first columns are {builds[0]}'s")
    print(f"{args.stat} of {args.reps} runs after 1 warm-up, in ms; 'bare DF' uses the engine's session config, "
          "'DF defaults' DataFusion's")
    print()
    extra = builds[1] if len(builds) > 1 else None
    header = (f"{'query':<6}{'duckdb':>9}{'engine':>9}{'bare DF':>9}{'DF defaults':>13}{'engine/duckdb':>15}{'engine/bare DF':>16}"
              + (f"{extra:>9}{extra + '/duckdb':>16}{extra + '/' + builds[0]:>14}" if extra else "") + "  check")
    print(header)
    print("-" * len(header))
    key = f"{args.stat}_ms"
    vs_duck, vs_bare, failures = [], [], []
    extra_duck, extra_first = [], []
    mismatches = []
    for name in queries:
        d = duck[name]
        q = lake[name]
        engine, bare, defaults = q.get("engine", {}), q.get("datafusion", {}), q.get("datafusion_defaults", {})
        for label, r in (("engine", engine), ("bare DataFusion", bare), ("DataFusion defaults", defaults)):
            if "error" in r:
                failures.append(f"{name} in {label}: {r['error']}")
        notes = []
        if not q.get("results_agree", False):
            notes.append("engine and DataFusion results differ")
        for build in builds:
            why = result_mismatch(d["result"], runs[build][name].get("engine", {}).get("result"))
            if why:
                notes.append(f"{build} result differs from DuckDB's: {why}")
                mismatches.append(name)

        def ms(r: dict) -> str:
            return f"{r[key]:.0f}" if key in r else "FAILED"

        r_duck, r_bare = ratios(key, engine, (d, vs_duck), (bare, vs_bare))
        cells = ""
        if extra:
            other = runs[extra][name].get("engine", {})
            r_extra_duck, r_extra_first = ratios(key, other, (d, extra_duck), (engine, extra_first))
            cells = f"{ms(other):>9}{r_extra_duck:>16}{r_extra_first:>14}"
        print(f"{name:<6}{d[key]:>9.0f}{ms(engine):>9}{ms(bare):>9}{ms(defaults):>13}{r_duck:>15}{r_bare:>16}{cells}"
              f"  {'; '.join(notes) or 'same rows as DuckDB'}")
    print("-" * len(header))
    g_duck, g_bare = geomean(vs_duck), geomean(vs_bare)
    print(f"geometric mean  engine/duckdb {g_duck:.2f}x (target <= {TARGET_DUCKDB}x, goal <= 1.0x)   "
          f"engine/bare DataFusion {g_bare:.2f}x (target <= {TARGET_BARE}x)")
    if extra:
        print(f"geometric mean  {extra}/duckdb {geomean(extra_duck):.2f}x   {extra}/{builds[0]} {geomean(extra_first):.2f}x")
    for failure in failures:
        print(f"FAILED {failure}")
    if others > 0.05:
        print(f"WARNING: other processes used {others:.0%} of the machine's CPU during the run; "
              "the times are unreliable (rerun on an idle machine)")
    else:
        print(f"other processes used {others:.0%} of the machine's CPU during the run")
    if mismatches or failures:
        sys.exit(f"results differ from DuckDB's on {', '.join(sorted(set(mismatches)))}" if mismatches else "some queries failed")


if __name__ == "__main__":
    main()
