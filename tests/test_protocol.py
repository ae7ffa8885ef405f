"""Raw-protocol tests against the real binary (docs/kernel-behaviour.md, "Protocol").

Kernels are started on connection files written by the harness (127.0.0.1, fresh key), each on
a fresh LAKEBOOK_HOME. Every message received through the harness is validated against the
v5 message schemas and the "optional objects are {} not null" rule.
"""

from __future__ import annotations

import re
import time

import pytest
import zmq
from jupyter_client.session import DELIM, Session
from kernel_harness import Kernel, put_object

CLOCK_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \((system|manual)\)$")


def statuses(msgs: list[dict]) -> list[str]:
    return [m["content"]["execution_state"] for m in msgs if m["msg_type"] == "status"]


def system_clock(kernel: Kernel) -> None:
    kernel.ok("%clock system")


# --- (a) signatures ------------------------------------------------------------------------


def _signed_frames(session: Session, msg_type: str = "kernel_info_request") -> tuple[str, list[bytes]]:
    msg = session.msg(msg_type, {})
    return msg["header"]["msg_id"], session.serialize(msg)


def _answered(sock: zmq.Socket, session: Session, msg_id: str, timeout: float) -> bool:
    """True if a reply whose parent is msg_id arrives on sock within timeout."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000)):
            return False
        frames = sock.recv_multipart()
        _, parts = session.feed_identities(frames)
        reply = session.deserialize(parts)
        if reply["parent_header"].get("msg_id") == msg_id:
            return True
    return False


def _iopub_mentions(kernel: Kernel, sub: zmq.Socket, session: Session, msg_ids: set[str]) -> list[str]:
    """Parents among msg_ids that appear in what sub has received so far."""
    seen = []
    while sub.poll(0):
        frames = sub.recv_multipart()
        _, parts = session.feed_identities(frames)
        msg = session.deserialize(parts, content=True)
        parent = msg["parent_header"].get("msg_id")
        if parent in msg_ids:
            seen.append(f"{msg['msg_type']} for {parent}")
    return seen


def test_bad_missing_and_replayed_signatures_are_dropped(kernel: Kernel) -> None:
    # Our own session with the kernel's key; its digest history must not reject our replay
    # of the kernel's *replies*, so replies are checked by parent id only.
    session = Session(key=kernel.key, signature_scheme="hmac-sha256", username="test")
    shell = kernel.raw_socket("shell")
    sub = kernel.raw_socket("iopub")
    time.sleep(0.3)  # let the SUB subscription reach the kernel
    dropped: set[str] = set()

    def log_size() -> int:
        return len(kernel.log_text())

    # A bad signature.
    msg_id, frames = _signed_frames(session)
    frames[frames.index(DELIM) + 1] = b"0" * 64
    before = log_size()
    shell.send_multipart(frames)
    assert not _answered(shell, session, msg_id, 1.0), "a message with a bad signature was answered"
    assert log_size() > before, "dropping a badly signed message should be logged to stderr"
    dropped.add(msg_id)

    # No signature at all (empty HMAC frame).
    msg_id, frames = _signed_frames(session)
    frames[frames.index(DELIM) + 1] = b""
    before = log_size()
    shell.send_multipart(frames)
    assert not _answered(shell, session, msg_id, 1.0), "an unsigned message was answered"
    assert log_size() > before, "dropping an unsigned message should be logged to stderr"
    dropped.add(msg_id)

    # Garbage that is not a Jupyter message at all must not end the socket loop either.
    shell.send_multipart([b"not a jupyter message"])
    shell.send_multipart([DELIM, b"", b"{", b"}", b"", b""])

    # Still serving.
    msg_id, frames = _signed_frames(session)
    shell.send_multipart(frames)
    assert _answered(shell, session, msg_id, 5.0), "kernel stopped answering after bad messages"

    # A replay of an already-seen, correctly signed message is dropped …
    before = log_size()
    shell.send_multipart(frames)
    assert not _answered(shell, session, msg_id, 1.0), "a replayed message was answered"
    assert log_size() > before, "dropping a replayed message should be logged to stderr"

    # … and the kernel keeps serving new messages.
    msg_id2, frames2 = _signed_frames(session)
    shell.send_multipart(frames2)
    assert _answered(shell, session, msg_id2, 5.0), "kernel stopped answering after a replay"

    # Dropped messages produced nothing on iopub (not even busy/idle).
    time.sleep(0.2)
    assert _iopub_mentions(kernel, sub, session, dropped) == []
    assert kernel.alive()


def test_heartbeat_echoes(kernel: Kernel) -> None:
    hb = kernel.raw_socket("hb", zmq.REQ)
    hb.send(b"ping-lakebook")
    assert hb.poll(2000), "no heartbeat echo within 2 s"
    assert hb.recv() == b"ping-lakebook"


# --- (b) control is served while a cell runs --------------------------------------------------


def test_kernel_info_on_control_while_a_cell_runs(kernel: Kernel) -> None:
    system_clock(kernel)
    exec_id = kernel.execute_async("%clock wait 5s")
    kernel.wait_for(
        lambda: "busy" in statuses(kernel.messages(exec_id, "iopub")), 5, "busy for the cell"
    )
    time.sleep(0.2)

    info_id = kernel.send("control", "kernel_info_request")
    sent = time.monotonic()
    reply = kernel.reply(info_id, timeout=5)
    elapsed = kernel.received_at(reply) - sent
    assert elapsed < 1.0, f"kernel_info on control took {elapsed:.2f} s while a cell ran"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["language_info"]["name"] == "rust"
    assert not kernel.has_reply(exec_id), "the cell should still be running"

    # kernel_info on control gets busy/idle too.
    assert statuses(kernel.iopub_until_idle(info_id, 2)) == ["busy", "idle"]

    ex = kernel.collect(exec_id, "%clock wait 5s", timeout=15)
    assert ex.status == "ok", ex.describe()
    assert ex.reply_at - ex.sent_at >= 4.5, "the 5 s wait on the system clock ended early"


# --- (c) interrupt ---------------------------------------------------------------------------


def test_interrupt_cancels_the_running_cell(kernel: Kernel) -> None:
    system_clock(kernel)
    exec_id = kernel.execute_async("%clock wait 60s")
    kernel.wait_for(
        lambda: "busy" in statuses(kernel.messages(exec_id, "iopub")), 5, "busy for the cell"
    )
    time.sleep(0.3)

    interrupt_id = kernel.send("control", "interrupt_request")
    sent = time.monotonic()
    interrupt_reply = kernel.reply(interrupt_id, timeout=2)
    assert interrupt_reply["header"]["msg_type"] == "interrupt_reply"
    assert interrupt_reply["content"]["status"] == "ok"

    ex = kernel.collect(exec_id, "%clock wait 60s", timeout=2)
    assert ex.reply_at - sent < 2.0
    assert ex.status == "error", ex.describe()
    assert ex.content["ename"] == "KeyboardInterrupt", ex.describe()
    assert ex.error["ename"] == "KeyboardInterrupt"

    after = kernel.ok("%clock")
    assert CLOCK_RE.match(after.result["text/plain"]), after.describe()
    assert kernel.alive()


def test_interrupt_while_idle_is_harmless(kernel: Kernel) -> None:
    reply, _ = kernel.request("control", "interrupt_request", timeout=2)
    assert reply["content"]["status"] == "ok"
    kernel.ok("%clock")


# --- (d) shutdown ----------------------------------------------------------------------------


def test_shutdown_request_replies_and_exits(kernel: Kernel) -> None:
    kernel.ok("%clock")
    msg_id = kernel.send("control", "shutdown_request", {"restart": False})
    sent = time.monotonic()
    reply = kernel.reply(msg_id, timeout=2.5)
    assert reply["header"]["msg_type"] == "shutdown_reply"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["restart"] is False
    left = 2.5 - (time.monotonic() - sent)
    try:
        kernel.proc.wait(max(left, 0))
    except Exception:
        pytest.fail("the kernel process did not exit within 2.5 s of shutdown_request")
    assert time.monotonic() - sent <= 2.5


def test_shutdown_while_a_cell_runs(kernel: Kernel) -> None:
    system_clock(kernel)
    exec_id = kernel.execute_async("%clock wait 60s")
    kernel.wait_for(
        lambda: "busy" in statuses(kernel.messages(exec_id, "iopub")), 5, "busy for the cell"
    )
    msg_id = kernel.send("control", "shutdown_request", {"restart": False})
    sent = time.monotonic()
    kernel.reply(msg_id, timeout=2.5)
    try:
        kernel.proc.wait(max(2.5 - (time.monotonic() - sent), 0))
    except Exception:
        pytest.fail("the kernel did not exit within 2.5 s of shutdown_request during a cell")


# --- (e) large output -------------------------------------------------------------------------


def test_two_megabyte_object_is_delivered_whole(start_kernel, lake_home) -> None:
    lines = [f"{i:08d} the quick brown fox jumps over the lazy dog\n" for i in range(40_000)]
    text = "".join(lines)
    assert len(text) > 2_000_000
    put_object(lake_home, "big/lines.txt", text)
    kernel = start_kernel()
    ex = kernel.execute("%lake cat s3://big/lines.txt", timeout=60)
    assert ex.status == "ok", ex.describe()
    got = ex.stream("stdout")
    assert len(got) == len(text), f"stdout has {len(got)} chars, the object {len(text)}"
    assert got == text
    assert ex.stream("stderr") == ""


# --- (f) busy/idle ordering, execute_input ----------------------------------------------------


def _assert_busy_reply_idle(kernel: Kernel, reply: dict, iopub: list[dict]) -> None:
    assert iopub[0]["msg_type"] == "status" and iopub[0]["content"]["execution_state"] == "busy"
    assert iopub[-1]["msg_type"] == "status" and iopub[-1]["content"]["execution_state"] == "idle"
    assert statuses(iopub) == ["busy", "idle"], [m["msg_type"] for m in iopub]
    # Shell and iopub are separate sockets, so arrival order proves little; the kernel's own
    # header dates (stamped when each message is sent) show the order: busy, reply, idle.
    busy, sent, idle = iopub[0]["header"]["date"], reply["header"]["date"], iopub[-1]["header"]["date"]
    assert busy <= sent, f"status busy was sent {(busy - sent).total_seconds() * 1e6:.0f} µs after the reply"
    assert sent <= idle, f"status idle was sent {(sent - idle).total_seconds() * 1e6:.0f} µs before the reply"


@pytest.mark.parametrize("code", ["%clock", "%clock\n  \n", "%lake ls\n%clock", "%nosuchmagic"])
def test_execute_busy_input_reply_idle(kernel: Kernel, code: str) -> None:
    ex = kernel.execute(code)
    _assert_busy_reply_idle(kernel, ex.reply, ex.iopub)
    assert ex.iopub[1]["msg_type"] == "execute_input", [m["msg_type"] for m in ex.iopub]
    assert ex.iopub[1]["content"]["code"] == code
    assert ex.iopub[1]["content"]["execution_count"] == ex.content["execution_count"]
    assert len(ex.of_type("execute_input")) == 1


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_kernel_info_busy_reply_idle(kernel: Kernel, channel: str) -> None:
    reply, iopub = kernel.request(channel, "kernel_info_request")
    _assert_busy_reply_idle(kernel, reply, iopub)
    assert [m["msg_type"] for m in iopub] == ["status", "status"]
    content = reply["content"]
    major, minor = (int(x) for x in content["protocol_version"].split(".")[:2])
    assert (major, minor) >= (5, 3), content["protocol_version"]
    assert content["language_info"]["name"] == "rust"
    assert content["language_info"]["file_extension"] == ".rs"
    hmajor, hminor = (int(x) for x in reply["header"]["version"].split(".")[:2])
    assert (hmajor, hminor) >= (5, 3), reply["header"]["version"]


def test_execution_count_increments(kernel: Kernel) -> None:
    first = kernel.ok("%clock").content["execution_count"]
    second = kernel.ok("%clock").content["execution_count"]
    assert second == first + 1
    res = kernel.ok("%clock").of_type("execute_result")[0]
    assert res["content"]["execution_count"] == first + 2


def test_comm_info_and_unknown_requests(kernel: Kernel) -> None:
    reply, iopub = kernel.request("shell", "comm_info_request", {})
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["comms"] == {}
    assert statuses(iopub) == ["busy", "idle"]
    # an unknown request type must not break the kernel
    kernel.send("shell", "no_such_request", {})
    time.sleep(0.3)
    kernel.ok("%clock")


# --- (g) stop_on_error -----------------------------------------------------------------------


def _queue_after_error(kernel: Kernel, stop_on_error: bool) -> list:
    system_clock(kernel)
    # The first cell keeps the kernel busy so the rest is certainly queued when the error hits.
    codes = ["%clock wait 500ms", "%lake cat s3://nope/x", "%clock", "%lake ls"]
    ids = [
        kernel.execute_async(code, stop_on_error=stop_on_error if i == 1 else True)
        for i, code in enumerate(codes)
    ]
    return [kernel.collect(msg_id, code, timeout=15) for msg_id, code in zip(ids, codes)]


def test_stop_on_error_aborts_queued_requests(kernel: Kernel) -> None:
    wait, err, second, third = _queue_after_error(kernel, stop_on_error=True)
    assert wait.status == "ok", wait.describe()
    assert err.status == "error" and err.content["ename"] == "NoSuchBucket", err.describe()
    for ex in (second, third):
        assert ex.status == "aborted", ex.describe()
        assert ex.outputs == [], ex.describe()
    # … only those already queued: the kernel runs the next request normally.
    kernel.ok("%clock")


def test_stop_on_error_false_runs_queued_requests(kernel: Kernel) -> None:
    wait, err, second, third = _queue_after_error(kernel, stop_on_error=False)
    assert err.status == "error", err.describe()
    assert second.status == "ok", second.describe()
    assert third.status == "ok", third.describe()


# --- (h) silent ------------------------------------------------------------------------------


def test_silent_produces_no_output_and_keeps_the_count(kernel: Kernel) -> None:
    before = kernel.ok("%clock").content["execution_count"]
    quiet = kernel.execute("%lake ls\n%clock", silent=True)
    assert quiet.status == "ok", quiet.describe()
    assert [m["msg_type"] for m in quiet.iopub] == ["status", "status"], quiet.describe()
    after = kernel.ok("%clock").content["execution_count"]
    assert after == before + 1


def test_user_expressions_are_magic_lines_evaluated_after_the_cell(kernel: Kernel) -> None:
    ex = kernel.ok(
        "%clock manual --at 2026-01-01T00:00:00Z",
        user_expressions={"now": "%clock", "typo": "%clcok"},
    )
    results = ex.content["user_expressions"]
    assert results["now"] == {"status": "ok", "data": {"text/plain": "2026-01-01T00:00:00Z (manual)"}, "metadata": {}}
    assert results["typo"]["status"] == "error" and results["typo"]["ename"] == "UsageError", results
    assert not [m for m in ex.outputs if m["msg_type"] == "error"], "expressions publish nothing"


def test_silent_still_runs_the_magic(kernel: Kernel) -> None:
    kernel.execute("%clock manual --at 2026-01-01T00:00:00Z", silent=True)
    assert kernel.ok("%clock").result["text/plain"] == "2026-01-01T00:00:00Z (manual)"


# --- (i) completion ----------------------------------------------------------------------------


def _complete(kernel: Kernel, code: str, cursor_pos: int | None = None) -> dict:
    if cursor_pos is None:
        cursor_pos = len(code)  # code points, as the protocol says
    reply, _ = kernel.request("shell", "complete_request", {"code": code, "cursor_pos": cursor_pos})
    content = reply["content"]
    assert content["status"] == "ok", content
    types = content["metadata"]["_jupyter_types_experimental"]
    assert isinstance(types, list) and len(types) == len(content["matches"]), content
    for item in types:
        assert item["text"] in content["matches"], item
        assert {"start", "end", "text", "type"} <= item.keys(), item
    return content


def test_complete_positions_count_code_points(start_kernel, lake_home) -> None:
    put_object(lake_home, "demo/café/menü.txt", "soup\n")
    kernel = start_kernel()

    # A flag after a path with a multi-byte character: positions must be code points.
    code = "%lake ls s3://demo/café/ --rec"
    c = _complete(kernel, code)
    assert c["matches"] == ["--recursive"], c
    assert (c["cursor_start"], c["cursor_end"]) == (len(code) - len("--rec"), len(code)), c

    # Completion in the middle of the line: cursor_pos is a code-point index, too.
    code = "%lake ls s3://démo --rec %clock"
    pos = code.index(" %clock")
    c = _complete(kernel, code, pos)
    assert c["matches"] == ["--recursive"], c
    assert (c["cursor_start"], c["cursor_end"]) == (pos - len("--rec"), pos), c


def test_complete_keys_with_multibyte_names(start_kernel, lake_home) -> None:
    put_object(lake_home, "demo/café/menü.txt", "soup\n")
    kernel = start_kernel()
    code = "%lake cat s3://demo/café/me"
    c = _complete(kernel, code)
    assert c["cursor_end"] == len(code), c
    assert 0 <= c["cursor_start"] <= len(code), c
    applied = [code[: c["cursor_start"]] + m + code[c["cursor_end"] :] for m in c["matches"]]
    assert any(a.rstrip() == "%lake cat s3://demo/café/menü.txt" for a in applied), (c, applied)


def test_complete_buckets(start_kernel, lake_home) -> None:
    put_object(lake_home, "demo/a.txt", "a\n")
    put_object(lake_home, "logs/b.txt", "b\n")
    kernel = start_kernel()
    code = "%lake ls s3://de"
    c = _complete(kernel, code)
    applied = [code[: c["cursor_start"]] + m + code[c["cursor_end"] :] for m in c["matches"]]
    assert applied, c
    assert all(a.startswith("%lake ls s3://demo") for a in applied), (c, applied)


@pytest.mark.parametrize(
    ("code", "expected"),
    [("%la", {"%lake"}), ("%%la", {"%%lake", "%%lakebook-allow-error"}), ("%lake c", {"cat", "connect", "cp"}), ("%lake rm s3://x --r", {"--recursive"})],
)
def test_complete_magics_verbs_flags(kernel: Kernel, code: str, expected: set[str]) -> None:
    c = _complete(kernel, code)
    assert set(c["matches"]) == expected, c


# --- (j) is_complete ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("%clock", "complete"),
        ("%lake ls s3://demo --recursive\n%clock", "complete"),
        # IPython's rule for cell magics: complete once the last line is empty
        ("%%lake put s3://demo/a.txt\nbody\n\n", "complete"),
        ("%%lake put s3://demo/a.txt\nbody", "incomplete"),
        ("%lake cat 's3://demo/a b.txt", "incomplete"),
        ('%lake cat "s3://demo/a b.txt', "incomplete"),
        ("%lake ls s3://demo \\", "incomplete"),
        ("%%lake put s3://demo/a.txt", "incomplete"),
        ("%nosuchmagic", "invalid"),
        ("%%nosuchmagic\nbody", "invalid"),
    ],
)
def test_is_complete(kernel: Kernel, code: str, status: str) -> None:
    reply, _ = kernel.request("shell", "is_complete_request", {"code": code})
    assert reply["content"]["status"] == status, (code, reply["content"])
    if status == "incomplete":
        assert isinstance(reply["content"].get("indent"), str), reply["content"]


# --- (k) errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "ename"),
    [
        ("%lake cat s3://nope/x", "NoSuchBucket"),
        ("%nosuchmagic", "UsageError"),
        ("%lake ls --no-such-flag", "UsageError"),
        ('let x: i32 = "one";', "CompileError"),
    ],
)
def test_error_is_one_iopub_error_and_in_the_reply(kernel: Kernel, code: str, ename: str) -> None:
    kernel.ok("%lake mb s3://demo")
    ex = kernel.execute(code, timeout=180)  # a Rust cell starts the worker
    assert ex.status == "error", ex.describe()
    errors = ex.of_type("error")
    assert len(errors) == 1, ex.describe()
    err = errors[0]["content"]
    for key in ("ename", "evalue", "traceback"):
        assert ex.content[key] == err[key], (key, ex.content, err)
    assert err["ename"] == ename
    assert err["evalue"].strip(), "evalue should say what went wrong"
    tb = err["traceback"]
    assert 1 <= len(tb) <= 12, tb
    joined = "\n".join(tb)
    assert "panicked" not in joined and "stack backtrace" not in joined and "RUST_BACKTRACE" not in joined
    # an error reply still carries the execution count; the kernel keeps working
    assert isinstance(ex.content.get("execution_count"), int), ex.content
    kernel.ok("%clock")


# --- (l) pager ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "word"), [("%lake?", "lake"), ("%clock??", "clock"), ("%lsmagic?", "lsmagic")])
def test_question_mark_returns_a_page_payload(kernel: Kernel, code: str, word: str) -> None:
    ex = kernel.ok(code)
    payload = ex.content["payload"]
    assert len(payload) == 1, ex.content
    assert payload[0]["source"] == "page"
    text = payload[0]["data"]["text/plain"]
    assert word in text.lower() and len(text) > 20, text
    assert not ex.of_type("error"), ex.describe()


def test_inspect_magic_name(kernel: Kernel) -> None:
    for code in ("%lake", "%clock wait 1s"):
        reply, _ = kernel.request(
            "shell", "inspect_request", {"code": code, "cursor_pos": 3, "detail_level": 0}
        )
        c = reply["content"]
        assert c["status"] == "ok" and c["found"] is True, c
        assert c["data"]["text/plain"].strip(), c


def test_inspect_unknown_is_not_found(kernel: Kernel) -> None:
    reply, _ = kernel.request(
        "shell", "inspect_request", {"code": "%nosuchmagic", "cursor_pos": 4, "detail_level": 0}
    )
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["found"] is False


# --- history -------------------------------------------------------------------------------------


def test_history_is_persisted_in_the_workspace(start_kernel, lake_home) -> None:
    first = start_kernel(name="first")
    first.ok("%clock manual --at 2026-01-01T00:00:00Z")
    first.ok("%lsmagic")
    first.stop()

    second = start_kernel(name="second")
    reply, _ = second.request(
        "shell",
        "history_request",
        {"output": False, "raw": True, "hist_access_type": "search", "pattern": "%clock manual*", "n": 10, "unique": False},
    )
    history = reply["content"]["history"]
    assert [h[2] for h in history] == ["%clock manual --at 2026-01-01T00:00:00Z"], history
    reply, _ = second.request(
        "shell",
        "history_request",
        {"output": False, "raw": True, "hist_access_type": "tail", "n": 2},
    )
    assert [h[2] for h in reply["content"]["history"]] == [
        "%clock manual --at 2026-01-01T00:00:00Z",
        "%lsmagic",
    ], reply["content"]


def test_store_history_false_is_not_recorded(kernel: Kernel) -> None:
    kernel.ok("%clock")
    kernel.ok("%lsmagic", store_history=False)
    reply, _ = kernel.request(
        "shell", "history_request", {"output": False, "raw": True, "hist_access_type": "tail", "n": 1}
    )
    assert [h[2] for h in reply["content"]["history"]] == ["%clock"], reply["content"]
