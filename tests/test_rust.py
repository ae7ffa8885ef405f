"""Plain cells are Rust: evcxr in the `lakebook-rust` worker (rust/, built by install/setup.sh
into $LAKEBOOK_CACHE/rust-target), started on the first plain cell. Through the kernel:
expression values, println!/eprintln! output, compile errors pointing at the cell's line, a
panic then a working cell, variables across cells (inferred std types too), completion and
Shift-Tab from rust-analyzer, evcxr commands and rich output, a dependency built with a
progress display, interrupts that kill the worker's process group (a running loop, a running
cargo; the kernel goes on, the next cell says the variables are gone), magics stacked above
Rust, and a clear error when the worker is not built."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kernel_harness import Kernel, cache_dir

# A cold worker compiles evcxr's first crate; every cell compiles one more.
SLOW = 180


def worker() -> Path:
    path = Path(os.environ.get("LAKEBOOK_RUST_WORKER") or cache_dir() / "rust-target" / "release" / "lakebook-rust")
    assert path.exists(), f"{path} is missing: install/setup.sh builds it (the Rust-cell worker)"
    return path


def test_expressions_output_and_variables_across_cells(kernel: Kernel) -> None:
    worker()
    ex = kernel.ok('println!("one");\neprintln!("two");\nprintln!("three");\n40 + 2', timeout=SLOW)
    assert ex.result["text/plain"] == "42", ex.describe()
    assert ex.stream("stdout") == "one\nthree\n", ex.describe()
    assert ex.stream("stderr") == "two\n", ex.describe()
    # the value comes after all of the cell's output
    kinds = [m["msg_type"] for m in ex.outputs]
    assert kinds[-1] == "execute_result", kinds
    kernel.ok("let v: Vec<i32> = vec![1, 2, 3];", timeout=SLOW)
    ex = kernel.ok("v.iter().sum::<i32>() * v.len() as i32", timeout=SLOW)
    assert ex.result["text/plain"] == "18", ex.describe()
    # functions and types defined in one cell are there in the next
    kernel.ok("fn double(x: i32) -> i32 { x * 2 }\nstruct P { x: i32 }", timeout=SLOW)
    assert kernel.ok("double(P { x: 21 }.x)", timeout=SLOW).result["text/plain"] == "42"
    # an attribute line is Rust, not a comment
    kernel.ok("#[derive(Debug, Clone)]\nstruct Q {\n    x: i32,\n}", timeout=SLOW)
    assert kernel.ok('format!("{:?}", Q { x: 1 }.clone())', timeout=SLOW).result["text/plain"] == '"Q { x: 1 }"'


def test_variables_keep_their_inferred_std_types_across_cells(kernel: Kernel) -> None:
    """rust-analyzer infers the types from the standard library's sources (rustup's rust-src)."""
    worker()
    kernel.ok('let s = "abc".to_string();\nlet v = vec![1, 2, 3];\nlet doubled = v.iter().map(|x| x * 2).collect::<Vec<_>>();\nlet words = s.split(\'b\').map(str::to_owned).collect::<Vec<_>>();', timeout=SLOW)
    ex = kernel.ok('format!("{s} {v:?} {doubled:?} {words:?} {}", doubled.len())', timeout=SLOW)
    assert ex.result["text/plain"] == '"abc [1, 2, 3] [2, 4, 6] [\\"a\\", \\"c\\"] 3"', ex.describe()


def test_a_compile_error_points_at_the_line_and_the_next_cell_works(kernel: Kernel) -> None:
    worker()
    ex = kernel.failing('let a = 1;\nlet b: i32 = "text";', "CompileError", timeout=SLOW)
    tb = "\n".join(ex.content["traceback"])
    assert "mismatched types" in ex.content["evalue"], ex.describe()
    assert "cell line 2" in tb and 'let b: i32 = "text";' in tb and "^" in tb, tb
    assert len(ex.content["traceback"]) <= 12, tb
    assert kernel.ok("1 + 1", timeout=SLOW).result["text/plain"] == "2"


def test_a_panic_is_an_error_and_the_next_cell_works(kernel: Kernel) -> None:
    worker()
    ex = kernel.failing('let n: u32 = 7;\npanic!("boom {n}");', "Panic", timeout=SLOW)
    assert "boom 7" in ex.content["evalue"] + "\n".join(ex.content["traceback"]) + ex.stream("stderr"), ex.describe()
    assert kernel.ok('format!("{}", 6 * 7)', timeout=SLOW).result["text/plain"] == '"42"'


def interrupt_while_running(kernel: Kernel, msg_id: str) -> None:
    """The cell is still running and the kernel answers on control meanwhile; an interrupt
    ends it at once, and nothing of the worker's process group is left: no live lakebook-rust
    (the worker, or the runtime process evcxr runs cells in), no cargo or rustc building in
    this workspace, no zombie under the kernel."""
    assert not kernel.has_reply(msg_id)
    info = kernel.reply(kernel.send("control", "kernel_info_request", {}), timeout=5)
    assert info["content"]["language_info"]["name"] == "rust"
    sent = time.monotonic()
    kernel.send("control", "interrupt_request", {})
    reply = kernel.reply(msg_id, timeout=10)
    assert time.monotonic() - sent < 3.0
    assert reply["content"]["ename"] == "KeyboardInterrupt", reply
    time.sleep(0.5)
    home = str(kernel.home)
    live = [line for line in os.popen("ps -eo stat=,args=").read().splitlines() if not line.startswith("Z") and ("lakebook-rust" in line or home in line)]
    assert live == [], live


def test_interrupt_kills_the_running_cell_and_the_kernel_goes_on(kernel: Kernel) -> None:
    worker()
    kernel.ok("let kept: i32 = 5;", timeout=SLOW)
    msg_id = kernel.execute_async('println!("looping");\nloop { std::thread::sleep(std::time::Duration::from_millis(20)); }')
    kernel.wait_for(lambda: any(m["msg_type"] == "stream" and "looping" in m["content"]["text"] for m in kernel.messages(msg_id, "iopub")), SLOW, "the loop to start")
    interrupt_while_running(kernel, msg_id)
    assert "lakebook-rust" not in os.popen(f"ps -o args= --ppid {kernel.pid}").read()
    assert kernel.ok("%clock").result["text/plain"], "magics work at once"
    ex = kernel.ok("3 * 3", timeout=SLOW)
    assert ex.result["text/plain"] == "9", ex.describe()
    assert "variables from earlier cells are gone" in ex.stream("stderr"), ex.describe()
    kernel.failing("kept", "CompileError", timeout=SLOW)


def test_a_workspace_reset_starts_rust_cells_afresh(kernel: Kernel) -> None:
    """A reset deletes the worker's build directory and the bridge crate: the worker goes with
    them (at once, not at the next cell), and the next Rust cell works in a new one."""
    worker()
    kernel.ok("let before: i32 = 5;", timeout=SLOW)
    assert "lakebook-rust" in os.popen(f"ps -o args= --ppid {kernel.pid}").read()
    kernel.ok("%workspace reset --yes")
    time.sleep(0.5)
    assert "lakebook-rust" not in os.popen(f"ps -o args= --ppid {kernel.pid}").read()
    ex = kernel.ok('let after: i32 = 6;\nafter * 7', timeout=SLOW)
    assert ex.result["text/plain"] == "42", ex.describe()
    kernel.failing("before", "CompileError", timeout=SLOW)


def test_magic_lines_above_rust_run_first(kernel: Kernel) -> None:
    worker()
    ex = kernel.ok("%clock manual --at 2026-01-01T00:00:00Z\n%clock\nlet s = 2 + 3;\ns", timeout=SLOW)
    assert ex.result["text/plain"] == "5", ex.describe()
    shown = [m["content"]["data"]["text/plain"] for m in ex.of_type("display_data")]
    assert "2026-01-01T00:00:00Z (manual)" in shown, ex.describe()


def test_without_the_worker_plain_cells_say_how_to_get_it(start_kernel, tmp_path: Path) -> None:
    kernel = start_kernel(env={"LAKEBOOK_RUST_WORKER": str(tmp_path / "no-such-worker")})
    ex = kernel.failing('println!("hi");', "RustWorkerMissing")
    assert "install/setup.sh" in "\n".join(ex.content["traceback"]), ex.describe()
    kernel.ok("%lake mb s3://still-works")


def _complete(kernel: Kernel, code: str, cursor_pos: int | None = None) -> dict:
    cursor = len(code) if cursor_pos is None else cursor_pos
    reply, _ = kernel.request("shell", "complete_request", {"code": code, "cursor_pos": cursor}, timeout=SLOW)
    content = reply["content"]
    assert content["status"] == "ok", content
    return content


def test_completion_and_inspection_of_rust_see_earlier_cells(kernel: Kernel) -> None:
    worker()
    kernel.ok("let numbers: Vec<i32> = vec![1, 2, 3];\nfn triple(x: i32) -> i32 { x * 3 }", timeout=SLOW)
    # a method of a variable from an earlier cell, below a magic line (positions in code points)
    code = "%clock\n// é\nnumbers.le"
    c = _complete(kernel, code)
    assert any(m.startswith("len") for m in c["matches"]), c
    assert c["cursor_start"] == len("%clock\n// é\nnumbers."), c
    assert c["cursor_end"] == len(code), c
    types = {t["text"]: t["type"] for t in c["metadata"]["_jupyter_types_experimental"]}
    assert all(kind == "rust" for kind in types.values()), types
    # a function of an earlier cell, the cursor mid-cell
    code = "let t = tri\nlet u = 1;"
    c = _complete(kernel, code, cursor_pos=len("let t = tri"))
    assert any(m.startswith("triple") for m in c["matches"]), c
    assert (c["cursor_start"], c["cursor_end"]) == (len("let t = "), len("let t = tri")), c
    # magic names still complete on a magic line of the same cell
    assert "%clock" in _complete(kernel, "%clo")["matches"]
    # Shift-Tab on a std method: its signature and docs
    reply, _ = kernel.request("shell", "inspect_request", {"code": "numbers.len()", "cursor_pos": len("numbers.le"), "detail_level": 0}, timeout=SLOW)
    content = reply["content"]
    assert content["status"] == "ok" and content["found"] is True, content
    assert "fn len" in content["data"]["text/plain"], content
    assert "<" in content["data"]["text/html"], content
    reply, _ = kernel.request("shell", "inspect_request", {"code": "triple", "cursor_pos": 3, "detail_level": 0}, timeout=SLOW)
    assert "fn triple(x: i32) -> i32" in reply["content"]["data"]["text/plain"], reply["content"]
    # the variables survive the assists
    assert kernel.ok("triple(numbers.len() as i32)", timeout=SLOW).result["text/plain"] == "9"


def test_evcxr_commands_and_rich_output(kernel: Kernel) -> None:
    worker()
    kernel.ok("let kept: Vec<i32> = vec![4, 5];", timeout=SLOW)
    ex = kernel.ok(":vars", timeout=SLOW)
    shown = ex.stream("stdout") + "".join(m["content"]["data"].get("text/plain", "") for m in ex.of_type("execute_result"))
    assert "kept" in shown and "Vec<i32>" in shown, ex.describe()
    # a value with evcxr_display is shown as its richest form
    kernel.ok('struct Bold(&\'static str);\nimpl Bold {\n    fn evcxr_display(&self) {\n        println!("EVCXR_BEGIN_CONTENT text/html\\n<b>{}</b>\\nEVCXR_END_CONTENT", self.0);\n    }\n}', timeout=SLOW)
    ex = kernel.ok('Bold("rich")', timeout=SLOW)
    assert ex.result.get("text/html") == "<b>rich</b>", ex.describe()
    # JSON mime types (a Plotly figure, say) arrive as JSON, not as text
    kernel.ok('struct Figure;\nimpl Figure {\n    fn evcxr_display(&self) {\n        println!("EVCXR_BEGIN_CONTENT application/vnd.plotly.v1+json\\n{{\\"data\\": [{{\\"y\\": [1, 2]}}]}}\\nEVCXR_END_CONTENT");\n    }\n}', timeout=SLOW)
    ex = kernel.ok("Figure", timeout=SLOW)
    assert ex.result.get("application/vnd.plotly.v1+json") == {"data": [{"y": [1, 2]}]}, ex.describe()
    ex = kernel.failing(":nosuchcommand", "CompileError", timeout=SLOW)
    assert "Unrecognised command :nosuchcommand" in ex.content["evalue"], ex.describe()


@pytest.mark.timeout(900)
def test_a_dependency_compiles_with_a_progress_display(kernel: Kernel) -> None:
    """`:dep` fetches a crate from the registry and cargo builds it: one progress display
    updated in place, then a one-line summary; the crate is usable in the next cell."""
    worker()
    ex = kernel.ok(':dep itoa = "1"\nlet mut buffer = itoa::Buffer::new();\nbuffer.format(1234567).to_string()', timeout=600)
    assert ex.result["text/plain"] == '"1234567"', ex.describe()
    progress = [m for m in ex.outputs if m["msg_type"] in ("display_data", "update_display_data")]
    texts = [m["content"]["data"]["text/plain"] for m in progress]
    assert any(t.startswith("Compiling dependencies: itoa v1.") for t in texts), ex.describe()
    shown = "\n".join(texts) + ex.stream("stdout")
    assert "Compiled 1 dependency crate in" in shown, ex.describe()
    assert "Compiling" not in ex.stream("stderr"), ex.describe()
    ex = kernel.ok("itoa::Buffer::new().format(-5).len()", timeout=SLOW)
    assert ex.result["text/plain"] == "2", ex.describe()


@pytest.mark.timeout(900)
def test_interrupt_while_a_dependency_compiles(kernel: Kernel) -> None:
    worker()
    msg_id = kernel.execute_async(':dep regex = { version = "1", default-features = false, features = ["std", "unicode"] }\nregex::Regex::new("a+").unwrap().is_match("caab")')
    kernel.wait_for(
        lambda: any(m["msg_type"] in ("display_data", "update_display_data") and "Compiling dependencies" in m["content"]["data"].get("text/plain", "") for m in kernel.messages(msg_id, "iopub")),
        600, "cargo to start compiling",
    )
    interrupt_while_running(kernel, msg_id)
    assert kernel.ok("%clock").result["text/plain"], "magics work at once"
    assert kernel.ok("2 + 2", timeout=SLOW).result["text/plain"] == "4"


# Every Arrow type the engine's SQL produces, as one row each way.
TYPED = (
    "SELECT CAST(1 AS INT) AS id, CAST(9000000000 AS BIGINT) AS big, 2.5 AS dbl, CAST(12.34 AS DECIMAL(10, 2)) AS price,"
    " 'plain' AS s, arrow_cast('view', 'Utf8View') AS v, arrow_cast('cat', 'Dictionary(Int32, Utf8)') AS d,"
    " true AS flag, DATE '2026-03-01' AS day, TIMESTAMP '2026-03-01 12:34:56' AS ts,"
    " arrow_cast(TIMESTAMP '2026-03-01 12:34:56', 'Timestamp(Microsecond, Some(\"UTC\"))') AS tz,"
    " make_array(1, 2, 3) AS list, named_struct('a', 1, 'b', 'x') AS rec"
)


@pytest.mark.timeout(2400)
def test_the_bridge_moves_rows_between_sql_polars_the_lake_and_streams(kernel: Kernel) -> None:
    """`lakebook::table` / `sql` give Polars DataFrames, `put_table` writes one back as a lake
    table, `put_records` puts to a stream. The first use builds Polars (cached after)."""
    worker()
    kernel.ok(f"%sql --output typed {TYPED}", timeout=SLOW)
    ex = kernel.ok('let df = lakebook::table("typed").unwrap();\nformat!("{:?}", df.dtypes())', timeout=1800)
    dtypes = ex.result["text/plain"]
    # What Polars makes of them, by design: views → String, dictionary → Categorical.
    for expected in ("Int32", "Int64", "Float64", "Decimal(", "String", "Categorical", "Boolean", "Date", "Datetime(", "UTC", "List(", "Struct("):
        assert expected in dtypes, dtypes
    assert "View" not in dtypes and "Dictionary" not in dtypes, dtypes
    # back into the lake as a table, then the same rows through SQL
    ex = kernel.ok('let mut copy = df.clone();\nlakebook::put_table("default.typed_copy", &mut copy).unwrap()', timeout=SLOW)
    assert ex.result["text/plain"] == "1", ex.describe()
    cols = "id, big, dbl, price, s, CAST(v AS VARCHAR) AS v, CAST(d AS VARCHAR) AS d, flag, day, ts, tz, list, rec"
    original = kernel.ok(f"%sql SELECT {cols} FROM typed", timeout=SLOW).result["text/plain"]
    copied = kernel.ok(f"%sql SELECT {cols} FROM default.typed_copy", timeout=SLOW).result["text/plain"]
    assert original.splitlines()[:-1] == copied.splitlines()[:-1], (original, copied)
    assert "typed_copy" in kernel.ok("%catalog tables default").result["text/plain"]
    # a query from Rust, Polars doing the arithmetic
    ex = kernel.ok('let n = lakebook::sql("SELECT id * 10 AS x FROM default.typed_copy").unwrap();\nn.column("x").unwrap().i64().unwrap().get(0).unwrap()', timeout=SLOW)
    assert ex.result["text/plain"] == "10", ex.describe()
    # errors are the service's, and the kernel goes on
    ex = kernel.ok('format!("{}", lakebook::sql("SELECT * FROM nowhere.nothing").unwrap_err())', timeout=SLOW)
    assert ex.result["text/plain"].startswith('"EntityNotFoundException') or "not found" in ex.result["text/plain"].lower(), ex.describe()
    ex = kernel.ok('format!("{}", lakebook::put_table("default.typed_copy", &mut copy).unwrap_err())', timeout=SLOW)
    assert "AlreadyExists" in ex.result["text/plain"], ex.describe()
    # records to a stream
    kernel.ok("%stream create clicks --shards 1")
    ex = kernel.ok('use lakebook::serde_json::json;\nlet report = lakebook::put_records("clicks", (0..25).map(|i| json!({"n": i}))).unwrap();\n(report.stored, report.failed)', timeout=SLOW)
    assert ex.result["text/plain"] == "(25, 0)", ex.describe()
    read = kernel.ok("%stream read clicks", timeout=SLOW)
    text = read.result["text/plain"]
    assert '{"n":0}' in text and '{"n":24}' in text, read.describe()
