"""launch/rundir.py: run folders are never reused, writes are atomic, crashed runs still list."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.launch import rundir as rundir_module
from kohya_orchestrator.launch.rundir import (
    RunDir,
    RunSummary,
    list_runs,
    redact_env,
    slugify,
    write_error_reason,
)
from kohya_orchestrator.render.command import LaunchSpec

NOW = datetime(2026, 2, 16, 8, 7, 29)


class TestCreate:
    def test_name_is_timestamp_and_slug(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path / "runs", "My Oil-Paint Style!", now=NOW)
        assert run.path == tmp_path / "runs" / "20260216-080729-my-oil-paint-style"
        assert run.path.is_dir()
        assert run.run_id == "20260216-080729-my-oil-paint-style"
        assert list(run.path.iterdir()) == []

    def test_same_second_never_collides(self, tmp_path: Path) -> None:
        names = [RunDir.create(tmp_path, "job", now=NOW).run_id for _ in range(3)]
        assert names == ["20260216-080729-job", "20260216-080729-job-2", "20260216-080729-job-3"]

    def test_concurrent_creates_get_distinct_folders(self, tmp_path: Path) -> None:
        made: list[Path] = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def create() -> None:
            barrier.wait()
            run = RunDir.create(tmp_path, "job", now=NOW)
            with lock:
                made.append(run.path)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(made)) == 8

    @pytest.mark.parametrize(
        ("name", "slug"),
        [
            ("oilpaint", "oilpaint"),
            ("My Style v2", "my-style-v2"),
            ("  ../../etc/passwd ", "etc-passwd"),
            ("café_ñ", "cafe_n"),
            ("日本語", "run"),
            ("", "run"),
            ("a" * 80, "a" * 60),
        ],
    )
    def test_slugify(self, name: str, slug: str) -> None:
        assert slugify(name) == slug


class TestOpen:
    def test_open_existing(self, tmp_path: Path) -> None:
        created = RunDir.create(tmp_path, "job", now=NOW)
        assert RunDir.open(created.path).path == created.path

    def test_open_missing_is_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="not a run directory"):
            RunDir.open(tmp_path / "nope")


class TestWrites:
    def test_write_text_bytes_json(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.write_text("config.toml", "a = 1\n")
        run.write_bytes("sample_prompts.txt", b"oil painting --w 64\n")
        run.write_json("command.json", {"argv": ["python", "train_network.py"], "env": {}})
        spec = LaunchSpec(argv=("python", "x.py"), env={"A": "1"}, cwd=tmp_path)
        run.write_json("environment.json", spec)
        assert (run.path / "config.toml").read_text() == "a = 1\n"
        assert (run.path / "sample_prompts.txt").read_bytes() == b"oil painting --w 64\n"
        assert json.loads((run.path / "command.json").read_text())["argv"][1] == "train_network.py"
        assert json.loads((run.path / "environment.json").read_text())["env"] == {"A": "1"}
        assert (run.path / "command.json").read_text().endswith("}\n")
        assert sorted(p.name for p in run.path.iterdir()) == [
            "command.json",
            "config.toml",
            "environment.json",
            "sample_prompts.txt",
        ]

    def test_overwrite_replaces_whole_file(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.write_text("config.toml", "long content\n" * 100)
        run.write_text("config.toml", "short\n")
        assert (run.path / "config.toml").read_text() == "short\n"

    def test_failed_write_keeps_old_file_and_leaves_no_temp(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.write_text("config.toml", "old\n")
        (run.path / "taken").mkdir()  # the rename onto a folder fails for real
        with pytest.raises(IsADirectoryError):
            run.write_text("taken", "new\n")
        assert (run.path / "config.toml").read_text() == "old\n"
        assert sorted(p.name for p in run.path.iterdir()) == ["config.toml", "taken"]

    @pytest.mark.parametrize("name", ["", "..", "a/b", "..\\x"])
    def test_rejects_paths(self, tmp_path: Path, name: str) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        with pytest.raises(ValueError, match="plain file name"):
            run.write_text(name, "x")

    def test_append_event_lines(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.append_event_line('{"kind": "a"}')
        run.append_event_line('{"kind": "b"}\n')
        assert run.events_jsonl.read_text() == '{"kind": "a"}\n{"kind": "b"}\n'
        with pytest.raises(ValueError, match="newline"):
            run.append_event_line("{}\n{}")

    def test_status_and_rc(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        assert run.read_status() is None
        assert run.read_returncode() is None
        run.set_status("running")
        assert (run.path / "status").read_text() == "running\n"
        assert not (run.path / "rc").exists()
        run.set_status("failed", returncode=-2)
        assert run.read_status() == "failed"
        assert run.read_returncode() == -2
        assert (run.path / "rc").read_text() == "-2\n"
        with pytest.raises(ValueError, match="bad status"):
            run.set_status("two\nlines")

    def test_fspath(self, tmp_path: Path) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        assert os.fspath(run) == str(run.path)
        assert repr(run) == f"RunDir({str(run.path)!r})"


class TestListRuns:
    def test_missing_root(self, tmp_path: Path) -> None:
        assert list_runs(tmp_path / "none") == []

    def test_finished_and_crashed_runs(self, tmp_path: Path) -> None:
        done = RunDir.create(tmp_path, "first", now=NOW)
        done.write_json("job.json", {"training": {"output_name": "oil_v1"}})
        done.console_log.write_bytes(b"...")
        done.set_status("succeeded", 0)
        # The orchestrator died half-way: only job.json and a partial console.log exist.
        crashed = RunDir.create(tmp_path, "second", now=datetime(2026, 2, 17, 9, 0, 0))
        crashed.write_json("job.json", {"name": "oil_v2"})
        crashed.console_log.write_bytes(b"steps:  12%|\xe2\x96\x88")
        # Damaged files are tolerated too.
        broken = RunDir.create(tmp_path, "third", now=datetime(2026, 2, 18, 9, 0, 0))
        (broken.path / "job.json").write_text("{not json")
        (broken.path / "rc").write_text("n/a")
        (tmp_path / "notes").mkdir()  # not a run
        (tmp_path / ".hidden").mkdir()
        (tmp_path / "README.txt").write_text("x")

        runs = list_runs(tmp_path)

        assert runs == [
            RunSummary(
                path=done.path,
                run_id="20260216-080729-first",
                job_name="oil_v1",
                status="succeeded",
                returncode=0,
                started_at=NOW,
                has_console_log=True,
            ),
            RunSummary(
                path=crashed.path,
                run_id="20260217-090000-second",
                job_name="oil_v2",
                status=None,
                returncode=None,
                started_at=datetime(2026, 2, 17, 9, 0, 0),
                has_console_log=True,
            ),
            RunSummary(
                path=broken.path,
                run_id="20260218-090000-third",
                job_name="third",
                started_at=datetime(2026, 2, 18, 9, 0, 0),
            ),
        ]

    def test_foreign_folder_with_status_is_listed(self, tmp_path: Path) -> None:
        (tmp_path / "manual").mkdir()
        (tmp_path / "manual" / "status").write_text("canceled\n")
        [summary] = list_runs(tmp_path)
        assert summary.status == "canceled"
        assert summary.started_at is None
        assert summary.job_name is None


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


class TestDiskFull:
    """Issue 17 item 12, unit level: the reserve, the status written in place, the reason."""

    def test_begin_reserves_space_and_holds_the_lock(self, tmp_path: Path) -> None:
        run = RunDir.begin(tmp_path, "job")
        assert (run.path / ".space-reserve").stat().st_size == 64 * 1024
        record = json.loads((run.path / "orchestrator.json").read_text())
        assert record["pid"] == os.getpid() and record["started"] > 0
        run.release_space()
        run.release_space()  # idempotent, never raises
        assert not (run.path / ".space-reserve").exists()
        run.release()

    @pytest.mark.parametrize("failing", ["the reserve", "the record"])
    def test_begin_on_a_full_disk_leaves_no_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
    ) -> None:
        if failing == "the reserve":
            monkeypatch.setattr(os, "urandom", lambda n: _enospc())
        else:
            monkeypatch.setattr(RunDir, "write_json", _enospc)
        with pytest.raises(OSError, match="No space left"):
            RunDir.begin(tmp_path / "runs", "job")
        assert list((tmp_path / "runs").iterdir()) == []

    def test_status_is_written_in_place_when_no_new_file_fits(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        run = RunDir.create(tmp_path, "job", now=NOW)
        run.set_status("running")
        monkeypatch.setattr(rundir_module, "write_atomic", _enospc)
        with pytest.raises(OSError, match="No space left"):
            run.set_status("failed", returncode=1)
        assert run.read_status() == "failed"  # over the old one: no new block needed
        assert (run.path / "status").read_bytes() == b"failed\n"
        assert run.read_returncode() is None  # a new file: lost
        fresh = RunDir.create(tmp_path, "fresh", now=NOW)
        with pytest.raises(OSError, match="No space left"):
            fresh.set_status("pending")
        assert fresh.read_status() is None

    def test_reasons(self, tmp_path: Path) -> None:
        full = OSError(errno.ENOSPC, "No space left on device")
        quota = OSError(errno.EDQUOT, "Disk quota exceeded")
        denied = OSError(errno.EACCES, "Permission denied")
        assert write_error_reason(full, tmp_path) == f"no space left on {tmp_path}"
        assert write_error_reason(quota, tmp_path) == f"no space left on {tmp_path}"
        assert write_error_reason(denied, tmp_path) == (
            f"cannot write into {tmp_path}: Permission denied"
        )


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _orphaned(tmp_path: Path, **record: object) -> RunDir:
    """A run left 'running' by an orchestrator that is gone (its lock free, its record given)."""
    run = RunDir.begin(tmp_path, "job")
    run.set_status("running")
    run.release()
    base = {"pid": _dead_pid(), "started": time.time() - 5, "host": os.uname().nodename}
    run.write_json("orchestrator.json", {**base, **record})
    return run


def _sleeper(*argv: str, new_session: bool = False) -> subprocess.Popen[bytes]:
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    return subprocess.Popen([sys.executable, "-c", code, *argv], start_new_session=new_session)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(sys.platform == "win32", reason="flock and sessions")
class TestInterruption:
    """Issue 17 item 15, unit level: who may call a run interrupted, and what is stopped."""

    def test_a_run_whose_orchestrator_holds_the_lock_is_running(self, tmp_path: Path) -> None:
        run = RunDir.begin(tmp_path, "job")
        run.set_status("running")
        assert run.interruption() is None
        assert RunDir(run.path).summary().status == "running"  # another reader, same process
        run.release()
        # lock free, but the recorded pid (this process, at its start time) still runs
        assert run.interruption() is None

    def test_lock_free_and_pid_gone_is_interrupted(self, tmp_path: Path) -> None:
        run = _orphaned(tmp_path)
        pid = json.loads((run.path / "orchestrator.json").read_text())["pid"]
        reason = run.interruption()
        assert reason == (
            f"its orchestrator (pid {pid}) is gone: it was killed or crashed while the run was open"
        )
        [summary] = list_runs(tmp_path)
        assert (summary.status, summary.reason) == ("interrupted", reason)
        assert run.read_status() == "running"  # readers never rewrite the record

    def test_a_damaged_record_still_gives_a_reason(self, tmp_path: Path) -> None:
        run = _orphaned(tmp_path)
        (run.path / "orchestrator.json").write_text("{not json")
        assert run.interruption() == (
            "its orchestrator (its process) is gone: it was killed or crashed while the run was open"
        )

    def test_a_run_that_ends_while_it_is_read_is_not_interrupted(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        run = _orphaned(tmp_path)
        seen = iter(["running", "succeeded"])  # its orchestrator wrote the end, then let go
        monkeypatch.setattr(RunDir, "read_status", lambda self: next(seen))
        assert run.interruption() is None

    def test_a_reused_pid_does_not_keep_a_run_alive(self, tmp_path: Path) -> None:
        run = _orphaned(tmp_path, pid=os.getpid(), started=1.0)  # our pid, another start time
        assert run.interruption() is not None

    @pytest.mark.parametrize(
        ("status", "record", "lock"),
        [
            pytest.param("succeeded", {}, True, id="finished"),
            pytest.param("running", {"host": "another-host"}, True, id="another-host"),
            pytest.param("running", {}, False, id="no-lock-older-run"),
        ],
    )
    def test_never_judged(
        self, tmp_path: Path, status: str, record: dict[str, str], lock: bool
    ) -> None:
        run = _orphaned(tmp_path, **record)
        run.set_status(status)
        if not lock:
            (run.path / "orchestrator.lock").unlink()
        assert run.interruption() is None
        assert list_runs(tmp_path)[0].status == status

    def test_a_file_system_without_locks_falls_back_to_the_pid(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_locks(fd: int, op: int) -> None:
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(fcntl, "flock", no_locks)
        run = RunDir.begin(tmp_path, "job")
        run.set_status("running")
        assert run.interruption() is None  # our pid runs
        run.write_json("orchestrator.json", {"pid": _dead_pid(), "started": 1.0})
        assert run.interruption() is not None
        run.release()

    def test_leftovers_are_stopped_by_recorded_pid_and_by_command_line(
        self, tmp_path: Path
    ) -> None:
        run = RunDir.begin(tmp_path, "job")
        run.set_status("running")
        trainer = _sleeper(new_session=True)  # a trainer leads a session of its own
        config = str(run.path.resolve() / "config.toml")
        named = _sleeper("--config_file", config)  # started, not yet recorded
        editor = _sleeper(config)  # names the file, but is no trainer of it
        for proc in (trainer, named):
            deadline = time.monotonic() + 20
            while len(psutil.Process(proc.pid).children()) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        kids = [c.pid for p in (trainer, named) for c in psutil.Process(p.pid).children()]
        run.note_trainer(trainer.pid)
        run.release()
        record = json.loads((run.path / "orchestrator.json").read_text())
        run.write_json("orchestrator.json", {**record, "pid": _dead_pid()})
        try:
            [summary] = list_runs(tmp_path)  # reading it stops what is left
            assert summary.status == "interrupted"
            for proc in (trainer, named):
                proc.wait(10)
            assert all(_gone(pid) for pid in kids), kids
            assert editor.poll() is None
            assert not (run.path / ".space-reserve").exists()
        finally:
            for proc in (trainer, named, editor):
                with contextlib.suppress(psutil.Error):
                    for child in psutil.Process(proc.pid).children():
                        child.kill()
                proc.kill()
                proc.wait(10)
            for pid in kids:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()


class TestRedactEnv:
    def test_masks_secrets_keeps_the_rest(self) -> None:
        env = {
            "HF_TOKEN": "hf_abc",
            "HUGGING_FACE_HUB_TOKEN": "x",
            "WANDB_API_KEY": "y",
            "AWS_SECRET_ACCESS_KEY": "z",
            "DB_PASSWORD": "p",
            "github_token": "t",
            "PATH": "/usr/bin",
            "CUDA_VISIBLE_DEVICES": "0",
            "MY_NOTE": "hf_" + "A" * 30,
        }
        assert redact_env(env) == {
            "HF_TOKEN": "***",
            "HUGGING_FACE_HUB_TOKEN": "***",
            "WANDB_API_KEY": "***",
            "AWS_SECRET_ACCESS_KEY": "***",
            "DB_PASSWORD": "***",
            "github_token": "***",
            "PATH": "/usr/bin",
            "CUDA_VISIBLE_DEVICES": "0",
            "MY_NOTE": "***",
        }
