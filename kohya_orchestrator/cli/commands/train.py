"""`train JOB.toml`: render, launch sd-scripts, show live progress, keep everything in a run dir."""

from __future__ import annotations

import argparse

from .._common import RAW, add_set_option
from ._cluster import add_cluster_options

TYPE_CHECKING = False

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from ...environment.discovery import Install
    from ...events import ChildError
    from ...models import TrainingJob
    from ...run import RunResult


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "train",
        help="train a job with sd-scripts, with live progress and a run directory",
        description="Validate the job, write a new run directory (job, rendered TOMLs, command, "
        "environment probe), launch sd-scripts through accelerate, and show live progress. "
        "Ctrl-C cancels the whole process tree (exit 130). Exit 0 only when training succeeded "
        "and the final model file exists.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator train docs/examples/oilpaint.toml\n"
        "  python -m kohya_orchestrator train my_job.toml --sd-scripts ~/kohya_ss --runs runs/\n"
        "  python -m kohya_orchestrator train my_job.toml --gpus 0,1   # two processes\n"
        "  python -m kohya_orchestrator train my_job.toml --smoke   # 2 steps: speed, memory, "
        "time\n\n"
        "next: python -m kohya_orchestrator runs show latest",
        formatter_class=RAW,
    )
    parser.add_argument(
        "job",
        metavar="JOB.toml",
        help="the job file, or a run directory (runs/<id>, or its job.json) to train it again",
    )
    add_set_option(parser)
    parser.add_argument("--sd-scripts", metavar="PATH", help="kohya_ss or sd-scripts folder")
    parser.add_argument("--runs", metavar="DIR", default="runs", help="run folders (default runs)")
    parser.add_argument("--gpus", metavar="IDS", help="GPU ids, e.g. 0 or 0,1 (one process each)")
    parser.add_argument("--cpu-threads", type=int, default=2, help="threads per process (2)")
    parser.add_argument("--no-probe", action="store_true", help="skip the environment probe")
    parser.add_argument("--jsonl", action="store_true", help="print events as JSON lines")
    parser.add_argument("--stall-minutes", type=float, default=30.0, help="stop when silent (30)")
    parser.add_argument(
        "--resume-latest",
        action="store_true",
        help="the job was started before (e.g. a preempted cloud run started again): resume "
        "from the newest saved state in its output folder; without one, move the earlier "
        "checkpoints to <output>/superseded/ and start over",
    )
    add_smoke_options(parser)
    add_cluster_options(parser)
    parser.set_defaults(func=run)


