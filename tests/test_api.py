"""The notebook API (``start``, ``train``, ``iter_events``) and the Run handle's edges.

Every run here launches the stand-in trainer (tests/fixtures/fake_sd_scripts/train_network.py),
which replays a real sd-scripts capture from tests/fixtures/sd-scripts/sd-scripts-logs. It tests
process control, event fan-out and the run directory; it is never proof that training works.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from fake_runs import FAKE_SD_SCRIPTS, fake_install, fake_job, processes_gone, replay, start_fake

import kohya_orchestrator.run as run_module
from kohya_orchestrator import api
from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.errors import LaunchError
from kohya_orchestrator.events import Event, RunStatus
from kohya_orchestrator.render.command import LaunchOptions
from kohya_orchestrator.run import Run, Watchdogs, read_events
from kohya_orchestrator.sinks import CallbackSink

NO_ACCELERATE = LaunchOptions(use_accelerate=False)
HANG = "--stop-after 30 --hang --spawn-grandchild --max-lifetime 60"


@pytest.fixture
def install() -> Install:
    return fake_install()


def _wait_for_tree(run: Run, n: int = 2) -> list[int]:
    deadline = time.monotonic() + 20
    while len(run.pids) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = run.pids
    assert len(pids) >= n, "the stand-in trainer did not start its grandchild"
    return pids


# ---------------------------------------------------------------------------- api.start / train


def test_start_calls_back_and_iter_events_reads_the_same_events(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in trainer replaying a real success: process control only, not proof of training."""
    replay(monkeypatch, captures_dir, "a_lora_accelerate", out=tmp_path / "out")
    seen: list[Event] = []
    run = api.start(
        fake_job(tmp_path, "a_lora_accelerate"),
        install=install,
        runs=str(tmp_path / "runs"),  # a str is accepted too
        launch=NO_ACCELERATE,
        on_event=seen.append,
    )
    result = run.wait(30)
    assert result.ok, result.reason
    assert run.done and run.run_id == result.run_dir.name
    assert result.run_dir.parent == tmp_path / "runs"
    recorded = api.iter_events(str(result.run_dir))
    assert [e.kind for e in seen] == [e.kind for e in recorded]
    assert recorded[0].kind == "run_started" and recorded[-1].kind == "run_finished"
    # The iterable Run hands out the same stream, ending after run_finished (and again later).
    assert [e.seq for e in run.events()] == [e.seq for e in recorded]
    assert [e.seq for e in run.events()] == []
    # api.start probes the install by default: the probe result is in the run directory.
    env = json.loads((result.run_dir / "environment.json").read_text(encoding="utf-8"))
    assert env["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert processes_gone(run.pids)


def test_train_shows_progress_and_blocks_until_done(
    captures_dir: Path,
    tmp_path: Path,
    install: Install,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Stand-in trainer: checks the blocking call and its progress output, not training."""
    replay(monkeypatch, captures_dir, "a_lora_accelerate", out=tmp_path / "out")
    result = api.train(
        fake_job(tmp_path, "a_lora_accelerate"),
        install=install,
        runs=tmp_path / "runs",
        launch=NO_ACCELERATE,
    )
    assert result.status == RunStatus.SUCCEEDED and result.returncode == 0
    assert [p.name for p in result.outputs] == [
        "a_lora_accelerate-000001.safetensors",
        "a_lora_accelerate.safetensors",
    ]
    out = capsys.readouterr().out
    assert "plan: 8 images x repeats, 4 batches/epoch, 2 epochs, 8 steps" in out
    assert "checkpoint " in out and "succeeded in " in out


def test_train_ctrl_c_cancels_the_trainer(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while ``train`` blocks: the stand-in's whole tree is stopped, status canceled."""
    replay(monkeypatch, captures_dir, "a_lora_accelerate", args=HANG)
    original_wait = Run.wait
    seen: dict[str, list[int]] = {}

    def interrupted_once(self: Run, timeout: float | None = None):  # type: ignore[no-untyped-def]
        if "pids" not in seen:
            seen["pids"] = _wait_for_tree(self)
            raise KeyboardInterrupt
        return original_wait(self, 30)

    monkeypatch.setattr(Run, "wait", interrupted_once)
    result = api.train(
        fake_job(tmp_path, "cancel"),
        install=install,
        runs=tmp_path / "runs",
        launch=NO_ACCELERATE,
        show_progress=False,
        watchdogs=Watchdogs(cancel_grace_s=1.0),
    )
    assert result.status == RunStatus.CANCELED and result.reason == "canceled"
    assert (result.run_dir / "status").read_text().strip() == "canceled"
    assert processes_gone(seen["pids"])
    assert read_events(result.run_dir)[-1].kind == "run_finished"


def test_iter_events_of_a_mistyped_run_dir_says_so(tmp_path: Path) -> None:
    from kohya_orchestrator.errors import ConfigError

    with pytest.raises(ConfigError, match="no such folder"):
        api.iter_events(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"not a run directory \(no events.jsonl\)"):
        api.iter_events(tmp_path)


def test_iter_events_of_a_run_that_wrote_no_events_yet(tmp_path: Path) -> None:
    (tmp_path / "status").write_text("pending\n")
    assert api.iter_events(tmp_path) == []


# ---------------------------------------------------------------------------- Run edges


def test_samples_in_the_output_folder_become_events(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder scan after a (replayed) sampling line reports this job's images only."""
    replay(monkeypatch, captures_dir, "a_lora_accelerate", out=tmp_path / "out")
    sample = tmp_path / "out" / "sample"
    sample.mkdir(parents=True)
    (sample / "mine_e000001_00_20260101120000.png").write_bytes(b"")
    (sample / "mine_000004_01_20260101120001.png").write_bytes(b"")
    (sample / "other_e000001_00_20260101120000.png").write_bytes(b"")
    (sample / "mine_notes.txt").write_text("not an image")
    result = start_fake(fake_job(tmp_path, "mine"), install, tmp_path).wait(30)
    saved = [e for e in read_events(result.run_dir) if e.kind == "sample_image_saved"]
    assert [(Path(e.path).name, e.epoch, e.step, e.prompt_index) for e in saved] == [
        ("mine_000004_01_20260101120001.png", None, 4, 1),
        ("mine_e000001_00_20260101120000.png", 1, None, 0),
    ]


def test_zero_images_plan_stops_the_run(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in log: the real a_lora capture with its image count set to 0 (process control)."""
    src = captures_dir / "sd-scripts-logs" / "a_lora_accelerate" / "chunks.jsonl"
    rows = [json.loads(x) for x in src.read_text(encoding="utf-8").splitlines() if x.strip()]
    marker = "num train images * repeats / 学習画像の数×繰り返し回数: 8"
    assert any(marker in r["text"] for r in rows)
    for row in rows:
        row["text"] = row["text"].replace(marker, marker[:-1] + "0")
    log = tmp_path / "zero.chunks.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    monkeypatch.setenv("FAKE_SD_SCRIPTS_REPLAY", str(log))
    monkeypatch.setenv("FAKE_SD_SCRIPTS_ARGS", "--speed 0 --hang --max-lifetime 60")
    result = start_fake(
        fake_job(tmp_path, "zero"), install, tmp_path, watchdogs=Watchdogs(cancel_grace_s=1.0)
    ).wait(30)
    assert result.status == RunStatus.FAILED
    assert result.reason == "the plan shows 0 training images (No data found)"
    plan = next(e for e in read_events(result.run_dir) if e.kind == "training_plan")
    assert plan.train_images_with_repeats == 0


def test_zero_images_watchdog_can_be_switched_off(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the watchdog and with the stall watchdog off, the replayed run just ends."""
    replay(monkeypatch, captures_dir, "a_lora_accelerate", out=tmp_path / "out")
    result = start_fake(
        fake_job(tmp_path, "a_lora_accelerate"),
        install,
        tmp_path,
        watchdogs=Watchdogs(stop_on_zero_images=False, stop_on_nan=False, stall_minutes=None),
    ).wait(30)
    assert result.ok
    assert any(e.kind == "resource_sample" for e in read_events(result.run_dir))


def test_a_failing_output_check_never_fails_a_finished_run(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(monkeypatch, captures_dir, "a_lora_accelerate", out=tmp_path / "out")

    def broken_check(*args: object) -> list[Event]:
        raise RuntimeError("header unreadable")

    monkeypatch.setattr(run_module, "check_run_outputs", broken_check)
    result = start_fake(fake_job(tmp_path, "a_lora_accelerate"), install, tmp_path).wait(30)
    assert result.status == RunStatus.SUCCEEDED
    errors = (result.run_dir / "sink_errors.txt").read_text(encoding="utf-8")
    assert "output check: RuntimeError('header unreadable')" in errors


def test_a_sink_whose_close_raises_still_lets_the_run_end(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(monkeypatch, captures_dir, "a_lora_accelerate", out=tmp_path / "out")

    class BadClose(CallbackSink):
        def close(self) -> None:
            raise OSError("disk full")

    seen: list[Event] = []
    run = start_fake(
        fake_job(tmp_path, "a_lora_accelerate"), install, tmp_path, sinks=[BadClose(seen.append)]
    )
    result = run.wait(30)
    assert result.ok and run.done
    assert seen[-1].kind == "run_finished"
    recorded = (result.run_dir / "sink_errors.txt").read_text(encoding="utf-8")
    assert "close()" in recorded and "disk full" in recorded


def test_extra_env_and_a_given_environment_reach_the_run(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kohya_orchestrator.environment.probe import Environment

    replay(monkeypatch, captures_dir, "f_missing_dir")
    environment = Environment(
        sd_scripts_dir=FAKE_SD_SCRIPTS, python=Path(sys.executable), platform="test"
    )
    # FAKE_SD_SCRIPTS_ARGS given through extra_env (only the child sees it) makes it exit 7.
    monkeypatch.delenv("FAKE_SD_SCRIPTS_ARGS")
    result = start_fake(
        fake_job(tmp_path, "env"),
        install,
        tmp_path,
        environment=environment,
        extra_env={"FAKE_SD_SCRIPTS_ARGS": "--speed 0 --exit-code 7"},
    ).wait(30)
    assert result.returncode == 7 and result.status == RunStatus.FAILED
    assert result.reason == result.errors[-1].message  # the classified error, not "exit code 7"
    saved = json.loads((result.run_dir / "environment.json").read_text(encoding="utf-8"))
    assert saved["platform"] == "test"
    assert "FAKE_SD_SCRIPTS_ARGS" not in os.environ


def test_crash_without_a_classified_error_reports_the_exit_code(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in that prints nothing and exits 5: the reason is the exit code."""
    empty = tmp_path / "empty.chunks.jsonl"
    empty.write_text("")
    monkeypatch.setenv("FAKE_SD_SCRIPTS_REPLAY", str(empty))
    monkeypatch.setenv("FAKE_SD_SCRIPTS_ARGS", "--speed 0 --exit-code 5")
    result = start_fake(fake_job(tmp_path, "silent"), install, tmp_path).wait(30)
    assert result.status == RunStatus.FAILED and result.reason == "exit code 5"
    assert result.errors == [] and result.remedies == []


def test_exit_zero_without_the_final_file_is_failed(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replayed success without FAKE_SD_SCRIPTS_OUTPUT_DIR leaves no model file."""
    replay(monkeypatch, captures_dir, "a_lora_accelerate")
    result = start_fake(fake_job(tmp_path, "nofile"), install, tmp_path).wait(30)
    assert result.returncode == 0 and result.status == RunStatus.FAILED
    assert (result.reason or "").startswith("exit code 0 but no final model file ")
    assert result.outputs == []


def test_a_trainer_that_cannot_start_raises_and_closes_the_run(
    tmp_path: Path, install: Install
) -> None:
    not_executable = tmp_path / "python"
    not_executable.write_text("not a program")
    broken = install.model_copy(update={"python": not_executable})
    seen: list[Event] = []
    with pytest.raises(LaunchError, match="could not start"):
        start_fake(
            fake_job(tmp_path, "nostart"), broken, tmp_path, sinks=[CallbackSink(seen.append)]
        )
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "status").read_text().strip() == "failed"
    kinds = ["run_started", "plan_predicted", "run_finished"]  # the plan is predicted first
    assert [e.kind for e in seen] == kinds
    assert seen[-1].reason == "the trainer could not be started"  # type: ignore[union-attr]
    assert [e.kind for e in read_events(run_dir)] == kinds


def test_events_refuses_a_run_started_not_iterable(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(monkeypatch, captures_dir, "f_missing_dir")
    seen: list[Event] = []
    run = start_fake(
        fake_job(tmp_path, "quiet"),
        install,
        tmp_path,
        iterable=False,
        sinks=[CallbackSink(seen.append)],
    )
    with pytest.raises(RuntimeError, match="iterable=False"):
        next(run.events())
    result = run.wait(30)
    assert [e.kind for e in seen] == [e.kind for e in read_events(result.run_dir)]


def test_wait_times_out_while_running(
    captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay(monkeypatch, captures_dir, "a_lora_accelerate", args=HANG)
    run = start_fake(
        fake_job(tmp_path, "slow"), install, tmp_path, watchdogs=Watchdogs(cancel_grace_s=1)
    )
    pids = _wait_for_tree(run)
    with pytest.raises(TimeoutError, match="still running"):
        run.wait(0.05)
    assert not run.done
    run.cancel()
    assert run.wait(30).status == RunStatus.CANCELED
    assert processes_gone(pids)


def test_a_run_without_a_trainer_has_no_pids_and_cancel_is_harmless(
    tmp_path: Path, install: Install
) -> None:
    from kohya_orchestrator.launch.rundir import RunDir

    run = Run(fake_job(tmp_path, "idle"), RunDir.create(tmp_path / "runs", "idle"), [], Watchdogs())
    assert run.pids == [] and not run.done
    run.cancel()  # nothing was started: nothing to signal
    with pytest.raises(TimeoutError):
        run.wait(0.01)
    run._events_file.close()  # start() would have finished the run; nothing else closes it
