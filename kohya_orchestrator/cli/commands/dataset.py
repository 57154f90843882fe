"""`dataset create | inspect | captions`: lay out, check and edit kohya dataset folders."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._dataset_shared import parse_resolution, print_findings, short_path

if TYPE_CHECKING:
    from ...datasets.captions import CaptionEdit
    from ...datasets.layout import CreateResult
    from ...datasets.report_models import DatasetReport
    from ...datasets.tagging import TaggerOptions

_EPILOG = (
    "examples:\n"
    '  python -m kohya_orchestrator dataset create "docs/examples/img/10_zengxin oilpaint" '
    '--repeats 20 --name "zengxin oilpaint" --into data/train --max-per-subset 100\n'
    "  python -m kohya_orchestrator dataset inspect data/train --resolution 512 --trigger zengxin\n"
    "  python -m kohya_orchestrator dataset captions data/train/20_zengxin\\ oilpaint add zengxin "
    "--front --dry-run\n\n"
    "next: python -m kohya_orchestrator plan --train-dir data/train --batch-size 2 --epochs 10"
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb and its three actions."""
    parser = subparsers.add_parser(
        "dataset",
        help="lay out, inspect and caption kohya dataset folders",
        description="Work with kohya dataset folders: a parent folder of `<repeats>_<name>` "
        "subfolders holding images and caption files, read exactly as sd-scripts reads them.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="lay out a flat folder as DIR/<repeats>_<name>/",
        description="Copy (or link) the images of a flat folder, with their .txt/.caption "
        "files, into INTO/<repeats>_<name>/. The source is never changed and existing files "
        "are never overwritten. With --max-per-subset, more images than that are split evenly "
        "into '<repeats>_<name>', '<repeats>_<name> 2', ... (by file name).",
        epilog="examples:\n"
        '  python -m kohya_orchestrator dataset create "docs/examples/img/10_zengxin oilpaint" '
        '--repeats 20 --name "zengxin oilpaint" --into data/train\n'
        "  python -m kohya_orchestrator dataset create raw/ --repeats 10 --name sks --into "
        "data/train --link --max-per-subset 100   # raw/: your flat folder\n\n"
        "next: python -m kohya_orchestrator dataset inspect data/train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    create.add_argument("src", metavar="SRC", help="flat folder of images (and captions)")
    create.add_argument("--repeats", type=int, required=True, metavar="N", help="repeats prefix")
    create.add_argument("--name", required=True, help="name after the prefix (class tokens)")
    create.add_argument("--into", required=True, metavar="DIR", help="parent folder to fill")
    create.add_argument(
        "--link",
        nargs="?",
        const="hard",
        choices=("hard", "sym"),
        help="link instead of copying: hard (default with --link) or sym",
    )
    create.add_argument("--max-per-subset", type=int, metavar="N", help="split above N images")
    create.add_argument("--dry-run", action="store_true", help="show what would be created")

    inspect = actions.add_parser(
        "inspect",
        help="report counts, sizes, captions and problems",
        description="Report per subset: images, repeats, images×repeats, sizes and aspect "
        "ratios (from image headers), captions, tag frequency and the trigger word; and every "
        "problem with what to do: corrupt or truncated images, 0-byte files, tiny images, "
        "duplicates, CMYK/16-bit/transparent images, missing or broken captions, skipped "
        "folders. Exit 1 when sd-scripts would fail on the data.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator dataset inspect docs/examples/img\n"
        '  python -m kohya_orchestrator dataset inspect "docs/examples/img/10_zengxin oilpaint" '
        "--json\n"
        "  python -m kohya_orchestrator dataset inspect data/train --reg data/reg\n\n"
        "next: python -m kohya_orchestrator plan --train-dir docs/examples/img --epochs 10",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    inspect.add_argument("dir", metavar="DIR", help="parent of <repeats>_<name> folders, or one")
    inspect.add_argument("--reg", metavar="DIR", help="regularisation images (the same layout)")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.add_argument("--resolution", default="512", metavar="W[,H]", help="default 512")
    inspect.add_argument("--trigger", metavar="WORD", help="default: each folder's class tokens")
    inspect.add_argument("--caption-extension", default=".txt", metavar="EXT", help="default .txt")
    inspect.add_argument(
        "--verify-pixels", action="store_true", help="decode every image fully (slow)"
    )

    captions = actions.add_parser(
        "captions",
        help="add, remove or replace a tag in captions",
        description="Edit the comma-separated tags of every caption in a subset (or in every "
        "subset of a parent folder). Tags match case-insensitively. Originals are copied to "
        "<subset>/.caption-backups/<timestamp>/ first; images are never touched.",
        epilog="examples:\n"
        '  python -m kohya_orchestrator dataset captions "data/train/20_zengxin oilpaint" add '
        "zengxin --front\n"
        "  python -m kohya_orchestrator dataset captions docs/examples/img replace 'oil painting' "
        "'oil painting (medium)' --dry-run\n\n"
        "next: python -m kohya_orchestrator dataset inspect data/train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    captions.add_argument("dir", metavar="DIR", help="a subset folder, or a parent of them")
    captions.add_argument("op", choices=("add", "remove", "replace"), metavar="add|remove|replace")
    captions.add_argument("tag", metavar="TAG", help="the tag or trigger word")
    captions.add_argument("new", nargs="?", metavar="NEW", help="replacement (replace only)")
    captions.add_argument("--front", action="store_true", help="put the tag first")
    captions.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    captions.add_argument("--caption-extension", default=".txt", metavar="EXT", help="default .txt")
    captions.add_argument(
        "--create-missing",
        action="store_true",
        help="add: also write a caption for images that have none",
    )
    tag = actions.add_parser(
        "tag",
        help="tag images with sd-scripts' WD14 tagger",
        description="Run sd-scripts' own WD14 tagger (finetune/tag_images_by_wd14_tagger.py) "
        "in the kohya venv on a subset folder, writing one caption file per image. Folders that "
        "already have captions are refused unless --append-tags or --overwrite (originals are "
        "backed up to <subset>/.caption-backups/ first). The tagger model is yours: a local "
        "--model-dir, or --repo-id to download it once.",
        epilog="examples:\n"
        '  python -m kohya_orchestrator dataset tag "img/20_zengxin oilpaint" --model-dir '
        "~/models/wd-v1-4-moat-tagger-v2 --always-first-tags 'zengxin oilpaint'\n"
        "  python -m kohya_orchestrator dataset tag img/20_x --repo-id "
        "SmilingWolf/wd-v1-4-moat-tagger-v2 --model-dir models/wd14 --dry-run\n\n"
        'next: python -m kohya_orchestrator dataset captions "img/20_zengxin oilpaint" add '
        "zengxin --front",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    tag.add_argument("dir", metavar="DIR", help="the image folder")
    tag.add_argument("--model-dir", help="local WD14 tagger folder (model.onnx, selected_tags.csv)")
    tag.add_argument("--repo-id", help="Hugging Face repo to download the tagger from")
    tag.add_argument("--general-threshold", type=float, default=0.35, help="default 0.35")
    tag.add_argument("--character-threshold", type=float, default=0.85, help="default 0.85")
    tag.add_argument("--undesired-tags", default="", help="comma-separated tags never written")
    tag.add_argument("--always-first-tags", default="", help="comma-separated, e.g. the trigger")
    tag.add_argument("--caption-extension", default=".txt", help="default .txt")
    tag.add_argument("--batch-size", type=int, default=4, help="default 4")
    tag.add_argument("--recursive", action="store_true", help="also tag subfolders")
    tag.add_argument("--keep-underscore", action="store_true", help="keep long_hair as is")
    tag.add_argument("--no-onnx", action="store_true", help="use the TensorFlow model instead")
    tag.add_argument("--append-tags", action="store_true", help="add to existing captions")
    tag.add_argument("--overwrite", action="store_true", help="replace existing captions")
    tag.add_argument("--sd-scripts", metavar="PATH", help="kohya_ss or sd-scripts folder")
    tag.add_argument("--log", metavar="FILE", help="where the tagger's output goes")
    tag.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    parser.set_defaults(func=run, dataset_parser=parser)


# ----------------------------------------------------------------------------- actions
def _create(args: argparse.Namespace) -> int:
    from ...datasets.layout import create_subsets

    result = create_subsets(
        args.src,
        args.into,
        repeats=args.repeats,
        name=args.name,
        link=args.link,
        max_per_subset=args.max_per_subset,
        dry_run=args.dry_run,
    )
    _print_created(result, args)
    return 0


def _print_created(result: CreateResult, args: argparse.Namespace) -> None:
    from rich.markup import escape

    from ...ui.messages import console, hint, ok

    verb = "would create" if args.dry_run else "created"
    how = {"copy": "copies", "hard": "hard links", "sym": "symbolic links"}[result.mode]
    n = len(result.folders)
    ok(f"{verb} {n} folder{'s' if n != 1 else ''} in {escape(args.into)} ({how}):")
    for folder in result.folders:
        name = escape(folder.path.rstrip("/\\").rsplit("/", 1)[-1])
        console().print(f"    {name}: {folder.images} images, {folder.captions} captions")
    print_findings(list(result.findings), root=args.into)
    if not args.dry_run:
        hint(f"next: python -m kohya_orchestrator dataset inspect {escape(args.into)}")


def _inspect(args: argparse.Namespace) -> int:
    from ...datasets.report import inspect_dataset

    report = inspect_dataset(
        args.dir,
        args.reg,
        resolution=parse_resolution(args.resolution),
        trigger=args.trigger,
        caption_extension=args.caption_extension,
        verify_pixels=args.verify_pixels,
    )
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print_report(report)
    return 1 if report.errors else 0


def _print_report(report: DatasetReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ...ui.messages import console, fail, hint, ok

    out = console()
    w, h = report.resolution
    out.print(
        f"[bold]Dataset {escape(report.root)}[/bold] (resolution {w}x{h}, captions "
        f"*{escape(report.caption_extension)})"
    )
    table = Table(show_edge=False, pad_edge=False)
    for col in ("subset", "repeats", "images", "×repeats", "captions", "sizes", "ratios"):
        table.add_column(col, justify="left" if col in ("subset", "sizes", "ratios") else "right")
    for s in sorted(report.subsets, key=lambda r: (r.is_reg, r.name)):
        sizes = "-"
        if s.min_size and s.max_size:
            sizes = f"{s.min_size[0]}x{s.min_size[1]}-{s.max_size[0]}x{s.max_size[1]}"
        ratios = ", ".join(f"{r.ratio} {r.count}" for r in s.aspect_ratios[:3])
        captions = f"{s.captioned}/{s.image_count}"
        table.add_row(
            escape(s.name) + (" (reg)" if s.is_reg else ""),
            str(s.repeats),
            str(s.image_count),
            str(s.images_with_repeats),
            captions,
            sizes,
            escape(ratios),
        )
    out.print(table)
    out.print(
        f"train: {report.image_count} images, {report.images_with_repeats} with repeats"
        + (
            f"; reg: {report.reg_image_count} images, {report.reg_images_with_repeats} with repeats"
            if report.reg_root
            else ""
        )
    )
    for s in report.subsets:
        if s.tags:
            top = ", ".join(f"{t.tag} {t.count}" for t in s.tags[:8])
            out.print(f"tags in {escape(s.name)}: {escape(top)}")
        if s.trigger and s.captioned:
            have = s.captioned - s.trigger_missing
            out.print(f"trigger '{escape(s.trigger)}' in {have}/{s.captioned} captions")
    print_findings(report.findings, root=report.root)
    n_err, n_warn = len(report.errors), len(report.warnings)
    if n_err:
        fail(f"{n_err} error(s), {n_warn} warning(s): sd-scripts would fail on this data")
    elif n_warn:
        ok(f"no errors; {n_warn} warning(s) to look at")
    else:
        ok("no problems found")
    hint(f"next: python -m kohya_orchestrator plan --train-dir {escape(report.root)} --epochs 10")


def _captions(args: argparse.Namespace) -> int:
    from ...datasets.captions import edit_captions

    result = edit_captions(
        args.dir,
        args.op,
        args.tag,
        args.new,
        front=args.front,
        caption_extension=args.caption_extension,
        create_missing=args.create_missing,
        dry_run=args.dry_run,
    )
    _print_edit(result, args.dir)
    return 0


def _print_edit(result: CaptionEdit, root: str) -> None:
    from rich.markup import escape

    from ...ui.messages import console, hint, ok

    out = console()
    if result.dry_run:
        for change in result.changes:
            out.print(f"[bold]--- {escape(short_path(change.path, root))}[/bold]")
            for line in change.before.splitlines():
                out.print(f"[red]- {escape(line)}[/red]")
            for line in change.after.splitlines():
                out.print(f"[green]+ {escape(line)}[/green]")
    print_findings(list(result.findings), root=root)
    n = len(result.changes)
    verb = "would change" if result.dry_run else "changed"
    ok(f"{verb} {n} caption{'s' if n != 1 else ''}; {result.unchanged} already as asked")
    for backup in result.backups:
        hint(f"originals saved in {escape(backup)}")
    if result.dry_run and n:
        hint("run again without --dry-run to write the changes")


def tagger_options(args: argparse.Namespace) -> TaggerOptions:
    """The typed tagger options from the command line."""
    from ...datasets.tagging import TaggerOptions

    def split(text: str) -> list[str]:
        return [t.strip() for t in text.split(",") if t.strip()]

    return TaggerOptions(
        repo_id=args.repo_id,
        model_dir=args.model_dir,
        onnx=not args.no_onnx,
        batch_size=args.batch_size,
        general_threshold=args.general_threshold,
        character_threshold=args.character_threshold,
        undesired_tags=split(args.undesired_tags),
        always_first_tags=split(args.always_first_tags),
        caption_extension=args.caption_extension,
        recursive=args.recursive,
        remove_underscore=not args.keep_underscore,
        append_tags=args.append_tags,
        overwrite=args.overwrite,
    )


def _tag(args: argparse.Namespace) -> int:
    import shlex
    import sys
    from datetime import datetime
    from pathlib import Path

    from pydantic import ValidationError

    from ...datasets.tagging import build_tagger_spec, check_before_tagging, run_tagger
    from ...environment.discovery import require_install
    from ...errors import ConfigError
    from ...jobs.problems import problems_from_validation_error
    from ...ui.messages import console, fail, hint, ok

    try:
        options = tagger_options(args)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation_error(exc), source="dataset tag") from None
    folder = Path(args.dir)
    check_before_tagging(options, folder)
    install = require_install(Path(args.sd_scripts) if args.sd_scripts else None)
    spec = build_tagger_spec(
        options, folder.resolve(), python=install.python, sd_scripts_dir=install.sd_scripts_dir
    )
    if args.dry_run:
        sys.stdout.write(f"cd {shlex.quote(str(spec.cwd))} && " + shlex.join(spec.argv) + "\n")
        return 0
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    log = (
        Path(args.log)
        if args.log
        else Path.home() / ".cache" / "kohya_orchestrator" / f"tagger-{stamp}.log"
    )
    console().print(f"tagging {folder} with sd-scripts' WD14 tagger (log: {log})")
    result = run_tagger(
        options,
        folder.resolve(),
        python=install.python,
        sd_scripts_dir=install.sd_scripts_dir,
        log_file=log,
    )
    if result.backup:
        hint(f"original captions saved in {result.backup}")
    if result.ok:
        ok(f"tagged {result.tagged} of {result.images} images")
        return 0
    fail(f"tagger exited {result.returncode}; {result.tagged} of {result.images} images tagged")
    for error in result.errors[-3:]:
        fail(error.message)
        if error.remedy:
            hint(error.remedy, file=sys.stderr)
    hint(f"full log: {log}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    if args.action == "create":
        return _create(args)
    if args.action == "inspect":
        return _inspect(args)
    if args.action == "captions":
        return _captions(args)
    if args.action == "tag":
        return _tag(args)
    args.dataset_parser.print_help()
    return 2
