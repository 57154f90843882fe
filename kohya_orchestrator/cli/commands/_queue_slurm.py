"""`queue export-slurm [--submit]` and `queue slurm-task`: the queue on a SLURM cluster."""

from __future__ import annotations

import argparse

from .._common import RAW

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable

    from ...queue import JobQueue


def add_slurm_parsers(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    add_queue: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Register ``export-slurm`` and ``slurm-task`` (``add_queue`` adds ``--queue``)."""
    slurm = actions.add_parser(
        "export-slurm",
        help="write the queued jobs as a SLURM job-array script (--submit: and sbatch it)",
        description="Write an sbatch-ready script with one array task per queued job; each task "
        "runs 'python -m kohya_orchestrator queue slurm-task' on its node, which trains the job "
        "and writes its status, return code and events back into the queue folder, so "
        "'queue list' shows it running, succeeded, failed or canceled. The queue folder, data, "
        "models and outputs must be on a filesystem every node sees. The exported jobs are "
        "marked 'exported' so a local 'queue run' does not train them too (--keep-queued: "
        "leave them queued). --submit runs sbatch; 'queue cancel' then scancels. One training "
        "on several GPUs: --gpus-per-task 2 (accelerate, like 'train --gpus 0,1').",
        epilog="examples:\n"
        "  python -m kohya_orchestrator queue export-slurm --partition gpu --time 04:00:00\n"
        "  python -m kohya_orchestrator queue export-slurm --submit --partition gpu "
        "--time 04:00:00\n"
        "  python -m kohya_orchestrator queue export-slurm --sweep dims --out sweep.sbatch "
        "--max-parallel 4\n\nnext: sbatch FILE (without --submit), then "
        "python -m kohya_orchestrator queue list",
        formatter_class=RAW,
    )
    add_queue(slurm)
    slurm.add_argument("--out", metavar="FILE", help="script path (default <queue>/slurm/...)")
    slurm.add_argument("--submit", action="store_true", help="submit the script with sbatch")
    slurm.add_argument("--partition", metavar="P", help="SLURM partition")
    slurm.add_argument(
        "--gpus-per-task", type=int, default=1, metavar="N", help="GPUs per job (0: CPU only)"
    )
    slurm.add_argument("--time", metavar="HH:MM:SS", help="time limit per job")
    slurm.add_argument("--cpus-per-task", type=int, metavar="N", help="CPUs per job")
    slurm.add_argument("--mem", metavar="SIZE", help="memory per job, e.g. 32G")
    slurm.add_argument("--max-parallel", type=int, metavar="N", help="at most N jobs at once")
    slurm.add_argument("--job-name", default="kohya-queue", help="SLURM job name")
    slurm.add_argument("--sweep", metavar="NAME", help="only this sweep's jobs")
    slurm.add_argument("--sd-scripts", metavar="PATH", help="sd-scripts install on the nodes")
    slurm.add_argument("--python", metavar="PATH", help="Python with kohya_orchestrator (this one)")
    slurm.add_argument("--runs", metavar="DIR", help="run folders (default <queue>/runs)")
    slurm.add_argument("--log-dir", metavar="DIR", help="SLURM logs (default <queue>/slurm/logs)")
    slurm.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="export a variable in every task, e.g. HF_HOME=/shared/hf (repeatable)",
    )
    slurm.add_argument(
        "--keep-queued", action="store_true", help="do not mark the jobs as exported"
    )

    task = actions.add_parser(
        "slurm-task",
        help="train one queued job inside a SLURM array task (the exported script runs it)",
        description="Take job ID of the queue, train it, and record its status, return code and "
        "run directory in the queue. SIGTERM (scancel, the time limit) stops the training and "
        "records the job as canceled. Exit 0 when it succeeded.",
        epilog="example (what the exported script runs on a node):\n"
        "  python -m kohya_orchestrator queue slurm-task --queue /shared/q --job-id 3",
        formatter_class=RAW,
    )
    add_queue(task)
    task.add_argument("--job-id", type=int, required=True, metavar="ID", help="the queued job")
    task.add_argument("--slurm-id", metavar="ID", help="<array job>_<task>, recorded")
    task.add_argument("--runs", metavar="DIR", help="run folders (default <queue>/runs)")
    task.add_argument("--gpus", metavar="IDS", help="GPU ids SLURM gave (one process each)")
    task.add_argument("--sd-scripts", metavar="PATH", help="kohya_ss or sd-scripts folder")
    task.add_argument("--cpu-threads", type=int, default=2, help="threads per process (2)")
    task.add_argument("--oom-retries", type=int, default=2, metavar="N", help="OOM retries (2)")
    task.add_argument("--no-probe", action="store_true", help="skip the environment probe")
    task.add_argument("--stall-minutes", type=float, default=30.0, help="stop when silent (30)")


def export_slurm(args: argparse.Namespace, queue: JobQueue) -> int:
    """``queue export-slurm``: write the array script; with ``--submit``, sbatch it."""
    import sys
    from datetime import datetime
    from pathlib import Path

    from ...environment.discovery import find_install
    from ...errors import ConfigError, Problem
    from ...launch.rundir import RunDir
    from ...queue import JobStatus, render_slurm_script
    from ...queue.slurm_tasks import submit_array
    from ...ui.messages import hint, ok

    jobs = [j for j in queue.jobs(sweep=args.sweep) if j.status == JobStatus.QUEUED]
    if not jobs:
        raise ConfigError(
            [Problem("queue", "no queued jobs to export", "queue add JOB.toml (or sweep ...)")],
            source=str(queue.path),
        )
    if args.submit and args.keep_queued:
        raise ConfigError(
            [
                Problem(
                    "--keep-queued",
                    "submitted jobs cannot stay queued (a local runner would train them too)",
                    "drop --keep-queued",
                )
            ]
        )
    env: dict[str, str] = {}
    install = find_install(Path(args.sd_scripts) if args.sd_scripts else None)
    if install is not None:
        env["KOHYA_SD_SCRIPTS"] = str(install.sd_scripts_dir)
        env["KOHYA_PYTHON"] = str(install.python)
    elif args.sd_scripts:
        env["KOHYA_SD_SCRIPTS"] = str(Path(args.sd_scripts).expanduser().resolve())
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError([Problem(f"--env {item}", "expected KEY=VALUE", None)])
        env[key.strip()] = value
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    slurm_dir = queue.path / "slurm"
    log_dir = Path(args.log_dir).expanduser().resolve() if args.log_dir else slurm_dir / "logs"
    runs = Path(args.runs).expanduser().resolve() if args.runs else queue.path / "runs"
    out = (
        Path(args.out).expanduser().resolve()
        if args.out
        else slurm_dir / f"{args.sweep or 'queue'}-{stamp}.sbatch"
    )
    text = render_slurm_script(
        [j.job_file for j in jobs],
        python=Path(args.python) if args.python else Path(sys.executable),
        runs=runs,
        log_dir=log_dir,
        job_name=args.job_name,
        partition=args.partition,
        gpus_per_task=args.gpus_per_task,
        time=args.time,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        max_parallel=args.max_parallel,
        env=env,
        comment=[
            f"Queue {queue.path}, jobs {', '.join(str(j.id) for j in jobs)}.",
            f"Submit: sbatch {out}",
        ],
        queue_dir=queue.path,
        job_ids=[j.id for j in jobs],
    )
    log_dir.mkdir(parents=True, exist_ok=True)  # sbatch does not create it
    runs.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    RunDir(out.parent).write_text(out.name, text)
    out.chmod(0o755)
    if not args.keep_queued:
        queue.mark_exported([j.id for j in jobs], f"exported to {out}")
    ok(f"wrote {out}: {len(jobs)} array task{'s' if len(jobs) != 1 else ''}")
    if install is None and "KOHYA_SD_SCRIPTS" not in env:
        hint("no sd-scripts install found here: the nodes find theirs (--sd-scripts PATH sets it)")
    if not args.submit:
        hint(f"next: sbatch {out}")
        return 0
    array = submit_array(queue, [j.id for j in jobs], out)
    ok(f"submitted SLURM job {array} (tasks {array}_0 to {array}_{len(jobs) - 1})")
    q = f" --queue {args.queue}" if args.queue else ""
    hint(f"next: python -m kohya_orchestrator queue list{q}   # logs: {log_dir}")
    return 0


def slurm_task(args: argparse.Namespace, queue: JobQueue) -> int:
    """``queue slurm-task``: train one job inside an array task, report back into the queue."""
    from pathlib import Path

    from ...queue import JobStatus
    from ...queue.slurm_tasks import run_slurm_task
    from ...run import Watchdogs
    from ...ui.messages import fail, ok

    gpus: tuple[str | None, ...] = (None,)
    launch = None
    if args.gpus:
        from ...render.command import LaunchOptions

        ids = tuple(g.strip() for g in args.gpus.split(",") if g.strip())

        def launch(gpu: str | None) -> LaunchOptions:
            return LaunchOptions(
                num_processes=len(ids), gpu_ids=ids, num_cpu_threads_per_process=args.cpu_threads
            )

    job = run_slurm_task(
        queue,
        args.job_id,
        slurm_id=args.slurm_id,
        gpus=gpus,
        launch=launch,
        sd_scripts=Path(args.sd_scripts) if args.sd_scripts else None,
        cpu_threads=args.cpu_threads,
        runs=Path(args.runs) if args.runs else None,
        oom_retries=args.oom_retries,
        # SLURM sends SIGKILL KillWait (30) seconds after SIGTERM: stop well within that
        watchdogs=Watchdogs(stall_minutes=args.stall_minutes, cancel_grace_s=5.0),
        probe=not args.no_probe,
    )
    where = f"job {job.id} ({job.name})"
    if job.status == JobStatus.SUCCEEDED:
        ok(f"{where}: succeeded; run directory {job.run_dir}")
        return 0
    fail(f"{where}: {job.status.value}: {job.reason or ''}")
    return 1
