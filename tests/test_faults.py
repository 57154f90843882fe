"""Fault drills: whatever ends a run, no process of it is left running when the run is final.

Each drill runs the stand-in trainer (tests/fixtures/fake_sd_scripts, replaying a real capture;
never proof of training), some of them under the stand-in ``accelerate launch``
(``fake_accelerate/``: a parent that dies on SIGINT and leaves its trainer child running), and
checks, the moment ``Run.wait()`` returns: the final status, the records (status file, events,
the warning that names what had to be stopped) and that no process of the run runs any more, by
process group and session id (the leader's pid) and by the pids the stand-ins wrote down.
Zombies count as gone: in some sandboxes PID 1 never reaps orphans.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
import pytest
from fake_runs import FAKE_SD_SCRIPTS, fake_install, fake_job, replay, start_fake

from kohya_orchestrator.events import RunStatus
from kohya_orchestrator.render.command import LaunchOptions
from kohya_orchestrator.run import Run, RunResult, Watchdogs, read_events, start

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

FAKE_ACCELERATE = FAKE_SD_SCRIPTS / "fake_accelerate"
PATIENCE_S = 30.0


def _left(leader: int, recorded: Iterable[int | None]) -> list[str]:
    """Live processes in the leader's group or session, or among ``recorded``."""
    pids = {pid for pid in recorded if pid}
    found: list[str] = []
    for proc in psutil.process_iter(["status", "cmdline"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            ours = proc.pid in pids or leader in (os.getpgid(proc.pid), os.getsid(proc.pid))
        except OSError:
            continue
        if ours:
            found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])}")
    return found


def _read_when_there(path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE_S
    while not path.is_file():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {path.name}")
        time.sleep(0.02)
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _start_launched(tmp_path: Path, name: str, watchdogs: Watchdogs) -> Run:
    """The stand-in trainer under the stand-in ``accelerate launch``: the production argv shape."""
    return start(
        fake_job(tmp_path, name),
        install=fake_install(),
        runs=tmp_path / "runs",
        launch=LaunchOptions(use_accelerate=True),
        probe=False,
        monitor_interval_s=0.2,
        watchdogs=watchdogs,
        extra_env={
            "PYTHONPATH": str(FAKE_ACCELERATE),
            "FAKE_ACCELERATE_PID_FILE": str(tmp_path / "launcher.json"),
        },
    )


def _leftover_warning(result: RunResult) -> str:
    """The text of the run's warning about processes that outlived the launcher."""
    events = read_events(result.run_dir)
    assert events[-1].kind == "run_finished"
    assert events[-1].status == result.status  # type: ignore[union-attr]
    warnings = [e for e in events if e.kind == "child_warning" and e.source == "launch"]
    assert len(warnings) == 1, warnings
    return warnings[0].message  # type: ignore[union-attr,no-any-return]


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param("--ignore-sigterm", id="same-group-sigterm-deaf"),
        # only found through the pids recorded while the trainer ran: linger past one record
        pytest.param("--grandchild-new-session --linger 2.5", id="own-session"),
    ],
)
def test_crash_leaving_a_child_running(
    captures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: str
) -> None:
    pid_file = tmp_path / "pids.json"
    replay(
        monkeypatch,
        captures_dir,
        "b_loha",
        args=f"--exit-code 1 --spawn-grandchild --max-lifetime 60 --pid-file {pid_file} {flags}",
    )
    run = start_fake(
        fake_job(tmp_path, "crash"),
        fake_install(),
        tmp_path,
        watchdogs=Watchdogs(cancel_grace_s=0.5),
    )
    leader = run.pids[0]
    result = run.wait(60)
    pids = _read_when_there(pid_file)

    assert _left(leader, [leader, pids["pid"], pids["grandchild"]]) == []
    assert result.status == RunStatus.FAILED and result.returncode == 1
    assert any(e.category == "lycoris_duplicated_name" for e in result.errors)
    assert (result.run_dir / "status").read_text().strip() == "failed"
    warning = _leftover_warning(result)
    assert f"pid {pids['grandchild']} " in warning
    expected = "SIGKILL" if "sigterm" in flags else "SIGTERM"
    assert expected in warning


