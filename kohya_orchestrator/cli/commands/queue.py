"""`queue add|list|run|cancel|retry|export-slurm`: many trainings, unattended, on one or more GPUs."""

from __future__ import annotations

import argparse

from .._common import RAW, add_set_option
from ._cluster import add_sky_queue_options
from ._queue_slurm import add_slurm_parsers, export_slurm, slurm_task

TYPE_CHECKING = False

if TYPE_CHECKING:
    from ...queue import JobQueue, QueueJob, QueueNotice

HELP = (
    "a persistent training queue: add, list, run (one worker per GPU), cancel, retry, export-slurm"
)

_EPILOG = (
    "examples:\n"
    "  python -m kohya_orchestrator queue add docs/examples/oilpaint.toml "
    "--set training.max_train_epochs=4\n"
    "  python -m kohya_orchestrator queue run --gpus 0,1\n"
    "  python -m kohya_orchestrator queue list\n"
    "  python -m kohya_orchestrator queue retry 3 --resume\n"
    "  python -m kohya_orchestrator queue export-slurm --partition gpu --time 04:00:00\n\n"
    "next: python -m kohya_orchestrator runs show latest   # each job has its own run directory"
)


def add_queue_option(parser: argparse.ArgumentParser) -> None:
    """``--queue DIR``."""
    parser.add_argument(
        "--queue",
        metavar="DIR",
        help="queue folder (default ~/.local/share/kohya_orchestrator/queue)",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``queue run`` (shared with ``sweep --run``)."""
    parser.add_argument(
        "--gpus",
        metavar="IDS",
        help="one worker per GPU, each pinned with CUDA_VISIBLE_DEVICES, e.g. 0,1 (default: one "
        "worker, devices left alone)",
    )
    parser.add_argument(
        "--oom-retries",
        type=int,
        default=2,
        metavar="N",
        help="after CUDA out of memory, retry up to N times with a lighter plan (default 2)",
    )
    parser.add_argument("--sd-scripts", metavar="PATH", help="kohya_ss or sd-scripts folder")
    parser.add_argument("--runs", metavar="DIR", help="run folders (default <queue>/runs)")
    parser.add_argument("--cpu-threads", type=int, default=2, help="threads per process (2)")
    parser.add_argument("--no-probe", action="store_true", help="skip the environment probe")
    parser.add_argument("--stall-minutes", type=float, default=30.0, help="stop when silent (30)")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb and its actions."""
    parser = subparsers.add_parser(
        "queue",
        help=HELP,
        description="A queue that survives crashes and reboots: 'add' copies each job into the "
        "queue folder (later edits of the file change nothing), 'run' trains them in order, one "
        "worker per GPU, past failures, each in its own run directory; a job that runs out of "
        "CUDA memory is retried with a lighter plan. A job whose runner died is marked "
        "interrupted and never rerun by itself: 'retry' reruns it, 'retry --resume' resumes it "
        "from sd-scripts' saved state.",
        epilog=_EPILOG,
        formatter_class=RAW,
        allow_abbrev=False,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add",
        help="validate jobs and copy them into the queue",
        description="Validate each job file (with --set overrides) and queue a frozen copy, all "
        "or none.",
        epilog="examples:\n  python -m kohya_orchestrator queue add docs/examples/oilpaint.toml\n"
        "  python -m kohya_orchestrator queue add a.toml b.toml   # several jobs: all or none\n\n"
        "next: python -m kohya_orchestrator queue run",
        formatter_class=RAW,
    )
    add.add_argument("jobs", nargs="+", metavar="JOB.toml", help="job files")
    add.add_argument(
        "--sd-scripts",
        metavar="PATH",
        help="check the jobs against this install's own arguments (default: $KOHYA_SD_SCRIPTS "
        "when set)",
    )
    add_set_option(add)
    add_queue_option(add)

    ls = actions.add_parser(
        "list",
        help="show the queued jobs and their status",
        description="Every job with its status, attempts, GPU, run directory and reason.",
        epilog="example:\n  python -m kohya_orchestrator queue list --sweep oilpaint-20261201-"
        "101500\n\nnext: python -m kohya_orchestrator runs show latest",
        formatter_class=RAW,
    )
    add_queue_option(ls)
    ls.add_argument("--sweep", metavar="NAME", help="only this sweep's jobs")
    ls.add_argument("--json", action="store_true", help="machine-readable output")

    run = actions.add_parser(
        "run",
        help="train the queued jobs, one worker per GPU, until none is left",
        description="Train queued jobs in order, one at a time per GPU, continuing past failures. "
        "Ctrl-C stops the trainings and marks them interrupted (exit 130). Exit 0 when every job "
        "this run took succeeded.",
        epilog="examples:\n  python -m kohya_orchestrator queue run\n"
        "  python -m kohya_orchestrator queue run --gpus 0,1 --oom-retries 3\n"
        "  python -m kohya_orchestrator queue run --on sky --gpus A100:1   # SkyPilot\n\n"
        "next: python -m kohya_orchestrator queue list",
        formatter_class=RAW,
    )
    add_queue_option(run)
    add_run_options(run)
    run.add_argument("--sweep", metavar="NAME", help="only this sweep's jobs")
    run.add_argument(
        "--follow", action="store_true", help="keep waiting for new jobs (stop with Ctrl-C)"
    )
    add_sky_queue_options(run)

    cancel = actions.add_parser(
        "cancel",
        help="cancel waiting jobs or stop running ones",
        description="A waiting job is canceled; a running one is stopped by its runner. A job "
        "submitted to SLURM is also scancelled (its array task records it canceled); a job on "
        "SkyPilot is canceled there (by its runner, or from here when the runner is gone).",
        epilog="example:\n  python -m kohya_orchestrator queue cancel 4 5",
        formatter_class=RAW,
    )
    cancel.add_argument("ids", nargs="+", type=int, metavar="ID", help="job ids")
    add_queue_option(cancel)

    retry = actions.add_parser(
        "retry",
        help="queue failed, canceled or interrupted jobs again",
        description="Put jobs back in their old place in the queue. --resume continues from the "
        "latest state folder sd-scripts saved (jobs with training.save_state).",
        epilog="examples:\n  python -m kohya_orchestrator queue retry 3\n"
        "  python -m kohya_orchestrator queue retry 3 --resume\n\n"
        "next: python -m kohya_orchestrator queue run",
        formatter_class=RAW,
    )
    retry.add_argument("ids", nargs="+", type=int, metavar="ID", help="job ids")
    retry.add_argument("--resume", action="store_true", help="resume from the saved state")
    add_queue_option(retry)

    add_slurm_parsers(actions, add_queue_option)
    parser.set_defaults(func=run_command)


def open_queue(args: argparse.Namespace) -> JobQueue:
    """The queue named by ``--queue`` (default: the user's queue)."""
    from pathlib import Path

    from ...queue import JobQueue

    return JobQueue(Path(args.queue) if args.queue else None)


def run_command(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    action = {
        "add": _add,
        "list": _list,
        "run": _run,
        "cancel": _cancel,
        "retry": _retry,
        "export-slurm": _export_slurm,
        "slurm-task": _slurm_task,
    }[args.action]
    return action(args)


def _add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.markup import escape

    from ...errors import ConfigError, Problem
    from ...jobs.arguments import check_job_arguments
    from ...jobs.checks import check_outputs, check_paths
    from ...jobs.loading import load_job
    from ...queue import NewJob
    from ...ui.messages import console, hint, ok
    from .._common import install_arguments, print_warnings

    _, arguments = install_arguments(args.sd_scripts, search=False)
    items: list[NewJob] = []
    problems: list[Problem] = []
    many = len(args.jobs) > 1
    for name in args.jobs:
        path = Path(name)
        try:
            job = load_job(path, overrides=args.overrides, arguments=arguments)
            found = check_paths(job) + check_outputs(job)
            found += [] if arguments is None else check_job_arguments(job, arguments)
            if found:
                raise ConfigError(found, source=str(path))
        except ConfigError as exc:
            for p in exc.problems:
                where = f"{path}: {p.path}" if many else p.path
                problems.append(Problem(where, p.message, p.hint, p.severity))
            continue
        print_warnings(job)
        items.append(
            NewJob(
                job,
                source=str(path.resolve()),
                overrides=[f"--set {o}" for o in args.overrides],
            )
        )
    if problems:
        raise ConfigError(problems, source=f"{', '.join(args.jobs)}: nothing was queued")
    queue = open_queue(args)
    added = queue.add(items)
    ok(f"queued {len(added)} job{'s' if len(added) != 1 else ''} in {queue.path}")
    for entry in added:
        console().print(f"  {entry.id:>4}  {escape(entry.name)}  ({escape(entry.job_file.name)})")
    hint("next: python -m kohya_orchestrator queue run" + _queue_arg(args))
    return 0


def _queue_arg(args: argparse.Namespace) -> str:
    import shlex

    return f" --queue {shlex.quote(args.queue)}" if args.queue else ""


def _list(args: argparse.Namespace) -> int:
    import json
    import sys

    from rich.markup import escape
    from rich.table import Table

    from ...queue import JobStatus
    from ...queue.slurm_tasks import reconcile_slurm
    from ...ui.messages import console, hint

    queue = open_queue(args)
    reconcile_slurm(queue)  # what SLURM dropped before it started, or ended with SIGKILL
    jobs = queue.jobs(sweep=args.sweep)
    gone = {j.id for j in jobs if j.status == JobStatus.RUNNING and not queue.runner_alive(j)}
    if args.json:
        data = [
            {**j.model_dump(mode="json"), "runner_alive": j.id not in gone}
            if j.status == JobStatus.RUNNING
            else j.model_dump(mode="json")
            for j in jobs
        ]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    out = console()
    if not jobs:
        out.print(f"no jobs in {queue.path}")
        return 0
    table = Table(box=None, header_style="bold")
    for col in ("id", "job", "status", "tries", "gpu", "run", "reason"):
        table.add_column(col, overflow="fold")
    for j in jobs:
        status = j.status.value
        if j.id in gone:
            status += " (runner gone)"
        table.add_row(
            str(j.id),
            escape(j.name),
            status,
            str(j.attempts),
            j.gpu or "",
            escape(j.run_dir.name) if j.run_dir else "",
            escape(j.reason or ""),
        )
    out.print(table)
    interrupted = [j.id for j in jobs if j.status == JobStatus.INTERRUPTED or j.id in gone]
    if interrupted:
        ids = " ".join(str(i) for i in interrupted)
        hint(
            f"interrupted jobs are never rerun by themselves: queue retry {ids} (from the start) "
            f"or queue retry {ids} --resume (from the saved state)"
        )
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from ...queue import JobStatus
    from ...queue.sky_queue import cancel_on_sky
    from ...queue.slurm_tasks import cancel_jobs
    from ...ui.messages import ok

    queue = open_queue(args)
    live = (JobStatus.RUNNING, JobStatus.INTERRUPTED)  # an interrupted cloud run may still go on
    before = [j for j in queue.jobs(ids=set(args.ids)) if j.status in live]
    for job in cancel_jobs(queue, args.ids):  # scancels the jobs submitted to SLURM
        if job.status == JobStatus.RUNNING:
            ok(f"asked the runner to stop job {job.id} ({job.name})")
        else:
            ok(f"canceled job {job.id} ({job.name})")
    for line in cancel_on_sky(queue, before):  # cloud runs whose runner is gone
        ok(line)
    return 0


def _retry(args: argparse.Namespace) -> int:
    from ...ui.messages import hint, ok

    queue = open_queue(args)
    for job_id in args.ids:
        job = queue.retry(job_id, resume=args.resume)
        how = f"resuming from {job.resume_from}" if job.resume_from else "from the start"
        ok(f"queued job {job.id} ({job.name}) again, {how}")
    hint("next: python -m kohya_orchestrator queue run" + _queue_arg(args))
    return 0


def notice_printer(notice: QueueNotice) -> None:
    """Print one line per runner notice."""
    from ...queue import JobStatus
    from ...ui.messages import fail, hint, ok, warn

    job = notice.job
    where = f"job {job.id} ({job.name})" + (f" on GPU {job.gpu}" if job.gpu is not None else "")
    if notice.kind == "started":
        ok(f"{where}: started {notice.message}")
        if notice.run_dir is not None:
            hint(f"run directory: {notice.run_dir}")
    elif notice.kind == "finished":
        if notice.status == JobStatus.SUCCEEDED:
            ok(f"{where}: succeeded")
        else:
            status = notice.status.value if notice.status else "ended"
            fail(f"{where}: {status}: {notice.message}")
            if notice.run_dir is not None:
                hint(f"full log: {notice.run_dir / 'console.log'}")
    else:
        warn(f"{where}: {notice.message}")


def run_jobs(
    args: argparse.Namespace,
    *,
    queue: JobQueue,
    sweep: str | None = None,
    ids: list[int] | None = None,
    follow: bool = False,
) -> tuple[int, list[QueueJob]]:
    """Run queued jobs with the ``queue run`` options; returns (exit code, finished jobs)."""
    from pathlib import Path

    from ...queue import JobStatus, QueueRunner
    from ...run import Watchdogs
    from ...sinks import EventSink
    from ...ui.messages import console, fail, ok
    from ...ui.progress import RichProgressSink

    gpus: tuple[str | None, ...] = (None,)
    if args.gpus:
        gpus = tuple(g.strip() for g in args.gpus.split(",") if g.strip())

    _warn_shared_gpus(queue, gpus)

    def sinks(job: QueueJob) -> list[EventSink]:
        # one worker: live progress, on the console the notices print to (lines stay above it)
        return [RichProgressSink(console(), transient=True)] if len(gpus) == 1 else []

    runner = QueueRunner(
        queue,
        gpus=gpus,
        sd_scripts=Path(args.sd_scripts) if args.sd_scripts else None,
        cpu_threads=args.cpu_threads,
        runs=Path(args.runs) if args.runs else None,
        oom_retries=args.oom_retries,
        watchdogs=Watchdogs(stall_minutes=args.stall_minutes),
        probe=not args.no_probe,
        ids=ids,
        sweep=sweep,
        follow=follow,
        notify=notice_printer,
        sinks=sinks,
    )
    try:
        done = runner.run()
    except KeyboardInterrupt:
        fail("interrupted: the running trainings were stopped and marked interrupted")
        return 130, []
    succeeded = [j for j in done if j.status == JobStatus.SUCCEEDED]
    others = [j for j in done if j.status != JobStatus.SUCCEEDED]
    if not done:
        ok("nothing to run: no queued jobs")
    elif not others:
        ok(f"all {len(done)} job{'s' if len(done) != 1 else ''} succeeded")
    else:
        fail(
            f"{len(succeeded)} of {len(done)} jobs succeeded; "
            + ", ".join(f"job {j.id} {j.status.value}" for j in others)
        )
    return (0 if not others else 1), done


def _warn_shared_gpus(queue: JobQueue, gpus: tuple[str | None, ...]) -> None:
    """Warn when another live runner of this queue on this machine uses one of these GPUs."""
    import socket

    from ...errors import Problem
    from ...ui.messages import print_problems

    host = socket.gethostname()
    for other in queue.live_runners():
        if other["host"] != host:
            continue
        theirs = set(other["gpus"])
        shared = (
            sorted(str(g) for g in set(gpus) & theirs)
            if None not in theirs and None not in gpus
            else ["the default GPU" if None in gpus else ", ".join(str(g) for g in gpus)]
        )
        if not shared:
            continue
        print_problems(
            [
                Problem(
                    "queue run",
                    f"another runner of this queue (pid {other['pid']}) already trains on "
                    f"{', '.join(shared)}: two trainings on one GPU share its memory and usually "
                    "both run out, or crawl",
                    "let that runner take the jobs (it does, one after another), or give each "
                    "runner its own --gpus",
                    severity="warning",
                )
            ]
        )


def _run(args: argparse.Namespace) -> int:
    if args.on == "sky":
        from ._cluster import queue_run_on_sky

        return queue_run_on_sky(args, open_queue(args))
    rc, _ = run_jobs(args, queue=open_queue(args), sweep=args.sweep, follow=args.follow)
    return rc


def _export_slurm(args: argparse.Namespace) -> int:
    return export_slurm(args, open_queue(args))


def _slurm_task(args: argparse.Namespace) -> int:
    return slurm_task(args, open_queue(args))
