"""ResourceMonitor edge cases and the nvidia-smi query.

nvidia-smi is replaced by small stand-in scripts that print what
``nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits`` prints (one MiB count per
GPU per line), exit non-zero, or hang. They test the parsing and the failure handling, not a GPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.launch.monitor import (
    ResourceMonitor,
    process_runs,
    process_started,
    sample_gpu_memory,
)

PARENT_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
print(child.pid, flush=True)
child.wait()
time.sleep(30)
"""


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; they and their children are killed and reaped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _smi(tmp_path: Path, body: str, name: str = "nvidia-smi") -> Path:
    """A stand-in nvidia-smi: a shell script that records its arguments, then runs ``body``."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path}/smi-args"\n{body}\n')
    path.chmod(0o755)
    return path


def test_parses_one_line_per_gpu_and_skips_junk(tmp_path: Path) -> None:
    smi = _smi(tmp_path, "printf '1234\\n 567 \\n[N/A]\\n\\n2048.0\\n'")
    assert sample_gpu_memory(str(smi)) == [1234, 567, 2048]
    args = (tmp_path / "smi-args").read_text().split()
    assert args == ["--query-gpu=memory.used", "--format=csv,noheader,nounits"]


def test_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = _smi(tmp_path, "echo 42")
    monkeypatch.setenv("PATH", str(smi.parent))
    assert sample_gpu_memory() == [42]


def test_absent_failing_or_hanging_tool_gives_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert sample_gpu_memory() is None  # not on PATH
    assert sample_gpu_memory(str(tmp_path / "no-such-smi")) is None  # OSError
    failing = _smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; echo 99; exit 9", "smi-fails")
    assert sample_gpu_memory(str(failing)) is None
    hanging = _smi(tmp_path, "exec sleep 5", "smi-hangs")
    t0 = time.monotonic()
    assert sample_gpu_memory(str(hanging), timeout_s=0.3) is None
    assert time.monotonic() - t0 < 3


def test_monitor_adds_gpu_memory_when_nvidia_smi_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smi = _smi(tmp_path, "printf '100\\n200\\n'")
    monkeypatch.setenv("PATH", f"{smi.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    auto = ResourceMonitor(os.getpid(), 1.0, lambda s: None)  # gpu=None: when on PATH
    sample = auto.sample()
    assert sample is not None and sample["gpu_memory_used_mib"] == [100, 200]
    off = ResourceMonitor(os.getpid(), 1.0, lambda s: None, gpu=False)
    sample = off.sample()
    assert sample is not None and sample["gpu_memory_used_mib"] is None


def test_sample_of_a_missing_or_zombie_process_is_none() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        zombie = ResourceMonitor(proc.pid, 1.0, lambda s: None, gpu=False)
        assert zombie.sample() is None
    finally:
        proc.wait(10)
    gone = ResourceMonitor(proc.pid, 1.0, lambda s: None, gpu=False)
    assert gone.sample() is None  # reaped: no such process
    assert not gone.running


def test_a_process_that_vanishes_mid_sample_is_left_out(
    spawned: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_WITH_CHILD], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    spawned.append(parent)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    monitor = ResourceMonitor(parent.pid, 1.0, lambda s: None, gpu=False)
    both = monitor.sample()
    assert both is not None and both["num_processes"] == 2

    real_children = psutil.Process.children

    def listed_then_killed(self: psutil.Process, recursive: bool = False):  # type: ignore[no-untyped-def]
        kids = real_children(self, recursive=recursive)
        os.kill(child_pid, signal.SIGKILL)  # dies (and is reaped) right after being listed
        deadline = time.monotonic() + 10
        while psutil.pid_exists(child_pid):
            assert time.monotonic() < deadline, "the parent did not reap its child"
            time.sleep(0.01)
        return kids

    monkeypatch.setattr(psutil.Process, "children", listed_then_killed)
    only_parent = monitor.sample()
    assert only_parent is not None
    assert only_parent["num_processes"] == 1
    assert 0 < only_parent["rss_bytes"] < both["rss_bytes"]


class TestProcessIdentity:
    """A pid with its start time names one process (issue 17 item 15: a reused pid is not it)."""

    def test_this_process(self) -> None:
        started = process_started(os.getpid())
        assert started is not None
        assert process_runs(os.getpid(), started)
        assert process_runs(os.getpid(), None)  # no start time recorded: the pid decides
        assert not process_runs(os.getpid(), started - 3600)  # the pid, reused by another

    def test_gone_and_zombie(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        deadline = time.monotonic() + 20
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not process_runs(child.pid, None)  # exited, not yet reaped
        child.wait()
        assert process_started(child.pid) is None
        assert not process_runs(child.pid, None)
