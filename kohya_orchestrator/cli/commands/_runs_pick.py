"""`runs pick RUN --epoch N`: the options and the handler (the verb is in :mod:`.runs`)."""

from __future__ import annotations

import argparse

PICK_EXAMPLES = (
    "  python -m kohya_orchestrator runs pick latest --epoch 4 --author me --license "
    "CreativeML-OpenRAIL-M --tags 'style,oil painting'\n"
    "  python -m kohya_orchestrator runs pick latest --epoch 4 --to ~/loras/oilpaint-e4\n"
)


def add_pick_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``pick`` options of ``runs``."""
    group = parser.add_argument_group("pick (publish one epoch's file)")
    group.add_argument("--epoch", type=int, metavar="N", help="pick: the epoch to publish")
    group.add_argument(
        "--to",
        metavar="PATH",
        help="pick: a new folder (or a .safetensors path) for the copy, README.md and samples "
        "(default <output_dir>/published/<checkpoint name>/); nothing existing is replaced",
    )
    group.add_argument("--title", help="pick: modelspec.title (default: the output name)")
    group.add_argument("--author", help="pick: modelspec.author")
    group.add_argument("--description", help="pick: modelspec.description (default: generated)")
    group.add_argument("--license", help="pick: modelspec.license")
    group.add_argument("--tags", metavar="A,B", help="pick: modelspec.tags, comma separated")
    group.add_argument(
        "--trigger",
        metavar="TEXT",
        help="pick: modelspec.trigger_phrase (default: the dataset's class tokens)",
    )


def pick(args: argparse.Namespace, run_dir: object) -> int:
    """Publish ``args.epoch`` of the run folder ``run_dir`` (a RunDir)."""
    import json
    import sys
    from pathlib import Path

    from rich.markup import escape

    from ...errors import ConfigError, Problem
    from ...launch.rundir import RunDir
    from ...outputs.publish import PublishOptions, pick_epoch
    from ...ui.messages import console, hint, ok

    assert isinstance(run_dir, RunDir)
    if args.epoch is None:
        raise ConfigError(
            [Problem("--epoch", "'runs pick' needs the epoch to publish", "add --epoch N")]
        )
    options = PublishOptions(
        title=args.title,
        author=args.author,
        description=args.description,
        license=args.license,
        tags=tuple(t.strip() for t in (args.tags or "").split(",") if t.strip()),
        trigger_phrase=args.trigger,
    )
    to = Path(args.to).expanduser() if args.to else None
    result = pick_epoch(run_dir.path, args.epoch, to=to, options=options)
    if args.json:
        data = {
            "source": str(result.source),
            "file": str(result.file),
            "readme": str(result.readme),
            "samples": [str(p) for p in result.samples],
            "metadata": {
                k: (v if k != "modelspec.thumbnail" else f"{v[:40]}… ({len(v)} chars)")
                for k, v in result.metadata.items()
            },
            "notes": list(result.notes),
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    out = console()
    ok(f"published epoch {args.epoch}: {result.file}")
    out.print(f"  [dim]from {escape(str(result.source))} (unchanged)[/dim]")
    for key, value in result.metadata.items():
        shown = value if key != "modelspec.thumbnail" else f"data URI ({len(value)} chars)"
        out.print(f"  {escape(key)} = {escape(shown)}")
    out.print(f"  model card: {escape(str(result.readme))}, {len(result.samples)} sample(s)")
    for note in result.notes:
        out.print(f"  [dim]note: {escape(note)}[/dim]")
    hint(f"python -m kohya_orchestrator lora inspect {result.file}")
    return 0
