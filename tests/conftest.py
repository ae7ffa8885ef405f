"""Fixtures for the kernel tests (run through tests/run.sh, or `.venv/bin/python -m pytest tests/`).

Every test gets its own LAKEBOOK_HOME (a tmp dir) and every kernel a test starts is stopped
at teardown; the kernel's stderr log is printed then, so a failing test shows it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel_harness import Kernel, check_kernelspec, prefer_venv_kernelspecs  # noqa: E402

prefer_venv_kernelspecs()


@pytest.fixture(scope="session")
def kernelspec() -> dict:
    """The installed 'lakebook' kernelspec; fails (never skips) if it is missing or stale."""
    return check_kernelspec()


@pytest.fixture
def lake_home(tmp_path: Path) -> Path:
    """A fresh, empty workspace (LAKEBOOK_HOME) for this test; fill it before starting a kernel."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def kernel_cwd(tmp_path: Path) -> Path:
    """The kernels' working directory (local paths in `%lake cp/put --from` resolve here)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd


@pytest.fixture
def start_kernel(tmp_path: Path, lake_home: Path, kernel_cwd: Path) -> Iterator[Callable[..., Kernel]]:
    """start_kernel(home=lake_home, name=...) -> a ready Kernel; all are stopped at teardown."""
    kernels: list[Kernel] = []

    def start(home: Path | None = None, name: str | None = None, **kwargs) -> Kernel:
        name = name or f"kernel{len(kernels)}"
        kernel = Kernel(
            home=home or lake_home,
            cwd=kernel_cwd,
            rundir=tmp_path / "run",
            name=name,
            **kwargs,
        )
        kernels.append(kernel)
        return kernel

    yield start

    for kernel in kernels:
        kernel.stop()
    for kernel in kernels:
        log = kernel.log_text()
        if log.strip():
            print(f"--- {kernel.log_path.name} (pid {kernel.pid}) ---\n{log[-6000:]}")


@pytest.fixture
def kernel(start_kernel: Callable[..., Kernel]) -> Kernel:
    """A running kernel on a fresh, empty workspace."""
    return start_kernel()


def pytest_terminal_summary(terminalreporter) -> None:
    """How many of the AWS guides' examples ran as documented (tests/test_guide_examples.py)."""
    results = getattr(sys.modules.get("test_guide_examples"), "RESULTS", None)
    if results:
        passed = sum(p for p, _ in results.values())
        total = sum(t for _, t in results.values())
        per_file = ", ".join(f"{name} {p}/{t}" for name, (p, t) in sorted(results.items()))
        terminalreporter.write_line(f"AWS guide examples: {passed} of {total} ran as documented ({per_file})")
