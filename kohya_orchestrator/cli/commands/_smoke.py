"""``train JOB --smoke`` and ``preset NAME --smoke``: a 2-step run of the exact job, then a report.

The smoke job (:func:`...jobs.smoke.smoke_job`) writes into a new scratch folder under
``<runs>/smoke-outputs/``; the report (:func:`...outputs.smoke.smoke_report`) reads its events.
With ``--then-train`` the full job follows when the smoke run passed.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ...environment.discovery import Install
    from ...models import TrainingJob
    from ...outputs.smoke import FullRun
    from ...run import RunResult


def scratch_folder(runs: Path, name: str) -> Path:
    """A new, empty folder for a smoke run's files: ``<runs>/smoke-outputs/<name>-<time>[-n]``."""
    import re
    import time
    from pathlib import Path

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "job"
    base = Path(runs).resolve() / "smoke-outputs"
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = base / (f"{stem}-{stamp}" + (f"-{n}" if n else ""))
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no free smoke folder name under {base}")  # pragma: no cover


def full_run(job: TrainingJob, num_processes: int) -> FullRun:
    """The full job's length and sampling (its step plan), for the projection."""
    from ...datasets.plan import plan_job
    from ...outputs.smoke import FullRun

    s = job.sampling
    total: int | None
    epochs: int | None
    try:
        plan = plan_job(job, num_processes=num_processes)
        total, epochs = plan.total_steps, plan.epochs
    except Exception:  # no plan (unreadable data): the report says the projection is unknown
        total, epochs = job.training.max_train_steps, job.training.max_train_epochs
    return FullRun(
        total_steps=total,
        epochs=epochs,
        prompts=len(s.prompts),
        sample_every_n_epochs=s.sample_every_n_epochs,
        sample_every_n_steps=s.sample_every_n_steps,
        sample_at_first=s.sample_at_first,
    )


def smoke_then_train(
    job: TrainingJob,
    *,
    start_and_wait: Callable[..., RunResult | None],
    train_job: Callable[..., int],
    install: Install | None,
    runs: Path,
    then_train: bool,
    sd_scripts: Path | None = None,
    gpus: str | None = None,
    cpu_threads: int = 2,
    probe: bool = True,
    stall_minutes: float | None = 30.0,
    announce: str | None = None,
) -> int:
    """Run the smoke job, print its report; train ``job`` after it when asked and it passed.

    ``start_and_wait`` and ``train_job`` are the ``train`` verb's (passed in: that module
    imports this one).

    Returns 0 when the smoke run passed (and the full run, when asked, succeeded), 1 when it did
    not, 130 after Ctrl-C.
    """
    import sys
    from pathlib import Path

    from ...events import read_events
    from ...jobs.checks import check_outputs
    from ...jobs.smoke import SMOKE_STEPS, smoke_job
    from ...outputs.smoke import smoke_report
    from ...run import absolute_job
    from ...ui.messages import console, fail, hint, ok, print_problems
    from .._common import require_no_problems

    job = absolute_job(job, Path.cwd())
    if then_train:  # refuse now what the full run would be refused for, not after the smoke run
        require_no_problems(check_outputs(job), f"job {job.display_name}")
    scratch = scratch_folder(runs, job.display_name)
    smoke = smoke_job(job, scratch)
    num_processes = len(gpus.split(",")) if gpus else 1
    full = full_run(job, num_processes)
    try:
        result = start_and_wait(
            smoke,
            install=install,
            sd_scripts=sd_scripts,
            runs=runs,
            stall_minutes=stall_minutes,
            announce=f"smoke run: {SMOKE_STEPS} steps of {job.display_name} into {scratch}",
            monitor_interval_s=1.0,
            gpus=gpus,
            cpu_threads=cpu_threads,
            probe=probe,
        )
    except BaseException:
        if not any(scratch.iterdir()):
            scratch.rmdir()  # refused before anything ran: leave no empty folder behind
        raise
    if result is None:
        return 130
    t = smoke.training
    report = smoke_report(
        read_events(result.run_dir),
        steps_planned=SMOKE_STEPS,
        has_prompts=bool(smoke.sampling.prompts),
        full=full,
        final_file=Path(t.output_dir) / f"{t.output_name}.{t.save_model_as}",
    )
    out = console()
    out.rule(f"smoke run of {job.display_name}")
    for line in report.lines():
        out.print(line, markup=False, highlight=False)
    hint(f"smoke outputs: {scratch}   run directory: {result.run_dir}")
    if not report.passed:
        fail(f"smoke run did not pass: {report.reason or 'see the report above'}")
        hint(f"full log: {result.run_dir / 'console.log'}", file=sys.stderr)
        return 1
    ok(
        f"smoke run passed: {job.display_name} loads, steps, saves"
        + (" and samples" if report.sampled else "")
    )
    if not then_train:
        hint("train it: the same command without --smoke (or add --then-train next time)")
        return 0
    problems = check_outputs(job)
    if problems:
        print_problems(problems)
        return 1
    return train_job(
        job,
        install=install,
        sd_scripts=sd_scripts,
        runs=runs,
        stall_minutes=stall_minutes,
        announce=announce or f"starting training: {job.display_name}",
        gpus=gpus,
        cpu_threads=cpu_threads,
        probe=probe,
    )
