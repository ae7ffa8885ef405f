#!/usr/bin/env python3
"""Kernel latency benchmark: Lakebook next to ipykernel, in one run (not a test).

    .venv/bin/python bench/kernel_latency.py [--starts 5] [--executes 200]

Both kernels are launched from their installed kernelspecs ('lakebook' and 'python3' in the
venv) on loopback connection files, and driven over raw ZeroMQ with jupyter_client's Session
so that client overhead is the same, and small, for both:

- ready: process launch → first kernel_info_reply (the client resends kernel_info every
  20 ms until answered, and reconnects every 1 ms, so it never waits on a retry timer);
- round trip: execute_request → execute_reply, and → status idle on iopub, median over
  --executes runs after a warm-up (`%clock` on lakebook, `1` on ipykernel).

Run ./install/setup.sh --no-tour first (builds the binary, installs both kernelspecs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.session import Session

TARGET_READY_MS = 100.0
TARGET_ROUND_TRIP_MS = 1.0


@dataclass
class Peer:
    label: str
    kernel_name: str
    code: str
    ready_ms: list[float] = field(default_factory=list)
    reply_ms: list[float] = field(default_factory=list)
    idle_ms: list[float] = field(default_factory=list)


class Running:
    """One kernel process plus raw shell/control/iopub sockets."""

    def __init__(self, kernel_name: str, workdir: Path) -> None:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        key = uuid.uuid4().hex.encode()
        cf, info = write_connection_file(
            str(workdir / "connection.json"), ip="127.0.0.1", key=key, kernel_name=kernel_name
        )
        self.session = Session(key=key, signature_scheme="hmac-sha256")
        ctx = zmq.Context.instance()

        def sock(kind: int, port: int) -> zmq.Socket:
            s = ctx.socket(kind)
            s.linger = 0
            s.setsockopt(zmq.RECONNECT_IVL, 1)
            if kind == zmq.SUB:
                s.setsockopt(zmq.SUBSCRIBE, b"")
            s.connect(f"tcp://127.0.0.1:{port}")
            return s

        self.shell = sock(zmq.DEALER, info["shell_port"])
        self.control = sock(zmq.DEALER, info["control_port"])
        self.iopub = sock(zmq.SUB, info["iopub_port"])

        argv = [a.replace("{connection_file}", cf) for a in spec.argv]
        if argv[0] in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
            argv[0] = sys.executable  # as jupyter_client does
        env = {**os.environ, **spec.env, "LAKEBOOK_HOME": str(workdir / "home")}
        self.log = open(workdir / "kernel.log", "wb")  # noqa: SIM115
        self.t_launch = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log
        )

    def recv(self, sock: zmq.Socket, timeout_s: float) -> dict | None:
        if not sock.poll(int(timeout_s * 1000)):
            return None
        _, parts = self.session.feed_identities(sock.recv_multipart())
        return self.session.deserialize(parts)

    def send(self, sock: zmq.Socket, msg_type: str, content: dict | None = None) -> str:
        msg = self.session.msg(msg_type, content or {})
        self.session.send(sock, msg)
        return msg["header"]["msg_id"]

    def wait_ready(self, timeout_s: float = 60) -> float:
        """Seconds from launch to the first kernel_info_reply."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kernel exited early, see {self.workdir / 'kernel.log'}")
            self.send(self.shell, "kernel_info_request")
            reply = self.recv(self.shell, 0.02)
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                ready = time.perf_counter() - self.t_launch
                self.drain(self.shell, 0.2)  # answers to the resent requests
                return ready
        raise RuntimeError("kernel never answered kernel_info")

    def drain(self, sock: zmq.Socket, quiet_s: float) -> None:
        while self.recv(sock, quiet_s) is not None:
            pass

    def execute(self, code: str) -> tuple[float, float]:
        """(ms to execute_reply, ms to idle)."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        t0 = time.perf_counter()
        msg_id = self.send(self.shell, "execute_request", content)
        reply_t = idle_t = None
        while reply_t is None or idle_t is None:
            events = dict(self.poller.poll(10_000))
            if not events:
                raise RuntimeError("no reply within 10 s")
            now = time.perf_counter()
            if self.shell in events:
                msg = self.recv(self.shell, 0)
                if msg and msg["parent_header"].get("msg_id") == msg_id:
                    if msg["content"]["status"] != "ok":
                        raise RuntimeError(f"{code!r} failed: {msg['content']}")
                    reply_t = now
            if self.iopub in events:
                msg = self.recv(self.iopub, 0)
                if (
                    msg
                    and msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"
                ):
                    idle_t = now
        return (reply_t - t0) * 1000, (idle_t - t0) * 1000

    @property
    def poller(self) -> zmq.Poller:
        if not hasattr(self, "_poller"):
            self._poller = zmq.Poller()
            self._poller.register(self.shell, zmq.POLLIN)
            self._poller.register(self.iopub, zmq.POLLIN)
        return self._poller

    def wait_iopub_connected(self) -> None:
        """Until a kernel_info's idle shows up on iopub (the SUB side joins late)."""
        for _ in range(100):
            msg_id = self.send(self.shell, "kernel_info_request")
            deadline = time.perf_counter() + 0.2
            while time.perf_counter() < deadline:
                msg = self.recv(self.iopub, 0.05)
                if msg and msg["parent_header"].get("msg_id") == msg_id:
                    self.drain(self.shell, 0.05)
                    self.drain(self.iopub, 0.05)
                    return
        raise RuntimeError("iopub never delivered anything")

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send(self.control, "shutdown_request", {"restart": False})
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            for s in (self.shell, self.control, self.iopub):
                s.close(linger=0)
            self.log.close()


