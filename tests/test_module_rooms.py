"""The kernel's rooms (top-level modules of kernel/src) import each other without cycles, so a
change in one room does not ripple back through the others. Read from the `crate::…` paths in
the code (comments left out). Magics get a context of their own (`magics::Ctx`: the
workspace, their state, the output) and never name the session that runs them."""

from __future__ import annotations

import re
from pathlib import Path

from kernel_harness import REPO

SRC = REPO / "kernel" / "src"


def room(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0] if len(rel.parts) > 1 or rel.parts[0] not in ("lib", "main") else "<root>"


def imports() -> dict[str, set[str]]:
    rooms = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.suffix == ".rs" or p.is_dir()}
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.rs"):
        src = room(path)
        code = "\n".join("" if line.strip().startswith("//") else line for line in path.read_text().splitlines())
        for target in re.findall(r"\bcrate::([a-z_]+)", code):
            if target != src and target in rooms:
                edges.setdefault(src, set()).add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                found.append(path + [start])
            elif nxt not in path and nxt > start:
                walk(start, nxt, path + [nxt])

    for start in sorted(edges):
        walk(start, start, [start])
    return found


def test_no_import_cycles_among_kernel_rooms() -> None:
    bad = cycles(imports())
    assert not bad, "import cycles among kernel modules:\n" + "\n".join(" -> ".join(c) for c in bad)


def test_the_server_knows_nothing_of_cells() -> None:
    edges = imports()
    assert edges.get("server", set()) <= set(), f"server/ imports {edges.get('server')}: only kernel.rs wires it to the dispatcher"
    assert "session" not in edges.get("render", set()) and "output" not in edges.get("render", set())


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_room_grows_past_800_lines() -> None:
    """Files past 800 lines are where every change has to pass (#23): split them by concern,
    as emr/streaming/, firehose/ and streams/ are. The session keeps cell execution only."""
    big = []
    for root in (SRC, REPO / "engine" / "src"):
        for path in root.rglob("*.rs"):
            n = len(path.read_text().splitlines())
            if n > 800:
                big.append(f"{path.relative_to(REPO)}: {n} lines")
    assert not big, "split these by concern:\n" + "\n".join(big)
    session = len((SRC / "session" / "mod.rs").read_text().splitlines())
    assert session < 250, f"session/mod.rs has {session} lines: completion and inspection live in session/assist.rs"
