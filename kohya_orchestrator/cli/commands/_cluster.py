"""Options of ``train`` beyond one machine: several machines (accelerate), or a cloud GPU through
SkyPilot (``--on sky``)."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from ...models import TrainingJob
    from ...queue import JobQueue


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--machines`` and its rank/address/port; ``--on sky`` and its cloud options."""
    group = parser.add_argument_group(
        "several machines (accelerate; under SLURM the rank and the main address come from "
        "SLURM_NODEID and the first node of SLURM_JOB_NODELIST)"
    )
    group.add_argument("--machines", type=int, default=1, metavar="N", help="machines (1)")
    group.add_argument("--machine-rank", type=int, metavar="R", help="this machine's rank")
    group.add_argument("--main-process-ip", metavar="IP", help="address of the rank-0 machine")
    group.add_argument("--main-process-port", type=int, metavar="PORT", help="its port (29500)")
    sky = parser.add_argument_group(
        "cloud GPUs (--on sky: SkyPilot, the 'cloud' extra; --gpus is then e.g. A100:1)"
    )
    sky.add_argument(
        "--on",
        choices=("local", "sky"),
        default="local",
        help="where to train: here (default) or on a cloud GPU through SkyPilot",
    )
    sky.add_argument("--cloud", metavar="NAME", help="SkyPilot cloud (runpod, lambda, aws, ...)")
    sky.add_argument(
        "--spot",
        action="store_true",
        help="a managed spot job, restarted after a preemption (needs --bucket)",
    )
    sky.add_argument(
        "--bucket",
        metavar="URL",
        help="keep the output folder, logs and runs in this bucket (s3://, gs://, r2://...): "
        "they outlive the instance, and a restart resumes from the newest saved state",
    )
    sky.add_argument(
        "--keep-cluster",
        action="store_true",
        help="leave the SkyPilot cluster up after the run (it still tears itself down after 30 "
        "idle minutes); by default it is torn down once the outputs are here",
    )
    sky.add_argument(
        "--task-out",
        metavar="FILE",
        help="write the SkyPilot task (YAML) and stop: sky launch FILE",
    )
    sky.add_argument(
        "--product",
        metavar="SPEC",
        help="what the remote pip-installs kohya_orchestrator from (default: this version from "
        "PyPI; a local wheel or source folder path is mounted)",
    )


def machine_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``LaunchOptions`` fields the machine options set."""
    out: dict[str, Any] = {"num_machines": args.machines}
    for key in ("machine_rank", "main_process_ip", "main_process_port"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    return out


def _need_bucket(args: argparse.Namespace) -> None:
    """A managed spot job's instance is gone when it ends or is preempted: --spot needs a bucket."""
    from ...errors import ConfigError, Problem

    if args.spot and not args.bucket:
        raise ConfigError(
            [
                Problem(
                    "--spot",
                    "a spot instance is gone when it is preempted or the job ends, and its "
                    "output folder with it",
                    "add --bucket s3://my-bucket/kohya (or gs://, r2://...): outputs and saved "
                    "state live there, and a restart resumes from the newest state",
                )
            ],
            source="--on sky",
        )


