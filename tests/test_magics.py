"""Cell and magic behaviour against the real binary (docs/kernel-behaviour.md: Workspace, Cells,
Magics). Each test has its own fresh LAKEBOOK_HOME; local paths resolve in the kernel's cwd."""

from __future__ import annotations

import os
import re
from pathlib import Path

from kernel_harness import Kernel, put_object

SYSTEM_CLOCK_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z \(system\)$")


# --- cells ---------------------------------------------------------------------------------


def test_empty_and_whitespace_cells_are_ok_and_silent(kernel: Kernel) -> None:
    for code in ("", "   ", "\n\n", " \t\n  "):
        ex = kernel.ok(code)
        assert ex.outputs == [], ex.describe()


def test_stacked_magics_last_value_is_the_execute_result(kernel: Kernel) -> None:
    ex = kernel.ok("%clock manual --at 2026-01-01T00:00:00Z\n%clock advance 90s\n%lake ls\n%clock")
    assert ex.result["text/plain"] == "2026-01-01T00:01:30Z (manual)"
    assert ex.outputs[-1]["msg_type"] == "execute_result", ex.describe()
    # `%lake ls` (a table) came earlier, so it is display_data
    tables = [m for m in ex.of_type("display_data") if "text/html" in m["content"]["data"]]
    assert len(tables) == 1, ex.describe()


def test_unknown_magic_lists_the_available_ones(kernel: Kernel) -> None:
    ex = kernel.failing("%nosuchmagic", "UsageError")
    for name in ("lake", "clock", "lsmagic", "help"):
        assert name in ex.content["evalue"], ex.content["evalue"]


def test_unknown_flag_lists_the_valid_ones(kernel: Kernel) -> None:
    ex = kernel.failing("%lake ls s3://demo --bogus", "UsageError")
    assert "--recursive" in ex.content["evalue"] + "\n".join(ex.content["traceback"]), ex.describe()


# --- help ------------------------------------------------------------------------------------


def test_lsmagic_lists_line_and_cell_magics(kernel: Kernel) -> None:
    text = kernel.ok("%lsmagic").result["text/plain"]
    for name in ("%lake", "%clock", "%help", "%lsmagic", "%%lake"):
        assert name in text, text


def test_help(kernel: Kernel) -> None:
    overview = kernel.ok("%help").result["text/plain"]
    assert "lake" in overview and "clock" in overview, overview
    lake = kernel.ok("%help lake").result["text/plain"]
    for verb in ("mb", "rb", "ls", "put", "cat", "rm", "cp", "info"):
        assert re.search(rf"\b{verb}\b", lake), (verb, lake)


# --- clock -----------------------------------------------------------------------------------


def test_clock_formats(kernel: Kernel) -> None:
    kernel.ok("%clock system")
    assert SYSTEM_CLOCK_RE.match(kernel.ok("%clock").result["text/plain"])
    kernel.ok("%clock manual --at 2026-01-01T00:00:00Z")
    assert kernel.ok("%clock").result["text/plain"] == "2026-01-01T00:00:00Z (manual)"
    for dur, expected in [
        ("90s", "2026-01-01T00:01:30Z"),
        ("1m30s", "2026-01-01T00:03:00Z"),
        ("2h", "2026-01-01T02:03:00Z"),
    ]:
        kernel.ok(f"%clock advance {dur}")
        assert kernel.ok("%clock").result["text/plain"] == f"{expected} (manual)", dur


def test_clock_wait_on_manual_advances_instantly(kernel: Kernel) -> None:
    ex = kernel.ok("%clock manual --at 2026-01-01T00:00:00Z\n%clock wait 2h\n%clock")
    assert ex.result["text/plain"] == "2026-01-01T02:00:00Z (manual)"
    assert ex.reply_at - ex.sent_at < 2.0


def test_clock_advance_on_system_clock_is_invalid(kernel: Kernel) -> None:
    kernel.ok("%clock system")
    kernel.failing("%clock advance 90s", "InvalidClockMode")


def test_clock_mode_and_time_persist_in_the_workspace(start_kernel) -> None:
    first = start_kernel(name="first")
    first.ok("%clock manual --at 2026-03-04T05:06:07Z")
    first.stop()
    second = start_kernel(name="second")
    assert second.ok("%clock").result["text/plain"] == "2026-03-04T05:06:07Z (manual)"


def _progress_display_id(ex) -> str:
    ids = {
        m["content"].get("transient", {}).get("display_id")
        for m in ex.of_type("display_data")
    }
    assert len(ids) == 1 and None not in ids, f"expected one progress display with a display_id:\n{ex.describe()}"
    return ids.pop()


