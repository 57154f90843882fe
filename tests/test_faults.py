"""Fault drills: whatever ends a run, no process of it is left running when the run is final.

Each drill runs the stand-in trainer (tests/fixtures/fake_sd_scripts, replaying a real capture;
never proof of training), some of them under the stand-in ``accelerate launch``
(``fake_accelerate/``: a parent that dies on SIGINT and leaves its trainer child running), and
checks, the moment ``Run.wait()`` returns: the final status, the records (status file, events,
the warning that names what had to be stopped) and that no process of the run runs any more, by
process group and session id (the leader's pid) and by the pids the stand-ins wrote down.
Zombies count as gone: in some sandboxes PID 1 never reaps orphans.

Disk full (issue 17 item 12) is drilled twice: on a real 300 KiB tmpfs (root only, skipped with
the reason elsewhere) and with write failures made by monkeypatching (everywhere). The
orchestrator's SIGKILL (item 15) runs ``python -m kohya_orchestrator train`` in a subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fake_runs import FAKE_SD_SCRIPTS, fake_install, fake_job, replay, start_fake

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import LaunchError
from kohya_orchestrator.events import RunStatus
from kohya_orchestrator.launch.rundir import RunDir
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


# ---------------------------------------------------------------- disk full (issue 17 item 12)
HANG = "--stop-after 30 --hang --spawn-grandchild --max-lifetime 60"
ENOSPC = OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 300 KiB tmpfs at ``tmp_path/disk``; skipped with the reason where none can be mounted."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root on Linux (the monkeypatched drills cover the code)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


def _fill(disk: Path, leave: int) -> None:
    """Leave about ``leave`` bytes free on ``disk``."""
    stat = os.statvfs(disk)
    with (disk / f"filler-{time.monotonic_ns()}").open("wb") as f:
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))


def _start_on(tmp_path: Path, runs: Path, name: str) -> Run:
    return start(
        fake_job(tmp_path, name),
        install=fake_install(),
        runs=runs,
        launch=LaunchOptions(use_accelerate=False),
        probe=False,
        monitor_interval_s=0.2,
        watchdogs=Watchdogs(cancel_grace_s=1.0),
    )


def _kinds_and_texts(run_dir: Path) -> list[tuple[str, str | None]]:
    return [
        (e.kind, getattr(e, "reason", None) or getattr(e, "message", None))
        for e in read_events(run_dir)
    ]


def _check_stopped_for_the_disk(result: RunResult, pids: dict[str, int], leader: int) -> None:
    """Failed for the disk, records complete, nothing of the run left."""
    reason = f"no space left on {result.run_dir}"
    assert _left(leader, [leader, pids.get("pid"), pids.get("grandchild")]) == []
    assert result.status == RunStatus.FAILED and result.reason == reason
    assert result.write_error == reason
    assert (result.run_dir / "status").read_text() == "failed\n"
    assert (result.run_dir / "rc").read_text().strip() == str(result.returncode)
    events = _kinds_and_texts(result.run_dir)
    assert events[-1] == ("run_finished", reason)
    warning = events[-2]
    assert warning[0] == "child_warning" and warning[1] is not None
    assert warning[1].startswith(f"{reason}: the trainer was stopped")
    assert not (result.run_dir / ".space-reserve").exists()


@pytest.mark.parametrize(
    ("leave", "folder_left"),
    [
        pytest.param(8 * 1024, False, id="no-room-for-the-run-directory"),
        pytest.param(64 * 1024 + 12 * 1024, True, id="room-for-its-reserve-only"),
    ],
)
def test_disk_full_before_the_launch_starts_nothing(
    captures_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_disk: Path,
    leave: int,
    folder_left: bool,
) -> None:
    pid_file = tmp_path / "pids.json"
    replay(monkeypatch, captures_dir, "a_lora_accelerate", args=f"{HANG} --pid-file {pid_file}")
    runs = small_disk / "runs"
    runs.mkdir()
    _fill(small_disk, leave)
    with pytest.raises(LaunchError) as raised:
        _start_on(tmp_path, runs, "full")
    run_dirs = list(runs.iterdir())
    assert not pid_file.exists()  # no trainer was started
    if not folder_left:
        assert str(raised.value) == f"no space left on {runs}: the trainer was not started"
        assert run_dirs == []
        return
    (run_dir,) = run_dirs
    reason = f"no space left on {run_dir}"
    assert str(raised.value) == f"{reason}: the trainer was not started"
    assert (run_dir / "status").read_text() == "failed\n"
    assert _kinds_and_texts(run_dir)[-2:] == [
        ("child_warning", f"{reason}: nothing was started"),
        ("run_finished", reason),
    ]
    assert RunDir(run_dir).interruption() is None  # its lock was released after the end


def test_disk_fills_while_the_trainer_runs(
    captures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_disk: Path
) -> None:
    pid_file = tmp_path / "pids.json"
    replay(monkeypatch, captures_dir, "a_lora_accelerate", args=f"{HANG} --pid-file {pid_file}")
    run = _start_on(tmp_path, small_disk / "runs", "fills")
    leader = run.pids[0]
    pids = _read_when_there(pid_file)
    _fill(small_disk, 0)
    result = run.wait(60)
    _check_stopped_for_the_disk(result, pids, leader)


class _FullFile:
    """An events.jsonl on a full disk: the first write gets half its bytes out, every write fails,
    until the run frees its reserved space (RunDir.release_space)."""

    def __init__(self, real: Any, state: dict[str, bool]) -> None:
        self.real, self.state = real, state

    def write(self, data: memoryview) -> int:
        if not self.state["full"]:
            return int(self.real.write(data))
        if not self.state["torn"]:
            self.state["torn"] = True
            return int(self.real.write(data[: len(data) // 2]))
        raise ENOSPC

    def close(self) -> None:
        self.real.close()


def test_events_jsonl_write_fails_while_the_trainer_runs(
    captures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The monkeypatched twin of the tmpfs drill: the event writer's ENOSPC stops the run, never
    # kills its thread (the CLI hung for ever with status 'running').
    pid_file = tmp_path / "pids.json"
    replay(monkeypatch, captures_dir, "a_lora_accelerate", args=f"{HANG} --pid-file {pid_file}")
    state = {"full": True, "torn": False}
    release = RunDir.release_space

    def freed(self: RunDir) -> None:
        state["full"] = False
        release(self)

    monkeypatch.setattr(RunDir, "release_space", freed)
    run = start_fake(
        fake_job(tmp_path, "events"),
        fake_install(),
        tmp_path,
        watchdogs=Watchdogs(cancel_grace_s=1.0),
    )
    leader = run.pids[0]
    pids = _read_when_there(pid_file)
    with run._lock:
        run._events_file = _FullFile(run._events_file, state)  # type: ignore[assignment]
    result = run.wait(60)

    _check_stopped_for_the_disk(result, pids, leader)
    lines = (result.run_dir / "events.jsonl").read_text().splitlines()
    torn = [line for line in lines if not line.endswith("}")]
    assert len(torn) == 1  # the cut line, ended so that the next one stands on its own
    warning = _kinds_and_texts(result.run_dir)[-2][1]
    assert warning is not None and " events were not recorded" in warning


@pytest.mark.parametrize(
    "where", ["orchestrator.json after the launch", "console.log", "status before the launch"]
)
def test_a_failed_run_directory_write_stops_the_run(
    captures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    pid_file = tmp_path / "pids.json"
    replay(monkeypatch, captures_dir, "a_lora_accelerate", args=f"{HANG} --pid-file {pid_file}")
    if where == "orchestrator.json after the launch":  # the orchestrator died after launching
        monkeypatch.setattr(RunDir, "note_trainer", lambda self, pid: _raise(ENOSPC))
    elif where == "console.log":  # /dev/full: every write fails with ENOSPC
        if not Path("/dev/full").exists():
            pytest.skip("needs /dev/full (Linux)")
        monkeypatch.setattr(RunDir, "console_log", property(lambda self: Path("/dev/full")))
    else:
        write = RunDir.set_status

        def no_starting(self: RunDir, status: str, returncode: int | None = None) -> None:
            if status == "starting":
                raise ENOSPC
            write(self, status, returncode)

        monkeypatch.setattr(RunDir, "set_status", no_starting)
        with pytest.raises(LaunchError, match="the trainer was not started"):
            start_fake(fake_job(tmp_path, "early"), fake_install(), tmp_path)
        (run_dir,) = (tmp_path / "runs").iterdir()
        assert not pid_file.exists()
        assert (run_dir / "status").read_text() == "failed\n"
        assert _kinds_and_texts(run_dir)[-1] == ("run_finished", f"no space left on {run_dir}")
        return
    run = start_fake(
        fake_job(tmp_path, "late"),
        fake_install(),
        tmp_path,
        watchdogs=Watchdogs(cancel_grace_s=1.0),
    )
    leader = run.pids[0]
    result = run.wait(60)
    # stopped at once: the trainer may not have got as far as writing its pid file
    pids = json.loads(pid_file.read_text()) if pid_file.exists() else {}
    _check_stopped_for_the_disk(result, pids, leader)
    if where == "console.log":
        warning = _kinds_and_texts(result.run_dir)[-2][1]
        assert warning is not None and warning.endswith("console.log is cut short")


def _raise(exc: BaseException) -> None:
    raise exc


# ------------------------------------------------ the orchestrator is SIGKILLed (issue 17 item 15)


def test_orchestrator_killed_mid_run_is_interrupted_and_leaves_nothing(
    captures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sd = tmp_path / "sd-scripts"
    (sd / "library").mkdir(parents=True)
    shutil.copy(FAKE_SD_SCRIPTS / "train_network.py", sd / "train_network.py")
    fake_job(tmp_path, "killed")  # its image folder and model file
    job_file = tmp_path / "killed.toml"
    job_file.write_text(
        f"[model]\npretrained_model_name_or_path = {json.dumps(str(tmp_path / 'sd15.safetensors'))}\n"
        f"[[dataset.subsets]]\nimage_dir = {json.dumps(str(tmp_path / 'img' / '2_oilpaint style'))}\n"
        f"[training]\nmax_train_epochs = 2\noutput_dir = {json.dumps(str(tmp_path / 'out'))}\n"
        "output_name = 'killed'\n"
    )
    pid_file, launcher_file = tmp_path / "pids.json", tmp_path / "launcher.json"
    chunks = captures_dir / "sd-scripts-logs" / "a_lora_accelerate" / "chunks.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(FAKE_ACCELERATE), str(Path(__file__).parents[1])]),
        "KOHYA_PYTHON": sys.executable,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "FAKE_SD_SCRIPTS_REPLAY": str(chunks),
        "FAKE_SD_SCRIPTS_ARGS": f"--speed 0 {HANG} --pid-file {pid_file}",
        "FAKE_ACCELERATE_PID_FILE": str(launcher_file),
    }
    env.pop("KOHYA_SD_SCRIPTS", None)
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "kohya_orchestrator", "train", str(job_file)]
    argv += ["--sd-scripts", str(sd), "--runs", str(runs), "--no-probe", "--jsonl"]
    orchestrator = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + PATIENCE_S
        while not (pid_file.is_file() and runs.is_dir() and any(runs.iterdir())):
            assert orchestrator.poll() is None, "train exited early (its stderr is above)"
            assert time.monotonic() < deadline, "the trainer never started"
            time.sleep(0.02)
        pids = _read_when_there(pid_file)
        launcher = _read_when_there(launcher_file)
        (run_dir,) = runs.iterdir()
        assert _read_when_there(run_dir / "orchestrator.json")["pid"] == orchestrator.pid
        while "trainer_pid" not in json.loads((run_dir / "orchestrator.json").read_text()):
            assert time.monotonic() < deadline, "the trainer was never recorded"
            time.sleep(0.02)
        os.kill(orchestrator.pid, signal.SIGKILL)
        orchestrator.wait(PATIENCE_S)
    finally:
        if orchestrator.poll() is None:  # pragma: no cover - a failed test
            orchestrator.kill()
    leader = launcher["launcher"]
    assert (run_dir / "status").read_text() == "running\n"  # as the dead orchestrator left it

    assert main(["runs", "list", "--runs", str(runs), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["status"] == "interrupted"
    assert listed["reason"].startswith(f"its orchestrator (pid {orchestrator.pid}) is gone")
    assert _left(leader, [leader, pids["pid"], pids["grandchild"]]) == []
    assert main(["runs", "show", str(run_dir)]) == 0
    shown = capsys.readouterr().out
    assert "status: interrupted" in shown and f"pid {orchestrator.pid}" in shown


def test_a_run_directory_that_cannot_take_its_last_records_still_ends(
    captures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when the final status and sink_errors.txt cannot be written, the run ends (the
    waiter never hangs), and its lock is released."""
    replay(monkeypatch, captures_dir, "b_loha", args="--exit-code 1")
    set_status, write_text = RunDir.set_status, RunDir.write_text

    def no_end(self: RunDir, status: str, returncode: int | None = None) -> None:
        if status == "failed":
            raise OSError(errno.EIO, "Input/output error")
        set_status(self, status, returncode)

    def no_notes(self: RunDir, name: str, text: str) -> Path:
        if name == "sink_errors.txt":
            raise OSError(errno.EIO, "Input/output error")
        return write_text(self, name, text)

    monkeypatch.setattr(RunDir, "set_status", no_end)
    monkeypatch.setattr(RunDir, "write_text", no_notes)
    result = start_fake(fake_job(tmp_path, "eio"), fake_install(), tmp_path).wait(60)
    assert result.status == RunStatus.FAILED
    assert (result.run_dir / "status").read_text() == "running\n"  # what could not be helped
    assert read_events(result.run_dir)[-1].kind == "run_finished"
    assert not (result.run_dir / "sink_errors.txt").exists()


@pytest.mark.parametrize("what", ["events.jsonl", "console.log", "a bug"])
def test_a_run_that_cannot_start_is_never_left_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    if what == "a bug":
        import kohya_orchestrator.run as run_module

        def broken(*args: object) -> None:
            raise RuntimeError("a renderer bug")

        monkeypatch.setattr(run_module, "_write_run_files", broken)
        with pytest.raises(RuntimeError, match="a renderer bug"):
            start_fake(fake_job(tmp_path, "bug"), fake_install(), tmp_path)
    else:  # a path under a file: ENOTDIR or EEXIST, not a full disk
        attribute = "events_jsonl" if what == "events.jsonl" else "console_log"
        monkeypatch.setattr(RunDir, attribute, property(lambda self: blocked / what))
        with pytest.raises(LaunchError) as raised:
            start_fake(fake_job(tmp_path, "cannot"), fake_install(), tmp_path)
        assert str(raised.value).startswith("cannot write into ")  # not "no space left"
        assert str(raised.value).endswith(": the trainer was not started")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "status").read_text() == "failed\n"
    assert RunDir(run_dir).interruption() is None