@pytest.mark.parametrize(
    ("flags", "signal_name"),
    [
        pytest.param("--ignore-sigint", "SIGTERM", id="sigint-deaf"),
        pytest.param("--ignore-sigint --ignore-sigterm", "SIGKILL", id="sigint-sigterm-deaf"),
    ],
)
def test_stall_watchdog_stops_a_sigint_deaf_trainer_under_the_launcher(
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flags: str,
    signal_name: str,
) -> None:
    # Issue 17 item 13: the launcher dies on SIGINT at once; the trainer and its child do not.
    pid_file = tmp_path / "pids.json"
    replay(
        monkeypatch,
        captures_dir,
        "a_lora_accelerate",
        args=f"--stop-after 30 --hang --spawn-grandchild --max-lifetime 60 --pid-file {pid_file} "
        + flags,
    )
    run = _start_launched(tmp_path, "stall", Watchdogs(stall_minutes=0.02, cancel_grace_s=1.0))
    leader = run.pids[0]
    launcher = _read_when_there(tmp_path / "launcher.json")
    result = run.wait(60)
    pids = _read_when_there(pid_file)

    assert _left(leader, [leader, launcher["trainer"], pids["pid"], pids["grandchild"]]) == []
    assert launcher["launcher"] == leader and launcher["trainer"] == pids["pid"]
    assert result.status == RunStatus.FAILED and "stalled" in (result.reason or "")
    assert result.returncode == -signal.SIGINT  # the launcher went at the first signal
    warning = _leftover_warning(result)
    assert f"pid {pids['pid']} " in warning and f"pid {pids['grandchild']} " in warning
    assert signal_name in warning


def test_launcher_killed_from_outside_while_the_trainer_runs(
    captures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 17 item 14: SIGKILL (the OOM killer) of `accelerate launch` orphans its trainer.
    pid_file = tmp_path / "pids.json"
    replay(
        monkeypatch,
        captures_dir,
        "a_lora_accelerate",
        args=f"--stop-after 30 --hang --spawn-grandchild --max-lifetime 60 --pid-file {pid_file}",
    )
    run = _start_launched(tmp_path, "oom", Watchdogs(cancel_grace_s=1.0))
    leader = run.pids[0]
    pids = _read_when_there(pid_file)
    os.kill(leader, signal.SIGKILL)
    result = run.wait(60)

    assert _left(leader, [leader, pids["pid"], pids["grandchild"]]) == []
    assert result.status == RunStatus.FAILED
    assert result.returncode == -signal.SIGKILL
    assert result.reason == "exit code -9"
    warning = _leftover_warning(result)
    assert f"pid {pids['pid']} " in warning and f"pid {pids['grandchild']} " in warning
    assert "SIGTERM" in warning


def test_user_cancel_under_the_launcher_finishes_its_escalation(
    captures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run is final only after the SIGINT-deaf, SIGTERM-deaf trainer got its SIGKILL.
    pid_file = tmp_path / "pids.json"
    replay(
        monkeypatch,
        captures_dir,
        "a_lora_accelerate",
        args="--stop-after 30 --hang --ignore-sigint --ignore-sigterm --max-lifetime 60 "
        f"--pid-file {pid_file}",
    )
    run = _start_launched(tmp_path, "cancel", Watchdogs(cancel_grace_s=0.5))
    leader = run.pids[0]
    pids = _read_when_there(pid_file)
    run.cancel()
    result = run.wait(60)

    assert _left(leader, [leader, pids["pid"]]) == []
    assert result.status == RunStatus.CANCELED
    assert (result.run_dir / "status").read_text().strip() == "canceled"
    assert "SIGKILL" in _leftover_warning(result)
