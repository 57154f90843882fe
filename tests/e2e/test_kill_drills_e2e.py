"""e2e: kill drills with the real trainer: nothing of a run outlives a killed launcher or orchestrator.

The stand-in drills (tests/test_faults.py) prove the process control; these repeat the two
hardest with the real sd-scripts (accelerate's launcher, the real train_network.py on the lab's
SD1.5, killed while it steps):

- the launcher (``accelerate launch``) is SIGKILLed from outside: the run ends failed, and no
  process that runs this run's config is left (the trainer it orphaned is stopped);
- the orchestrator (a ``python -m kohya_orchestrator train`` process) is SIGKILLed: ``runs list``
  reports the run interrupted with the reason and stops the trainer it left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import explicit_install
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job
from kohya_orchestrator.render.command import LaunchOptions
from kohya_orchestrator.run import read_events, start

from .conftest import tiny_job

pytestmark = pytest.mark.e2e
PATIENCE_S = 300.0


def _job(lab: Path, tmp_path: Path, name: str) -> dict[str, object]:
    data = tiny_job(lab, tmp_path, name, training={"max_train_epochs": 20})
    return data


def _running_config(config: Path) -> list[psutil.Process]:
    """Processes whose command line names this run's config file."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(config) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _wait_for_a_step(run_dir: Path, alive: object) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while True:
        events = read_events(run_dir) if (run_dir / "events.jsonl").is_file() else []
        if any(e.kind == "step_progress" and (e.step or 0) >= 1 for e in events):
            return
        assert callable(alive) and alive(), "the run ended before it stepped"
        assert time.monotonic() < deadline, "no training step within the patience"
        time.sleep(0.5)


def _gone(config: Path, within_s: float = 30.0) -> list[psutil.Process]:
    deadline = time.monotonic() + within_s
    left = _running_config(config)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _running_config(config)
    return left


def test_a_killed_launcher_leaves_no_trainer(lab_env: Path, tmp_path: Path) -> None:
    job = validate_job(_job(lab_env, tmp_path, "killed_launcher"))
    install = explicit_install(lab_env)
    assert install is not None
    run = start(
        job,
        install=install,
        runs=tmp_path / "runs",
        launch=LaunchOptions(num_cpu_threads_per_process=2),
        iterable=False,
    )
    try:
        _wait_for_a_step(run.run_dir.path, lambda: run._handle is not None)
        launcher = run._handle.pid  # type: ignore[union-attr]
        assert "accelerate" in " ".join(psutil.Process(launcher).cmdline())
        os.kill(launcher, signal.SIGKILL)
        result = run.wait(PATIENCE_S)
    finally:
        run.cancel()
    assert not result.ok
    assert result.status.value in ("failed", "canceled"), result
    config = run.run_dir.path / "config.toml"
    assert _gone(config) == []
    assert (run.run_dir.path / "status").read_text().strip() == result.status.value


def test_a_killed_orchestrator_is_reported_and_its_trainer_stopped(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_file = tmp_path / "job.toml"
    job_file.write_text(
        dump_job_toml(validate_job(_job(lab_env, tmp_path, "killed_orchestrator"))),
        encoding="utf-8",
    )
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "kohya_orchestrator", "train", str(job_file)]
    argv += ["--runs", str(runs), "--cpu-threads", "2", "--jsonl"]
    orchestrator = subprocess.Popen(argv, env=os.environ.copy(), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + PATIENCE_S
        while not (runs.is_dir() and any(runs.iterdir())):
            assert orchestrator.poll() is None, "train exited early"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        (run_dir,) = runs.iterdir()
        _wait_for_a_step(run_dir, lambda: orchestrator.poll() is None)
        config = run_dir / "config.toml"
        assert _running_config(config), "the trainer is not running"
        os.kill(orchestrator.pid, signal.SIGKILL)
        orchestrator.wait(PATIENCE_S)
    finally:
        if orchestrator.poll() is None:  # pragma: no cover - a failed test
            orchestrator.kill()
    assert (run_dir / "status").read_text().strip() == "running"  # as the dead one left it
    assert _running_config(config), "the trainer should outlive its killed orchestrator"

    assert main(["runs", "list", "--runs", str(runs), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "interrupted"
    assert listed["reason"].startswith(f"its orchestrator (pid {orchestrator.pid}) is gone")
    assert _gone(config) == []  # runs list stopped the leftover trainer