def train_on_sky(args: argparse.Namespace, job: TrainingJob) -> int:
    """``train --on sky``: the SkyPilot task of the job; launched, or written with --task-out.
    Ctrl-C (or SIGTERM) cancels the remote run too."""
    import sys
    from pathlib import Path

    from ...errors import ConfigError
    from ...installer import PINNED_COMMIT
    from ...jobs.checks import check_outputs
    from ...launch.rundir import RunDir
    from ...launch.sky import AUTODOWN_MINUTES, SkyPilotBackend
    from ...queue.sky import build_sky_task, start_local_run, task_yaml
    from ...queue.sky_run import run_on_sky
    from ...run import absolute_job
    from ...ui.messages import fail, hint, ok, warn
    from ...ui.progress import RichProgressSink

    _need_bucket(args)
    job = absolute_job(job, Path.cwd())
    clashes = check_outputs(job)  # the outputs come back here: refuse before paying for a GPU
    if clashes:
        raise ConfigError(clashes, source="--on sky")
    task = build_sky_task(
        job,
        gpus=args.gpus or "A100:1",
        cloud=args.cloud,
        use_spot=args.spot,
        product=args.product,
        sd_scripts_ref=PINNED_COMMIT,
        bucket=args.bucket,
    )
    if args.task_out:
        out = Path(args.task_out)
        RunDir(out.parent.resolve()).write_text(out.name, task_yaml(task))
        ok(f"wrote the SkyPilot task {out}")
        hint(f"next: sky launch {out}   (or sky jobs launch {out} for a managed spot job)")
        return 0
    if args.spot and not job.training.save_state:
        warn(
            "training.save_state is off: after a preemption the restart trains from the start "
            "(--set training.save_state=true resumes from the last saved epoch)"
        )
    # before a run directory is made: SkyPilot must be there
    backend = SkyPilotBackend(keep=args.keep_cluster)
    run_dir = start_local_run(job, task, Path(args.runs))
    hint(f"run directory: {run_dir.path}", file=sys.stderr)
    try:
        result = run_on_sky(
            job,
            task,
            run_dir,
            backend,
            managed=args.spot,
            sinks=[RichProgressSink()],
            on_launched=lambda h: hint(f"launched on SkyPilot as {h.name}", file=sys.stderr),
        )
    except KeyboardInterrupt:
        hint(
            f"canceled on SkyPilot; outputs so far were not copied: {task.output_source} "
            f"(a cluster tears itself down after {AUTODOWN_MINUTES} idle minutes)",
            file=sys.stderr,
        )
        raise
    if result.restarts:
        warn(f"SkyPilot restarted the run {result.restarts} time(s) after a preemption")
    if result.delivered is not None:
        hint(result.delivered.summary())
    if result.fetch_error:
        fail(result.fetch_error)
        if not args.spot:
            hint(
                f"the cluster {result.handle.name} stays up for {AUTODOWN_MINUTES} idle minutes: "
                f"rsync -a {result.handle.name}:{result.handle.output_source.removeprefix('~/')}/ "
                f"{job.training.output_dir}/"
            )
    finished = result.finished
    if finished.status.value == "succeeded" and not result.fetch_error:
        ok(f"trained on SkyPilot: {task['name']}; outputs in {job.training.output_dir}")
        return 0
    if finished.status.value != "succeeded":
        fail(f"training {finished.status.value}: {finished.reason}")
    hint(f"full log: {run_dir.path / 'console.log'}", file=sys.stderr)
    return 1


def add_sky_queue_options(parser: argparse.ArgumentParser) -> None:
    """``queue run --on sky`` and its cloud options."""
    group = parser.add_argument_group(
        "cloud GPUs (--on sky: each job a SkyPilot task, one after another; --gpus is then "
        "e.g. A100:1)"
    )
    group.add_argument("--on", choices=("local", "sky"), default="local", help="where to train")
    group.add_argument("--cloud", metavar="NAME", help="SkyPilot cloud (runpod, lambda, aws, ...)")
    group.add_argument("--spot", action="store_true", help="managed spot jobs (needs --bucket)")
    group.add_argument(
        "--bucket", metavar="URL", help="outputs and saved state in this bucket (one folder a job)"
    )
    group.add_argument("--product", metavar="SPEC", help="what the remote installs us from")


def queue_run_on_sky(args: argparse.Namespace, queue: JobQueue) -> int:
    """``queue run --on sky``: every queued job through SkyPilot, one after another."""
    from pathlib import Path

    from ...installer import PINNED_COMMIT
    from ...launch.sky import SkyPilotBackend
    from ...queue import JobStatus, QueueJob
    from ...queue.sky_queue import run_queue_on_sky
    from ...ui.messages import fail, hint, ok

    _need_bucket(args)
    backend = SkyPilotBackend()

    def notify(job: QueueJob, message: str) -> None:
        hint(f"job {job.id} ({job.name}): {message}")

    done = run_queue_on_sky(
        queue,
        gpus=args.gpus or "A100:1",
        cloud=args.cloud,
        use_spot=args.spot,
        product=args.product,
        sd_scripts_ref=PINNED_COMMIT,
        bucket=args.bucket,
        runs=Path(args.runs) if args.runs else None,
        sweep=args.sweep,
        backend=backend,
        notify=notify,
    )
    others = [j for j in done if j.status != JobStatus.SUCCEEDED]
    if not done:
        ok("nothing to run: no queued jobs")
    elif not others:
        ok(f"all {len(done)} job{'s' if len(done) != 1 else ''} succeeded on SkyPilot")
    else:
        fail(", ".join(f"job {j.id} {j.status.value}: {j.reason}" for j in others))
    return 0 if not others else 1
