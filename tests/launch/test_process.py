"""launch/process.py and launch/monitor.py, driven with tests/fixtures/fake_sd_scripts.

The fake replays real captures from tests/fixtures/sd-scripts/sd-scripts-logs/. Timeouts are
generous and nothing asserts on durations: these must pass on a loaded 2-core machine.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from kohya_orchestrator.errors import LaunchError
from kohya_orchestrator.launch.monitor import ResourceMonitor
from kohya_orchestrator.launch.process import ProcessHandle, kill_tree, spawn
from kohya_orchestrator.render.command import LaunchSpec

FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_sd_scripts" / "train_network.py"
PATIENCE_S = 30.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


def _gone(pid: int) -> bool:
    """Not running. A zombie counts as gone: in some sandboxes PID 1 never reaps orphans."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _chunks(captures_dir: Path, scenario: str) -> Path:
    return captures_dir / "sd-scripts-logs" / scenario / "chunks.jsonl"


def _expected_bytes(captures_dir: Path, scenario: str) -> bytes:
    rows = [
        json.loads(line) for line in _chunks(captures_dir, scenario).read_text("utf-8").splitlines()
    ]
    return b"".join(r["text"].encode("utf-8") for r in rows if r["stream"] in ("stdout", "stderr"))


def _first_pids(tmp_path: Path) -> dict[str, int]:
    """The pid file of the first fake trainer a test started: {"pid": ..., "grandchild": ...}."""
    return json.loads((tmp_path / "pids-0.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def started() -> Iterator[list[ProcessHandle]]:
    """Handles spawned by a test; whatever is left is cancelled at teardown."""
    handles: list[ProcessHandle] = []
    yield handles
    for handle in handles:
        handle.cancel(grace_s=1.0)
        handle.wait(PATIENCE_S)


@pytest.fixture
def run_fake(tmp_path: Path, started: list[ProcessHandle]) -> Callable[..., ProcessHandle]:
    """Spawn the fake trainer and return once it is past startup (its pid file exists).

    A signal that lands while the interpreter is still starting ends it with rc 1 instead of -2.
    """

    def run(
        *args: str, on_output: Callable[[bytes], None] | None = None, **spawn_kw: Any
    ) -> ProcessHandle:
        pid_file = tmp_path / f"pids-{len(started)}.json"
        spec = LaunchSpec(
            argv=(sys.executable, str(FAKE), "--pid-file", str(pid_file), *args),
            env={"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"},
            cwd=tmp_path,
        )
        handle = spawn(
            spec, console_log=tmp_path / "run" / "console.log", on_output=on_output, **spawn_kw
        )
        started.append(handle)
        _wait_for(pid_file.is_file, "the fake trainer to start")
        return handle

    return run


class TestTee:
    @pytest.mark.parametrize(
        ("scenario", "speed"),
        [("a_lora_accelerate", "0"), ("b_loha_preset", "0"), ("h_columns200", "200")],
    )
    def test_console_log_is_the_replayed_bytes(
        self, captures_dir: Path, tmp_path: Path, run_fake, scenario: str, speed: str
    ) -> None:
        received: list[bytes] = []
        handle = run_fake(
            "--replay", str(_chunks(captures_dir, scenario)), "--speed", speed,
            on_output=received.append,
        )  # fmt: skip
        assert handle.wait(PATIENCE_S) == 0
        expected = _expected_bytes(captures_dir, scenario)
        assert (tmp_path / "run" / "console.log").read_bytes() == expected
        assert b"".join(received) == expected
        assert handle.returncode == 0
        assert handle.bytes_read == len(expected)
        assert handle.output_closed

    def test_merged_stream_env_stdin_and_session(self, tmp_path: Path, started) -> None:
        code = (
            "import os, sys\n"
            "data = sys.stdin.read()\n"
            "sys.stdout.write(os.environ['KO_TEST'] + '|' + repr(data) + '|'); sys.stdout.flush()\n"
            "sys.stderr.write('E'); sys.stderr.flush()\n"
            "sys.stdout.write('O|%d' % (os.getsid(0) == os.getpid())); sys.stdout.flush()\n"
        )
        spec = LaunchSpec(argv=(sys.executable, "-c", code), env={"KO_TEST": "v"}, cwd=tmp_path)
        handle = spawn(spec, console_log=tmp_path / "console.log")
        started.append(handle)
        assert handle.wait(PATIENCE_S) == 0
        assert (tmp_path / "console.log").read_bytes() == b"v|''|EO|1"

    def test_console_log_is_appended_not_truncated(self, tmp_path: Path, started) -> None:
        log = tmp_path / "console.log"
        log.write_bytes(b"before\n")
        spec = LaunchSpec(argv=(sys.executable, "-c", "print('after')"), cwd=tmp_path)
        handle = spawn(spec, console_log=log)
        started.append(handle)
        handle.wait(PATIENCE_S)
        assert log.read_bytes().replace(b"\r\n", b"\n") == b"before\nafter\n"

    def test_raising_on_output_does_not_break_the_tee(
        self, captures_dir: Path, tmp_path: Path, run_fake
    ) -> None:
        calls: list[int] = []

        def explode(chunk: bytes) -> None:
            calls.append(len(chunk))
            raise RuntimeError("consumer bug")

        handle = run_fake(
            "--replay", str(_chunks(captures_dir, "a_lora_accelerate")), "--speed", "400",
            on_output=explode,
        )  # fmt: skip
        assert handle.wait(PATIENCE_S) == 0
        expected = _expected_bytes(captures_dir, "a_lora_accelerate")
        assert (tmp_path / "run" / "console.log").read_bytes() == expected
        assert sum(calls) == len(expected)
        assert handle.output_errors[0] == "on_output raised RuntimeError: consumer bug"

    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
    def test_a_full_disk_is_reported_once_and_the_output_still_flows(
        self, captures_dir: Path, tmp_path: Path, started
    ) -> None:
        # Issue 17 item 12: /dev/full fails every write with ENOSPC, as a full disk does.
        received: list[bytes] = []
        errors: list[OSError] = []
        spec = LaunchSpec(
            argv=(sys.executable, str(FAKE), "--replay", str(_chunks(captures_dir, "b_loha"))),
            env={"FAKE_SD_SCRIPTS_ARGS": "--speed 0"},
            cwd=tmp_path,
        )
        handle = spawn(
            spec,
            console_log=Path("/dev/full"),
            on_output=received.append,
            on_log_error=errors.append,
        )
        started.append(handle)
        assert handle.wait(PATIENCE_S) == 0
        assert b"".join(received) == _expected_bytes(captures_dir, "b_loha")
        assert [e.errno for e in errors] == [errno.ENOSPC]
        assert handle.output_errors == [f"writing /dev/full: {errors[0]}"]


class TestExitCode:
    @pytest.mark.parametrize("code", [0, 1, 3])
    def test_rc_propagates(self, captures_dir: Path, run_fake, code: int) -> None:
        replay = str(_chunks(captures_dir, "f_missing_dir"))
        handle = run_fake("--replay", replay, "--speed", "0", "--exit-code", str(code))
        assert handle.wait(PATIENCE_S) == code
        assert handle.returncode == code
        assert handle.poll() == code
        assert not handle.canceled

    def test_wait_timeout_raises(self, run_fake) -> None:
        handle = run_fake("--hang")
        with pytest.raises(TimeoutError, match="still running"):
            handle.wait(0.05)
        assert handle.poll() is None


class TestLaunchErrors:
    def test_missing_program(self, tmp_path: Path) -> None:
        spec = LaunchSpec(argv=(str(tmp_path / "no-such-python"),), cwd=tmp_path)
        with pytest.raises(LaunchError, match="could not start"):
            spawn(spec, console_log=tmp_path / "console.log")

    def test_missing_cwd(self, tmp_path: Path) -> None:
        spec = LaunchSpec(argv=(sys.executable, "-c", "pass"), cwd=tmp_path / "gone")
        with pytest.raises(LaunchError, match=r"working directory .* does not exist"):
            spawn(spec, console_log=tmp_path / "console.log")

    def test_empty_argv(self, tmp_path: Path) -> None:
        with pytest.raises(LaunchError, match="empty"):
            spawn(LaunchSpec(argv=(), cwd=tmp_path), console_log=tmp_path / "console.log")


class TestCancel:
    def test_cancel_hung_child(self, captures_dir: Path, tmp_path: Path, run_fake) -> None:
        replay = str(_chunks(captures_dir, "f_missing_dir"))
        handle = run_fake("--replay", replay, "--speed", "0", "--hang")
        expected = _expected_bytes(captures_dir, "f_missing_dir")
        _wait_for(lambda: handle.bytes_read == len(expected), "the replay")
        handle.cancel(grace_s=10)
        # SIGINT to the group: KeyboardInterrupt, like sd-scripts (measured rc -2).
        assert handle.returncode == -signal.SIGINT
        assert handle.canceled
        assert _gone(handle.pid)
        # The traceback of the KeyboardInterrupt follows the replayed bytes.
        assert (tmp_path / "run" / "console.log").read_bytes().startswith(expected)

    @pytest.mark.parametrize(
        ("flags", "grace", "rc"),
        [
            pytest.param([], 10.0, -signal.SIGINT, id="same-group"),
            pytest.param(["--grandchild-new-session"], 10.0, -signal.SIGINT, id="own-session"),
            pytest.param(
                ["--grandchild-new-session", "--ignore-sigint", "--ignore-sigterm"],
                0.3,
                -signal.SIGKILL,
                id="stubborn",
            ),
        ],
    )
    def test_cancel_leaves_no_process(
        self, tmp_path: Path, run_fake, flags: list[str], grace: float, rc: int
    ) -> None:
        handle = run_fake("--spawn-grandchild", "--hang", *flags)
        pids = _first_pids(tmp_path)
        assert pids["pid"] == handle.pid
        _wait_for(lambda: pids["grandchild"] in handle.descendants(), "the grandchild")
        recorded = {handle.pid, pids["grandchild"], *handle.descendants()}

        handle.cancel(grace_s=grace)

        assert handle.returncode == rc
        assert [pid for pid in recorded if not _gone(pid)] == []

    def test_cancel_is_idempotent(self, run_fake) -> None:
        handle = run_fake("--hang")
        handle.cancel(grace_s=5)
        rc = handle.returncode
        handle.cancel(grace_s=5)
        handle.cancel()
        assert handle.returncode == rc == -signal.SIGINT
        assert handle.wait(PATIENCE_S) == rc

    def test_reentrant_cancel_kills_at_once(self, run_fake, monkeypatch) -> None:
        # A second Ctrl-C handled on the thread that is already inside cancel() must not
        # deadlock on the lock; it escalates to SIGKILL instead of waiting out the grace.
        handle = run_fake("--ignore-sigint", "--ignore-sigterm", "--hang")
        original = handle._wait_gone
        reentered: list[bool] = []

        def second_ctrl_c(tracked, timeout: float) -> None:
            if not reentered:
                reentered.append(True)
                handle.cancel()
            original(tracked, timeout)

        monkeypatch.setattr(handle, "_wait_gone", second_ctrl_c)
        started_at = time.monotonic()
        handle.cancel(grace_s=120)
        assert reentered == [True]
        assert handle.returncode == -signal.SIGKILL
        assert time.monotonic() - started_at < 60  # not the 120 s grace

    def test_cancel_after_exit_keeps_rc(self, run_fake) -> None:
        handle = run_fake("--exit-code", "4")
        assert handle.wait(PATIENCE_S) == 4
        handle.cancel(grace_s=1)
        assert handle.returncode == 4

    def test_cancel_after_exit_kills_leftover_group_members(self, tmp_path: Path, run_fake) -> None:
        # The trainer exits but leaves a child behind in its group (holding the output pipe).
        handle = run_fake("--spawn-grandchild", "--exit-code", "0")
        grandchild = _first_pids(tmp_path)["grandchild"]
        _wait_for(lambda: handle.poll() is not None, "the trainer to exit")
        assert not _gone(grandchild)
        handle.cancel(grace_s=5)
        assert handle.returncode == 0
        assert _gone(grandchild)
        _wait_for(lambda: handle.output_closed, "the end of the output")

    def test_concurrent_cancel_and_wait(self, run_fake) -> None:
        import threading

        handle = run_fake("--hang")
        results: list[int] = []
        waiter = threading.Thread(target=lambda: results.append(handle.wait()))
        waiter.start()
        handle.cancel(grace_s=5)
        waiter.join(PATIENCE_S)
        assert results == [-signal.SIGINT]

    def test_context_manager_cancels(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "pids.json"
        argv = (sys.executable, str(FAKE), "--hang", "--pid-file", str(pid_file))
        with spawn(LaunchSpec(argv=argv, cwd=tmp_path), console_log=tmp_path / "log") as handle:
            pid = handle.pid
            _wait_for(pid_file.is_file, "the fake trainer to start")
        assert handle.returncode == -signal.SIGINT
        assert _gone(pid)


class TestLeftovers:
    """After the child exits, wait() stops what it left running before it returns."""

    def test_clean_exit_leaves_nothing_to_stop(self, run_fake) -> None:
        handle = run_fake("--exit-code", "0")
        assert handle.wait(PATIENCE_S) == 0
        assert handle.leftovers == []

    def test_wait_stops_a_sigterm_deaf_group_member(self, tmp_path: Path, run_fake) -> None:
        handle = run_fake(
            "--spawn-grandchild", "--ignore-sigterm", "--exit-code", "3", leftover_grace_s=0.2
        )
        grandchild = _first_pids(tmp_path)["grandchild"]
        assert handle.wait(PATIENCE_S) == 3
        assert _gone(grandchild)  # at once: no waiting here
        assert handle.output_closed
        [line] = handle.leftovers
        assert line.startswith(f"pid {grandchild} ") and line.endswith("(SIGKILL)")
        assert not handle.canceled
        handle.cancel()  # nothing left: returns at once, the exit code stays
        assert handle.returncode == 3

    def test_recorded_descendant_in_its_own_session_is_stopped(
        self, tmp_path: Path, run_fake
    ) -> None:
        # Neither group nor session ties it to the run: only the record taken while it ran.
        handle = run_fake(
            "--spawn-grandchild", "--grandchild-new-session", "--linger", "1",
            track_interval_s=0.02,
        )  # fmt: skip
        grandchild = _first_pids(tmp_path)["grandchild"]
        _wait_for(lambda: handle.poll() is not None, "the trainer to exit")
        assert not _gone(grandchild)
        assert handle.wait(PATIENCE_S) == 0
        assert _gone(grandchild)
        assert handle.leftovers == [line for line in handle.leftovers if "(SIGTERM)" in line]
        assert any(line.startswith(f"pid {grandchild} ") for line in handle.leftovers)

    def test_group_is_not_searched_when_the_leader_pid_was_reused(
        self, tmp_path: Path, run_fake, monkeypatch
    ) -> None:
        # A new process with the reaped leader's pid may lead a group of the same id: not ours.
        handle = run_fake("--spawn-grandchild", "--exit-code", "0")
        grandchild = _first_pids(tmp_path)["grandchild"]
        _wait_for(lambda: handle.poll() is not None, "the trainer to exit")
        assert set(handle._orphaned_group_members()) == {grandchild}
        monkeypatch.setattr(handle, "_id_reused", lambda: True)
        assert handle._orphaned_group_members() == {}

    def test_interrupted_cancel_kills_at_once(self, tmp_path: Path, run_fake, monkeypatch) -> None:
        # A KeyboardInterrupt while cancel() waits out the grace: SIGKILL to everything, re-raised.
        handle = run_fake("--spawn-grandchild", "--ignore-sigint", "--ignore-sigterm", "--hang")
        grandchild = _first_pids(tmp_path)["grandchild"]
        _wait_for(lambda: grandchild in handle.descendants(), "the grandchild")

        def interrupted(tracked, timeout: float) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(handle, "_wait_gone", interrupted)
        with pytest.raises(KeyboardInterrupt):
            handle.cancel(grace_s=120)
        monkeypatch.undo()
        assert handle.wait(PATIENCE_S) == -signal.SIGKILL
        assert _gone(grandchild)

    def test_interrupted_leftover_stop_kills_at_once(
        self, tmp_path: Path, run_fake, monkeypatch
    ) -> None:
        handle = run_fake("--spawn-grandchild", "--ignore-sigterm", leftover_grace_s=120)
        grandchild = _first_pids(tmp_path)["grandchild"]

        def interrupted(tracked, timeout: float) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(handle, "_wait_gone", interrupted)
        with pytest.raises(KeyboardInterrupt):
            handle.wait(PATIENCE_S)
        _wait_for(lambda: _gone(grandchild), "the SIGKILL")
        assert handle.leftovers[0].endswith("(SIGKILL)")

    def test_child_gone_before_it_was_wrapped(self, tmp_path: Path) -> None:
        import subprocess

        popen = subprocess.Popen(
            [sys.executable, "-c", "pass"], stdout=subprocess.PIPE, start_new_session=True
        )
        popen.wait(PATIENCE_S)
        log = (tmp_path / "console.log").open("ab")
        handle = ProcessHandle(popen, log=log, console_log=tmp_path / "console.log", on_output=None)
        assert handle.wait(PATIENCE_S) == 0
        assert handle.descendants() == []
        assert handle.leftovers == []

    def test_describe(self) -> None:
        from kohya_orchestrator.launch import process

        class Gone:
            def cmdline(self) -> list[str]:
                raise psutil.NoSuchProcess(1)

        class Long:
            def cmdline(self) -> list[str]:
                return ["python", "x" * 300, "\n  --flag"]

        assert process._describe(Gone()) == "?"  # type: ignore[arg-type]
        text = process._describe(Long(), limit=40)  # type: ignore[arg-type]
        assert len(text) == 40 and text.endswith("…") and text.startswith("python xxx")


class TestKillTree:
    def test_kills_process_and_descendants(self, tmp_path: Path, run_fake) -> None:
        handle = run_fake("--spawn-grandchild", "--hang")
        grandchild = _first_pids(tmp_path)["grandchild"]
        _wait_for(lambda: grandchild in handle.descendants(), "the grandchild")
        assert set(kill_tree(handle.pid)) == {handle.pid, grandchild}
        assert handle.wait(PATIENCE_S) == -signal.SIGKILL
        assert _gone(grandchild)

    def test_missing_pid(self) -> None:
        assert kill_tree(2**22 + 12345) == []


class TestResourceMonitor:
    def test_samples_the_tree_and_stops(self, tmp_path: Path, run_fake) -> None:
        run_fake("--spawn-grandchild", "--hang")
        handle_pid = _first_pids(tmp_path)["pid"]
        samples: list[dict[str, object]] = []
        with ResourceMonitor(handle_pid, 0.05, samples.append, gpu=False) as monitor:
            _wait_for(lambda: len(samples) >= 3, "three samples")
        assert not monitor.running
        last = samples[-1]
        assert last["pid"] == handle_pid
        assert last["num_processes"] == 2
        assert isinstance(last["rss_bytes"], int)
        assert last["rss_bytes"] > 0
        assert isinstance(last["cpu_percent"], float)
        assert last["gpu_memory_used_mib"] is None

    def test_ends_when_the_process_is_gone_and_survives_callback_errors(self, run_fake) -> None:
        handle = run_fake("--hang")

        def broken(sample: dict[str, object]) -> None:
            raise ValueError("consumer bug")

        monitor = ResourceMonitor(handle.pid, 0.05, broken, gpu=False)
        monitor.start()
        _wait_for(lambda: monitor.samples_taken >= 2, "two samples")
        handle.cancel(grace_s=5)
        _wait_for(lambda: not monitor.running, "the monitor to end")
        monitor.stop()
        assert monitor.callback_errors == monitor.samples_taken

    def test_rejects_bad_interval(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            ResourceMonitor(1, 0, lambda s: None)
