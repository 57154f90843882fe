"""The repository stands alone: no file names a folder beside the checkout.

Tests, benchmarks, package code and docs once read real sd-scripts captures from a folder next to
the checkout, which users do not have. The captures now live in tests/fixtures/sd-scripts (see
tests/fixtures/README.md); this test fails, naming file and line, when any file of the repository
(every file git tracks or would track, else the working tree) mentions that folder again.
CHANGELOG.md may: it records the history.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Built by concatenation so that this file does not contain what it looks for.
_SHARED = "sha" + "red"
FORBIDDEN = (
    "../" + _SHARED,
    _SHARED + "/fixtures",
    _SHARED + "/lab",
    "KOHYA_" + _SHARED.upper() + "_DIR",
)
EXEMPT = {"CHANGELOG.md"}
# Folders never scanned when git is unavailable (not part of the repository's content).
_SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".benchmarks",
    "runs",
    "out",
}
# The repository holds a few hundred files; fewer than this means the listing went wrong.
MIN_FILES = 150


def _git_files() -> list[str] | None:
    """Paths git tracks, plus untracked ones it does not ignore; None without git or a checkout."""
    git = shutil.which("git")
    if git is None:
        return None
    proc = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        return None
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _walked_files() -> list[str]:
    out: list[str] = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            out.append((Path(root) / name).relative_to(REPO).as_posix())
    return out


def repository_files() -> list[str]:
    """Relative POSIX paths of the repository's files that exist on disk."""
    paths = _git_files()
    if paths is None:
        paths = _walked_files()
    return sorted(p for p in paths if (REPO / p).is_file())


def find_references(paths: list[str]) -> list[str]:
    """``path:line: text`` for every line of ``paths`` holding a forbidden string."""
    needles = [s.encode() for s in FORBIDDEN]
    found: list[str] = []
    for rel in paths:
        if rel in EXEMPT:
            continue
        data = (REPO / rel).read_bytes()
        if not any(n in data for n in needles):
            continue
        for number, line in enumerate(data.splitlines(), start=1):
            if any(n in line for n in needles):
                text = line.decode("utf-8", "replace").strip()
                found.append(f"{rel}:{number}: {text[:160]}")
    return found


def test_patterns_are_built_right() -> None:
    # Spelled backwards, for the same reason.
    backwards = ["derahs/..", "serutxif/derahs", "bal/derahs", "RID_DERAHS_AYHOK"]
    assert [s[::-1] for s in FORBIDDEN] == backwards
    sample = ("see ../" + _SHARED + "/x\nok\n").encode()
    assert [n for n in FORBIDDEN if n.encode() in sample] == ["../" + _SHARED]


def test_the_scan_sees_the_repository() -> None:
    paths = repository_files()
    assert len(paths) >= MIN_FILES, f"only {len(paths)} files found under {REPO}"
    for expected in (
        "pyproject.toml",
        "tests/conftest.py",
        "tests/test_self_contained.py",
        "kohya_orchestrator/__init__.py",
        "tests/fixtures/README.md",
        "tests/fixtures/sd-scripts/sd-scripts-logs/a_lora_accelerate/combined",
    ):
        assert expected in paths, f"{expected} was not scanned"


def test_no_file_refers_outside_the_repository() -> None:
    found = find_references(repository_files())
    assert not found, (
        "these lines name a folder beside the checkout (the captures are in "
        "tests/fixtures/sd-scripts; see tests/fixtures/README.md):\n" + "\n".join(found)
    )
