"""Golden render tests: every case under tests/golden/render/ renders byte-identically.

Each case also checks that the old `toml` 0.10.2 (what sd-scripts reads with) and `tomllib` parse
every rendered file to the same dict, that the job round-trips through its own TOML form, and that
importing the rendered sd-scripts files back gives the same rendered files (a fixed point).
Regenerate with `pytest tests/render --update-goldens` and review the diff.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import toml

from kohya_orchestrator.jobs.import_toml import job_dict_from_kohya
from kohya_orchestrator.jobs.loading import dump_job_toml, load_job, validate_job
from kohya_orchestrator.render.toml import RenderPaths, render_job

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "render"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "job.toml").is_file())
PATHS = RenderPaths("/run/dataset.toml", "/run/sample_prompts.txt")


def _files(case: str) -> dict[str, str | None]:
    job = load_job(GOLDEN / case / "job.toml")
    files = render_job(job, PATHS)
    return {
        "config.toml": files.config_toml,
        "dataset.toml": files.dataset_toml,
        "sample_prompts.txt": files.sample_prompts,
    }


def test_there_are_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_render_matches_golden(case: str, update_goldens: bool) -> None:
    for name, text in _files(case).items():
        path = GOLDEN / case / name
        if text is None:
            assert not path.exists(), f"{path} exists but the job renders no {name}"
            continue
        if update_goldens:
            path.write_text(text, encoding="utf-8", newline="\n")
        assert path.read_text(encoding="utf-8") == text, f"{case}/{name} differs from the golden"


@pytest.mark.parametrize("case", CASES)
def test_old_toml_and_tomllib_agree(case: str) -> None:
    for name in ("config.toml", "dataset.toml"):
        text = (GOLDEN / case / name).read_text(encoding="utf-8")
        assert toml.loads(text) == tomllib.loads(text), f"{case}/{name}"


@pytest.mark.parametrize("case", CASES)
def test_rendering_is_byte_stable(case: str) -> None:
    assert _files(case) == _files(case)
    for text in _files(case).values():
        if text is not None:
            assert "\r" not in text and text.endswith("\n")
            assert all(line == line.rstrip() for line in text.splitlines())


@pytest.mark.parametrize("case", CASES)
def test_job_round_trips_through_its_toml(case: str) -> None:
    job = load_job(GOLDEN / case / "job.toml")
    again = validate_job(tomllib.loads(dump_job_toml(job)))
    assert again == job


@pytest.mark.parametrize("case", CASES)
def test_import_of_rendered_files_is_a_fixed_point(case: str, tmp_path: Path) -> None:
    job = load_job(GOLDEN / case / "job.toml")
    files = render_job(job, PATHS)
    prompts = tmp_path / "sample_prompts.txt"
    config = tomllib.loads(files.config_toml)
    if files.sample_prompts is not None:
        prompts.write_text(files.sample_prompts, encoding="utf-8")
        config["sample_prompt_arguments"]["sample_prompts"] = str(prompts)
    data, problems = job_dict_from_kohya(
        config, tomllib.loads(files.dataset_toml), family=job.model.family
    )
    assert not [p for p in problems if p.severity == "error"]
    imported = validate_job(data)
    again = render_job(imported, PATHS)
    assert again.config_toml == files.config_toml
    assert again.dataset_toml == files.dataset_toml
    assert again.sample_prompts == files.sample_prompts
