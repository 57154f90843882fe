"""`sweep JOB.toml --grid key=v1,v2 ...`: a grid of jobs, queued, run, and compared in one table."""

from __future__ import annotations

import argparse

from .._common import RAW, add_set_option
from .queue import add_queue_option, add_run_options

TYPE_CHECKING = False

if TYPE_CHECKING:
    from ...queue import JobQueue, SweepPlan

HELP = "expand a grid of settings into queued jobs, run them and compare the results"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "sweep",
        help=HELP,
        description="Expand a job file times every combination of --grid values into named jobs "
        "('<output_name>-algo_loha-lr_1.0'), validate them all before anything is queued, queue "
        "them as one sweep and, with --run, train them (one worker per GPU) and print a "
        "comparison table. Values are TOML (1e-4, true, [768,512]); keys a grid-chosen algo does "
        "not take are dropped with a note. Only disk latent caches (cache_latents_to_disk) are "
        "shared between sd-scripts runs: --share-latent-cache turns that on.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator sweep docs/examples/oilpaint.toml "
        "--grid network.algo=loha,lokr,ia3 --grid optimizer.learning_rate=1.0,0.5 --dry-run\n"
        "  python -m kohya_orchestrator sweep docs/examples/oilpaint.toml "
        "--grid network.network_dim=8,16,32 --name dims\n"
        "  python -m kohya_orchestrator sweep docs/examples/oilpaint.toml "
        "--grid network.network_dim=8,16,32 --run --gpus 0,1\n\n"
        "next: python -m kohya_orchestrator queue export-slurm --sweep dims   # on a cluster",
        formatter_class=RAW,
        allow_abbrev=False,
    )
    parser.add_argument(
        "job", metavar="JOB.toml", help="the job file every combination starts from"
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=V1,V2",
        help="a key and its values (repeatable; the sweep is the product of all grids)",
    )
    add_set_option(parser)
    parser.add_argument("--name", help="sweep name (default <job name>-<date>-<time>)")
    parser.add_argument(
        "--share-latent-cache",
        action="store_true",
        help="cache latents on disk beside the images so the jobs share them",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the jobs; queue nothing")
    parser.add_argument("--run", action="store_true", help="train the sweep now and compare")
    add_queue_option(parser)
    add_run_options(parser)
    parser.set_defaults(func=run)


def print_plan(plan: SweepPlan) -> None:
    """The jobs of a sweep and its notes."""
    from rich.markup import escape
    from rich.table import Table

    from ...ui.messages import console

    out = console()
    table = Table(box=None, header_style="bold", title_justify="left")
    keys = list(dict.fromkeys(k for j in plan.jobs for k in j.labels))
    table.add_column("job (output_name)", overflow="fold")
    for key in keys:
        table.add_column(escape(key))
    for j in plan.jobs:
        table.add_row(escape(j.name), *(escape(j.labels.get(k, "-")) for k in keys))
    out.print(f"sweep [bold]{escape(plan.name)}[/bold]: {len(plan.jobs)} jobs from {plan.source}")
    out.print(table)
    for note in plan.notes:
        out.print(f"  [dim]note: {escape(note)}[/dim]")


def print_comparison(queue: JobQueue, name: str) -> None:
    """One row per job of the sweep: settings, status, steps, time, loss, file size."""
    from rich.markup import escape
    from rich.table import Table

    from ...queue import compare_sweep
    from ...ui.messages import console

    table = Table(box=None, header_style="bold")
    columns = ("job", "algo", "dim/alpha", "optimizer", "lr", "status", "steps", "time")
    for col in (*columns, "final loss", "file size"):
        table.add_column(col, overflow="fold")
    for job, row in compare_sweep(queue, name):
        if row is None:
            table.add_row(escape(job.name), "", "", "", "", job.status.value, "", "", "", "")
            continue
        dim_alpha = (
            "-"
            if row.network_dim is None and row.network_alpha is None
            else f"{row.network_dim if row.network_dim is not None else '?'}/"
            f"{f'{row.network_alpha:g}' if row.network_alpha is not None else '?'}"
        )
        table.add_row(
            escape(job.name),
            row.algo or "?",
            dim_alpha,
            escape(row.optimizer or "?"),
            "" if row.learning_rate is None else f"{row.learning_rate:g}",
            job.status.value,
            "" if row.steps is None else str(row.steps),
            "" if row.time_s is None else f"{row.time_s:.0f} s",
            "" if row.final_loss is None else f"{row.final_loss:.4f}",
            _size(row.file_size_bytes),
        )
    out = console()
    out.print(f"sweep [bold]{escape(name)}[/bold]:")
    out.print(table)
    out.print(
        "  [dim]hint: loss is not quality; judge each run's samples: "
        "python -m kohya_orchestrator runs pictures RUN[/dim]"
    )


def _size(n: int | None) -> str:
    if n is None:
        return ""
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MiB"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} B"


def run(args: argparse.Namespace) -> int:
    """Expand, validate, queue and (with --run) train and compare."""
    import shlex
    from pathlib import Path

    from ...queue import expand_sweep, queue_sweep
    from ...ui.messages import hint, ok
    from .queue import open_queue, run_jobs

    plan = expand_sweep(
        Path(args.job),
        args.grid,
        args.overrides,
        share_latent_cache=args.share_latent_cache,
        name=args.name,
    )
    print_plan(plan)
    if args.dry_run:
        hint("dry run: nothing was queued")
        return 0
    queue = open_queue(args)
    added = queue_sweep(queue, plan)
    ok(f"queued {len(added)} jobs as sweep {plan.name} in {queue.path}")
    q = f" --queue {shlex.quote(args.queue)}" if args.queue else ""
    if not args.run:
        hint(f"next: python -m kohya_orchestrator queue run --sweep {plan.name}{q}")
        hint(
            f"or on a cluster: python -m kohya_orchestrator queue export-slurm --sweep {plan.name}{q}"
        )
        return 0
    rc, _ = run_jobs(args, queue=queue, sweep=plan.name, ids=[j.id for j in added])
    if rc == 130:
        return rc
    print_comparison(queue, plan.name)
    return rc
