"""Reading how SLURM says a task stands: ``scontrol show job -o`` (real answers captured on the
one-node test cluster, tests/fixtures/slurm/) and ``sacct -P``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kohya_orchestrator.launch.slurm import (
    SlurmTaskState,
    parse_sacct,
    parse_scontrol_job,
    task_end,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm"


def _captured(case: str) -> str:
    return (FIXTURES / f"scontrol-{case}.txt").read_text(encoding="utf-8")


def _local(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))


@pytest.mark.parametrize(
    ("case", "state", "exit_code", "ended"),
    [
        ("cancelled-signal-kill", "CANCELLED", "0:15", True),
        ("failed-task-sigkill", "FAILED", "0:9", True),
        ("failed-exit-3", "FAILED", "3:0", True),
        ("completed", "COMPLETED", "0:0", True),
        ("running", "RUNNING", "0:0", False),
        ("pending", "PENDING", "0:0", False),
    ],
)
def test_scontrol_answers_captured_from_a_real_cluster(
    case: str, state: str, exit_code: str, ended: bool
) -> None:
    found = parse_scontrol_job(_captured(case))
    assert found is not None
    assert (found.state, found.exit_code, found.ended) == (state, exit_code, ended)


def test_scontrol_reason_and_times() -> None:
    killed = parse_scontrol_job(_captured("failed-task-sigkill"))
    assert killed is not None and killed.reason == "JobLaunchFailure"
    assert killed.signal_name == "SIGKILL"  # ExitCode=0:9
    assert killed.start == _local("2026-12-07T13:06:47")
    assert killed.end == _local("2026-12-07T13:06:48")
    cancelled = parse_scontrol_job(_captured("cancelled-signal-kill"))
    assert cancelled is not None and cancelled.reason is None  # Reason=None
    assert cancelled.signal_name == "SIGTERM"  # ExitCode=0:15
    exited = parse_scontrol_job(_captured("failed-exit-3"))
    assert exited is not None and exited.signal_name is None  # ExitCode=3:0
    assert SlurmTaskState("FAILED", exit_code="0:200").signal_name == "signal 200"
    running = parse_scontrol_job(_captured("running"))
    assert running is not None and running.start is not None and running.end is None  # Unknown
    pending = parse_scontrol_job(_captured("pending"))
    assert pending is not None and pending.start is None
    assert pending.reason == "JobArrayTaskLimit"


def test_an_unknown_job_or_no_answer_is_none() -> None:
    assert parse_scontrol_job(_captured("unknown")) is None
    assert parse_scontrol_job("") is None


def test_free_text_fields_do_not_shadow_the_state() -> None:
    line = (
        _captured("running")
        .splitlines()[1]
        .replace("Command=", "Comment=JobState=CANCELLED Command=")
    )
    found = parse_scontrol_job(line)
    assert found is not None and found.state == "RUNNING"


def test_sacct_parsable_answer() -> None:
    # not captured: the test cluster has no accounting. The shape is sacct's -n -P (no header,
    # '|' between the -o fields); "CANCELLED by 0" is how sacct names who canceled.
    found = parse_sacct("CANCELLED by 0|0:9|2026-12-07T13:06:47|2026-12-07T13:06:48\n")
    assert found == SlurmTaskState(
        "CANCELLED",
        exit_code="0:9",
        start=_local("2026-12-07T13:06:47"),
        end=_local("2026-12-07T13:06:48"),
    )
    assert parse_sacct("TIMEOUT|0:0|2026-12-07T13:00:00|Unknown\n") == SlurmTaskState(
        "TIMEOUT", exit_code="0:0", start=_local("2026-12-07T13:00:00")
    )
    assert parse_sacct("") is None  # sacct lists nothing for an id it does not know


def test_task_end_is_none_where_slurm_cannot_be_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol, no sacct
    assert task_end("77_0") is None


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def test_task_end_asks_scontrol_then_sacct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # stand-in commands on PATH that answer what the real ones did (the captures) and log argv
    log = tmp_path / "argv.log"
    answer = tmp_path / "answer.txt"
    answer.write_text(_captured("cancelled-signal-kill"), encoding="utf-8")
    _tool(tmp_path, "scontrol", f'echo "scontrol $*" >> {log}; /bin/cat {answer}')
    _tool(tmp_path, "sacct", f'echo "sacct $*" >> {log}; echo "TIMEOUT|0:0|Unknown|Unknown"')
    monkeypatch.setenv("PATH", str(tmp_path))
    found = task_end("1_0")
    assert found is not None and found.state == "CANCELLED"
    assert log.read_text().splitlines() == ["scontrol show job -o 1_0"]

    # scontrol no longer knows it (MinJobAge passed): sacct's answer
    log.unlink()
    _tool(tmp_path, "scontrol", f'echo "scontrol $*" >> {log}; /bin/cat {answer} >&2; exit 1')
    answer.write_text(_captured("unknown"), encoding="utf-8")
    assert task_end("1_0") == SlurmTaskState("TIMEOUT", exit_code="0:0")
    assert log.read_text().splitlines() == [
        "scontrol show job -o 1_0",
        "sacct -n -P -X -j 1_0 -o State,ExitCode,Start,End",
    ]

    # neither knows it (no accounting): None, never a guess
    _tool(tmp_path, "sacct", "echo 'Slurm accounting storage is disabled' >&2; exit 1")
    assert task_end("1_0") is None