def add_smoke_options(parser: argparse.ArgumentParser) -> None:
    """``--smoke`` and ``--then-train`` (train and preset)."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="first run the exact job for 2 steps with one sample and one save into a scratch "
        "folder (the job's output folder is not touched), then report speed, memory and the "
        "projected time of the full run",
    )
    parser.add_argument(
        "--then-train",
        action="store_true",
        help="with --smoke: train the full job when the smoke run passed",
    )


def start_and_wait(
    job: TrainingJob,
    *,
    install: Install | None = None,
    sd_scripts: Path | None = None,
    runs: Path,
    gpus: str | None = None,
    cpu_threads: int = 2,
    probe: bool = True,
    jsonl: bool = False,
    stall_minutes: float | None = 30.0,
    announce: str | None = None,
    monitor_interval_s: float = 5.0,
    machines: dict[str, Any] | None = None,
) -> RunResult | None:
    """Start ``job`` with the live display and wait: its result, or None after Ctrl-C (the
    trainer then canceled). ``announce`` is printed once the trainer started (never before a
    refusal)."""
    import sys

    from ...events import EventAdapter
    from ...render.command import LaunchOptions
    from ...run import Watchdogs, start
    from ...sinks import CallbackSink, EventSink
    from ...ui.messages import fail, hint, ok
    from ...ui.progress import RichProgressSink

    # A file where the runs folder (or a folder above it) should be: say so before anything.
    blocked = next((p for p in (runs, *runs.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        from ...errors import ConfigError, Problem

        raise ConfigError(
            [
                Problem(
                    "--runs",
                    f"{blocked} is a file, not a folder",
                    "pass a folder for the run directories (default: runs)",
                )
            ],
            source="train",
        )
    ids = tuple(g.strip() for g in gpus.split(",")) if gpus else None
    options = LaunchOptions(
        num_processes=len(ids) if ids else 1,
        gpu_ids=ids,
        num_cpu_threads_per_process=cpu_threads,
        **(machines or {}),
    )
    if options.num_machines > 1:
        from ...launch.slurm import machine_options
        from ...render.command import check_machines

        options = machine_options(options)  # rank and main address from SLURM when not given
        check_machines(options)  # before a run directory is made
    sinks: list[EventSink] = []
    if jsonl:
        sinks.append(
            CallbackSink(
                lambda e: sys.stdout.write(EventAdapter.dump_json(e).decode("utf-8") + "\n")
            )
        )
    else:
        sinks.append(RichProgressSink())
    run = start(
        job,
        install=install,
        sd_scripts=sd_scripts,
        runs=runs,
        launch=options,
        sinks=sinks,
        probe=probe,
        watchdogs=Watchdogs(stall_minutes=stall_minutes),
        iterable=False,
        monitor_interval_s=monitor_interval_s,
    )
    if announce:
        ok(announce, file=sys.stderr if jsonl else None)
    try:
        return run.wait()
    except KeyboardInterrupt:
        fail("interrupted: stopping the trainer")
        run.cancel()
        result = run.wait()
        hint(f"run directory: {result.run_dir}", file=sys.stderr)
        return None


def train_job(
    job: TrainingJob,
    *,
    install: Install | None = None,
    sd_scripts: Path | None = None,
    runs: Path,
    gpus: str | None = None,
    cpu_threads: int = 2,
    probe: bool = True,
    jsonl: bool = False,
    stall_minutes: float | None = 30.0,
    announce: str | None = None,
    machines: dict[str, Any] | None = None,
) -> int:
    """Run a job from the CLI: progress display, Ctrl-C cancels, exit code from the result."""
    import sys

    from ...ui.messages import fail, hint, ok

    result = start_and_wait(
        job,
        install=install,
        sd_scripts=sd_scripts,
        runs=runs,
        gpus=gpus,
        cpu_threads=cpu_threads,
        probe=probe,
        jsonl=jsonl,
        stall_minutes=stall_minutes,
        announce=announce,
        machines=machines,
    )
    if result is None:
        return 130
    if result.ok:
        human = sys.stderr if jsonl else None  # with --jsonl, stdout carries only events
        ok(f"trained {', '.join(str(p) for p in result.outputs) or 'nothing?'}", file=human)
        hint(
            f"run directory: {result.run_dir}   next: python -m kohya_orchestrator runs show "
            f"{result.run_dir}",
            file=human,
        )
        return 0
    fail(f"training {result.status.value}: {result.reason}")
    for remedy in _remedies(result.errors):
        hint(remedy, file=sys.stderr)
    if result.write_error is not None:
        hint(
            "free space there (or pass --runs DIR on another disk) and train again", file=sys.stderr
        )
    if result.remedies:
        hint("this job could use less memory with:", file=sys.stderr)
        for remedy in result.remedies:
            sys.stderr.write(f"    - {remedy}\n")
    hint(f"full log: {result.run_dir / 'console.log'}", file=sys.stderr)
    return 1


def _remedies(errors: list[ChildError]) -> list[str]:
    """Each remedy once: the headline error's first, then the last errors' (accelerate's own
    "launcher failed" only when nothing else explains the failure)."""
    from ...events import classify_failure

    headline = classify_failure(errors)
    found: list[str] = []
    for error in [headline, *errors[-3:]]:
        if error is None or not error.remedy or error.remedy in found:
            continue
        if error.category == "launcher_failed" and error is not headline:
            continue
        found.append(error.remedy)
    return found


def _restart(job: TrainingJob) -> TrainingJob:
    """``--resume-latest``: go on from the newest saved state (see jobs/restart.py). Relative
    paths are the working directory's, as for the training itself."""
    import sys
    from datetime import datetime
    from pathlib import Path

    from ...jobs.restart import prepare_restart
    from ...run import absolute_job
    from ...ui.messages import hint

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    job, notes = prepare_restart(absolute_job(job, Path.cwd()), stamp)
    for note in notes:
        hint(f"--resume-latest: {note}", file=sys.stderr)
    return job


def run(args: argparse.Namespace) -> int:
    """Load, validate and train. SIGTERM (``kill``, ``sky cancel``) cancels like Ctrl-C: the
    trainer is stopped in order and the run directory says canceled."""
    import threading

    from ...launch.slurm import on_terminate

    if threading.current_thread() is not threading.main_thread():
        return _run(args)

    def interrupt() -> None:
        raise KeyboardInterrupt

    with on_terminate(interrupt):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .._common import install_arguments, load_job_from_args, print_warnings
    from ._cluster import machine_args

    install, arguments = install_arguments(args.sd_scripts, search=True, probe=not args.no_probe)
    job = load_job_from_args(args, arguments)
    print_warnings(job)
    if args.resume_latest:
        job = _restart(job)
    if args.on == "sky":
        from ._cluster import train_on_sky

        return train_on_sky(args, job)
    if args.then_train and not args.smoke:
        from ...errors import ConfigError, Problem

        raise ConfigError([Problem("--then-train", "needs --smoke", "add --smoke")])
    if args.smoke:
        from ._smoke import smoke_then_train

        return smoke_then_train(
            job,
            start_and_wait=start_and_wait,
            train_job=train_job,
            install=install,
            sd_scripts=Path(args.sd_scripts) if args.sd_scripts else None,
            runs=Path(args.runs),
            then_train=args.then_train,
            gpus=args.gpus,
            cpu_threads=args.cpu_threads,
            probe=not args.no_probe,
            stall_minutes=args.stall_minutes,
        )
    return train_job(
        job,
        install=install,
        sd_scripts=Path(args.sd_scripts) if args.sd_scripts else None,
        runs=Path(args.runs),
        gpus=args.gpus,
        cpu_threads=args.cpu_threads,
        probe=not args.no_probe,
        jsonl=args.jsonl,
        stall_minutes=args.stall_minutes,
        machines=machine_args(args),
    )
