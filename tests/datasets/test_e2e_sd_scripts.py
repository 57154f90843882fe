"""Our step plan against sd-scripts' own dataset code (the real e2e lab; skips without it).

One child process (the lab's venv, cwd = its sd-scripts checkout) builds every case's dataset
group with sd-scripts' config_util/train_util, from the dataset TOML our renderer writes (or from
--train_data_dir/--reg_data_dir), and prints per-bucket counts and lengths. About 8 s, < 1 GB.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from lab_oracle import run_lab_oracle
from plancases import Case, build_cases, oracle_summary, summary

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "sd_scripts_expected.json"

pytestmark = pytest.mark.e2e


def run_oracle(lab: Path, cases: list[Case], workdir: Path) -> list[dict[str, Any]]:
    """sd-scripts' numbers for each case."""
    spec = workdir / "cases.json"
    spec.write_text(json.dumps([c.oracle_case(workdir) for c in cases]), encoding="utf-8")
    result: list[dict[str, Any]] = run_lab_oracle(
        lab, HERE / "_sd_dataset_oracle.py", spec, timeout_s=120
    )
    return result


@pytest.fixture(scope="module")
def compared(e2e_lab: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("plan-e2e")
    cases = build_cases(root)
    results = run_oracle(e2e_lab, cases, root)
    return {c.name: (c, r) for c, r in zip(cases, results, strict=True)}


CASE_NAMES = [
    "reg_outnumbers_train",
    "no_upscale_formats",
    "no_bucket_steps",
    "validation_seeded",
    "validation_training_seed",
    "two_datasets",
    "sdxl_steps_32",
    "legacy_tree",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_plan_equals_sd_scripts(name: str, compared: dict[str, Any]) -> None:
    case, result = compared[name]
    plan = case.plan()
    assert plan.exact is case.exact
    assert summary(plan, case.exact) == oracle_summary(result, case.exact)


def test_legacy_tree_subsets_equal_sd_scripts(compared: dict[str, Any]) -> None:
    """The folders sd-scripts keeps (and their repeats and class tokens) are the ones we keep."""
    case, result = compared["legacy_tree"]
    theirs = sorted(
        (os.path.basename(s["image_dir"]), s["num_repeats"], s["class_tokens"], s["is_reg"])
        for s in result["datasets"][0]["subsets"]
    )
    from kohya_orchestrator.datasets.tree import read_tree

    tree = read_tree(case.train_dir, case.reg_dir)
    ours = sorted((s.name, s.repeats, s.class_tokens, s.is_reg) for s in tree.subsets)
    assert ours == theirs


def test_recorded_expectations_are_current(compared: dict[str, Any], update_goldens: bool) -> None:
    """sd_scripts_expected.json (used by the fast tests) holds what sd-scripts computes today."""
    live = {name: oracle_summary(r) for name, (_, r) in compared.items()}
    if update_goldens or not EXPECTED.exists():
        EXPECTED.write_text(json.dumps(live, indent=1, ensure_ascii=False) + "\n", "utf-8")
    assert json.loads(EXPECTED.read_text("utf-8")) == live


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-m", "e2e", "-v"]))
