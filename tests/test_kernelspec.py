"""The command line and the kernelspec (docs/kernel-behaviour.md, "Command line"), and the
kernel driven the way front ends drive it: jupyter_client's KernelManager on the installed
kernelspec (interrupt_mode "message", graceful shutdown)."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import time
from pathlib import Path

from jupyter_client.manager import KernelManager
from kernel_harness import KERNEL_NAME, REPO, require_binary

ASSETS = REPO / "kernel" / "assets"
LOGOS = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg")


def run_lakebook(*args: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    return subprocess.run(
        [str(require_binary()), *args], env=full_env, capture_output=True, text=True, timeout=30
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_repo_logos() -> None:
    assert png_size((ASSETS / "logo-32x32.png").read_bytes()) == (32, 32)
    assert png_size((ASSETS / "logo-64x64.png").read_bytes()) == (64, 64)
    assert (ASSETS / "logo-svg.svg").read_text().lstrip().startswith("<svg")


def test_version() -> None:
    out = run_lakebook("--version")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"lakebook \d+\.\d+\.\d+\S*\n?", out.stdout), out.stdout


def _check_spec_dir(spec_dir: Path) -> None:
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["display_name"] == "Lakebook"
    assert spec["language"] == "rust"
    assert spec["interrupt_mode"] == "message"
    assert Path(spec["argv"][0]).resolve() == require_binary().resolve()
    assert spec["argv"][1:] == ["kernel", "--connection-file", "{connection_file}"]
    for logo in LOGOS:
        assert (spec_dir / logo).read_bytes() == (ASSETS / logo).read_bytes(), (
            f"{logo} in the kernelspec differs from kernel/assets/{logo} (binary older than the assets?)"
        )


def test_installed_kernelspec(kernelspec: dict) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    _check_spec_dir(Path(KernelSpecManager().get_kernel_spec(KERNEL_NAME).resource_dir))


def test_install_prefix_and_name(tmp_path: Path) -> None:
    out = run_lakebook("install", "--prefix", str(tmp_path / "p"), "--name", "lakebook-test")
    assert out.returncode == 0, out.stderr
    _check_spec_dir(tmp_path / "p" / "share" / "jupyter" / "kernels" / "lakebook-test")


def test_install_sys_prefix_uses_virtual_env(tmp_path: Path) -> None:
    out = run_lakebook("install", "--sys-prefix", env={"VIRTUAL_ENV": str(tmp_path / "venv")})
    assert out.returncode == 0, out.stderr
    _check_spec_dir(tmp_path / "venv" / "share" / "jupyter" / "kernels" / "lakebook")


def test_install_user(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": None, "JUPYTER_DATA_DIR": None}
    out = run_lakebook("install", "--user", env=env)
    assert out.returncode == 0, out.stderr
    _check_spec_dir(tmp_path / ".local" / "share" / "jupyter" / "kernels" / "lakebook")


def test_kernel_manager_interrupt_and_shutdown(kernelspec: dict, tmp_path: Path) -> None:
    km = KernelManager(kernel_name=KERNEL_NAME)
    env = {**os.environ, "LAKEBOOK_HOME": str(tmp_path / "home")}
    km.start_kernel(cwd=str(tmp_path), env=env)
    kc = km.client()
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        assert kc.execute_interactive("%clock system", timeout=15)["content"]["status"] == "ok"

        msg_id = kc.execute("%clock wait 60s")
        time.sleep(0.5)
        sent = time.monotonic()
        km.interrupt_kernel()  # interrupt_mode "message": an interrupt_request on control
        reply = kc.get_shell_msg(timeout=2)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert time.monotonic() - sent < 2
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert km.is_alive()

        assert kc.execute_interactive("%clock", timeout=15)["content"]["status"] == "ok"

        proc = km.provisioner.process  # type: ignore[union-attr]
        started = time.monotonic()
        km.shutdown_kernel(now=False)  # shutdown_request, then waits for the process to exit
        assert time.monotonic() - started < 2.5
        assert proc.poll() is not None
        assert proc.returncode == 0, f"kernel exit status {proc.returncode}"
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def test_ipc_transport(kernelspec: dict, tmp_path: Path, monkeypatch) -> None:
    """The connection file may name ipc sockets instead of tcp ports."""
    monkeypatch.setenv("LAKEBOOK_HOME", str(tmp_path / "home"))
    km = KernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=str(tmp_path / "kernel-ipc"))
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        assert json.loads(Path(km.connection_file).read_text())["transport"] == "ipc"
        results = []
        reply = kc.execute_interactive(
            "%clock manual --at 2026-01-01T00:00:00Z\n%clock",
            timeout=30,
            output_hook=lambda m: results.append(m) if m["msg_type"] == "execute_result" else None,
        )
        assert reply["content"]["status"] == "ok"
        assert results[0]["content"]["data"]["text/plain"] == "2026-01-01T00:00:00Z (manual)"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert not km.is_alive()
