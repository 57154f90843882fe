"""Recovery after a dead runner, function by function, in this process (so coverage sees it).

``stop_leftover_trainer`` is exercised on the stand-in trainer (tests/fixtures/fake_sd_scripts,
started here in its own session like the orchestrator starts it, with the run directory's
config.toml on its command line); it only proves process control, never training.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fake_runs import saved_state

from kohya_orchestrator.events import EventAdapter, RunStarted, RunStatus, StateSaved
from kohya_orchestrator.launch.rundir import RunDir
from kohya_orchestrator.queue import JobStatus, QueueJob
from kohya_orchestrator.queue.records import Attempt
from kohya_orchestrator.queue.recovery import (
    close_interrupted_run,
    latest_state,
    stop_leftover_trainer,
)
from kohya_orchestrator.run import read_events

FAKE_TRAINER = Path(__file__).resolve().parents[1] / "fixtures" / "fake_sd_scripts"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _queue_job(run_dir: Path | None, pid: int | None, host: str | None = None) -> QueueJob:
    return QueueJob(
        id=1,
        name="k1",
        status=JobStatus.RUNNING,
        job_file=Path("job.toml"),
        added_at=0.0,
        run_dir=run_dir,
        trainer_pid=pid,
        runner_host=host,
    )


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever is left is killed and reaped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _start_trainer(
    spawned: list[subprocess.Popen[bytes]], run_dir: Path, pid_file: Path
) -> dict[str, int]:
    """The stand-in trainer as the orchestrator starts it: own session, config.toml in argv."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(FAKE_TRAINER / "train_network.py"),
            "--config_file",
            str(run_dir / "config.toml"),
            "--hang",
            "--spawn-grandchild",
            "--max-lifetime",
            "30",
            "--pid-file",
            str(pid_file),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("FAKE_SD_SCRIPTS")},
    )
    spawned.append(proc)
    deadline = time.monotonic() + 20
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    pids: dict[str, int] = json.loads(pid_file.read_text())
    assert pids["pid"] == proc.pid and pids["grandchild"] is not None
    return pids


