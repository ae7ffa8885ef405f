"""Lakebook in a Jupyter people already have (#24, README "Install into an existing Jupyter"):
a plain venv with only jupyter_client and nbconvert, the already built binary put where
`cargo install --root R` puts it (R/bin), its kernelspec written with `lakebook install
--sys-prefix`, a notebook run there by nbconvert, then `lakebook uninstall`. The plain venv is
made once and cached under $LAKEBOOK_CACHE; nothing is built a second time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from kernel_harness import cache_dir, require_binary

PLAIN_REQUIREMENTS = ["jupyter_client>=8.0", "nbconvert>=7.0"]


def plain_venv() -> Path:
    venv = cache_dir() / "venv-plain"
    stamp = venv / ".lakebook-requirements"
    wanted = "\n".join(PLAIN_REQUIREMENTS)
    if not (stamp.is_file() and stamp.read_text() == wanted and (venv / "bin" / "jupyter-nbconvert").exists()):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PLAIN_REQUIREMENTS], check=True, timeout=600)
        stamp.write_text(wanted)
    return venv


def test_install_run_and_uninstall_in_a_plain_venv(tmp_path: Path) -> None:
    venv = plain_venv()
    root = tmp_path / "cargo-root"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "lakebook"
    shutil.copy2(require_binary(), exe)
    home = tmp_path / "home"
    home.mkdir()
    # Only the plain venv and the installed binary: no JUPYTER_PATH pointing at the test venv.
    env = {
        "PATH": os.pathsep.join([str(root / "bin"), str(venv / "bin"), "/usr/bin", "/bin"]),
        "VIRTUAL_ENV": str(venv),
        "HOME": str(home),
        "LAKEBOOK_HOME": str(tmp_path / "workspace"),
        "LANG": "C.UTF-8",
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(list(args), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert not check or out.returncode == 0, f"{args}: {out.stdout}\n{out.stderr}"
        return out

    assert run("lakebook", "--version").stdout.startswith("lakebook ")
    installed = run("lakebook", "install", "--sys-prefix")
    spec_dir = venv / "share" / "jupyter" / "kernels" / "lakebook"
    assert str(spec_dir) in installed.stdout
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["argv"][0] == str(exe), "the kernelspec starts the installed binary"
    listed = json.loads(run("jupyter", "kernelspec", "list", "--json").stdout)["kernelspecs"]
    assert Path(listed["lakebook"]["resource_dir"]) == spec_dir

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "lakebook", "display_name": "Lakebook", "language": "rust"}
    nb.cells = [
        nbformat.v4.new_code_cell("%lake mb s3://demo"),
        nbformat.v4.new_code_cell("%%lake put s3://demo/a.csv\nx,y\n1,2"),
        nbformat.v4.new_code_cell("%sql SELECT 40 + 2 AS answer"),
    ]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    run("jupyter", "nbconvert", "--to", "notebook", "--execute", "nb.ipynb", "--output", "out.ipynb")
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.metadata["language_info"]["name"] == "rust", out.metadata
    answer = out.cells[2].outputs[0]["data"]["text/plain"]
    assert "answer" in answer and "42" in answer, answer

    removed = run("lakebook", "uninstall", "--sys-prefix")
    assert str(spec_dir) in removed.stdout
    assert not spec_dir.exists()
    assert "lakebook" not in json.loads(run("jupyter", "kernelspec", "list", "--json").stdout)["kernelspecs"]
    again = run("lakebook", "uninstall", "--sys-prefix", check=False)
    assert again.returncode == 1 and "no kernelspec lakebook" in again.stderr, again.stderr
