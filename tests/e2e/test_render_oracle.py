"""e2e: sd-scripts' own argument parser and dataset schema accept every rendered golden as meant.

Runs the real sd-scripts (from the e2e lab) to read each golden config.toml via its
read_config_from_file and each dataset.toml via its voluptuous ConfigSanitizer and BlueprintGenerator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lab_oracle import run_lab_oracle

from kohya_orchestrator.jobs.loading import load_job
from kohya_orchestrator.render.toml import network_args

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.e2e
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "render"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "config.toml").is_file())
ORACLE = Path(__file__).with_name("_sd_oracle.py")


def _oracle(lab: Path, case: str, tmp_path: Path) -> dict:
    job = load_job(GOLDEN / case / "job.toml")
    config = tmp_path / "config.toml"
    config.write_text((GOLDEN / case / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result: dict = run_lab_oracle(
        lab, ORACLE, job.model.script, config, GOLDEN / case / "dataset.toml"
    )
    return result


@pytest.mark.parametrize("case", CASES)
def test_sd_scripts_reads_the_rendered_files_as_meant(
    case: str, e2e_lab: Path, tmp_path: Path
) -> None:
    job = load_job(GOLDEN / case / "job.toml")
    result = _oracle(e2e_lab, case, tmp_path)
    assert result["ignored"] == [], f"sd-scripts would silently ignore {result['ignored']}"
    values = result["values"]
    rendered = tomllib.loads((GOLDEN / case / "config.toml").read_text(encoding="utf-8"))
    for section in rendered.values():
        for key, value in section.items():
            if key == "dataset_config":
                continue
            assert values[key] == value, (
                f"{key}: sd-scripts has {values[key]!r}, we wrote {value!r}"
            )
    if network_args(job):
        assert values["network_args"] == network_args(job)
    subsets = [s for d in result["datasets"] for s in d["subsets"]]
    ours = [s for _, s in job.dataset.all_subsets()]
    assert len(subsets) == len(ours)
    for theirs, mine in zip(subsets, ours, strict=True):
        assert theirs["num_repeats"] == (
            getattr(mine, "effective_repeats", None) or mine.num_repeats
        )
        if hasattr(mine, "effective_class_tokens"):
            assert theirs["class_tokens"] == mine.effective_class_tokens
            assert theirs["caption_extension"] in (
                mine.caption_extension or job.dataset.caption_extension,
            )
