"""The queue on a real one-node SLURM cluster (tests/slurm_cluster.py): submit, report back, cancel.

The trainings here are the queue's stand-in trainer (tests/queue/fake_trainer, replaying a real
capture, then silent until killed): these tests prove process control through SLURM (the array
task reports its status into the queue; ``queue cancel`` and a bare ``scancel`` end up
``canceled``; nothing is left running), never that training works. Two real trainings through
SLURM are tests/e2e/test_slurm_e2e.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from slurm_cluster import SlurmCluster, on_cluster, slurm  # noqa: F401 (fixtures)

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.queue import JobQueue, JobStatus
from kohya_orchestrator.queue.slurm_tasks import SLURM_STOPPED, slurm_ids

from .conftest import FakeLab
from .test_cli_verbs import _write, sd_scripts  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slurm


def _listed(q: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["queue", "list", "--queue", str(q), "--json"]) == 0
    return list(json.loads(capsys.readouterr().out))


def _wait_for(
    q: Path,
    capsys: pytest.CaptureFixture[str],
    want: dict[int, str],
    cluster: SlurmCluster,
    timeout_s: float = 90,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        listed = _listed(q, capsys)
        now = {j["id"]: j["status"] for j in listed}
        if all(now.get(i) == s for i, s in want.items()):
            return listed
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text() for p in sorted((q / "slurm" / "logs").glob("*.out")))
            raise AssertionError(f"waited for {want}, have {now}\n{logs}\n{cluster.logs()}")
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that never reaps it is not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _trainers(under: Path) -> list[psutil.Process]:
    """Stand-in trainers whose command line names a file under ``under`` (this test's)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(part.endswith("train_network.py") for part in cmdline) and any(
            str(under) in part for part in cmdline
        ):
            found.append(proc)
    return found


def _add_and_submit(
    tmp_path: Path,
    names: tuple[str, ...],
    sd_scripts: Path,  # noqa: F811
    *options: str,
) -> Path:
    """Queue the stand-in jobs ``names`` and submit them to SLURM as an array on one CPU each;
    returns the queue folder."""
    q = tmp_path / "q"
    jobs = [str(_write(tmp_path, name)) for name in names]
    assert main(["queue", "add", *jobs, "--queue", str(q)]) == 0
    submit = ["queue", "export-slurm", "--queue", str(q), "--submit"]
    submit += ["--sd-scripts", str(sd_scripts), "--gpus-per-task", "0", "--cpus-per-task", "1"]
    assert main([*submit, *options]) == 0
    return q