def bench(peer: Peer, starts: int, executes: int, scratch: Path) -> None:
    for i in range(starts):
        k = Running(peer.kernel_name, scratch / f"{peer.kernel_name}-start{i}")
        try:
            peer.ready_ms.append(k.wait_ready() * 1000)
        finally:
            k.stop()

    k = Running(peer.kernel_name, scratch / f"{peer.kernel_name}-exec")
    try:
        k.wait_ready()
        k.wait_iopub_connected()
        for _ in range(20):  # warm-up
            k.execute(peer.code)
        for _ in range(executes):
            reply_ms, idle_ms = k.execute(peer.code)
            peer.reply_ms.append(reply_ms)
            peer.idle_ms.append(idle_ms)
    finally:
        k.stop()


def fmt_ms(values: list[float]) -> str:
    return f"{statistics.median(values):9.2f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=5, help="kernel starts per kernel (default 5)")
    ap.add_argument("--executes", type=int, default=200, help="timed executes per kernel (default 200)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir (kernel logs)")
    args = ap.parse_args()

    venv_share = str(Path(sys.prefix) / "share" / "jupyter")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [venv_share, *[p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]]
    )
    lakebook = Peer("lakebook", "lakebook", "%clock")
    ipykernel = Peer("ipykernel", "python3", "1")

    scratch = Path(tempfile.mkdtemp(prefix="lakebook-bench-"))
    try:
        for peer in (lakebook, ipykernel):
            print(f"benchmarking {peer.label} ({args.starts} starts, {args.executes} executes) …", file=sys.stderr)
            bench(peer, args.starts, args.executes, scratch)
    finally:
        if args.keep:
            print(f"scratch dir kept: {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    rows = [
        ("ready (launch → kernel_info_reply)", "ready_ms", TARGET_READY_MS),
        ("execute round trip (→ reply)", "reply_ms", TARGET_ROUND_TRIP_MS),
        ("execute round trip (→ idle)", "idle_ms", None),
    ]
    print()
    print(f"{'median':38} {'lakebook':>12} {'ipykernel':>12} {'ratio':>7}   target (lakebook)")
    for title, attr, target in rows:
        a, b = getattr(lakebook, attr), getattr(ipykernel, attr)
        ma, mb = statistics.median(a), statistics.median(b)
        verdict = ""
        if target is not None:
            verdict = f"≤ {target:g} ms  {'ok' if ma <= target else 'MISSED'}"
        print(f"{title:38} {fmt_ms(a):>12} {fmt_ms(b):>12} {ma / mb:7.2f}   {verdict}")
    print()
    print(f"ready samples (ms): lakebook {[round(x, 1) for x in lakebook.ready_ms]}, "
          f"ipykernel {[round(x, 1) for x in ipykernel.ready_ms]}")
    for label, peer in (("lakebook", lakebook), ("ipykernel", ipykernel)):
        q = statistics.quantiles(peer.reply_ms, n=10)
        print(f"{label} reply p10/p90: {q[0]:.2f} / {q[-1]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
