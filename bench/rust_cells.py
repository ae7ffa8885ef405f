#!/usr/bin/env python3
"""Rust cell round trip: Lakebook next to evcxr_jupyter, in one run (not a test).

    .venv/bin/python bench/rust_cells.py [--cells 30]

Both kernels run evcxr 0.22.0: Lakebook's `lakebook-rust` worker behind the kernel, and
`evcxr_jupyter` 0.22.0 (built once by this script with `cargo install --locked` into
$LAKEBOOK_CACHE/evcxr-jupyter). Each kernel gets its own fresh directory, is warmed up (its
first cells compile evcxr's first crates), then runs the same trivial cell (`1 + 1`) --cells
times, the two kernels taking turns so that machine noise hits both alike. Timed: the
execute_request until the execute_reply and the idle status, with jupyter_client. Target
(issue #26): Lakebook / evcxr_jupyter ≤ 1.0 on the median.

Run ./install/setup.sh --no-tour first (builds the kernel and the worker).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

CACHE = Path(os.environ.get("LAKEBOOK_CACHE", Path.home() / ".cache" / "lakebook"))
EVCXR_VERSION = "0.22.0"
CELL = "1 + 1"
WARM_UP = ["let warm: i32 = 1;", "warm + 1", CELL, CELL, CELL]


def evcxr_jupyter() -> Path:
    binary = CACHE / "evcxr-jupyter" / "bin" / "evcxr_jupyter"
    if not binary.exists():
        print(f"building evcxr_jupyter {EVCXR_VERSION} into {binary.parent.parent} (once) …", flush=True)
        env = {**os.environ, "CARGO_TARGET_DIR": str(CACHE / "evcxr-jupyter-target")}
        subprocess.run(["cargo", "install", "evcxr_jupyter", "--version", f"={EVCXR_VERSION}", "--locked", "--root", str(CACHE / "evcxr-jupyter")], env=env, check=True)
    return binary


def run(client, code: str, timeout: float = 300) -> float:
    """Seconds from the request to the reply and idle; the cell must succeed."""
    started = time.perf_counter()
    msg_id = client.execute(code)
    while True:
        reply = client.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "ok", (code, reply["content"])
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=30)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lakebook-bench-rust-"))
    spec_dir = tmp / "kernels" / "evcxr-bench"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": [str(evcxr_jupyter()), "--control_file", "{connection_file}"], "display_name": "evcxr", "language": "rust"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(tmp), str(Path(__file__).resolve().parent.parent / ".venv" / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")])

    peers = {}
    for label, name in (("lakebook", "lakebook"), ("evcxr_jupyter", "evcxr-bench")):
        home = tmp / label
        home.mkdir()
        manager = KernelManager(kernel_name=name, kernel_spec_manager=KernelSpecManager())
        env = {**os.environ, "LAKEBOOK_HOME": str(home / "workspace"), "EVCXR_TMPDIR": str(home / "evcxr")} if label == "evcxr_jupyter" else {**os.environ, "LAKEBOOK_HOME": str(home / "workspace")}
        manager.start_kernel(cwd=str(home), env=env)
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        first = sum(run(client, code) for code in WARM_UP)
        print(f"{label}: warm-up ({len(WARM_UP)} cells, the first starts evcxr) {first:.1f} s", flush=True)
        peers[label] = (manager, client, [])

    try:
        for i in range(args.cells):
            order = list(peers) if i % 2 == 0 else list(reversed(peers))
            for label in order:
                peers[label][2].append(run(peers[label][1], CELL))
    finally:
        for manager, client, _ in peers.values():
            client.stop_channels()
            manager.shutdown_kernel(now=True)

    medians = {label: statistics.median(times) * 1000 for label, (_, _, times) in peers.items()}
    for label, (_, _, times) in peers.items():
        ms = sorted(t * 1000 for t in times)
        print(f"{label:14} `{CELL}` round trip: median {medians[label]:.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms ({len(ms)} cells)")
    ratio = medians["lakebook"] / medians["evcxr_jupyter"]
    print(f"lakebook / evcxr_jupyter = {ratio:.2f}× (target ≤ 1.0×): {'met' if ratio <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