def test_wait_progress_alone_is_cleared_and_summarised(kernel: Kernel) -> None:
    kernel.ok("%clock system")
    ex = kernel.ok("%clock wait 1200ms")
    types = [m["msg_type"] for m in ex.outputs]
    assert types[0] == "display_data", types
    display_id = _progress_display_id(ex)
    updates = ex.of_type("update_display_data")
    assert updates, f"expected update_display_data while waiting: {types}"
    assert all(u["content"]["transient"]["display_id"] == display_id for u in updates)
    assert "clear_output" in types, types
    after_clear = types[types.index("clear_output") + 1 :]
    assert after_clear == ["stream"], types
    summary = ex.stream("stdout")
    assert summary.count("\n") <= 1 and summary.strip(), repr(summary)
    assert ex.reply_at - ex.sent_at >= 1.1


def test_wait_progress_with_other_output_becomes_the_summary(kernel: Kernel) -> None:
    kernel.ok("%clock system")
    ex = kernel.ok("%clock wait 300ms\n%clock")
    types = [m["msg_type"] for m in ex.outputs]
    assert "clear_output" not in types, types
    display_id = _progress_display_id(ex)
    updates = ex.of_type("update_display_data")
    assert updates and updates[-1]["content"]["transient"]["display_id"] == display_id, types
    assert SYSTEM_CLOCK_RE.match(ex.result["text/plain"])


# --- lake --------------------------------------------------------------------------------------


def test_make_bucket_and_already_owned_warning(kernel: Kernel, lake_home: Path) -> None:
    ex = kernel.ok("%lake mb s3://demo")
    assert ex.stream("stdout").strip() == "make_bucket: demo"
    assert (lake_home / "lake" / "demo").is_dir()
    again = kernel.ok("%lake mb s3://demo")
    err = again.stream("stderr")
    assert "warning" in err and "BucketAlreadyOwnedByYou" in err, again.describe()


def test_invalid_bucket_name(kernel: Kernel) -> None:
    kernel.failing("%lake mb s3://Not_A_Bucket", "InvalidBucketName")


def test_put_cell_body_gets_a_trailing_newline(kernel: Kernel, lake_home: Path) -> None:
    kernel.ok("%lake mb s3://demo")
    kernel.ok("%%lake put s3://demo/dir/a.csv\nid,name\n1,x")
    assert (lake_home / "lake/demo/dir/a.csv").read_text() == "id,name\n1,x\n"
    kernel.ok("%%lake put s3://demo/b.txt\nalready\n")
    assert (lake_home / "lake/demo/b.txt").read_text() == "already\n"


def test_put_from_local_file(kernel: Kernel, lake_home: Path, kernel_cwd: Path) -> None:
    (kernel_cwd / "local.txt").write_text("hello\n")
    kernel.ok("%lake mb s3://demo")
    ex = kernel.ok("%lake put s3://demo/up/local.txt --from local.txt")
    assert ex.stream("stdout").strip() == "upload: local.txt to s3://demo/up/local.txt (6 bytes)"
    assert (lake_home / "lake/demo/up/local.txt").read_text() == "hello\n"


def test_cat_round_trip_and_errors(start_kernel, lake_home: Path) -> None:
    put_object(lake_home, "demo/t.txt", "line 1\nline 2\n")
    put_object(lake_home, "demo/blob.bin", bytes(range(256)))
    kernel = start_kernel()
    assert kernel.ok("%lake cat s3://demo/t.txt").stream("stdout") == "line 1\nline 2\n"
    kernel.failing("%lake cat s3://demo/none.txt", "NoSuchKey")
    kernel.failing("%lake cat s3://nobucket/t.txt", "NoSuchBucket")
    binary = kernel.failing("%lake cat s3://demo/blob.bin", "BinaryObject")
    assert "%lake cp" in binary.content["evalue"] + "\n".join(binary.content["traceback"])


def test_invalid_object_names(kernel: Kernel) -> None:
    kernel.ok("%lake mb s3://demo")
    for key in ("../escape.txt", "a//b.txt", "a/../../b.txt"):
        kernel.failing(f"%%lake put s3://demo/{key}\nx", "InvalidObjectName")


