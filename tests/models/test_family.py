"""The family profile is the one place a model family is described (models/family.py).

Every module reads the profile; none spells a family's name to switch on it. The scan below
fails when a module outside the profile compares with, or keys a table by, a family name.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models.family import DEFAULT_FAMILY, FAMILIES, Family, profile
from kohya_orchestrator.models.model import MODEL_SECTIONS

PACKAGE = Path(__file__).resolve().parents[2] / "kohya_orchestrator"
# Where a family name is data, not a switch: measured LyCORIS evidence (which family a row was
# tested on) and the kohya_ss GUI's own field names ("sdxl" is a GUI checkbox key).
ALLOWED = {
    "models/family.py": "the profiles themselves",
    "models/model.py": "each family's [model] section is tagged with its name (the union)",
    "environment/lycoris_table.py": "rows say which family each measurement was made on",
    "environment/lycoris.py": "describe_lycoris looks up the row measured on sd15",
    "jobs/gui_fields.py": "'sdxl' is the name of a kohya_ss GUI field",
}


def test_the_family_literal_and_the_profiles_agree() -> None:
    assert set(get_args(Family)) == set(FAMILIES)
    assert set(MODEL_SECTIONS) == set(FAMILIES)
    for name, section in MODEL_SECTIONS.items():
        assert section.model_fields["family"].default == name
    assert DEFAULT_FAMILY in FAMILIES
    assert all(name == p.name for name, p in FAMILIES.items())


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_profile_is_consistent(name: str) -> None:
    p = profile(name)
    assert p.script.endswith("train_network.py")
    assert p.default_resolution % p.bucket_step == 0
    assert p.base_model_versions and all(v for v in p.base_model_versions)
    assert set(p.memory_remedies) <= {"te_cache", "fp8_base", "blocks_to_swap"}
    assert ("blocks_to_swap" in p.memory_remedies) <= (p.swap_blocks > 0)
    assert ("blocks_to_swap" in p.memory_remedies) <= ("blocks_to_swap" in p.only_args)
    assert ("te_cache" in p.memory_remedies) <= p.caches_text_encoder_outputs


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_job_of_each_family_takes_its_script_and_flags_from_the_profile(name: str) -> None:
    job = validate_job(
        {
            "model": {"pretrained_model_name_or_path": "/m.safetensors", "family": name},
            "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
            "training": {"max_train_epochs": 1},
        }
    )
    assert job.model.script == profile(name).script
    assert job.model.v2 is profile(name).v2


def _family_literals(path: Path) -> list[int]:
    names = set(FAMILIES)
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value in names:
            lines.append(node.lineno)
    return lines


def test_no_module_switches_on_a_family_name() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        if lines := _family_literals(path):
            found[rel] = lines
    assert found == {}, "read models/family.py's profile instead of naming a family"


def test_the_scan_finds_a_family_switch(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('def f(job):\n    return job.model.family == "sdxl"\n', encoding="utf-8")
    assert _family_literals(bad) == [2]
