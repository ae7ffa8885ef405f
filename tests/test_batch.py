"""Headless runs: papermill injects parameters as `%set` lines (install/papermill-lakebook)
and the notebook uses them as ${NAME}; papermill and nbconvert exit non-zero at the first
error cell that is not tagged `raises-exception`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
from kernel_harness import KERNEL_NAME
from nbformat.v4 import new_code_cell, new_notebook

BIN = Path(sys.executable).parent


def notebook(path: Path, *cells) -> Path:
    nb = new_notebook(cells=list(cells), metadata={"kernelspec": {"name": KERNEL_NAME, "display_name": "Lakebook", "language": "rust"}})
    nbformat.write(nb, path)
    return path


def test_papermill_injects_set_lines(tmp_path: Path, kernelspec, monkeypatch) -> None:
    monkeypatch.setenv("LAKEBOOK_HOME", str(tmp_path / "home"))
    params = new_code_cell("%set day 2026-01-01\n%set title 'first day'")
    params.metadata["tags"] = ["parameters"]
    source = notebook(tmp_path / "in.ipynb", params, new_code_cell("%set title"), new_code_cell("%sql SELECT '${day}' AS day, ${n} AS n"))
    out = tmp_path / "out.ipynb"
    run = subprocess.run(
        [BIN / "papermill", source, out, "-p", "day", "2026-01-02", "-p", "title", "it's day two", "-p", "n", "3", "--cwd", tmp_path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    nb = nbformat.read(out, as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert injected.source.splitlines() == ["# Parameters", "%set day 2026-01-02", "%set title 'it'\"'\"'s day two'", "%set n 3"], injected.source
    assert nb.cells[-2].outputs[0]["text"] == "title = it's day two\n", nb.cells[-2].outputs
    shown = nb.cells[-1].outputs[0]["data"]["text/plain"]
    assert re.search(r"│ 2026-01-02 ┆ 3\s+│", shown), shown


def test_batch_runs_stop_at_an_untagged_error(tmp_path: Path, kernelspec, monkeypatch) -> None:
    monkeypatch.setenv("LAKEBOOK_HOME", str(tmp_path / "home"))
    taught = new_code_cell("%lake cat s3://nobucket/x")
    taught.metadata["tags"] = ["raises-exception"]
    ok = notebook(tmp_path / "ok.ipynb", new_code_cell("%clock"))
    taught_nb = notebook(tmp_path / "taught.ipynb", taught, new_code_cell("%clock"))
    allowed = notebook(tmp_path / "allowed.ipynb", new_code_cell("%%lakebook-allow-error\n%lake cat s3://nobucket/x"), new_code_cell("%clock"))
    bad = notebook(tmp_path / "bad.ipynb", new_code_cell("%lake cat s3://nobucket/x"), new_code_cell("%clock"))
    # nbconvert lets a `raises-exception` cell fail; papermill 2.7 stops at any error output,
    # so teaching cells for papermill use %%lakebook-allow-error
    for tool, passing in (
        (["papermill", "{nb}", "{out}"], (ok, allowed)),
        (["jupyter", "nbconvert", "--to", "html", "--execute", "{nb}", "--output-dir", str(tmp_path / "html")], (ok, taught_nb, allowed)),
    ):
        results = {}
        for path in (*passing, bad):
            argv = [str(BIN / tool[0])] + [a.format(nb=path, out=tmp_path / f"out-{path.name}") for a in tool[1:]]
            results[path.name] = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        for path in passing:
            assert results[path.name].returncode == 0, (tool[0], path.name, results[path.name].stderr[-2000:])
        assert results["bad.ipynb"].returncode != 0 and "NoSuchBucket" in results["bad.ipynb"].stderr, (tool[0], results["bad.ipynb"].stderr[-2000:])
    shown = nbformat.read(tmp_path / "out-allowed.ipynb", as_version=4).cells[0].outputs
    assert [o.output_type for o in shown] == ["stream"] and shown[0].name == "stderr" and "NoSuchBucket" in shown[0].text, shown


def test_allow_error_shows_the_error_and_succeeds(kernel) -> None:
    ran = kernel.ok("%%lakebook-allow-error\n%lake mb s3://demo\n%lake cat s3://demo/missing")
    assert ran.stream() == "make_bucket: demo\n" and "NoSuchKey" in ran.stream("stderr"), ran.describe()
    assert "demo" in kernel.ok("%lake ls").result["text/plain"]  # the lines before the error ran
    kernel.failing("%lakebook-allow-error", "UsageError")
    kernel.failing("%%lakebook-allow-error now\n%clock", "UsageError")
    assert "%%lakebook-allow-error" in kernel.ok("%lsmagic").result["text/plain"]
