"""Every import the README, docs and the notebook show works, and the package re-exports them.

The regroup (issue 13) moved modules into rooms; the documented entry points are also importable
from the package itself (``from kohya_orchestrator import plan_job``), lazily, so that
``python -m kohya_orchestrator --help`` stays fast.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

import kohya_orchestrator

REPO = Path(__file__).resolve().parents[1]
IMPORT = re.compile(
    r"^\s*(from\s+kohya_orchestrator[\w.]*\s+import\s+[\w, ]+|import\s+kohya_orchestrator[\w.]*)\s*$"
)


def _documented() -> list[tuple[str, str]]:
    sources: list[tuple[str, str]] = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        sources.append((path.name, path.read_text(encoding="utf-8")))
    notebook = json.loads((REPO / "docs" / "notebook.ipynb").read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            sources.append(("notebook.ipynb", "".join(cell["source"])))
    found = []
    for name, text in sources:
        for line in text.splitlines():
            if m := IMPORT.match(line):
                found.append((name, m.group(1).strip()))
    return sorted(set(found))


DOCUMENTED = _documented()


def test_the_docs_show_imports() -> None:
    assert len(DOCUMENTED) >= 10
    assert any("notebook" in name for name, _ in DOCUMENTED)


@pytest.mark.parametrize(("where", "statement"), DOCUMENTED, ids=[s for _, s in DOCUMENTED])
def test_a_documented_import_works_and_is_reexported(where: str, statement: str) -> None:
    namespace: dict[str, object] = {}
    exec(statement, namespace)  # the line exactly as the docs show it
    m = re.match(r"from\s+(kohya_orchestrator[\w.]*)\s+import\s+(.+)", statement)
    if m is None or m.group(1) in {"kohya_orchestrator.queue", "kohya_orchestrator.events"}:
        return  # `import kohya_orchestrator`, or a room that is its own public package
    for name in (n.strip() for n in m.group(2).split(",")):
        assert not isinstance(namespace[name], type(importlib)), f"{where}: {name} is a module"
        assert getattr(kohya_orchestrator, name) is namespace[name], (
            f"{where}: kohya_orchestrator.{name} is not re-exported"
        )


def test_every_exported_name_resolves() -> None:
    for name in kohya_orchestrator.__all__:
        assert getattr(kohya_orchestrator, name) is not None
    assert sorted(kohya_orchestrator.__all__) == sorted(dir(kohya_orchestrator))
    with pytest.raises(AttributeError, match="no attribute 'jobfile'"):
        _ = kohya_orchestrator.jobfile  # type: ignore[attr-defined]
