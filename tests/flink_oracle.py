"""Apache Flink as an oracle for `%analytics` (#25): the PyPI `apache-flink` package in an
auxiliary venv under $LAKEBOOK_CACHE (made on first use, kept), run on the machine's Java.

`run_queries(records_file, create_table, queries)` runs each SELECT over a filesystem JSON
source in streaming mode with parallelism 1 and a zero watermark interval, so the watermark
advances record by record (deterministic lateness), and returns each query's rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLINK_VERSION = "2.3.0"

RUNNER = r"""
import json, sys
from pyflink.table import EnvironmentSettings, TableEnvironment
job = json.load(open(sys.argv[1]))
env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.get_config().set("parallelism.default", "1")
env.get_config().set("pipeline.auto-watermark-interval", "0 ms")
env.execute_sql(job["create_table"])
out = {}
for name, query in job["queries"].items():
    rows = []
    with env.execute_sql(query).collect() as results:
        for row in results:
            rows.append([str(v) if not isinstance(v, (int, float)) or isinstance(v, bool) else v for v in row])
    out[name] = rows
json.dump(out, open(sys.argv[2], "w"))
"""


def flink_python() -> Path:
    """The oracle venv's python, installing apache-flink there on first use."""
    cache = Path(os.environ.get("LAKEBOOK_CACHE", Path.home() / ".cache" / "lakebook"))
    venv = cache / "flink-venv"
    python = venv / "bin" / "python"
    marker = venv / f".apache-flink-{FLINK_VERSION}"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"apache-flink=={FLINK_VERSION}"], check=True, timeout=900)
        marker.touch()
    return python


def run_queries(work: Path, create_table: str, queries: dict[str, str]) -> dict[str, list[list]]:
    """Runs `queries` (name -> SELECT) in Flink after `create_table`; rows as lists of text
    and numbers."""
    job = work / "flink-job.json"
    job.write_text(json.dumps({"create_table": create_table, "queries": queries}))
    runner = work / "flink_runner.py"
    runner.write_text(RUNNER)
    result = work / "flink-result.json"
    done = subprocess.run([str(flink_python()), str(runner), str(job), str(result)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"Flink failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return json.loads(result.read_text())
