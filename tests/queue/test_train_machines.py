"""`train --machines N`: the rank and main address from the options or SLURM's variables, or a
clear refusal before any run directory is made. The trainer is the queue's stand-in (it ignores
accelerate's options; the rendered command.json is what is checked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main

from .conftest import FakeLab
from .test_cli_verbs import _write, sd_scripts  # noqa: F401 (a fixture)


def _clear_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SLURM_JOB_NUM_NODES", "SLURM_NNODES", "SLURM_NODEID", "SLURM_JOB_NODELIST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("SLURM_NODELIST", raising=False)


def test_several_machines_without_rank_are_refused_before_a_run(
    tmp_path: Path,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_slurm(monkeypatch)
    job = _write(tmp_path, "multi")
    runs = tmp_path / "runs"
    argv = ["train", str(job), "--sd-scripts", str(sd_scripts), "--runs", str(runs), "--no-probe"]
    assert main([*argv, "--machines", "2"]) == 2
    err = capsys.readouterr().err
    assert "machine_rank" in err and "main_process_ip" in err and "SLURM_NODEID" in err
    assert "Traceback" not in err
    assert not runs.exists()


def test_under_slurm_the_rank_and_main_address_come_from_its_variables(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.plan({"*": fake.ok()})
    _clear_slurm(monkeypatch)
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    monkeypatch.setenv("SLURM_NODEID", "1")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[07-08]")
    job = _write(tmp_path, "multi")
    runs = tmp_path / "runs"
    argv = ["train", str(job), "--sd-scripts", str(sd_scripts), "--runs", str(runs), "--no-probe"]
    assert main([*argv, "--machines", "2", "--main-process-port", "6001", "--jsonl"]) == 0
    capsys.readouterr()
    (run_dir,) = list(runs.iterdir())
    command = json.loads((run_dir / "command.json").read_text())["argv"]
    tail = command[command.index("--multi_gpu") :]
    assert tail[:7] == [
        "--multi_gpu",
        "--machine_rank",
        "1",
        "--main_process_ip",
        "gpu07",
        "--main_process_port",
        "6001",
    ]


def test_queue_slurm_task_trains_the_job_it_is_given(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`queue slurm-task` (what each array task runs on its node), here in this process."""
    from kohya_orchestrator.queue import JobQueue, JobStatus

    fake.plan({"ok": fake.ok(), "bad": fake.crash()})
    q = tmp_path / "q"
    assert (
        main(
            [
                "queue",
                "add",
                str(_write(tmp_path, "ok")),
                str(_write(tmp_path, "bad")),
                "--queue",
                str(q),
            ]
        )
        == 0
    )
    JobQueue(q).mark_exported([1, 2], "exported to test.sbatch")
    task = ["queue", "slurm-task", "--queue", str(q), "--sd-scripts", str(sd_scripts), "--no-probe"]
    assert main([*task, "--job-id", "1", "--slurm-id", "9_0", "--gpus", "0"]) == 0
    assert "job 1 (ok): succeeded" in capsys.readouterr().out
    assert main([*task, "--job-id", "2", "--slurm-id", "9_1"]) == 1
    assert "job 2 (bad): failed: ValueError" in capsys.readouterr().err
    queue = JobQueue(q)
    assert [j.status for j in queue.jobs()] == [JobStatus.SUCCEEDED, JobStatus.FAILED]
    assert [c["cuda"] for c in fake.calls()] == ["0", None]  # --gpus: the GPUs SLURM gave
