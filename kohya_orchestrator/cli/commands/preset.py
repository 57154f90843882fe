"""`preset list|show|copy` and `preset NAME`: the ready-made jobs, and running one.

`preset NAME` composes the preset with overlays (--vram, --overlay), --data/--model/--output and
--set, picks the epochs from the data when the preset asks for it (printing the arithmetic),
validates once, and shows the resolved job, the step plan, the rendered files and the exact
command. With a kohya install found and --data given it then trains; --dry-run only plans. With
no data it uses a tiny bundled demo dataset so a fresh machine still sees a real plan. NAME may
also be the path of your own preset file (which can `extends` the shipped ones).
"""

from __future__ import annotations

import argparse

from .._common import RAW, add_set_option
from .train import add_smoke_options

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from ...errors import Problem


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "preset",
        help="list, show, copy or run a preset (e.g. preset oilpaint)",
        description="Presets are partial jobs in presets/. 'preset list' lists them, 'preset show "
        "NAME' prints one, 'preset copy NAME PATH' writes it as your own job file, and 'preset "
        "NAME' resolves it with your data and model (picking the epochs from your data when "
        "the preset asks for it, with the arithmetic), shows what it would do, and trains when "
        "an sd-scripts install is found and --data is given. Overlays such as --vram 8 lay "
        "memory switches over it. NAME may also be the path of your own preset file, which can "
        "'extends' the shipped ones (docs/presets.md).",
        epilog="examples:\n"
        "  python -m kohya_orchestrator preset list\n"
        "  python -m kohya_orchestrator preset oilpaint   # bundled demo data, plan only\n"
        "  python -m kohya_orchestrator preset oilpaint --data docs/examples/img --dry-run\n"
        "  python -m kohya_orchestrator preset oilpaint --data img --model sd15.safetensors"
        "   # your data: trains\n"
        "  python -m kohya_orchestrator preset sdxl-style --data docs/examples/img --vram 12 "
        "--dry-run\n"
        "  python -m kohya_orchestrator preset show oilpaint\n"
        "  python -m kohya_orchestrator preset copy oilpaint my_job.toml\n\n"
        "next: add your [[dataset.subsets]] to my_job.toml, then: "
        "python -m kohya_orchestrator validate my_job.toml",
        formatter_class=RAW,
    )
    parser.add_argument(
        "name",
        metavar="NAME|list|show|copy",
        help="a preset name, the path of your own preset file, or a sub-verb",
    )
    parser.add_argument("args", nargs="*", metavar="ARG", help="show NAME / copy NAME PATH")
    parser.add_argument(
        "--data", metavar="DIR", help="the image folder: a parent of <repeats>_<name> folders"
    )
    parser.add_argument("--reg-data", metavar="DIR", help="regularisation images, same layout")
    parser.add_argument("--model", metavar="PATH", help="base model checkpoint or folder")
    parser.add_argument("--output", metavar="DIR", help="where the LoRA files go")
    parser.add_argument("--sd-scripts", metavar="PATH", help="the kohya_ss or sd-scripts folder")
    parser.add_argument(
        "--vram",
        type=int,
        choices=(8, 12, 24),
        metavar="GB",
        help="lay the memory overlay for this card over the preset: 8, 12, 16 or 24 (vram-<GB>gb)",
    )
    parser.add_argument(
        "--overlay",
        action="append",
        default=[],
        metavar="NAME",
        help="lay another preset over this one (repeatable; after --vram)",
    )
    parser.add_argument("--runs", metavar="DIR", default="runs", help="run folders (default: runs)")
    parser.add_argument("--dry-run", action="store_true", help="only show the plan; never train")
    parser.add_argument("--force", action="store_true", help="copy: replace an existing file")
    add_set_option(parser)
    add_smoke_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch the sub-verbs."""
    name = args.name
    if name == "list":
        return _list()
    if name == "show":
        return _show(_one(args, "show NAME"))
    if name == "copy":
        if len(args.args) != 2:
            _usage("copy NAME PATH")
        return _copy(args.args[0], args.args[1], force=args.force)
    if args.args:
        _usage(f"{name} [--data DIR] [--model PATH] ... (unexpected: {' '.join(args.args)})")
    return _resolve_and_maybe_train(args)


def _usage(form: str) -> None:
    from ...errors import ConfigError, Problem

    raise ConfigError([Problem("preset", f"usage: preset {form}", "see: preset --help")])


def _one(args: argparse.Namespace, form: str) -> str:
    if len(args.args) != 1:
        _usage(form)
    return str(args.args[0])


def _list() -> int:
    from rich.table import Table

    from ...jobs.presets import list_presets
    from ...ui.messages import console

    table = Table(box=None, show_header=True, header_style="bold")
    table.add_column("preset")
    table.add_column("kind")
    table.add_column("what it is for")
    for info in list_presets():
        table.add_row(info.name, "overlay" if info.overlay else "job", info.summary)
    console().print(table)
    console().print(
        "[dim]run one: python -m kohya_orchestrator preset NAME --data DIR  "
        "(overlays: preset NAME --vram 8, or --overlay NAME)[/dim]"
    )
    return 0


def _show(name: str) -> int:
    import sys

    from ...jobs.presets import load_preset, preset_layers, preset_path
    from ...ui.messages import hint

    preset_layers(name)  # raises PresetNotFound with did-you-mean
    sys.stdout.write(preset_path(name).read_text(encoding="utf-8"))
    raw = load_preset(name)
    parents = raw.get("extends", [])
    for parent in [parents] if isinstance(parents, str) else parents:
        hint(
            f"extends {parent}: python -m kohya_orchestrator preset show {parent}", file=sys.stderr
        )
    if "overlay" in raw:
        hint(
            f"an overlay: lay it over a preset with: preset oilpaint --overlay {name}",
            file=sys.stderr,
        )
    return 0


def _copy(name: str, dest: str, *, force: bool) -> int:
    from pathlib import Path

    from ...jobs.output_file import write_new_file
    from ...jobs.presets import preset_copy_text, preset_layers
    from ...ui.messages import hint, ok

    preset_layers(name)
    target = Path(dest)
    if target.is_dir():
        target = target / f"{name}.toml"
    write_new_file(target, preset_copy_text(name), force=force)
    ok(f"wrote {target}")
    hint(
        f"add your [[dataset.subsets]], then: python -m kohya_orchestrator validate {target}"
        f"   (or keep using the preset: python -m kohya_orchestrator preset {name} --data DIR)"
    )
    return 0


def _resolve_and_maybe_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...datasets.demo import ensure_demo_dataset
    from ...environment.discovery import find_install
    from ...errors import ConfigError, Problem
    from ...jobs.checks import check_paths
    from ...jobs.loading import dump_job_toml
    from ...jobs.presets import PresetJob, preset_job, vram_overlay
    from ...models import job_warnings
    from ...render.command import build_launch_spec
    from ...render.files import CONFIG_NAME, render_into
    from ...run import absolute_job
    from ...ui.messages import console, hint, print_problems
    from .._common import require_no_problems

    if args.then_train and not args.smoke:
        raise ConfigError([Problem("--then-train", "needs --smoke", "add --smoke")])
    out = console()
    cwd = Path.cwd()
    missing: list[str] = []
    data = args.data
    if not data:
        data = str(ensure_demo_dataset())
        missing.append(
            f"data: using the bundled demo dataset ({data}); give yours with --data DIR "
            "(a folder of <repeats>_<name> subfolders, e.g. img/20_zengxin oilpaint)"
        )
    overlays = [vram_overlay(args.vram)] if args.vram else []

    def build(overrides: list[str]) -> PresetJob:
        return preset_job(
            args.name,
            data=data,
            reg_data=args.reg_data,
            model=args.model,
            output=args.output,
            overlays=[*overlays, *args.overlay],
            overrides=overrides,
            options_label="command-line options",
        )

    built = build(args.overrides)  # with --output, the preset's logging_dir follows it
    if built.data_problems:
        print_problems(list(built.data_problems))
    job = absolute_job(built.job, cwd)
    if not args.model:
        missing.append(
            f"model: {job.model.pretrained_model_name_or_path} (sd-scripts downloads it from "
            "Hugging Face); use your own checkpoint with --model PATH"
        )

    name = job.preset or args.name
    title = f"preset {name}" + (f": {job.description}" if job.description else "")
    out.rule(title)
    _section("resolved job (job file format)", dump_job_toml(job))
    _print_plan(job)
    if built.epochs is not None:
        out.print(f"[bold]epochs from your data:[/bold] {built.epochs.summary}", soft_wrap=True)
    elif built.epochs_note:
        out.print(f"[dim]epochs: {built.epochs_note}[/dim]", soft_wrap=True)
    run_dir = Path(args.runs) / "<run id>"
    files = render_into(job, run_dir)
    _section(f"{run_dir}/config.toml", files.config_toml)
    _section(f"{run_dir}/dataset.toml", files.dataset_toml)
    if files.sample_prompts:
        _section(f"{run_dir}/sample_prompts.txt", files.sample_prompts)

    install = find_install(Path(args.sd_scripts) if args.sd_scripts else None)
    if install is not None:
        spec = build_launch_spec(
            job,
            python=install.python,
            sd_scripts_dir=install.sd_scripts_dir,
            config_file=run_dir.resolve() / CONFIG_NAME,
        )
        env = " ".join(f"{k}={v}" for k, v in spec.env.items())
        _section("command", f"cd {spec.cwd}\n{env} \\\n  " + " ".join(spec.argv))
    else:
        missing.append(
            "sd-scripts: no kohya install found; pass --sd-scripts PATH (kohya_ss or sd-scripts "
            "folder) or set KOHYA_SD_SCRIPTS (python -m kohya_orchestrator doctor), or make one "
            "with python -m kohya_orchestrator install"
        )
    warnings = job_warnings(job)
    if warnings:
        print_problems(warnings, file=None)
    if missing:
        out.print("[bold]What is missing:[/bold]")
        for line in missing:
            out.print(f"  - {line}")
    path_problems = check_paths(job)
    if args.dry_run or install is None or not args.data:
        if install is None or not args.data:
            hint("nothing was trained; with --data and an install found, this command trains")
        else:
            hint("--dry-run: nothing was trained")
        return 0
    broken = _dataset_errors(job, args.data, args.reg_data)
    require_no_problems(path_problems + broken, f"preset '{name}'")
    announce = f"starting training: {job.display_name}, output in {job.training.output_dir}"
    from .train import start_and_wait, train_job

    if args.smoke:
        from ._smoke import smoke_then_train

        return smoke_then_train(
            job, start_and_wait=start_and_wait, train_job=train_job, install=install,
            runs=Path(args.runs), then_train=args.then_train, announce=announce,
        )  # fmt: skip
    return train_job(job, install=install, runs=Path(args.runs), announce=announce)


def _section(title: str, text: str) -> None:
    from ...ui.messages import console

    out = console()
    out.rule(title, style="dim")
    out.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)


# The image files `dataset inspect` finds sd-scripts stops on that the step plan (which reads only
# the headers) cannot see: a JPEG cut short loads its size, then fails on its pixels.
_BROKEN_IMAGES = {"unreadable_file", "empty_file", "corrupt_image", "truncated_image"}


def _dataset_errors(job: object, data: str, reg_data: str | None = None) -> list[Problem]:
    """What would make sd-scripts stop on the data: the step plan's errors (no images, unreadable
    files), as ``validate`` reports them, and the broken image files the dataset scan finds in
    ``data`` (a truncated JPEG); refused before a launch, each naming its file."""
    from ...datasets.plan import plan_job
    from ...datasets.report import inspect_dataset

    try:
        errors = plan_job(job).errors  # type: ignore[arg-type]
    except Exception:  # the plan printed above already said why it could not be made
        errors = []
    try:
        report = inspect_dataset(data, reg_data)
    except Exception:  # the plan (or the launch) reports a folder it cannot read
        return errors
    named = {p.path for p in errors}
    return errors + [
        f
        for f in report.findings
        if f.code in _BROKEN_IMAGES and f.severity == "error" and f.path not in named
    ]


def _print_plan(job: object) -> None:
    try:
        from ...datasets.plan import plan_job
        from ...datasets.plan_text import render_plan_text
    except ImportError:  # pragma: no cover - plan module not present
        return
    from ...ui.messages import console

    try:
        plan = plan_job(job)  # type: ignore[arg-type]
    except Exception as exc:
        console().print(f"[dim](no step plan: {exc})[/dim]")
        return
    console().print(render_plan_text(plan), markup=False, highlight=False)
    if plan.warnings:  # what "(not exact: see the warnings)" refers to
        import sys

        from ...ui.messages import print_problems

        print_problems(list(plan.warnings), file=sys.stdout)