def test_submit_report_back_and_cancel(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    on_cluster: SlurmCluster,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.plan({"*": fake.hang()})  # each training prints part of a real run, then hangs
    q = tmp_path / "q"
    jobs = [str(_write(tmp_path, name)) for name in ("one", "two", "three")]
    assert main(["queue", "add", *jobs, "--queue", str(q)]) == 0
    submit = [
        "queue",
        "export-slurm",
        "--queue",
        str(q),
        "--submit",
        "--sd-scripts",
        str(sd_scripts),
    ]
    submit += [
        "--gpus-per-task",
        "0",
        "--cpus-per-task",
        "1",
        "--mem",
        "500M",
        "--max-parallel",
        "1",
    ]
    capsys.readouterr()
    assert main(submit) == 0
    out = capsys.readouterr().out
    assert "submitted SLURM job" in out
    ids = slurm_ids(JobQueue(q))
    array = ids[1].split("_")[0]
    assert ids == {1: f"{array}_0", 2: f"{array}_1", 3: f"{array}_2"}

    # job 1 runs on the node and says so in the queue; the others wait in SLURM (%1)
    listed = _wait_for(q, capsys, {1: "running", 2: "exported", 3: "exported"}, on_cluster)
    assert listed[1]["reason"] == f"submitted to SLURM as {array}_1"
    assert on_cluster.states()[f"{array}_2"] == "PENDING"

    # queue cancel of a pending job: canceled in the queue and gone from SLURM
    assert main(["queue", "cancel", "3", "--queue", str(q)]) == 0
    assert JobQueue(q).get(3).status == JobStatus.CANCELED
    assert f"{array}_2" not in on_cluster.states()

    # queue cancel of the running job: its task stops the training and records it
    deadline = time.monotonic() + 30
    while JobQueue(q).get(1).run_dir is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert main(["queue", "cancel", "1", "--queue", str(q)]) == 0
    listed = _wait_for(q, capsys, {1: "canceled", 2: "running"}, on_cluster)
    one = JobQueue(q).get(1)
    assert one.reason == "canceled by the user"
    assert one.run_dir is not None and one.run_dir.parent == q.resolve() / "runs"
    assert (one.run_dir / "status").read_text().strip() == "canceled"
    events = [json.loads(line) for line in (one.run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "run_finished" and events[-1]["status"] == "canceled"

    # a bare scancel (what the time limit or preemption does: SIGTERM): recorded as such
    deadline = time.monotonic() + 30
    while JobQueue(q).get(2).run_dir is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # the trainer runs
    on_cluster.run("scancel", f"{array}_1")
    _wait_for(q, capsys, {2: "canceled"}, on_cluster)
    two = JobQueue(q).get(2)
    assert two.reason == SLURM_STOPPED
    assert JobQueue(q).attempts(2)[-1].status == "canceled"
    assert two.run_dir is not None
    assert (two.run_dir / "slurm.txt").read_text().strip() == SLURM_STOPPED
    assert (two.run_dir / "status").read_text().strip() in ("failed", "canceled")

    deadline = time.monotonic() + 40
    while (on_cluster.states() or _trainers(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert on_cluster.states() == {}
    assert _trainers(tmp_path) == []  # no training left behind by SLURM or by us
    calls = fake.calls()
    assert [c["name"] for c in calls] == ["one", "two"]  # job three never started
    assert [c["pid"] for c in calls if _alive(c["pid"])] == []


def test_a_task_past_its_time_limit_is_recorded_canceled(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    on_cluster: SlurmCluster,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    # silent after part of a real run, for longer than the one-minute limit (SLURM checks
    # limits about every 30 s, so this takes 60 to 100 s)
    fake.plan({"*": {**fake.ok(), "args": "--hang --stop-after 30 --max-lifetime 180"}})
    q = _add_and_submit(tmp_path, ("slow",), sd_scripts, "--mem", "500M", "--time", "1")
    _wait_for(q, capsys, {1: "running"}, on_cluster)
    started = time.monotonic()
    _wait_for(q, capsys, {1: "canceled"}, on_cluster, timeout_s=150)
    assert time.monotonic() - started > 30  # ended by the limit, not at once
    job = JobQueue(q).get(1)
    assert job.reason == SLURM_STOPPED
    assert job.run_dir is not None and (job.run_dir / "slurm.txt").is_file()
    log = next((q / "slurm" / "logs").glob("*.out")).read_text()
    assert "DUE TO TIME LIMIT" in log  # SLURM's own word for why it ended the task
    deadline = time.monotonic() + 40
    while _trainers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _trainers(tmp_path) == []


def test_a_task_killed_outright_is_recorded_by_how_slurm_ended_it(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    on_cluster: SlurmCluster,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    # What SLURM 22.05 really does (tests/fixtures/slurm/README.md): "scancel --signal=KILL ID"
    # is a plain cancel (SIGTERM first, SIGKILL KillWait later; the task records it itself, as
    # in the test above). "--batch --signal=KILL" SIGKILLs the task's script outright: SLURM
    # records FAILED, exit code 0:9, and the task records nothing. queue list asks scontrol.
    fake.plan({"*": fake.hang()})
    q = _add_and_submit(tmp_path, ("killed",), sd_scripts, "--mem", "500M")
    slurm_id = slurm_ids(JobQueue(q))[1]
    _wait_for(q, capsys, {1: "running"}, on_cluster)
    deadline = time.monotonic() + 30
    while not (JobQueue(q).get(1).run_dir and fake.calls()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fake.calls(), "the stand-in trainer did not start"
    on_cluster.run("scancel", "--batch", "--signal=KILL", slurm_id)

    # not the generic "interrupted: its queue runner is gone": SLURM's own account
    _wait_for(q, capsys, {1: "interrupted"}, on_cluster, timeout_s=60)
    said = on_cluster.run("scontrol", "show", "job", "-o", slurm_id)
    assert "JobState=FAILED" in said and "ExitCode=0:9" in said
    job = JobQueue(q).get(1)
    assert job.reason == (
        f"SLURM ended {slurm_id} as FAILED (exit code 0:9: killed by SIGKILL) while the queue "
        "still had it running"
    )
    attempt = JobQueue(q).attempts(1)[-1]
    assert (attempt.status, attempt.reason) == ("interrupted", job.reason)
    assert job.run_dir is not None
    slurm_txt = (job.run_dir / "slurm.txt").read_text().splitlines()
    assert slurm_txt == [job.reason, "SLURM: FAILED, exit code 0:9"]
    assert (job.run_dir / "status").read_text().strip() == "failed"  # closed: it was running
    events = [json.loads(line) for line in (job.run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "run_finished" and events[-1]["reason"] == job.reason
    # 'queue retry --resume' applies, as to any interrupted job; nothing is left running
    deadline = time.monotonic() + 30
    while _trainers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _trainers(tmp_path) == []
    assert [c["pid"] for c in fake.calls() if _alive(c["pid"])] == []
