"""The architecture, checked: imports point one way, nothing imports in a
circle, and only the store (and the edges: CLI, contrib, embedded) speaks psycopg."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "hotmesh_sync"

#: Each module's layer; a module may import only from its own layer or lower ones.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (0, ("errors", "records", "names", "settings", "jsonvalue", "durations", "retry", "log",
         "logging_setup", "payloads", "cron", "schedule_spec", "tracing")),
    (1, ("store", "embedded")),
    (2, ("entity", "workflow", "activity")),
    (3, ("client", "worker", "supervisor", "queues", "schedules")),
    (4, ("memflow",)),
    (5, ("__init__", "serving", "demo", "examples", "cli", "__main__", "contrib",
         "testing", "ui")),
]
#: Who may import psycopg (or psycopg_pool) at all.
PSYCOPG_ALLOWED = ("store", "embedded", "cli", "contrib", "testing")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> tuple[set[str], set[str]]:
    """(modules of this package it imports, other top-level packages it imports),
    counting every import: module level, in functions, and for type checking."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.startswith("hotmesh_sync") else theirs).add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                target = node.module or ""
                if not target.startswith("hotmesh_sync"):
                    theirs.add(target)
                    continue
            else:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                ours.add(submodule if submodule in MODULES else target)
    ours.discard(name)
    return ours, {t.split(".")[0] for t in theirs}


def layer_of(name: str) -> int:
    short = name.removeprefix("hotmesh_sync").lstrip(".") or "__init__"
    top = short.split(".")[0]
    for rank, names in LAYERS:
        if top in names:
            return rank
    raise AssertionError(f"{name} has no layer: add it to LAYERS")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name: str) -> None:
    """cli/contrib → memflow → client, worker → workflow, entity → store → neutral records."""
    mine = layer_of(name)
    upward = sorted(t for t in imports_of(name)[0] if layer_of(t) > mine)
    assert not upward, f"{name} (layer {mine}) imports from higher layers: {upward}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_store_and_the_edges_import_psycopg(name: str) -> None:
    short = name.removeprefix("hotmesh_sync").lstrip(".")
    if short.split(".")[0] in PSYCOPG_ALLOWED:
        return
    assert not imports_of(name)[1] & {"psycopg", "psycopg_pool"}, (
        f"{name} imports psycopg: move that code under store/")


def test_nothing_imports_in_a_circle() -> None:
    graph = {name: imports_of(name)[0] & MODULES.keys() for name in MODULES}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_checks_see_imports() -> None:
    """The walker finds what it must, so the tests above can fail."""
    ours, theirs = imports_of("hotmesh_sync.store.store")
    assert "psycopg" in theirs and "hotmesh_sync.records" in ours
    assert "hotmesh_sync.store.store" in imports_of("hotmesh_sync.worker.worker")[0]
    assert layer_of("hotmesh_sync.worker.worker") > layer_of("hotmesh_sync.store.store")
