"""The layout stays readable: no import cycle anywhere, and the folders form strict layers.

Every import statement counts, at module level or inside a function or an
`if TYPE_CHECKING:` block, so a cycle cannot hide behind a late import. Layers (DESIGN.md):
core <- config <- strategy, storage <- broker, supervision, observability.py <- runtime,
scanner <- exits, entries, operations, backtest <- the process modules <- scripts/. A folder
imports only folders below it; folders on the same layer never import each other.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import PROJECT_ROOT

PROCESS_MODULES = ("supervisor", "exit_manager", "day_trader")
TOP_LEVEL = (*PROCESS_MODULES, "observability")

# Rank of each room; an import must go to a strictly lower rank (or stay in its room).
DAYTRADING_LAYERS: dict[str, int] = {
    "daytrading.core": 0,
    "daytrading.config": 1,
    "daytrading.strategy": 2,
    "daytrading.storage": 2,
    "daytrading.broker": 3,
    "daytrading.supervision": 3,
    "observability": 3,
    "daytrading.runtime": 4,
    "daytrading.scanner": 4,
    "daytrading.exits": 5,
    "daytrading.entries": 5,
    "daytrading.operations": 5,
    "daytrading.backtest": 5,
    **{name: 6 for name in PROCESS_MODULES},
    "scripts": 7,
}

# ibsim is its own package: it imports nothing of the suite, and its rooms are layered too.
# Two stacks that meet only in the shared model and at the root: market <- engine, and
# wire <- gateway (which sees the engine only through model.Engine).
IBSIM_LAYERS: dict[str, int] = {
    "ibsim.model": 0,
    "ibsim.ctl": 0,
    "ibsim.market": 1,
    "ibsim.wire": 1,
    "ibsim.engine": 2,
    "ibsim.gateway": 3,
    "ibsim.cli": 4,
    "ibsim.testing": 5,
    "ibsim.__main__": 5,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in ("daytrading", "ibsim", "scripts"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    for name in TOP_LEVEL:
        found[name] = PROJECT_ROOT / f"{name}.py"
    return found


SOURCES = _sources()


def _imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(module imported, line) for every import statement in the file, wherever it sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _known(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".") if is_package else module.split(".")[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in SOURCES else _known(base)), node.lineno


def _known(name: str) -> str:
    """The longest prefix of `name` that is one of our modules ('' for outside code)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in SOURCES:
            return candidate
        parts.pop()
    return ""


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for module, path in SOURCES.items():
        edges: dict[str, int] = {}
        for target, line in _imported(module, path):
            if target and target != module and not module.startswith(f"{target}."):
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _room(module: str, layers: dict[str, int]) -> str | None:
    best = None
    for room in layers:
        if (module == room or module.startswith(f"{room}.")) and (best is None or len(room) > len(best)):
            best = room
    return best


@pytest.mark.parametrize("package", ["suite", "ibsim"])
def test_no_import_cycle_between_modules(package: str) -> None:
    graph = {m: set(edges) for m, edges in GRAPH.items() if m.startswith("ibsim") == (package == "ibsim")}
    cycles = _cycles(graph)
    assert not cycles, "import cycles (every import counts, late ones too):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("layers", [DAYTRADING_LAYERS, IBSIM_LAYERS], ids=["suite", "ibsim"])
def test_rooms_import_only_rooms_below_them(layers: dict[str, int]) -> None:
    wrong = []
    for module, edges in GRAPH.items():
        room = _room(module, layers)
        if room is None:
            continue
        for target, line in edges.items():
            target_room = _room(target, layers)
            if target_room is None or target_room == room:
                continue
            if layers[target_room] >= layers[room]:
                wrong.append(f"{SOURCES[module].relative_to(PROJECT_ROOT)}:{line} imports "
                             f"{target} ({room} is layer {layers[room]}, {target_room} is "
                             f"layer {layers[target_room]})")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_every_suite_module_sits_in_a_room() -> None:
    """A new top-level module in daytrading/ would belong to no layer: give it a folder."""
    loose = [m for m in SOURCES if m.startswith("daytrading.") and m.count(".") == 1
             and m.split(".")[1] not in {r.split(".")[1] for r in DAYTRADING_LAYERS
                                         if r.startswith("daytrading.")}]
    assert not loose, f"modules outside every folder of the layout: {loose}"


def test_ibsim_imports_nothing_of_the_suite() -> None:
    suite = ("daytrading", *TOP_LEVEL, "scripts")
    wrong = [f"{m} imports {t}" for m, edges in GRAPH.items() if m.startswith("ibsim")
             for t in edges if t.split(".")[0] in suite]
    assert not wrong, wrong


def test_tests_mirror_the_code_tree() -> None:
    """Each folder of tests/ is the test side of a folder of the code (or shared test
    support), and no test module name appears twice."""
    support = {"fakes", "docs", "scripts", "observability"}  # observability.py, docs/, scripts/
    code_dirs = {p.relative_to(PROJECT_ROOT / "daytrading").as_posix()
                 for p in (PROJECT_ROOT / "daytrading").rglob("*") if p.is_dir()}
    code_dirs |= {"ibsim/" + p.relative_to(PROJECT_ROOT / "ibsim").as_posix()
                  for p in (PROJECT_ROOT / "ibsim").rglob("*") if p.is_dir()}
    code_dirs.add("ibsim")
    strays = []
    for folder in (PROJECT_ROOT / "tests").rglob("*"):
        if not folder.is_dir() or folder.name == "__pycache__":
            continue
        relative = folder.relative_to(PROJECT_ROOT / "tests").as_posix()
        if relative.split("/")[0] in support:
            continue
        if relative not in code_dirs:
            strays.append(relative)
    assert not strays, f"test folders with no code folder of the same name: {strays}"
    names = Counter(p.name for p in (PROJECT_ROOT / "tests").rglob("test_*.py"))
    twice = sorted(name for name, count in names.items() if count > 1)
    assert not twice, f"test module names used twice: {twice}"


def _importers_of(prefix: str) -> dict[str, list[str]]:
    """Every project module that imports `prefix` (a module or package of ours or outside)."""
    found: dict[str, list[str]] = {}
    for module, path in SOURCES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == prefix or n.startswith(f"{prefix}.") for n in names):
                found.setdefault(module, []).append(f"line {node.lineno}")
    return found


def test_the_database_is_reached_only_through_observability() -> None:
    outside = [m for m in _importers_of("daytrading.storage")
               if m != "observability" and not m.startswith("daytrading.storage")]
    assert not outside, f"modules importing daytrading.storage directly: {outside}"


@pytest.mark.parametrize("library", ["ib_insync", "ib_async"])
def test_only_the_broker_adapter_imports_the_ib_client_library(library: str) -> None:
    outside = [m for m in _importers_of(library) if not m.startswith("daytrading.broker")]
    assert not outside, f"modules importing {library} outside daytrading/broker: {outside}"
