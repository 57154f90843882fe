"""The package's layering, read from the source: who may import whom, no circles, a small root.

Every ``import`` and ``from ... import`` in the package counts, wherever it stands (inside a
function, under ``TYPE_CHECKING``): a lazy import still ties two modules together. The rules are
the ones docs/architecture.md draws:

    events   (imports nothing)          models -> errors
    render   -> models                  launch -> render, models (never events)
    ui       -> events                  environment, datasets, jobs, outputs: the outer ring
    run      -> the rings below it      queue, api -> run; cli -> anything; nothing imports cli

``errors``, ``_version`` and ``_fs`` (the atomic writer) are the foundation every room may use.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kohya_orchestrator"
NAME = PACKAGE.name
FOUNDATION = {"errors", "_version", "_fs"}

# Everything below the orchestrator: the core rooms and the outer ring.
RING = {
    "models", "render", "launch", "events", "ui", "sinks", "environment", "datasets", "jobs",
    "outputs",
}  # fmt: skip
# room -> the rooms it may import (besides itself and the foundation).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "_fs": set(),
    "events": set(),
    "models": set(),
    "render": {"models"},
    "launch": {"render", "models"},
    "installer": set(),
    "ui": {"events"},
    "sinks": {"events"},
    "environment": {"installer", "models"},
    "datasets": {"models", "render", "launch", "events"},
    "jobs": {"models", "render", "datasets"},
    "outputs": {"models", "render", "launch", "events", "ui"},
    "run": RING,
    "queue": RING | {"run"},
    "api": RING | {"run"},
    "cli": RING | {"run", "queue", "api", "installer"},
    "__main__": {"cli"},
    # The package's lazy attribute table names the documented entry points.
    "(package)": {"models", "render", "jobs", "datasets", "environment", "outputs", "api"},
}
ROOT_MODULE_LIMIT = 8
LINE_LIMIT = 600
# Modules over LINE_LIMIT lines, each because one idea needs the room.
LONG_MODULES: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != NAME:
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                targets.append(candidate if candidate in modules else target)
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.split(".")[0] == NAME]
        for target in targets:
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != module:
                yield target, node.lineno


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    graph: dict[str, dict[str, int]] = defaultdict(dict)
    for module, path in modules.items():
        graph[module]  # every module is a node
        for target, line in _imports(module, path, modules):
            graph[module].setdefault(target, line)
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    return "(package)" if len(parts) == 1 else parts[1]


def _circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read_from_the_real_package() -> None:
    graph = _graph()
    # Known edges, so a parser bug that finds no imports cannot pass every other test.
    assert "kohya_orchestrator.models" in graph["kohya_orchestrator.render.toml"]
    assert "kohya_orchestrator.launch.process" in graph["kohya_orchestrator.run"]
    assert len(graph) > 60


def test_no_import_circles() -> None:
    assert _circles(_graph()) == []


def test_rooms_import_only_downward() -> None:
    bad = []
    for module, targets in sorted(_graph().items()):
        room = _room(module)
        assert room in ALLOWED, f"{module}: room '{room}' has no entry in ALLOWED"
        for target, line in targets.items():
            other = _room(target)
            if other == room or other in FOUNDATION or other in ALLOWED[room]:
                continue
            bad.append(f"{module}:{line} imports {target} ({room} -> {other})")
    assert bad == []


def test_the_layering_check_can_fail() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {}}
    assert _circles(graph) == [["a", "b", "c"]]


def test_the_package_root_holds_at_most_eight_modules() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= ROOT_MODULE_LIMIT, root


def test_modules_stay_small_unless_one_idea_needs_more() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > LINE_LIMIT
    }
    assert set(long) <= set(LONG_MODULES), long
