"""`queue` and `sweep` verbs through main(): exit codes and what they print.

Training itself is covered with the stand-in trainer in test_runner.py (the CLI launches through
accelerate, which the stand-in does not need); here the runs go through the same runner.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kohya_orchestrator.cli.commands.queue import notice_printer
from kohya_orchestrator.cli.commands.sweep import print_comparison
from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.jobs.loading import dump_job_toml
from kohya_orchestrator.queue import JobQueue, JobStatus

from .conftest import FakeLab, make_job, run_fake


def _write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(dump_job_toml(make_job(tmp_path, name)), encoding="utf-8")
    return path


def test_add_list_cancel_retry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = str(tmp_path / "q")
    a, b = _write(tmp_path, "a"), _write(tmp_path, "b")
    assert (
        main(["queue", "add", str(a), str(b), "--queue", q, "--set", "network.network_dim=4"]) == 0
    )
    out = capsys.readouterr().out
    assert "queued 2 jobs" in out and "0001-a.toml" in out
    a.write_text("garbage = [", encoding="utf-8")  # the queued copy does not change
    queue = JobQueue(Path(q))
    assert queue.read_job(queue.get(1))["network"]["network_dim"] == 4
    assert queue.get(1).overrides == ["--set network.network_dim=4"]

    assert main(["queue", "cancel", "2", "--queue", q]) == 0
    assert main(["queue", "list", "--queue", q]) == 0
    out = capsys.readouterr().out
    assert "canceled by the user" in out and "queued" in out
    assert main(["queue", "retry", "2", "--queue", q]) == 0
    assert "queued job 2 (b) again, from the start" in capsys.readouterr().out
    assert main(["queue", "list", "--queue", q, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [j["status"] for j in listed] == ["queued", "queued"]

    assert main(["queue", "retry", "1", "--queue", q]) == 2
    assert "is queued; nothing to retry" in capsys.readouterr().err
    assert main(["queue", "cancel", "9", "--queue", q]) == 2


def test_add_reports_every_problem_and_queues_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path, "good")
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nalgo = 'ia3'\nnetwork_dim = 4\n", encoding="utf-8")
    q = tmp_path / "q"
    assert (
        main(
            ["queue", "add", str(good), str(bad), str(tmp_path / "missing.toml"), "--queue", str(q)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "nothing was queued" in err
    assert f"{bad}: network.network_dim" in err and "missing.toml" in err
    assert JobQueue(q).jobs() == []


def test_run_with_nothing_queued(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue", "run", "--queue", str(tmp_path / "q"), "--no-probe"]) == 0
    assert "nothing to run" in capsys.readouterr().out


def test_sweep_dry_run_then_queue_run_and_compare(
    tmp_path: Path,
    fake: FakeLab,
    install: Install,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    job = _write(tmp_path, "style")
    q = str(tmp_path / "q")
    grid = ["--grid", "network.algo=lora,loha", "--grid", "optimizer.learning_rate=1e-4"]
    assert main(["sweep", str(job), *grid, "--queue", q, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "style-algo_lora-lr_1e-4" in out and "style-algo_loha-lr_1e-4" in out
    assert "nothing was queued" in out
    assert JobQueue(Path(q)).jobs() == []

    assert main(["sweep", str(job), *grid, "--queue", q, "--name", "s1"]) == 0
    out = capsys.readouterr().out
    assert "queued 2 jobs as sweep s1" in out and "queue run --sweep s1" in out

    fake.plan({"*": fake.ok()})
    queue = JobQueue(Path(q))
    done = run_fake(queue, install, sweep="s1", notify=notice_printer)
    assert [j.status for j in done] == [JobStatus.SUCCEEDED] * 2
    out = capsys.readouterr().out
    assert "job 1 (style-algo_lora-lr_1e-4): succeeded" in out
    print_comparison(queue, "s1")
    table = capsys.readouterr().out
    for expected in ("style-algo_lora-lr_1e-4", "loha", "AdamW", "0.0001", "succeeded", "0 B"):
        assert expected in table


def test_export_slurm_marks_jobs_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    q = tmp_path / "q"
    assert (
        main(
            [
                "queue",
                "add",
                str(_write(tmp_path, "a")),
                str(_write(tmp_path, "b")),
                "--queue",
                str(q),
            ]
        )
        == 0
    )
    out_file = tmp_path / "array.sbatch"
    rc = main(
        [
            "queue",
            "export-slurm",
            "--queue",
            str(q),
            "--out",
            str(out_file),
            "--partition",
            "gpu",
            "--time",
            "02:00:00",
            "--sd-scripts",
            str(tmp_path / "kohya"),
            "--env",
            "HF_HOME=/shared/hf",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    text = out_file.read_text()
    assert "#SBATCH --array=0-1" in text and "export HF_HOME=/shared/hf" in text
    assert "0001-a.toml" in text and "0002-b.toml" in text
    assert f"next: sbatch {out_file}" in capsys.readouterr().out
    queue = JobQueue(q)
    assert [j.status for j in queue.jobs()] == [JobStatus.EXPORTED] * 2
    assert main(["queue", "run", "--queue", str(q), "--no-probe"]) == 0  # not trained here too
    assert main(["queue", "export-slurm", "--queue", str(q)]) == 2  # nothing left to export
