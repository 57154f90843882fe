"""`queue` verbs through main(): add/list/cancel edge cases, `queue run` end to end, Ctrl-C,
export-slurm options, and the notice lines.

``queue run`` trains with the stand-in trainer (tests/queue/fake_trainer, linked into a folder the
install discovery accepts, replaying real sd-scripts captures); accelerate is not installed here,
so a stand-in ``accelerate.commands.launch`` on PYTHONPATH starts the script in a child process.
Both prove process control and what the CLI prints, never that training works.
"""

from __future__ import annotations

import _thread
import json
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.cli.commands.queue import notice_printer
from kohya_orchestrator.cli.main import main
from kohya_orchestrator.jobs.loading import dump_job_toml
from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob, QueueJob, QueueNotice
from kohya_orchestrator.queue.locks import RunnerLock

from .conftest import FAKE_TRAINER, FakeLab, make_job

LAUNCH_SHIM = """\
import subprocess, sys
args = sys.argv[1:]
first = next(i for i, a in enumerate(args) if a.endswith(".py"))
raise SystemExit(subprocess.call([sys.executable, *args[first:]]))
"""


@pytest.fixture
def sd_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder the install discovery accepts; its train_network.py is the queue stand-in."""
    sd = tmp_path / "sd-scripts"
    (sd / "library").mkdir(parents=True)
    (sd / "train_network.py").symlink_to(FAKE_TRAINER / "train_network.py")
    launch = tmp_path / "shim" / "accelerate" / "commands"
    launch.mkdir(parents=True)
    (launch.parent / "__init__.py").write_text("")
    (launch / "__init__.py").write_text("")
    (launch / "launch.py").write_text(LAUNCH_SHIM)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "shim"))
    monkeypatch.setenv("KOHYA_PYTHON", sys.executable)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    return sd


def _write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(dump_job_toml(make_job(tmp_path, name)), encoding="utf-8")
    return path


def _no_children_left() -> None:
    assert psutil.Process().children(recursive=True) == []


def _run(q: Path, sd: Path, *more: str) -> list[str]:
    return ["queue", "run", "--queue", str(q), "--sd-scripts", str(sd), "--no-probe", *more]


def test_add_refuses_a_job_whose_paths_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = _write(tmp_path, "lost")
    (tmp_path / "img" / "2_oilpaint style").rmdir()
    assert main(["queue", "add", str(job), "--queue", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert "nothing was queued" in err and "image_dir" in err
    assert JobQueue(tmp_path / "q").jobs() == []


def test_list_an_empty_queue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = tmp_path / "q"
    assert main(["queue", "list", "--queue", str(q)]) == 0
    assert capsys.readouterr().out.strip() == f"no jobs in {q.resolve()}"


def test_list_shows_a_running_job_whose_runner_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("live", "orphan")])
    live = RunnerLock(queue.path)
    dead = RunnerLock(queue.path)
    try:
        assert queue.claim(live, "0") is not None
        assert queue.claim(dead, "1") is not None
        dead.release()  # its runner is gone
        assert main(["queue", "list", "--queue", str(queue.path)]) == 0
        out = capsys.readouterr().out
        assert "running (runner gone)" in out
        assert "queue retry 2 (from the start)" in out and "queue retry 2 --resume" in out
        assert main(["queue", "list", "--queue", str(queue.path), "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(j["status"], j["runner_alive"]) for j in listed] == [
            ("running", True),
            ("running", False),
        ]
        assert main(["queue", "cancel", "1", "--queue", str(queue.path)]) == 0
        assert "asked the runner to stop job 1 (live)" in capsys.readouterr().out
        assert queue.cancel_requested(1)
    finally:
        live.release()


def test_run_trains_every_job_then_reports(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.plan({"*": fake.ok()})
    q = tmp_path / "q"
    assert main(["queue", "add", str(_write(tmp_path, "solo")), "--queue", str(q)]) == 0
    capsys.readouterr()
    assert main(_run(q, sd_scripts)) == 0
    out = capsys.readouterr().out
    assert "job 1 (solo): started attempt 1 (first)" in out
    assert "job 1 (solo): succeeded" in out and "all 1 job succeeded" in out
    assert (tmp_path / "out" / "solo.safetensors").is_file()
    _no_children_left()


def test_run_on_two_gpus_reports_the_failures(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.plan({"good": fake.ok(), "bad": fake.crash()})
    q = tmp_path / "q"
    jobs = [str(_write(tmp_path, n)) for n in ("good", "bad")]
    assert main(["queue", "add", *jobs, "--queue", str(q)]) == 0
    capsys.readouterr()
    assert main(_run(q, sd_scripts, "--gpus", "0, 1")) == 1
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert "1 of 2 jobs succeeded; job 2 failed" in out
    assert "on GPU 0" in out or "on GPU 1" in out
    assert "full log:" in out and "console.log" in out
    assert sorted(c["cuda"] for c in fake.calls()) == ["0", "1"]
    _no_children_left()


def test_ctrl_c_stops_the_training_and_marks_it_interrupted(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.plan({"*": fake.hang()})
    q = tmp_path / "q"
    assert main(["queue", "add", str(_write(tmp_path, "hung")), "--queue", str(q)]) == 0

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 20
        while not fake.calls() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        _thread.interrupt_main()  # what Ctrl-C does to the main thread

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    assert main(_run(q, sd_scripts)) == 130
    status_on_return = JobQueue(q).get(1).status
    trainers_on_return = psutil.Process().children(recursive=True)
    # clean up whatever the runner left: its stop flag is set, so the worker cancels the run
    presser.join(20)
    for thread in threading.enumerate():
        if thread.name.startswith("queue-worker-"):
            thread.join(20)
    captured = capsys.readouterr()
    assert "interrupted: the running trainings were stopped" in captured.out + captured.err
    _no_children_left()
    job = JobQueue(q).get(1)
    assert job.status == JobStatus.INTERRUPTED
    assert job.reason == "interrupted: the queue runner was stopped"
    # when main() returns, the training is already stopped (not left to the clean-up above)
    assert trainers_on_return == []
    assert status_on_return == JobStatus.INTERRUPTED


def test_export_slurm_with_the_install_found_here(
    tmp_path: Path, sd_scripts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    q = tmp_path / "q"
    assert main(["queue", "add", str(_write(tmp_path, "a")), "--queue", str(q)]) == 0
    out_file = tmp_path / "one.sbatch"
    args = ["queue", "export-slurm", "--queue", str(q), "--out", str(out_file)]
    assert main([*args, "--sd-scripts", str(sd_scripts), "--keep-queued"]) == 0
    text = out_file.read_text()
    assert f"export KOHYA_SD_SCRIPTS={sd_scripts}\n" in text
    assert f"export KOHYA_PYTHON={sys.executable}\n" in text
    assert "1 array task" in capsys.readouterr().out
    assert JobQueue(q).get(1).status == JobStatus.QUEUED  # --keep-queued


def test_export_slurm_without_an_install_and_a_bad_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    monkeypatch.delenv("KOHYA_PYTHON", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    q = tmp_path / "q"
    assert main(["queue", "add", str(_write(tmp_path, "a")), "--queue", str(q)]) == 0
    capsys.readouterr()
    base = ["queue", "export-slurm", "--queue", str(q), "--out", str(tmp_path / "x.sbatch")]
    assert main([*base, "--env", "NOEQUALS"]) == 2
    assert "--env NOEQUALS" in capsys.readouterr().err
    assert JobQueue(q).get(1).status == JobStatus.QUEUED
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "no sd-scripts install found here" in out
    assert "export KOHYA_" not in (tmp_path / "x.sbatch").read_text()
    assert JobQueue(q).get(1).status == JobStatus.EXPORTED


def _notice(kind: str, status: JobStatus | None, run_dir: Path | None, gpu: str | None) -> None:
    job = QueueJob(
        id=7, name="n", status=JobStatus.RUNNING, job_file=Path("j.toml"), added_at=0.0, gpu=gpu
    )
    notice_printer(QueueNotice(kind, job, "msg", run_dir, status))  # type: ignore[arg-type]


def test_notice_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _notice("started", None, None, None)
    out = capsys.readouterr().out
    assert "job 7 (n): started msg" in out and "run directory" not in out
    _notice("finished", JobStatus.CANCELED, None, "3")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "job 7 (n) on GPU 3: canceled: msg" in text and "full log" not in text
    _notice("finished", None, tmp_path, None)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "job 7 (n): ended: msg" in text and str(tmp_path / "console.log") in text
    _notice("retrying", None, None, None)
    captured = capsys.readouterr()
    assert "job 7 (n): msg" in captured.out + captured.err


def test_a_second_runner_on_the_same_gpu_is_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kohya_orchestrator.cli.commands.queue import _warn_shared_gpus

    queue = JobQueue(tmp_path / "q")
    first = RunnerLock(queue.path)
    queue.register_runner(first, ["0"])
    gone = RunnerLock(queue.path)
    queue.register_runner(gone, ["1"])
    gone.release()  # its process ended: not alive, never warned about
    try:
        assert [r["gpus"] for r in queue.live_runners()] == [["0"]]
        _warn_shared_gpus(queue, ("0",))
        err = " ".join(capsys.readouterr().err.split())
        assert f"another runner of this queue (pid {first.pid}) already trains on 0" in err
        _warn_shared_gpus(queue, ("1",))  # another GPU: fine
        _warn_shared_gpus(queue, ("2", "3"))
        assert capsys.readouterr().err == ""
        _warn_shared_gpus(queue, (None,))  # the default device may be GPU 0
        assert "already trains on the default GPU" in " ".join(capsys.readouterr().err.split())
        queue.unregister_runner(first)
        _warn_shared_gpus(queue, ("0",))
        assert capsys.readouterr().err == ""
    finally:
        first.release()
