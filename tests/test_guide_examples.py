"""The AWS developer guides' own examples (tests/guide_examples/*.toml, format in its
README), each pasted into the magic that runs it and run through the real kernel: one
kernel and workspace per file, examples in file order. An example passes when it runs as
documented and gives the documented result; the number that passed is printed at the end
of the run (conftest's terminal summary)."""

from __future__ import annotations

import gzip
import tomllib
from pathlib import Path
from typing import Any

import pytest
from kernel_harness import REPO, Execution, Kernel, table_rows

EXAMPLES = REPO / "tests" / "guide_examples"
FILES = sorted(EXAMPLES.glob("*.toml"))
# file name -> (examples passed, examples run), for the summary
RESULTS: dict[str, tuple[int, int]] = {}
KEYS = {"name", "page", "setup", "files", "cell", "expect", "expect_error", "check", "rows", "check_expect", "note"}


def load(path: Path) -> list[dict[str, Any]]:
    examples = tomllib.loads(path.read_text())["example"]
    names = [e["name"] for e in examples]
    assert len(names) == len(set(names)), f"{path.name}: example names repeat"
    for e in examples:
        assert set(e) <= KEYS, f"{path.name}: {e['name']} has unknown keys {set(e) - KEYS}"
        assert e["page"].startswith("https://docs.aws.amazon.com/"), f"{e['name']}: the guide page it comes from"
    return examples


def shown(ex: Execution) -> str:
    """What a cell showed as text: stdout, stderr and every display's text/plain."""
    parts = []
    for m in ex.outputs:
        c = m["content"]
        if m["msg_type"] == "stream":
            parts.append(c["text"])
        elif m["msg_type"] in ("display_data", "execute_result"):
            parts.append(c["data"].get("text/plain", "") + "\n")
    return "".join(parts)


def run_example(kernel: Kernel, cwd: Path, example: dict[str, Any]) -> None:
    for f in example.get("files", []):
        data = f["text"].encode()
        (cwd / f["path"]).write_bytes(gzip.compress(data, mtime=0) if f.get("gzip") else data)
    for setup in example.get("setup", []):
        done = kernel.execute(setup.strip(), timeout=120)
        assert done.status == "ok", f"setup cell failed:\n{done.describe()}"
    ex = kernel.execute(example["cell"].strip(), timeout=120)
    if "expect_error" in example:
        assert ex.status == "error" and ex.content["ename"] == example["expect_error"], f"expected {example['expect_error']}:\n{ex.describe()}"
    else:
        assert ex.status == "ok", f"the example failed:\n{ex.describe()}"
    text = shown(ex)
    if not any(k in example for k in ("expect", "expect_error", "rows", "check_expect")):
        # the guide's documented result is "This command produces no output"
        assert text == "", f"the example is documented to print nothing, but showed:\n{text[:3000]}"
    if "check" in example:
        check = kernel.execute(example["check"].strip(), timeout=120)
        assert check.status == "ok", f"check cell failed:\n{check.describe()}"
        if "rows" in example:
            got = table_rows(check.result["text/plain"])
            assert got == example["rows"], f"rows {got} != documented {example['rows']}\n{check.result['text/plain']}"
        for want in example.get("check_expect", []):
            assert want in shown(check), f"{want!r} not in the check's output:\n{shown(check)[:3000]}"
        text += shown(check)
    for want in example.get("expect", []):
        assert want in text, f"{want!r} not in what the example (and its check) showed:\n{text[:3000]}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_guide_examples_run_as_documented(path: Path, start_kernel, kernel_cwd: Path) -> None:
    examples = load(path)
    kernel = start_kernel()
    failures: dict[str, str] = {}
    for example in examples:
        if not kernel.alive():
            failures[example["name"]] = "the kernel died"
            continue
        try:
            run_example(kernel, kernel_cwd, example)
        except AssertionError as e:
            failures[example["name"]] = f"({example['page']}):\n{e}"
    RESULTS[path.name] = (len(examples) - len(failures), len(examples))
    details = "\n\n".join(f"{name} {why}"[:3000] for name, why in failures.items())
    assert not failures, f"{len(failures)} of {len(examples)} examples failed: {', '.join(failures)}\n\n{details}"


def test_there_are_sixty_examples() -> None:
    assert sum(len(load(p)) for p in FILES) >= 60
