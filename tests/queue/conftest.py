"""Queue test helpers: a stand-in trainer that behaves per job, jobs, and a runner using it.

Nothing here trains: the stand-in (fake_trainer/train_network.py) replays real sd-scripts captures
from tests/fixtures/sd-scripts/sd-scripts-logs. There is no real CUDA out-of-memory capture, so the
OOM replay is derived from the real f_badargs_lora capture with its exception line replaced by a
torch OOM line (see :func:`fake`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_runs import fake_job

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.queue import JobQueue, QueueJob, QueueRunner
from kohya_orchestrator.render.command import LaunchOptions

FAKE_TRAINER = Path(__file__).resolve().parent / "fake_trainer"
OOM_LINE = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total "
    "capacity of 7.79 GiB of which 3.31 MiB is free."
)


@dataclass
class FakeLab:
    """The stand-in's control folder ($QUEUE_FAKE_DIR) and the behaviours it can replay."""

    dir: Path
    logs: Path
    oom_replay: Path

    def ok(self, speed: float = 0) -> dict[str, Any]:
        """Replays a real successful run (a_lora_accelerate) under the job's own name."""
        return {
            "replay": str(self.logs / "a_lora_accelerate" / "chunks.jsonl"),
            "rename": "a_lora_accelerate",
            "args": f"--speed {speed}",
        }

    def crash(self) -> dict[str, Any]:
        """Replays a real crash (bad arguments), exit 1."""
        return {"replay": str(self.logs / "f_badargs_lora" / "chunks.jsonl"), "exit_code": 1}

    def oom_unless(self, key: str) -> dict[str, Any]:
        """Runs out of CUDA memory unless the rendered config sets ``key`` to true."""
        return {
            **self.ok(),
            "unless": {"key": key, "replay": str(self.oom_replay), "exit_code": 1},
        }

    def hang(self) -> dict[str, Any]:
        """Prints part of a real run, then goes silent (until killed, at most 60 s)."""
        return {**self.ok(), "args": "--hang --stop-after 30 --max-lifetime 60"}

    def plan(self, steps: dict[str, dict[str, Any]]) -> None:
        """What each output_name does (read at each start, so it can change between runs)."""
        (self.dir / "plan.json").write_text(json.dumps(steps), encoding="utf-8")

    def calls(self) -> list[dict[str, Any]]:
        """One entry per trainer start, in start order."""
        path = self.dir / "calls.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def fake(tmp_path: Path, captures_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FakeLab:
    """The stand-in's folder. Writes the derived OOM replay: the real f_badargs_lora capture
    (chunks.jsonl) with its exception line replaced by a torch CUDA out-of-memory line."""
    folder = tmp_path / "fake"
    folder.mkdir()
    monkeypatch.setenv("QUEUE_FAKE_DIR", str(folder))
    logs = captures_dir / "sd-scripts-logs"
    rows = []
    for line in (logs / "f_badargs_lora" / "chunks.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["text"].startswith("ValueError: invalid literal"):
            row["text"] = OOM_LINE
        rows.append(json.dumps(row))
    assert any(OOM_LINE in r for r in rows)
    oom = folder / "oom_chunks.jsonl"
    oom.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return FakeLab(folder, logs, oom)


@pytest.fixture
def install() -> Install:
    return Install(
        root=FAKE_TRAINER,
        sd_scripts_dir=FAKE_TRAINER,
        python=Path(sys.executable),
        layout="explicit",
        source="argument",
    )


def no_accelerate(gpu: str | None) -> LaunchOptions:
    return LaunchOptions(use_accelerate=False, gpu_ids=None if gpu is None else (gpu,))


# The same valid two-epoch job as the run tests use (tests/fake_runs.py).
make_job = fake_job


def run_fake(queue: JobQueue, install: Install, **options: Any) -> list[QueueJob]:
    options.setdefault("probe", False)
    options.setdefault("poll_s", 0.1)
    return QueueRunner(queue, install=install, launch=no_accelerate, **options).run()


@pytest.fixture(autouse=True)
def _no_real_skypilot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that reached real SkyPilot by mistake fails fast instead of starting SkyPilot's
    local API server (a process that would outlive the test): its endpoint is a closed port."""
    monkeypatch.setenv("SKYPILOT_API_SERVER_ENDPOINT", "http://127.0.0.1:9")
