"""The SkyPilot task of a job: what it carries, that SkyPilot's own loader accepts it, and that its
run command, executed here, streams events into a local run directory shaped like ``train``'s.

No cloud here. The local execution plays SkyPilot's part by hand: each file mount becomes a
symlink, setup's venv is this Python, and the kohya install is the queue's stand-in trainer
(tests/queue/fake_trainer, replaying a real capture; see test_cli_verbs.sd_scripts), so it proves
the task's commands and the event stream, never that training works on a cloud.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sky_local import LocalSky

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.events import read_events
from kohya_orchestrator.installer import PINNED_COMMIT
from kohya_orchestrator.jobs.loading import dump_job_toml, load_job
from kohya_orchestrator.launch.sky import SkyHandle
from kohya_orchestrator.queue.sky import build_sky_task, receive_events, start_local_run, task_yaml
from kohya_orchestrator.run import absolute_job

from .conftest import FakeLab, make_job
from .test_cli_verbs import sd_scripts  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[2]
OILPAINT = REPO / "docs" / "examples" / "oilpaint.toml"


def _oilpaint_task(**kw: object) -> dict[str, object]:
    job = absolute_job(load_job(OILPAINT), OILPAINT.parent)
    return build_sky_task(job, **kw)  # type: ignore[arg-type]


def test_the_oilpaint_task_carries_data_setup_and_run() -> None:
    task = _oilpaint_task(
        gpus="A100:2", cloud="runpod", use_spot=True, sd_scripts_ref=PINNED_COMMIT
    )
    assert task["name"] == "kohya-oilpaint"
    assert task["resources"] == {"accelerators": "A100:2", "cloud": "runpod", "use_spot": True}
    image_dir = REPO / "docs" / "examples" / "img" / "10_zengxin oilpaint"
    assert task["file_mounts"] == {"~/kohya-job/inputs/0/10_zengxin oilpaint": str(image_dir)}
    setup = str(task["setup"])
    assert (
        f'-m kohya_orchestrator install "$HOME"/kohya-sd-scripts --torch auto --ref {PINNED_COMMIT}'
        in setup
    )
    assert "pip install -q kohya-orchestrator==" in setup
    run = str(task["run"])
    assert 'image_dir = "inputs/0/10_zengxin oilpaint"' in run  # the folder name keeps its repeats
    assert run.splitlines()[-1].endswith(
        'job.toml --runs "$HOME"/kohya-job/runs --jsonl --gpus 0,1'
    )
    subprocess.run(["bash", "-n", "-c", run], check=True)
    subprocess.run(["bash", "-n", "-c", str(task["setup"])], check=True)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        _oilpaint_task(gpus="two A100s", remote_root="relative/dir")
    assert [p.path for p in info.value.problems] == ["--gpus", "remote_root"]


def test_a_local_product_is_mounted_and_installed_from_there() -> None:
    task = _oilpaint_task(product=str(REPO), gpus=None)
    assert task["resources"] == {}
    mount = f"~/kohya-job/product/{REPO.name}"  # the checkout's own folder name
    assert task["file_mounts"][mount] == str(REPO)  # type: ignore[index]
    assert f'pip install -q "$HOME"/kohya-job/product/{REPO.name}' in str(task["setup"])


def test_the_oilpaint_task_loads_with_skypilots_own_loader(tmp_path: Path) -> None:
    sky = pytest.importorskip("sky", reason="SkyPilot is not installed (the 'cloud' extra)")
    path = tmp_path / "task.yaml"
    path.write_text(task_yaml(_oilpaint_task(gpus="A100:1")), encoding="utf-8")
    task = sky.Task.from_yaml(str(path))
    assert task.name == "kohya-oilpaint"
    assert [r.accelerators for r in task.resources] == [{"A100": 1}]
    assert list(task.file_mounts.values()) == [
        str(REPO / "docs" / "examples" / "img" / "10_zengxin oilpaint")
    ]
    assert "kohya_orchestrator train" in task.run and "kohya_orchestrator install" in task.setup


def _lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    assert proc.stdout is not None
    yield from proc.stdout


def test_the_run_command_streams_events_into_a_local_run_directory(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.plan({"*": fake.ok()})
    job = make_job(tmp_path, "skyjob")
    remote = tmp_path / "remote"
    task = build_sky_task(job, gpus=None, remote_root=str(remote))
    # what SkyPilot does before run: the mounts, setup's venv with the product, the install
    for dst, src in task["file_mounts"].items():
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        Path(dst).symlink_to(src)
    (remote / ".venv" / "bin").mkdir(parents=True)
    (remote / ".venv" / "bin" / "python").symlink_to(sys.executable)
    home = tmp_path / "home"
    home.mkdir()
    (home / "kohya-sd-scripts").symlink_to(sd_scripts)
    env = {**os.environ, "HOME": str(home)}

    local = start_local_run(job, task, tmp_path / "sky-runs")
    proc = subprocess.Popen(
        ["bash", "-c", str(task["run"])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with proc:
        finished = receive_events(_lines(proc), local).finished
    assert proc.returncode == 0
    assert finished.status.value == "succeeded" and finished.returncode == 0
    assert (local.path / "status").read_text().strip() == "succeeded"
    assert (local.path / "rc").read_text().strip() == "0"
    remote_runs = list((remote / "runs").iterdir())
    assert len(remote_runs) == 1
    # the same events as the remote run directory holds, in order
    streamed = [e.kind for e in read_events(local.path)]
    assert streamed == [e.kind for e in read_events(remote_runs[0])]
    assert {"run_started", "training_plan", "checkpoint_saved"} <= set(streamed)
    assert (remote / "output" / "skyjob.safetensors").is_file()  # the remote's output folder

    # a local train of the same job: the run directory has the same shape
    job_file = tmp_path / "skyjob.toml"
    job_file.write_text(dump_job_toml(job), encoding="utf-8")
    train = ["train", str(job_file), "--runs", str(tmp_path / "local-runs"), "--jsonl"]
    assert main([*train, "--sd-scripts", str(sd_scripts)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    (local_train,) = list((tmp_path / "local-runs").iterdir())
    core = {
        "job.json",
        "config.toml",
        "dataset.toml",
        "command.json",
        "console.log",
        "events.jsonl",
        "status",
        "rc",
    }
    assert core <= {p.name for p in local_train.iterdir()}
    assert core <= {p.name for p in local.path.iterdir()}
    assert [e.kind for e in read_events(local_train)] == streamed
    assert json.loads((local.path / "job.json").read_text()) == json.loads(
        (local_train / "job.json").read_text()
    )
    assert json.loads((local.path / "command.json").read_text())["sky_task"]["run"] == task["run"]


def test_train_on_sky_writes_the_task(
    tmp_path: Path,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "task.yaml"
    argv = ["train", str(OILPAINT), "--sd-scripts", str(sd_scripts), "--no-probe", "--on", "sky"]
    assert main([*argv, "--gpus", "H100:8", "--cloud", "lambda", "--task-out", str(out)]) == 0
    assert f"sky launch {out}" in capsys.readouterr().out
    task = json.loads(out.read_text())  # JSON is YAML: sky launch reads it
    assert f"--ref {PINNED_COMMIT}" in task["setup"]  # this version's tested sd-scripts
    assert task["resources"] == {"accelerators": "H100:8", "cloud": "lambda"}
    assert task["run"].splitlines()[-1].endswith("--jsonl --gpus 0,1,2,3,4,5,6,7")


def test_train_on_sky_without_skypilot_says_how_to_get_it(
    tmp_path: Path,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sky", None)  # import sky fails, as without the extra
    runs = tmp_path / "runs"
    argv = ["train", str(OILPAINT), "--sd-scripts", str(sd_scripts), "--no-probe", "--on", "sky"]
    assert main([*argv, "--runs", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "SkyPilot is not installed" in err and "kohya-orchestrator[cloud]" in err
    assert not runs.exists()


def test_queue_run_on_sky_trains_each_job_and_records_it(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
) -> None:
    from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob
    from kohya_orchestrator.queue.sky_queue import run_queue_on_sky

    fake.plan({"good": fake.ok(), "bad": fake.crash()})
    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, "good")), NewJob(make_job(tmp_path, "bad"))])
    told: list[str] = []
    sky = LocalSky(tmp_path, sd_scripts)
    done = run_queue_on_sky(
        queue,
        gpus=None,
        backend=sky,
        notify=lambda job, message: told.append(f"{job.id}: {message}"),
    )
    assert [(j.name, j.status) for j in done] == [
        ("good", JobStatus.SUCCEEDED),
        ("bad", JobStatus.FAILED),
    ]
    assert told[0].startswith("1: launched on SkyPilot as kohya-q1-good")
    for job in done:
        assert job.run_dir is not None and job.run_dir.parent == queue.path / "runs"
        events = read_events(job.run_dir)
        assert events[0].kind == "run_started" and events[-1].kind == "run_finished"
        (attempt,) = queue.attempts(job.id)
        assert attempt.run_dir == job.run_dir
    assert (done[0].run_dir / "status").read_text().strip() == "succeeded"  # type: ignore[operator]
    assert queue.attempts(2)[0].returncode == 1 and queue.attempts(2)[0].status == "failed"


def test_a_stream_cut_short_ends_the_run_failed(tmp_path: Path) -> None:
    """The connection drops after two events (and a line that only looks like JSON)."""
    from kohya_orchestrator.events import EventAdapter, LogLine, RunStarted
    from kohya_orchestrator.sinks import CallbackSink

    job = make_job(tmp_path, "cut")
    task = build_sky_task(job, gpus=None, remote_root=str(tmp_path / "remote"))
    run_dir = start_local_run(job, task, tmp_path / "runs")
    events = [
        RunStarted(seq=0, t=0.1, run_id="r", argv=["python"], cwd="/"),
        LogLine(seq=1, t=2.5, text="prepare tokenizer", level="INFO"),
    ]
    seen: list[str] = []
    lines = [
        "I 12:00 sky: provisioning\n",
        *(EventAdapter.dump_json(e).decode() for e in events),
        "{not json}",
    ]
    finished, restarts = receive_events(
        lines, run_dir, [CallbackSink(lambda e: seen.append(e.kind))]
    )
    assert restarts == 0
    assert [e.kind for e in read_events(run_dir.path)] == [
        "run_started",
        "log_line",
        "run_finished",
    ]
    assert finished.status.value == "failed" and finished.seq == 2 and finished.t == 2.5
    assert "ended before its final event" in (finished.reason or "")
    assert seen == ["run_started", "log_line", "run_finished"]
    assert (run_dir.path / "status").read_text().strip() == "failed"
    assert (run_dir.path / "console.log").read_text().splitlines()[0] == "I 12:00 sky: provisioning"


def test_a_launch_skypilot_refuses_fails_that_job_and_the_queue_goes_on(tmp_path: Path) -> None:
    from kohya_orchestrator.queue import JobQueue, JobStatus, NewJob
    from kohya_orchestrator.queue.sky_queue import run_queue_on_sky

    queue = JobQueue(tmp_path / "q")
    queue.add([NewJob(make_job(tmp_path, n)) for n in ("a", "b")])

    class Refusing(LocalSky):
        def launch(self, task: Any, managed: bool, output_source: str) -> SkyHandle:
            raise RuntimeError("No launchable resource found for A100:1\n(more)")

    done = run_queue_on_sky(queue, backend=Refusing(tmp_path, tmp_path))
    assert [j.status for j in done] == [JobStatus.FAILED, JobStatus.FAILED]
    assert done[0].reason == "SkyPilot: RuntimeError: No launchable resource found for A100:1"
    assert queue.attempts(1)[0].status == "failed"


def test_queue_run_on_sky_without_skypilot_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sky", None)
    assert main(["queue", "run", "--queue", str(tmp_path / "q"), "--on", "sky"]) == 2
    assert "SkyPilot is not installed" in capsys.readouterr().err


def test_train_on_sky_streams_into_a_local_run_directory(
    tmp_path: Path,
    fake: FakeLab,
    sd_scripts: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`train --on sky` end to end, SkyPilot played here (tests/sky_local.py)."""
    import kohya_orchestrator.launch.sky as sky_module

    from .test_cli_verbs import _write

    fake.plan({"*": fake.ok()})
    sky = LocalSky(tmp_path, sd_scripts)
    monkeypatch.setattr(sky_module, "SkyPilotBackend", lambda keep=False: sky)
    job = _write(tmp_path, "skycli")
    runs = tmp_path / "runs"
    argv = ["train", str(job), "--sd-scripts", str(sd_scripts), "--no-probe", "--on", "sky"]
    local_output = Path(load_job(job).training.output_dir)
    assert not (local_output / "skycli.safetensors").exists()
    assert main([*argv, "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert f"trained on SkyPilot: kohya-skycli; outputs in {local_output}" in out
    (run_dir,) = list(runs.iterdir())
    assert (run_dir / "status").read_text().strip() == "succeeded"
    assert read_events(run_dir)[-1].kind == "run_finished"
    assert (tmp_path / "home" / "kohya-job" / "output" / "skycli.safetensors").is_file()
    # the outputs came back into the job's own output folder, and the run says what moved
    assert (local_output / "skycli.safetensors").is_file()
    moved = json.loads((run_dir / "outputs.json").read_text())["moved"]
    assert "skycli.safetensors" in moved
    assert not (run_dir / "remote-output").exists()  # nothing left behind: all delivered
    handle = json.loads((run_dir / "sky.json").read_text())
    assert handle["name"] == "kohya-skycli" and handle["restarts"] == 0
    assert [h.name for h in sky.released] == ["kohya-skycli"]  # torn down once outputs are here

    # the same job again: its final file is now here, so it is refused before any launch
    assert main([*argv, "--runs", str(runs)]) == 2
    assert "already exists and would be overwritten" in capsys.readouterr().err
    assert len(sky.launched) == 1 and len(list(runs.iterdir())) == 1