def test_ls_tables(start_kernel, lake_home: Path) -> None:
    put_object(lake_home, "demo/web/a.csv", "a\n")
    put_object(lake_home, "demo/web/sub/b.csv", "bb\n")
    put_object(lake_home, "logs/x.txt", "x\n")
    kernel = start_kernel()
    buckets = kernel.ok("%lake ls").result
    assert "demo" in buckets["text/plain"] and "logs" in buckets["text/plain"]
    rec = kernel.ok("%lake ls s3://demo --recursive").result
    assert "text/html" in rec and "<script" not in rec["text/html"].lower()
    plain = rec["text/plain"]
    for col in ("key", "size", "modified"):
        assert col in plain, plain
    assert "web/a.csv" in plain and "web/sub/b.csv" in plain, plain
    assert "2 rows × 3 columns" in plain, plain
    for line in plain.splitlines():
        if "web/a.csv" in line:  # the row has a real modification time, not a placeholder
            assert re.search(r"\d{4}-\d\d-\d\d", line), line
    assert "2 rows × 3 columns" in rec["text/html"]


def test_rb_rm_cp(kernel: Kernel, lake_home: Path, kernel_cwd: Path) -> None:
    kernel.ok("%lake mb s3://demo")
    kernel.ok("%%lake put s3://demo/d/one.txt\none")
    kernel.ok("%%lake put s3://demo/d/two.txt\ntwo")
    kernel.failing("%lake rb s3://demo", "BucketNotEmpty")

    kernel.ok("%lake cp s3://demo/d/one.txt copied.txt")
    assert (kernel_cwd / "copied.txt").read_text() == "one\n"
    kernel.ok("%lake cp copied.txt s3://demo/e/back.txt")
    assert (lake_home / "lake/demo/e/back.txt").read_text() == "one\n"
    kernel.ok("%lake cp s3://demo/d s3://demo/f --recursive")
    assert (lake_home / "lake/demo/f/two.txt").read_text() == "two\n"

    kernel.ok("%lake rm s3://demo/e/back.txt")
    assert not (lake_home / "lake/demo/e/back.txt").exists()
    kernel.ok("%lake rm s3://demo/f --recursive")
    assert not (lake_home / "lake/demo/f/two.txt").exists()

    kernel.ok("%lake rb s3://demo --force")
    assert not (lake_home / "lake/demo").exists()


def test_info_table(kernel: Kernel, lake_home: Path) -> None:
    kernel.ok("%lake mb s3://demo")
    kernel.ok("%%lake put s3://demo/a.txt\nabc")
    data = kernel.ok("%lake info").result
    assert "text/html" in data and "text/plain" in data
    paths = {str(lake_home), os.path.realpath(lake_home)}
    assert any(p in data["text/html"] for p in paths), data["text/html"]


# --- workspace ---------------------------------------------------------------------------------


def test_second_kernel_on_a_workspace_is_locked_out(start_kernel) -> None:
    first = start_kernel(name="first")
    first.ok("%lake ls")
    second = start_kernel(name="second")
    for code in ("%clock", "%lake ls"):
        ex = second.failing(code, "WorkspaceLocked")
        assert str(first.pid) in ex.content["evalue"] + "\n".join(ex.content["traceback"]), ex.describe()
    first.ok("%clock")  # the holder is unaffected
    first.stop()
    second.ok("%lake ls")  # … and once it exits, the workspace is free


def test_default_workspace_is_lakebook_data_in_the_cwd(start_kernel, kernel_cwd: Path) -> None:
    kernel = start_kernel(env={"LAKEBOOK_HOME": None})
    kernel.ok("%lake mb s3://demo")
    assert (kernel_cwd / "lakebook-data" / "lake" / "demo").is_dir()


def test_a_notebook_opened_by_a_jupyter_server_gets_a_workspace_of_its_own(start_kernel, kernel_cwd: Path) -> None:
    # jupyter_server names the notebook in JPY_SESSION_NAME; two open notebooks must not
    # contend for one workspace (and its lock), and LAKEBOOK_HOME still wins when it is set.
    tour = start_kernel(name="tour", env={"LAKEBOOK_HOME": None, "JPY_SESSION_NAME": str(kernel_cwd / "00-tour.ipynb")})
    lab = start_kernel(name="lab", env={"LAKEBOOK_HOME": None, "JPY_SESSION_NAME": str(kernel_cwd / "02-crawl.ipynb")})
    tour.ok("%lake mb s3://demo")
    lab.ok("%lake mb s3://demo")  # a different workspace: no BucketAlreadyOwnedByYou, no lock
    assert (kernel_cwd / "lakebook-data" / "00-tour" / "lake" / "demo").is_dir()
    assert (kernel_cwd / "lakebook-data" / "02-crawl" / "lake" / "demo").is_dir()
    pinned = start_kernel(name="pinned", env={"JPY_SESSION_NAME": str(kernel_cwd / "03-athena.ipynb")})
    pinned.ok("%lake mb s3://pinned")
    assert not (kernel_cwd / "lakebook-data" / "03-athena").exists()
