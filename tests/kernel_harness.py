"""Shared helpers for the tests that drive the real `lakebook` binary.

- locate the binary that install/setup.sh built and the kernelspec it installed;
- `Kernel`: launch the binary on a connection file we write ourselves (loopback only, fresh
  key), talk to it through jupyter_client's channels, and collect every message it sends,
  validated against the message spec, keyed by parent msg_id;
- small workspace helpers (`put_object`).

Used by conftest.py (fixtures), the protocol/magic tests and the benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_kernel_test.msgspec_v5 import schema_fragments, validate_message

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL_NAME = "lakebook"
LOOPBACK = "127.0.0.1"


# --- where things are ------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("LAKEBOOK_CACHE") or Path.home() / ".cache" / "lakebook")


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or cache_dir() / "target")


def binary_path() -> Path:
    return target_dir() / "debug" / "lakebook"


def require_binary() -> Path:
    """The built kernel binary; a clear failure (never a skip) when it is missing."""
    path = binary_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(f"{path} not found: build it with install/setup.sh --no-tour")
    return path


def venv_jupyter_data() -> Path:
    """share/jupyter of the interpreter running the tests (the venv setup.sh made)."""
    return Path(sys.prefix) / "share" / "jupyter"


def prefer_venv_kernelspecs() -> None:
    """Put the venv's share/jupyter first on JUPYTER_PATH so a stale user-level 'lakebook'
    kernelspec (~/.local/share/jupyter) cannot shadow the one setup.sh installed."""
    first = str(venv_jupyter_data())
    rest = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != first]
    os.environ["JUPYTER_PATH"] = os.pathsep.join([first, *rest])


def check_kernelspec() -> dict[str, Any]:
    """The 'lakebook' kernelspec must exist and launch the binary under test."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel as e:
        raise RuntimeError(
            "kernelspec 'lakebook' is not installed in this venv: run install/setup.sh --no-tour"
        ) from e
    argv0 = Path(spec.argv[0])
    binary = require_binary()
    if argv0.resolve() != binary.resolve():
        raise RuntimeError(
            f"kernelspec 'lakebook' ({spec.resource_dir}) runs {argv0}, not the binary under "
            f"test {binary}: re-run install/setup.sh --no-tour"
        )
    return spec.to_dict()


# --- workspace helpers -----------------------------------------------------------------------


def put_object(home: Path, bucket_key: str, data: bytes | str) -> Path:
    """Create `$LAKEBOOK_HOME/lake/<bucket>/<key>` directly on disk (before a kernel starts)."""
    path = Path(home) / "lake" / bucket_key
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


# --- message checks --------------------------------------------------------------------------

OPTIONAL_OBJECT_FIELDS = ("transient", "user_expressions", "metadata")


def check_message(msg: dict[str, Any]) -> None:
    """Validate against the v5 message schemas (jupyter_kernel_test's) and the rule that
    optional object fields are `{}`, never null."""
    content = msg.get("content", {})
    msg_type = msg["header"]["msg_type"]
    for name in OPTIONAL_OBJECT_FIELDS:
        if name in content and content[name] is None:
            raise AssertionError(f"{msg_type}: content.{name} is null (must be an object)")
    if msg_type.endswith("_reply") and content.get("status") == "aborted":
        return  # jupyter_kernel_test's schema only knows the 'abort' spelling
    if msg_type not in schema_fragments:
        return  # e.g. iopub_welcome, comm messages: not covered by the schema
    validate_message(msg)


# --- a kernel on our own connection file -------------------------------------------------------


