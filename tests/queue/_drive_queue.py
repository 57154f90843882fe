"""Runs a queue with the stand-in trainer as a process of its own (the crash tests SIGKILL it).

Usage: python _drive_queue.py QUEUE_DIR   (needs QUEUE_FAKE_DIR, like the stand-in)
"""

from __future__ import annotations

import sys
from pathlib import Path

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.queue import JobQueue, run_queue
from kohya_orchestrator.render.command import LaunchOptions

FAKE_TRAINER = Path(__file__).resolve().parent / "fake_trainer"


def main() -> int:
    install = Install(
        root=FAKE_TRAINER,
        sd_scripts_dir=FAKE_TRAINER,
        python=Path(sys.executable),
        layout="explicit",
        source="argument",
    )
    done = run_queue(
        JobQueue(Path(sys.argv[1])),
        install=install,
        launch=lambda gpu: LaunchOptions(use_accelerate=False),
        probe=False,
        poll_s=0.1,
    )
    for job in done:
        print(job.id, job.name, job.status.value, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
