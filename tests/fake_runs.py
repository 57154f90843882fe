"""Helpers for tests that run the stand-in trainer (tests/fixtures/fake_sd_scripts).

The stand-in replays a real sd-scripts capture from tests/fixtures/sd-scripts/sd-scripts-logs
(chosen with environment variables); it tests process control, events and run directories, and is
never proof that training works. Importable from tests because pyproject's pytest ``pythonpath``
includes ``tests``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob
from kohya_orchestrator.render.command import LaunchOptions
from kohya_orchestrator.run import Run, start

FAKE_SD_SCRIPTS = Path(__file__).resolve().parent / "fixtures" / "fake_sd_scripts"


def fake_install() -> Install:
    """An install whose train_network.py is the stand-in, run by this Python."""
    return Install(
        root=FAKE_SD_SCRIPTS,
        sd_scripts_dir=FAKE_SD_SCRIPTS,
        python=Path(sys.executable),
        layout="explicit",
        source="argument",
    )


def fake_job(tmp_path: Path, name: str, **training: object) -> TrainingJob:
    """A valid two-epoch job on an empty image folder and an empty model file in ``tmp_path``."""
    (tmp_path / "img" / "2_oilpaint style").mkdir(parents=True, exist_ok=True)
    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    return validate_job(
        {
            "model": {"pretrained_model_name_or_path": str(model)},
            "dataset": {"subsets": [{"image_dir": str(tmp_path / "img" / "2_oilpaint style")}]},
            "training": {
                "max_train_epochs": 2,
                "output_dir": str(tmp_path / "out"),
                "output_name": name,
                **training,
            },
        }
    )


def replay(
    monkeypatch: pytest.MonkeyPatch,
    captures: Path,
    scenario: str,
    args: str = "",
    out: Path | None = None,
) -> None:
    """Make the stand-in replay ``scenario``'s capture (``captures``: tests/fixtures/sd-scripts;
    ``args``: its extra options)."""
    chunks = captures / "sd-scripts-logs" / scenario / "chunks.jsonl"
    monkeypatch.setenv("FAKE_SD_SCRIPTS_REPLAY", str(chunks))
    monkeypatch.setenv("FAKE_SD_SCRIPTS_ARGS", f"--speed 0 {args}")
    if out is not None:
        monkeypatch.setenv("FAKE_SD_SCRIPTS_OUTPUT_DIR", str(out))


def processes_gone(pids: list[int]) -> bool:
    """True when none of ``pids`` runs any more (zombies count as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def start_fake(job: TrainingJob, install: Install, tmp_path: Path, **kw: object) -> Run:
    """``start()`` the stand-in without accelerate, runs under ``tmp_path/runs``, no probe."""
    kw.setdefault("probe", False)
    kw.setdefault("monitor_interval_s", 0.2)
    return start(
        job,
        install=install,
        runs=tmp_path / "runs",
        launch=LaunchOptions(use_accelerate=False),
        **kw,  # type: ignore[arg-type]
    )


def add_image(folder: Path, name: str = "a.png", size: tuple[int, int] = (64, 64)) -> Path:
    """One small real PNG in ``folder`` (created), so a job's image folder is not empty.

    ``validate``, like ``plan``, refuses a dataset with no image sd-scripts could train on.
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.new("RGB", size, (120, 90, 60)).save(path)
    return path


def saved_state(folder: Path) -> Path:
    """A state folder as accelerate's ``save_state`` leaves a whole one: weights, optimizer,
    scheduler, then ``random_states_0.pkl`` last (stand-in bytes; nothing here loads them)."""
    folder.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
        (folder / name).write_bytes(b"stand-in")
    return folder