def _sleeper(spawned: list[subprocess.Popen[bytes]]) -> int:
    """An unrelated process (its command line names no run directory)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], stdin=subprocess.DEVNULL
    )
    spawned.append(proc)
    return proc.pid


# ------------------------------------------------------------------ stop_leftover_trainer


def test_kills_the_left_behind_trainer_tree(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    run_dir = (tmp_path / "runs" / "r1").resolve()
    run_dir.mkdir(parents=True)
    pids = _start_trainer(spawned, run_dir, tmp_path / "pids.json")
    job = _queue_job(run_dir, pids["pid"], host=socket.gethostname())
    assert stop_leftover_trainer(job) is True
    assert spawned[0].wait(10) == -9  # SIGKILL
    assert not _alive(pids["grandchild"])


def test_a_reused_pid_is_never_signalled(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    other = _sleeper(spawned)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    assert stop_leftover_trainer(_queue_job(run_dir, other)) is False
    assert _alive(other)


def test_a_trainer_on_another_host_is_not_ours(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    run_dir = (tmp_path / "runs" / "r1").resolve()
    run_dir.mkdir(parents=True)
    pids = _start_trainer(spawned, run_dir, tmp_path / "pids.json")
    job = _queue_job(run_dir, pids["pid"], host=socket.gethostname() + "-elsewhere")
    assert stop_leftover_trainer(job) is False
    assert _alive(pids["pid"]) and _alive(pids["grandchild"])


def test_a_gone_trainer_or_missing_record_signals_nothing(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.DEVNULL)
    proc.wait(10)  # reaped: the pid is free
    run_dir = tmp_path / "r1"
    assert stop_leftover_trainer(_queue_job(run_dir, proc.pid)) is False
    assert stop_leftover_trainer(_queue_job(run_dir, None)) is False
    assert stop_leftover_trainer(_queue_job(None, _sleeper(spawned))) is False
    assert _alive(spawned[-1].pid)


# ------------------------------------------------------------------ close_interrupted_run


def _started(seq: int = 0, t: float = 1.5) -> str:
    event = RunStarted(seq=seq, t=t, run_id="r1", argv=["python"], cwd="/")
    return EventAdapter.dump_json(event).decode("utf-8")


def test_closes_a_running_run_after_a_half_written_line(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    rd.set_status("running")
    rd.events_jsonl.write_text(_started(seq=0, t=2.5) + "\n" + '{"kind": "step_pro')
    close_interrupted_run(tmp_path, "the runner died")
    lines = rd.events_jsonl.read_text().split("\n")
    assert lines[1] == '{"kind": "step_pro'  # kept, but ours starts on a fresh line
    events = read_events(tmp_path)
    assert [e.kind for e in events] == ["run_started", "run_finished"]
    finished = events[-1]
    assert finished.seq == 1 and finished.t == 2.5  # type: ignore[union-attr]
    assert finished.status == RunStatus.FAILED and finished.reason == "the runner died"  # type: ignore[union-attr]
    assert finished.returncode is None  # type: ignore[union-attr]
    assert rd.read_status() == "failed"
    assert (tmp_path / "interrupted.txt").read_text() == "the runner died\n"


def test_closes_a_run_with_a_complete_last_line(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    rd.set_status("starting")
    rd.events_jsonl.write_text(_started() + "\n")
    close_interrupted_run(tmp_path, "gone")
    assert rd.events_jsonl.read_text().count("\n") == 2  # no blank line inserted
    assert [e.kind for e in read_events(tmp_path)] == ["run_started", "run_finished"]


def test_closes_a_run_that_has_no_events_yet(tmp_path: Path) -> None:
    close_interrupted_run(tmp_path, "died before the first event")  # no status: still open
    (finished,) = read_events(tmp_path)
    assert finished.kind == "run_finished" and finished.seq == 0 and finished.t == 0.0
    assert finished.duration_s == 0.0  # type: ignore[union-attr]
    assert RunDir(tmp_path).read_status() == "failed"


def test_a_run_that_already_finished_its_events_only_gets_status(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    rd.set_status("running")  # the runner died between the last event and the status file
    from kohya_orchestrator.events import RunFinished

    done = RunFinished(seq=1, status=RunStatus.SUCCEEDED, returncode=0, duration_s=3.0)
    text = _started() + "\n" + EventAdapter.dump_json(done).decode("utf-8") + "\n"
    rd.events_jsonl.write_text(text)
    close_interrupted_run(tmp_path, "gone")
    assert rd.events_jsonl.read_text() == text
    assert rd.read_status() == "failed"
    assert (tmp_path / "interrupted.txt").is_file()


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled"])
def test_a_finished_run_is_left_alone(tmp_path: Path, status: str) -> None:
    rd = RunDir(tmp_path)
    rd.set_status(status, 0)
    close_interrupted_run(tmp_path, "gone")
    assert rd.read_status() == status
    assert not rd.events_jsonl.exists() and not (tmp_path / "interrupted.txt").exists()


def test_a_missing_run_directory_is_ignored(tmp_path: Path) -> None:
    close_interrupted_run(tmp_path / "never-made", "gone")
    assert not (tmp_path / "never-made").exists()


# ------------------------------------------------------------------ latest_state


def _attempt(n: int, run_dir: Path | None) -> Attempt:
    return Attempt(job_id=1, n=n, kind="first", run_dir=run_dir, status="failed", started_at=0.0)


def _touch_dir(path: Path, mtime: float) -> Path:
    saved_state(path)
    os.utime(path, (mtime, mtime))
    return path


def test_newest_state_folder_of_this_output_name(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _touch_dir(out / "style-state", 1000)
    newest = _touch_dir(out / "style-000002-state", 3000)
    _touch_dir(out / "style-step00000040-state", 2000)
    _touch_dir(out / "other-000009-state", 9000)  # another job's state
    _touch_dir(out / "style-samples", 9000)  # not a state folder
    (out / "style.safetensors").write_bytes(b"")
    data = {"training": {"output_dir": str(out), "output_name": "style"}}
    assert latest_state(data, []) == newest


def test_a_state_torn_while_saving_is_never_resumed_from(tmp_path: Path) -> None:
    """The real trainer, killed while saving, left model.safetensors, an empty optimizer.bin and
    no random_states_0.pkl; sd-scripts then fails to load it (EOFError)."""
    out = tmp_path / "out"
    whole = _touch_dir(out / "style-000001-state", 1000)
    torn = out / "style-000002-state"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"weights")
    (torn / "optimizer.bin").write_bytes(b"")
    os.utime(torn, (3000, 3000))
    data = {"training": {"output_dir": str(out), "output_name": "style"}}
    assert latest_state(data, []) == whole
    (torn / "optimizer.bin").write_bytes(b"optimizer")
    assert latest_state(data, []) == whole  # still no random_states_0.pkl: not finished
    (torn / "random_states_0.pkl").write_bytes(b"rng")
    assert latest_state(data, []) == torn


def test_state_saved_events_name_folders_by_their_basename(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    # sd-scripts logged the path where it ran; only its name is looked up in output_dir.
    moved = StateSaved(seq=1, path="/elsewhere/custom-name-folder", epoch=1)
    missing = StateSaved(seq=2, path="/elsewhere/vanished-folder", epoch=2)
    run_dir.joinpath("events.jsonl").write_text(
        _started()
        + "\n"
        + "".join(EventAdapter.dump_json(e).decode() + "\n" for e in (moved, missing))
    )
    found = _touch_dir(out / "custom-name-folder", 1000)
    data = {"training": {"output_dir": str(out), "output_name": "style"}}
    assert latest_state(data, [_attempt(1, None), _attempt(2, run_dir)]) == found


def test_no_state_anywhere_is_none(tmp_path: Path) -> None:
    assert latest_state({"training": {"output_dir": str(tmp_path / "missing")}}, []) is None
    # A job whose training table is not a table (hand-edited) has no state either.
    assert latest_state({"training": "broken"}, []) is None
    (tmp_path / "lora-state").write_text("a file, not a folder")
    assert latest_state({"training": {"output_dir": str(tmp_path)}}, []) is None
