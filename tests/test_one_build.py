"""One build for everything: every cargo command the project documents or runs (benchmarks,
examples, setup) resolves the whole workspace, so it reuses the kernel's compiled DataFusion.
`-p lakebook-engine` would select the engine alone, give shared dependencies other features
(tokio without `net`, serde without `rc` …) and compile DataFusion a second time
(ARCHITECTURE.md, "Build")."""

from __future__ import annotations

import re

from kernel_harness import REPO

PLACES = ["README.md", "ARCHITECTURE.md", "install", "bench", "engine/examples", "kernel/src/bin", "tests/run.sh", ".ci"]
# a cargo invocation that selects one package: `cargo run -p x`, `["cargo", "build", "-p", …]`
ONE_PACKAGE = re.compile(r"""cargo["',\s]+(?:run|build|test)\b[^\n]*?(?:\s|["'])(?:-p|--package)(?:\s|["'])""")


def files():
    for place in PLACES:
        path = REPO / place
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in path.rglob("*") if p.is_file() and p.suffix in {".py", ".rs", ".sh", ".md", ""})


def test_no_documented_cargo_command_selects_one_package() -> None:
    offenders = []
    for path in files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if ONE_PACKAGE.search(line) and "leaves the kernel out" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "use the workspace-root form (`cargo run --bin bench_… `):\n" + "\n".join(offenders)


def test_the_pattern_catches_both_spellings() -> None:
    assert ONE_PACKAGE.search("cargo run -p lakebook-engine --example bench_streams")
    assert ONE_PACKAGE.search('["cargo", "build", "-q", "-p", "lakebook-engine", "--example", "x"]')
    assert not ONE_PACKAGE.search("cargo run --bin bench_streams -- 100")


def test_benchmarks_are_kernel_binaries_not_engine_examples() -> None:
    """An engine example needs the engine's dev-dependencies and so other features than the
    kernel build: the benchmarks live beside the kernel's own binary."""
    examples = sorted(p.name for p in (REPO / "engine" / "examples").glob("bench_*.rs"))
    assert not examples, f"benchmarks as engine examples: {examples}"
    assert sorted(p.name for p in (REPO / "kernel" / "src" / "bin").glob("bench_*.rs"))
