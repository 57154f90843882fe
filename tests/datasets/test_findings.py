"""Findings: errors.Problem records with a code, built from each module's code table."""

from __future__ import annotations

import json

from pydantic import BaseModel

from kohya_orchestrator.datasets.findings import FindingTable, make_finding
from kohya_orchestrator.errors import Problem

TABLE: FindingTable = {
    "no_images": ("warning", "{n} image(s) in {path}", "run: tool {qpath}"),
    "plain": ("info", "nothing to fill", None),
}


def test_make_finding_fills_the_table_entry() -> None:
    f = make_finding(TABLE, "no_images", "my dir", {"n": 3})
    assert f == Problem(
        "my dir", "3 image(s) in my dir", "run: tool 'my dir'", severity="warning", code="no_images"
    )
    assert make_finding(TABLE, "plain", "x").hint is None
    assert make_finding(TABLE, "plain", "x", severity="error").severity == "error"


def test_problem_keeps_its_positional_form() -> None:
    p = Problem("a.b", "is wrong", "fix it", severity="warning")
    assert (p.path, p.message, p.hint, p.severity, p.code) == (
        "a.b",
        "is wrong",
        "fix it",
        "warning",
        None,
    )
    assert p.format() == "a.b: is wrong\n  hint: fix it"


def test_findings_in_json_output_keep_their_keys() -> None:
    class Out(BaseModel):
        findings: list[Problem]

    out = Out(findings=[make_finding(TABLE, "no_images", "d", {"n": 1})])
    data = json.loads(out.model_dump_json())
    assert data["findings"] == [
        {
            "severity": "warning",
            "code": "no_images",
            "path": "d",
            "message": "1 image(s) in d",
            "hint": "run: tool d",
        }
    ]
    assert Out.model_validate_json(out.model_dump_json()) == out
