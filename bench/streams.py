#!/usr/bin/env python3
"""Stream throughput benchmark: durable ingest and reads of 100-byte records (not a test).

    .venv/bin/python bench/streams.py [--records 1000000]

1. In-process (`cargo run --bin bench_streams`): PutRecords calls of
   500, bulk loads in groups of 50,000 (what `%stream put --from FILE` does) and GetRecords,
   into a 4-shard stream with limits off, fsync before every acknowledgement. The peer, in
   the same run on the same disk: the same bytes appended with write + fdatasync per batch to
   four plain files — the floor of any durable log.
2. Through the kernel (the installed `lakebook` kernelspec, driven by jupyter_client): the
   same number of records written to a file, then `%stream put bench -k … --from FILE`, then
   `%sql SELECT count(*) … FROM streams.bench` (reads every record through SQL), timed from
   execute_request to the reply. The peer is the in-process figure from step 1.

Target: ≥ 1,000,000 records/s durable ingest in-process. Run ./install/setup.sh --no-tour
first (builds the binary and installs the kernelspec).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("LAKEBOOK_CACHE", Path.home() / ".cache" / "lakebook"))
TARGET_INGEST = 1_000_000


def in_process(records: int) -> dict:
    env = dict(os.environ, CARGO_TARGET_DIR=str(CACHE / "target"))
    work = CACHE / "bench-streams"
    out = subprocess.run(
        ["cargo", "run", "-q", "--bin", "bench_streams", "--", str(records), str(work)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cell(client, code: str, timeout: float = 600) -> tuple[float, dict]:
    started = time.perf_counter()
    msg_id = client.execute(code)
    reply = client.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=timeout)
    elapsed = time.perf_counter() - started
    if reply["content"]["status"] != "ok":
        raise SystemExit(f"{code!r} failed: {reply['content']}")
    return elapsed, reply


def through_kernel(records: int) -> dict:
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        tmp = Path(tmp)
        data = tmp / "records.jsonl"
        with data.open("w") as f:
            for i in range(records):
                head = f'{{"i":{i},"pad":"'
                f.write(head + "x" * (100 - len(head) - 2) + '"}\n')
        km, client = start_new_kernel(kernel_name="lakebook", cwd=str(tmp), env=dict(os.environ, LAKEBOOK_HOME=str(tmp / "ws")))
        try:
            run_cell(client, "%stream create bench --shards 4")
            run_cell(client, "%stream limits bench off")
            put_s, _ = run_cell(client, f"%stream put bench --partition-key-field i --from {data}")
            sql_s, _ = run_cell(client, "%sql SELECT count(*) AS n, sum(length(data)) AS bytes FROM streams.bench")
        finally:
            client.stop_channels()
            km.shutdown_kernel(now=True)
    return {"put_from_file_per_s": round(records / put_s), "sql_read_per_s": round(records / sql_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    engine = in_process(args.records)
    kernel = through_kernel(args.records)
    rows = [
        ("PutRecords (500/call)", engine["put_records_per_s"], engine["raw_fsync_500_per_s"], "raw write+fdatasync per 500"),
        ("bulk load (50k/group)", engine["load_per_s"], engine["raw_fsync_group_per_s"], "raw write+fdatasync per 50k"),
        ("GetRecords (10k/call)", engine["get_records_per_s"], None, ""),
        ("kernel %stream put --from", kernel["put_from_file_per_s"], engine["load_per_s"], "in-process bulk load"),
        ("kernel %sql over stream", kernel["sql_read_per_s"], engine["get_records_per_s"], "in-process GetRecords"),
    ]
    print(f"{args.records:,} records of 100 bytes, 4 shards, limits off, durable (fsync before ack)")
    print(f"{'path':28} {'records/s':>12} {'peer/s':>12} {'ratio':>7}  peer")
    for label, rate, peer, peer_label in rows:
        if peer:
            print(f"{label:28} {int(rate):>12,} {int(peer):>12,} {rate / peer:>7.2f}  {peer_label}")
        else:
            print(f"{label:28} {int(rate):>12,}")
    verdict = "met" if engine["load_per_s"] >= TARGET_INGEST else "MISSED"
    print(f"target ≥ {TARGET_INGEST:,} records/s durable ingest in-process: {verdict} ({engine['load_per_s']:,.0f}/s bulk)")


if __name__ == "__main__":
    main()
