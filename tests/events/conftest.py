"""Fixtures for the event tests: the real sd-scripts captures in tests/fixtures/sd-scripts/.

Any test taking a ``scenario`` argument runs once per capture directory of
tests/fixtures/sd-scripts/sd-scripts-logs. Scenario *names* are listed at collection time; the
files are read through tests/conftest.py's ``captures_dir`` fixture, which fails loudly when the
captures are missing (the ``<missing>`` placeholder keeps the parametrised tests from vanishing
silently).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The same folder as tests/conftest.py's SD_LOGS (a conftest is not importable as a module).
_LOGS = REPO_ROOT / "tests" / "fixtures" / "sd-scripts" / "sd-scripts-logs"

SCENARIOS: list[str] = (
    sorted(p.name for p in _LOGS.iterdir() if p.is_dir() and not p.name.startswith("_"))
    if _LOGS.is_dir()
    else []
) or ["<missing>"]


@dataclass(frozen=True)
class Capture:
    """One scenario: raw bytes, decoded text, the reads as they happened, and result.json."""

    name: str
    raw: bytes
    text: str
    reads: tuple[tuple[float, str], ...]
    result: dict[str, Any]


@cache
def _load(logs_dir: Path, name: str) -> Capture:
    d = logs_dir / name
    raw = (d / "combined").read_bytes()
    reads = []
    for line in (d / "chunks.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        # g_sigint_accelerate_group has one {"stream": "runner"} row (when SIGINT was sent):
        # a note from the capture tool, not child output.
        if row["stream"] in ("stdout", "stderr"):
            reads.append((float(row["t"]), row["text"]))
    result = json.loads((d / "result.json").read_text(encoding="utf-8"))
    return Capture(name, raw, raw.decode("utf-8"), tuple(reads), result)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario" in metafunc.fixturenames:
        metafunc.parametrize("scenario", SCENARIOS)


@pytest.fixture
def capture(captures_dir: Path, scenario: str) -> Capture:
    """The capture of the current ``scenario``."""
    return _load(captures_dir / "sd-scripts-logs", scenario)


@pytest.fixture
def load_capture(captures_dir: Path) -> Any:
    """A function returning the capture of a named scenario."""

    def load(name: str) -> Capture:
        return _load(captures_dir / "sd-scripts-logs", name)

    return load


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """tests/golden/events."""
    return REPO_ROOT / "tests" / "golden" / "events"
