"""`preset list|show|copy` and `preset NAME`: the ready-made jobs, and running one.

`preset NAME` composes the preset with --data/--model/--output/--set, validates once, and shows
the resolved job, the step plan, the rendered files and the exact command. With a kohya install
found and --data given it then trains; --dry-run only plans. With no data it uses a tiny bundled
demo dataset so a fresh machine still sees a real plan.
"""

from __future__ import annotations

import argparse

from .._common import RAW, add_set_option


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "preset",
        help="list, show, copy or run a preset (e.g. preset oilpaint)",
        description="Presets are partial jobs in presets/. 'preset list' lists them, 'preset show "
        "NAME' prints one, 'preset copy NAME PATH' writes it as your own job file, and 'preset "
        "NAME' resolves it with your data and model, shows what it would do, and trains when an "
        "sd-scripts install is found and --data is given.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator preset list\n"
        "  python -m kohya_orchestrator preset oilpaint            (bundled demo data, plan only)\n"
        "  python -m kohya_orchestrator preset oilpaint --data img --model sd15.safetensors\n"
        "  python -m kohya_orchestrator preset copy oilpaint my_job.toml\n\n"
        "next: python -m kohya_orchestrator validate my_job.toml",
        formatter_class=RAW,
    )
    parser.add_argument("name", metavar="NAME|list|show|copy", help="a preset name or a sub-verb")
    parser.add_argument("args", nargs="*", metavar="ARG", help="show NAME / copy NAME PATH")
    parser.add_argument(
        "--data", metavar="DIR", help="the image folder: a parent of <repeats>_<name> folders"
    )
    parser.add_argument("--reg-data", metavar="DIR", help="regularisation images, same layout")
    parser.add_argument("--model", metavar="PATH", help="base model checkpoint or folder")
    parser.add_argument("--output", metavar="DIR", help="where the LoRA files go")
    parser.add_argument("--sd-scripts", metavar="PATH", help="the kohya_ss or sd-scripts folder")
    parser.add_argument("--runs", metavar="DIR", default="runs", help="run folders (default: runs)")
    parser.add_argument("--dry-run", action="store_true", help="only show the plan; never train")
    parser.add_argument("--force", action="store_true", help="copy: replace an existing file")
    add_set_option(parser)
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

    from ...presets import list_presets
    from ...ui.messages import console

    table = Table(box=None, show_header=True, header_style="bold")
    table.add_column("preset")
    table.add_column("what it is for")
    for info in list_presets():
        table.add_row(info.name, info.summary)
    console().print(table)
    console().print("[dim]run one: python -m kohya_orchestrator preset NAME --data DIR[/dim]")
    return 0


def _show(name: str) -> int:
    import sys

    from ...presets import preset_layers, presets_dir

    preset_layers(name)  # raises PresetNotFound with did-you-mean
    sys.stdout.write((presets_dir() / f"{name}.toml").read_text(encoding="utf-8"))
    return 0


def _copy(name: str, dest: str, *, force: bool) -> int:
    from pathlib import Path

    from ...errors import ConfigError, Problem
    from ...presets import preset_layers, presets_dir
    from ...render.files import write_atomic
    from ...ui.messages import ok

    preset_layers(name)
    target = Path(dest)
    if target.is_dir():
        target = target / f"{name}.toml"
    if target.exists() and not force:
        raise ConfigError(
            [
                Problem(
                    str(target),
                    "already exists; nothing was written",
                    "choose another path or pass --force",
                )
            ]
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, (presets_dir() / f"{name}.toml").read_text(encoding="utf-8"))
    ok(f"wrote {target}")
    return 0


def _data_subsets(data: str, reg: str | None) -> list[dict[str, object]]:
    from pathlib import Path

    from ...dataset_tree import subsets_from_tree
    from ...errors import ConfigError

    subsets, problems = subsets_from_tree(Path(data), Path(reg) if reg else None)
    errors = [p for p in problems if p.severity == "error"]
    if errors or not subsets:
        raise ConfigError(errors or problems, source=f"--data {data}")
    if problems:
        from ...ui.messages import print_problems

        print_problems(problems)
    return subsets


def _resolve_and_maybe_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ...checks import check_paths
    from ...demo import ensure_demo_dataset
    from ...environment import find_install
    from ...jobfile import Layer, compose_layers, dump_job_toml, parse_set_overrides, validate_job
    from ...models import job_warnings
    from ...presets import preset_layers
    from ...render.command import build_launch_spec
    from ...render.files import CONFIG_NAME, render_into
    from ...run import absolute_job
    from ...ui.messages import console, hint, ok, print_problems
    from .._common import require_no_problems

    out = console()
    layers = preset_layers(args.name)
    cwd = Path.cwd()
    missing: list[str] = []
    cli: dict[str, object] = {}
    if args.data:
        cli["dataset"] = {"subsets": _data_subsets(args.data, args.reg_data)}
    else:
        demo = ensure_demo_dataset()
        cli["dataset"] = {"subsets": _data_subsets(str(demo), None)}
        missing.append(
            f"data: using the bundled demo dataset ({demo}); give yours with --data DIR "
            "(a folder of <repeats>_<name> subfolders, e.g. img/20_zengxin oilpaint)"
        )
    if args.model:
        cli["model"] = {"pretrained_model_name_or_path": args.model}
    if args.output:
        cli["training"] = {"output_dir": args.output}
    layers.append(Layer("command-line options", cli, cwd))
    if args.overrides:
        layers.append(Layer("--set", parse_set_overrides(args.overrides), cwd))
    composed = compose_layers(layers)
    job = validate_job(
        composed.data, source=f"preset '{args.name}'", provenance=composed.provenance
    )
    job = absolute_job(job, cwd)
    if not args.model:
        missing.append(
            f"model: {job.model.pretrained_model_name_or_path} (sd-scripts downloads it from "
            "Hugging Face); use your own checkpoint with --model PATH"
        )

    title = f"preset {args.name}" + (f": {job.description}" if job.description else "")
    out.rule(title)
    _section("resolved job (job file format)", dump_job_toml(job))
    _print_plan(job)
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
            "folder) or set KOHYA_SD_SCRIPTS (python -m kohya_orchestrator doctor)"
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
        return 0
    require_no_problems(path_problems, f"preset '{args.name}'")
    from .train import train_job

    ok("starting training")
    return train_job(job, install=install, runs=Path(args.runs))


def _section(title: str, text: str) -> None:
    from ...ui.messages import console

    out = console()
    out.rule(title, style="dim")
    out.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)


def _print_plan(job: object) -> None:
    try:
        from ...plan import plan_job, render_plan_text
    except ImportError:  # pragma: no cover - plan module not present
        return
    from ...ui.messages import console

    try:
        plan = plan_job(job)  # type: ignore[arg-type]
    except Exception as exc:
        console().print(f"[dim](no step plan: {exc})[/dim]")
        return
    console().print(render_plan_text(plan))
