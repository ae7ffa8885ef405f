"""Plain cells are Rust: evcxr in the `lakebook-rust` worker (rust/, built by install/setup.sh
into $LAKEBOOK_CACHE/rust-target), started on the first plain cell. Through the kernel:
expression values, println!/eprintln! output, compile errors pointing at the cell's line, a
panic then a working cell, variables across cells, an interrupt that kills the worker's
process group (the kernel goes on, the next cell says the variables are gone), magics stacked
above Rust, and a clear error when the worker is not built."""

from __future__ import annotations

import os
import time
from pathlib import Path

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


def test_interrupt_kills_the_running_cell_and_the_kernel_goes_on(kernel: Kernel) -> None:
    worker()
    kernel.ok("let kept: i32 = 5;", timeout=SLOW)
    msg_id = kernel.execute_async('println!("looping");\nloop { std::thread::sleep(std::time::Duration::from_millis(20)); }')
    kernel.wait_for(lambda: any(m["msg_type"] == "stream" and "looping" in m["content"]["text"] for m in kernel.messages(msg_id, "iopub")), SLOW, "the loop to start")
    assert not kernel.has_reply(msg_id)
    # the kernel answers on its control channel while the cell runs
    info = kernel.reply(kernel.send("control", "kernel_info_request", {}), timeout=5)
    assert info["content"]["language_info"]["name"] == "rust"
    sent = time.monotonic()
    kernel.send("control", "interrupt_request", {})
    reply = kernel.reply(msg_id, timeout=10)
    assert time.monotonic() - sent < 3.0
    assert reply["content"]["ename"] == "KeyboardInterrupt", reply
    # the worker's whole process group is gone: no live lakebook-rust (the worker, or the
    # runtime process evcxr runs cells in) and no zombie left under the kernel
    time.sleep(0.5)
    live = [line for line in os.popen("ps -eo stat=,args=").read().splitlines() if "lakebook-rust" in line and not line.startswith("Z")]
    assert live == [], live
    assert "lakebook-rust" not in os.popen(f"ps -o args= --ppid {kernel.pid}").read()
    assert kernel.ok("%clock").result["text/plain"], "magics work at once"
    ex = kernel.ok("3 * 3", timeout=SLOW)
    assert ex.result["text/plain"] == "9", ex.describe()
    assert "variables from earlier cells are gone" in ex.stream("stderr"), ex.describe()
    kernel.failing("kept", "CompileError", timeout=SLOW)


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
