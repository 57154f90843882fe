"""`runs show/compare/pictures` as a new user reads them (issue 18 item 8), on runs built from
real captures: a readable duration, runs of one job told apart by run id, and no advice to add
sampling prompts to a job that has them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.events import RunFinished, RunStatus, dump_events_jsonl, parse_log

from .conftest import build_prodigy_run


def test_show_prints_the_duration_for_people(
    captures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = build_prodigy_run(captures_dir, tmp_path)
    events = run / "events.jsonl"
    text = events.read_text(encoding="utf-8")
    assert '"duration_s":41.5' in text
    events.write_text(text.replace('"duration_s":41.5', '"duration_s":651.6280008969998'))
    assert main(["runs", "show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "status: succeeded  rc: 0  duration: 10 min 52 s" in out.splitlines()
    assert main(["runs", "show", str(run), "--json"]) == 0  # the JSON keeps the number
    assert json.loads(capsys.readouterr().out)["duration_s"] == 651.6280008969998


def test_compare_heads_runs_of_one_job_by_run_id(
    captures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("COLUMNS", "200")
    first = build_prodigy_run(captures_dir, tmp_path)
    second = first.with_name("20261125-090000-e_prodigy")
    shutil.copytree(first, second)
    assert main(["runs", "compare", str(first), str(second)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [first.name, second.name]
    assert lines[1].split() == ["job", "e_prodigy", "e_prodigy"]


def _died_before_epoch_1(captures_dir: Path, tmp_path: Path, sampling: dict[str, object]) -> Path:
    """The real g_sigint capture (stopped at step 2 of 8, nothing saved or sampled)."""
    capture = captures_dir / "sd-scripts-logs" / "g_sigint_accelerate_group"
    events = list(parse_log((capture / "combined").read_bytes().decode("utf-8")))
    events.append(RunFinished(seq=0, status=RunStatus.CANCELED, returncode=-2, duration_s=12.0))
    run = tmp_path / "runs" / "20261124-100000-g_sigint"
    run.mkdir(parents=True)
    job = {"name": "g", "training": {"output_dir": str(tmp_path / "out"), "output_name": "g"},
           "sampling": sampling}  # fmt: skip
    (run / "job.json").write_text(json.dumps(job))
    (run / "events.jsonl").write_text(
        dump_events_jsonl([e.model_copy(update={"seq": i}) for i, e in enumerate(events)])
    )
    (run / "status").write_text("canceled\n")
    return run


def test_pictures_of_a_run_that_died_before_sampling_does_not_ask_for_prompts(
    captures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sampling = {"sample_every_n_epochs": 1, "prompts": [{"prompt": "a boat"}]}
    run = _died_before_epoch_1(captures_dir, tmp_path, sampling)
    assert main(["runs", "pictures", str(run)]) == 0
    out = capsys.readouterr().out
    assert "no sample images in this run: no contact sheet" in out
    assert "add [sampling] prompts" not in out
    assert (
        "  hint: the job samples, but this run ended (canceled) before its first sampling round"
        in out.splitlines()
    )


def test_pictures_of_a_job_without_prompts_still_says_how_to_add_them(
    captures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _died_before_epoch_1(captures_dir, tmp_path, {})
    assert main(["runs", "pictures", str(run)]) == 0
    assert "hint: add [sampling] prompts and sample_every_n_epochs to the job" in (
        capsys.readouterr().out
    )
