"""Process control of a run, with the stand-in trainer replaying real captures (not proof of training).

Covers: success, crash, exit-0 "No data found", a hang caught by the stall watchdog, NaN loss,
cancel with a grandchild (no process left), a raising callback, and never overwriting outputs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fake_runs import fake_install, fake_job, processes_gone, replay, start_fake

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.events import EventAdapter, RunStatus
from kohya_orchestrator.run import Watchdogs, read_events
from kohya_orchestrator.sinks import CallbackSink


@pytest.fixture
def install() -> Install:
    return fake_install()


def test_success_writes_the_run_directory(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = fake_job(tmp_path, "a_lora_accelerate")
    replay(monkeypatch, captures_dir, "a_lora_accelerate", out=tmp_path / "out")
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecretsecret")
    seen = []
    run = start_fake(job, install, tmp_path, sinks=[CallbackSink(seen.append)])
    result = run.wait(60)
    assert result.status == RunStatus.SUCCEEDED, result.reason
    assert result.returncode == 0
    d = result.run_dir
    for name in (
        "job.json",
        "config.toml",
        "dataset.toml",
        "command.json",
        "console.log",
        "events.jsonl",
    ):
        assert (d / name).is_file(), name
    assert (d / "status").read_text().strip() == "succeeded"
    assert (d / "rc").read_text().strip() == "0"
    combined = (captures_dir / "sd-scripts-logs" / "a_lora_accelerate" / "combined").read_bytes()
    assert (d / "console.log").read_bytes() == combined
    command = json.loads((d / "command.json").read_text())
    assert "HF_TOKEN" not in json.dumps(command)
    events = read_events(d)
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[0].kind == "run_started" and events[-1].kind == "run_finished"
    steps = [e for e in events if e.kind == "step_progress"]
    plan = next(e for e in events if e.kind == "training_plan")
    assert steps[-1].step == plan.total_steps
    assert [Path(p).name for p in result.outputs] == [
        "a_lora_accelerate-000001.safetensors",
        "a_lora_accelerate.safetensors",
    ]
    assert [e.kind for e in seen] == [e.kind for e in events]


def test_crash_is_failed_with_the_classified_error(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(monkeypatch, captures_dir, "b_loha", args="--exit-code 1")
    result = start_fake(fake_job(tmp_path, "b_loha"), install, tmp_path).wait(60)
    assert result.status == RunStatus.FAILED and result.returncode == 1
    assert any(e.category == "lycoris_duplicated_name" for e in result.errors)
    assert (result.run_dir / "status").read_text().strip() == "failed"


def test_exit_zero_with_no_data_is_failed(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(monkeypatch, captures_dir, "f_missing_dir")
    result = start_fake(fake_job(tmp_path, "f_missing_dir"), install, tmp_path).wait(60)
    assert result.returncode == 0
    assert result.status == RunStatus.FAILED
    assert "no data" in (result.reason or "").lower()


def test_stall_watchdog_stops_a_hung_trainer(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(
        monkeypatch,
        captures_dir,
        "a_lora_accelerate",
        args="--stop-after 30 --hang --spawn-grandchild --max-lifetime 60",
    )
    run = start_fake(
        fake_job(tmp_path, "hang"),
        install,
        tmp_path,
        watchdogs=Watchdogs(stall_minutes=0.02, cancel_grace_s=1.0),
    )
    time.sleep(0.5)
    pids = run.pids
    result = run.wait(60)
    assert result.status == RunStatus.FAILED and "stalled" in (result.reason or "")
    assert len(pids) >= 2 and processes_gone(pids)


def test_cancel_leaves_no_process(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(
        monkeypatch,
        captures_dir,
        "a_lora_accelerate",
        args="--stop-after 30 --hang --spawn-grandchild --ignore-sigint --max-lifetime 60",
    )
    run = start_fake(
        fake_job(tmp_path, "cancel"), install, tmp_path, watchdogs=Watchdogs(cancel_grace_s=1.0)
    )
    deadline = time.monotonic() + 20
    while len(run.pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = run.pids
    run.cancel()
    result = run.wait(60)
    assert result.status == RunStatus.CANCELED
    assert (result.run_dir / "status").read_text().strip() == "canceled"
    assert len(pids) >= 2 and processes_gone(pids)


def test_nan_watchdog(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in log: the real a_lora capture with its loss values replaced by nan (process control only).
    rows = [
        json.loads(x)
        for x in (captures_dir / "sd-scripts-logs" / "a_lora_accelerate" / "chunks.jsonl")
        .read_text()
        .splitlines()
        if x.strip()
    ]
    import re

    for row in rows:
        row["text"] = re.sub(r"avr_loss=[0-9.e+-]+", "avr_loss=nan", row["text"])
    nan_log = tmp_path / "nan.chunks.jsonl"
    nan_log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setenv("FAKE_SD_SCRIPTS_REPLAY", str(nan_log))
    monkeypatch.setenv("FAKE_SD_SCRIPTS_ARGS", "--speed 0 --hang --max-lifetime 60")
    result = start_fake(
        fake_job(tmp_path, "nan"), install, tmp_path, watchdogs=Watchdogs(cancel_grace_s=1.0)
    ).wait(60)
    assert result.status == RunStatus.FAILED and "NaN" in (result.reason or "")


def test_raising_callback_never_kills_the_run(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(monkeypatch, captures_dir, "a_lora_accelerate", out=tmp_path / "out")

    def boom(event: object) -> None:
        raise ValueError("consumer bug")

    result = start_fake(
        fake_job(tmp_path, "a_lora_accelerate"), install, tmp_path, sinks=[CallbackSink(boom)]
    ).wait(60)
    assert result.status == RunStatus.SUCCEEDED
    assert "consumer bug" in (result.run_dir / "sink_errors.txt").read_text()


def test_existing_output_is_never_overwritten(tmp_path: Path, install: Install) -> None:
    job = fake_job(tmp_path, "mine")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.safetensors").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="would be overwritten"):
        start_fake(job, install, tmp_path)
    assert (tmp_path / "out" / "mine.safetensors").read_bytes() == b"precious"
    assert not (tmp_path / "runs").exists()


def test_events_jsonl_round_trips(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(monkeypatch, captures_dir, "e_prodigy", out=tmp_path / "out")
    result = start_fake(fake_job(tmp_path, "e_prodigy"), install, tmp_path).wait(60)
    for line in (result.run_dir / "events.jsonl").read_text().splitlines():
        event = EventAdapter.validate_json(line)
        assert EventAdapter.dump_json(event).decode() == line


def test_runs_list_and_show(
    captures_dir: Path,
    tmp_path: Path,
    install: Install,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kohya_orchestrator.cli.main import main

    replay(monkeypatch, captures_dir, "b_loha", args="--exit-code 1")
    result = start_fake(fake_job(tmp_path, "b_loha"), install, tmp_path).wait(60)
    crashed = tmp_path / "runs" / "20260101-000000-crashed"
    crashed.mkdir()
    (crashed / "job.json").write_text('{"name": "crashed"}')
    (crashed / "events.jsonl").write_text('{"kind": "run_star')  # cut short by a crash
    assert main(["runs", "list", "--runs", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "crashed" in out
    assert main(["runs", "show", str(result.run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == "failed" and info["returncode"] == 1
    assert info["errors"][0]["category"] == "lycoris_duplicated_name"
    assert main(["runs", "show", str(crashed)]) == 0
    assert "status: None" in capsys.readouterr().out
