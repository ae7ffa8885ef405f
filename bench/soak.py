#!/usr/bin/env python3
"""A soak (not a test): the kernel on the system clock for 30 minutes with the stream
generator, a Firehose delivering to the lake, a crawler on a schedule and queries in a loop,
its resident memory and open files sampled every 10 s.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 200]

Targets (issue #29): after the first 5 minutes resident memory grows less than 10% and open
files do not grow; no cell fails. Each loop: 10 s of clickstream records into a 2-shard stream
(`%stream generate`), a count of the lake table the crawler keeps (`%%sql`), a GROUP BY over
the stream itself, and the Firehose's described fill. The Firehose (60 s buffers) and the
crawler (every 2 minutes) run as due work between cells. Printed: every sample, then the
verdict. Run ./install/setup.sh --no-tour first (the binary and the kernelspec).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from jupyter_client.manager import KernelManager

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard import run_cell  # noqa: E402


def sample(pid: int) -> tuple[int, int]:
    """(resident kB, open files) of the process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=int, default=200, help="records per second")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="soak-"))
    km = KernelManager(kernel_name="lakebook")
    km.start_kernel(env=dict(os.environ, LAKEBOOK_HOME=str(home)))
    pid = km.provisioner.process.pid
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    samples: list[tuple[float, int, int]] = []
    errors: list[str] = []
    stop = threading.Event()
    start = time.monotonic()

    def sampler() -> None:
        while not stop.is_set():
            rss, files = sample(pid)
            samples.append((time.monotonic() - start, rss, files))
            print(f"  {samples[-1][0]:7.0f} s  rss {rss / 1024:8.1f} MB  open files {files}", flush=True)
            stop.wait(10)

    def cell(code: str) -> None:
        try:
            run_cell(client, code)
        except RuntimeError as e:
            errors.append(str(e))
            print(f"  error: {errors[-1]}", flush=True)

    try:
        for code in [
            "%lake mb s3://soak",
            "%stream create clicks --shards 2",
            "%firehose create clicks-to-lake --source stream:clicks --destination s3://soak/raw/ --buffer-interval 60s --newline",
            f"%stream generate clicks --template clickstream --rate {args.rate}/s --duration 10s",
            "%firehose flush clicks-to-lake",
            "%crawl create raw s3://soak/raw/ --database soak --schedule 'rate(2 minutes)'",
            "%crawl run raw",
        ]:
            cell(code)
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        loops = 0
        while time.monotonic() - start < args.minutes * 60:
            cell(f"%stream generate clicks --template clickstream --rate {args.rate}/s --duration 10s")
            cell("%%sql --database soak\nSELECT count(*) AS records FROM raw")
            cell("%%sql\nSELECT page, count(*) AS n FROM streams.clicks GROUP BY page ORDER BY n DESC")
            cell("%firehose describe clicks-to-lake")
            loops += 1
        stop.set()
        thread.join()
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)

    settled = [s for s in samples if s[0] >= 300] or samples
    base_rss = statistics.median(s[1] for s in settled[:6])
    last_rss = statistics.median(s[1] for s in settled[-6:])
    base_files, last_files = settled[0][2], max(s[2] for s in settled[-6:])
    growth = (last_rss - base_rss) / base_rss * 100 if base_rss else 0.0
    print(f"\n{args.minutes:g} min, {loops} loops, {len(samples)} samples, {len(errors)} error(s)")
    print(f"resident memory after 5 min: {base_rss / 1024:.1f} MB → {last_rss / 1024:.1f} MB at the end ({growth:+.1f}%, target < +10%)")
    print(f"open files after 5 min: {base_files} → {last_files} at the end (target: no growth)")
    met = growth < 10 and last_files <= base_files and not errors
    print("targets met" if met else "targets NOT met")
    for e in errors[:10]:
        print(f"  {e}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