@dataclass
class Execution:
    """One execute_request: its reply and its iopub messages (busy … idle)."""

    code: str
    msg_id: str
    reply: dict[str, Any]
    iopub: list[dict[str, Any]]
    sent_at: float = 0.0
    reply_at: float = 0.0

    @property
    def content(self) -> dict[str, Any]:
        return self.reply["content"]

    @property
    def status(self) -> str:
        return self.content["status"]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return [m for m in self.iopub if m["msg_type"] not in ("status", "execute_input")]

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.iopub if m["msg_type"] == msg_type]

    def stream(self, name: str = "stdout") -> str:
        return "".join(
            m["content"]["text"]
            for m in self.iopub
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def result(self) -> dict[str, Any]:
        """data of the single execute_result."""
        results = self.of_type("execute_result")
        assert len(results) == 1, f"expected one execute_result, got {self.describe()}"
        return results[0]["content"]["data"]

    @property
    def error(self) -> dict[str, Any]:
        errors = self.of_type("error")
        assert len(errors) == 1, f"expected exactly one error output, got {self.describe()}"
        return errors[0]["content"]

    def describe(self) -> str:
        lines = [f"code={self.code!r} reply={self.content!r}"]
        for m in self.iopub:
            c = dict(m["content"])
            for k, v in c.items():
                if isinstance(v, str) and len(v) > 300:
                    c[k] = v[:300] + f"…({len(v)} chars)"
            lines.append(f"  iopub {m['msg_type']}: {c!r}"[:1500])
        return "\n".join(lines)


class Kernel:
    """The lakebook binary started on a connection file written here (127.0.0.1, random ports,
    fresh HMAC key), with LAKEBOOK_HOME=home and the given working directory."""

    def __init__(
        self,
        home: Path,
        cwd: Path,
        rundir: Path,
        name: str = "kernel",
        env: dict[str, str | None] | None = None,
        ready_timeout: float = 30,
    ) -> None:
        self.home, self.cwd, self.rundir = Path(home), Path(cwd), Path(rundir)
        for d in (self.home, self.cwd, self.rundir):
            d.mkdir(parents=True, exist_ok=True)
        self.key = uuid.uuid4().hex.encode()
        self.connection_file = self.rundir / f"{name}-connection.json"
        _, self.info = write_connection_file(
            str(self.connection_file), ip=LOOPBACK, key=self.key, kernel_name=KERNEL_NAME
        )
        self.log_path = self.rundir / f"{name}-stderr.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        full_env["LAKEBOOK_HOME"] = str(self.home)
        for k, v in (env or {}).items():  # None removes a variable
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
        self.launched_at = time.monotonic()
        self.proc = subprocess.Popen(
            [str(require_binary()), "kernel", "--connection-file", str(self.connection_file)],
            cwd=self.cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._raw_sockets: list[zmq.Socket] = []
        # every message received: (channel, monotonic time, msg)
        self.received: list[tuple[str, float, dict[str, Any]]] = []
        self.sent_at: dict[str, float] = {}
        self.client = BlockingKernelClient(connection_file=str(self.connection_file))
        self.client.load_connection_file()
        # No heartbeat thread: readiness is judged by kernel_info (test_protocol checks hb).
        self.client.start_channels(hb=False)
        self.session = self.client.session
        try:
            self.ready_after = self._wait_ready(ready_timeout)
        except Exception as e:
            self.stop()
            raise RuntimeError(f"kernel did not become ready: {e}\n{self.log_text()}") from e
        self.received.clear()

    def _wait_ready(self, timeout: float) -> float:
        """kernel_info until a reply *and* its iopub idle arrive (so iopub is connected too).
        Returns seconds from launch to the first kernel_info_reply."""
        deadline = time.monotonic() + timeout
        first_reply: float | None = None
        while True:
            if not self.alive():
                raise RuntimeError(f"kernel exited with status {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no kernel_info_reply within {timeout} s")
            msg_id = self.send("shell", "kernel_info_request")
            try:
                reply = self.reply(msg_id, timeout=1.0)
            except AssertionError:
                continue
            if first_reply is None:
                first_reply = self.received_at(reply)
            try:
                self.iopub_until_idle(msg_id, timeout=0.5)
            except AssertionError:
                continue  # iopub not connected yet (slow joiner): try again
            return first_reply - self.launched_at

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, channel: str) -> str:
        return f"tcp://{LOOPBACK}:{self.info[f'{channel}_port']}"  # type: ignore[literal-required]

    def raw_socket(self, channel: str, kind: int | None = None) -> zmq.Socket:
        """A plain pyzmq socket connected to one of the kernel's channels (closed in stop())."""
        if kind is None:
            kind = zmq.SUB if channel == "iopub" else zmq.DEALER
        sock = zmq.Context.instance().socket(kind)
        sock.linger = 0
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(self.url(channel))
        self._raw_sockets.append(sock)
        return sock

    def _channels(self) -> dict[str, Any]:
        return {
            "shell": self.client.shell_channel,
            "control": self.client.control_channel,
            "iopub": self.client.iopub_channel,
        }

    def pump(self, timeout: float) -> int:
        """Wait up to `timeout` s for messages on shell/control/iopub; store all that arrived."""
        poller = zmq.Poller()
        channels = self._channels()
        for ch in channels.values():
            poller.register(ch.socket, zmq.POLLIN)
        events = dict(poller.poll(max(0, int(timeout * 1000))))
        got = 0
        for name, ch in channels.items():
            if ch.socket not in events:
                continue
            while ch.msg_ready():
                msg = ch.get_msg(timeout=0)
                self.received.append((name, time.monotonic(), msg))
                try:
                    check_message(msg)
                except Exception as e:
                    raise AssertionError(f"invalid {name} message {msg!r}: {e}") from e
                got += 1
        return got

    def messages(self, parent_id: str, channel: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for ch, _, m in self.received
            if m["parent_header"].get("msg_id") == parent_id and (channel is None or ch == channel)
        ]

    def received_at(self, msg: dict[str, Any]) -> float:
        for _, t, m in self.received:
            if m is msg:
                return t
        raise KeyError(msg["header"]["msg_id"])

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
            self.pump(min(left, 0.05))

    # -- requests ------------------------------------------------------------------------------

    def send(self, channel: str, msg_type: str, content: dict[str, Any] | None = None) -> str:
        msg = self.session.msg(msg_type, content or {})
        self.sent_at[msg["header"]["msg_id"]] = time.monotonic()
        self._channels()[channel].send(msg)
        return msg["header"]["msg_id"]

    def execute_async(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        stop_on_error: bool = True,
        user_expressions: dict[str, str] | None = None,
    ) -> str:
        return self.send(
            "shell",
            "execute_request",
            {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": user_expressions or {},
                "allow_stdin": False,
                "stop_on_error": stop_on_error,
            },
        )

    def reply(self, msg_id: str, timeout: float = 30) -> dict[str, Any]:
        def find():
            for ch, _, m in self.received:
                if ch in ("shell", "control") and m["parent_header"].get("msg_id") == msg_id:
                    return m
            return None

        self.wait_for(lambda: find() is not None, timeout, f"the reply to {msg_id}")
        return find()  # type: ignore[return-value]

    def has_reply(self, msg_id: str) -> bool:
        self.pump(0)
        return any(
            ch in ("shell", "control") and m["parent_header"].get("msg_id") == msg_id
            for ch, _, m in self.received
        )

    def iopub_until_idle(self, msg_id: str, timeout: float = 30) -> list[dict[str, Any]]:
        def idle() -> bool:
            return any(
                m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                for m in self.messages(msg_id, "iopub")
            )

        self.wait_for(idle, timeout, f"status idle for {msg_id}")
        return self.messages(msg_id, "iopub")

    def request(
        self, channel: str, msg_type: str, content: dict[str, Any] | None = None, timeout=30
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        msg_id = self.send(channel, msg_type, content)
        reply = self.reply(msg_id, timeout)
        return reply, self.iopub_until_idle(msg_id, timeout)

    def execute(self, code: str, timeout: float = 30, **kwargs: Any) -> Execution:
        msg_id = self.execute_async(code, **kwargs)
        return self.collect(msg_id, code, timeout)

    def collect(self, msg_id: str, code: str = "", timeout: float = 30) -> Execution:
        reply = self.reply(msg_id, timeout)
        iopub = self.iopub_until_idle(msg_id, timeout)
        return Execution(
            code=code,
            msg_id=msg_id,
            reply=reply,
            iopub=iopub,
            sent_at=self.sent_at.get(msg_id, 0.0),
            reply_at=self.received_at(reply),
        )

    def ok(self, code: str, timeout: float = 30, **kwargs: Any) -> Execution:
        """Execute and assert the cell succeeded."""
        ex = self.execute(code, timeout, **kwargs)
        assert ex.status == "ok", f"cell failed:\n{ex.describe()}\n--- kernel log ---\n{self.log_text()}"
        return ex

    def failing(self, code: str, ename: str, timeout: float = 30) -> Execution:
        """Execute, assert one error output whose ename (reply and iopub) is `ename`."""
        ex = self.execute(code, timeout)
        assert ex.status == "error", f"expected {ename}:\n{ex.describe()}"
        assert ex.content["ename"] == ename, ex.describe()
        assert ex.error["ename"] == ename, ex.describe()
        return ex

    # -- lifecycle -----------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 3.0) -> None:
        """Shut the kernel down (shutdown_request, then SIGKILL if it lingers)."""
        try:
            if self.alive():
                try:
                    self.send("control", "shutdown_request", {"restart": False})
                except Exception:
                    pass
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            try:
                self.client.stop_channels()
            except Exception:
                pass
            for sock in self._raw_sockets:
                sock.close(linger=0)
            self._raw_sockets.clear()
            if not self._log.closed:
                self._log.close()


def table_rows(table_text: str) -> list[list[str]]:
    """The data rows of a `text/plain` box table (the lines after the dtype row), as cells."""
    lines = [line for line in table_text.splitlines() if line.startswith("│")]
    return [[cell.strip() for cell in line.strip("│").split("┆")] for line in lines[2:]]
