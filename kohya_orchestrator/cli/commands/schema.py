"""`schema`: the JSON Schema of job files, for editor completion and docs."""

from __future__ import annotations

import argparse

from .._common import RAW


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the verb."""
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of job files",
        description="Print the JSON Schema of the job file format (every key, its type, limits "
        "and the sd-scripts flag it becomes). Point your editor's TOML plugin at it.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator schema > job.schema.json\n"
        "  python -m kohya_orchestrator schema --check docs/job.schema.json",
        formatter_class=RAW,
    )
    parser.add_argument(
        "--check", metavar="FILE", help="exit 1 if FILE differs from the current schema"
    )
    parser.set_defaults(func=run)


def job_schema_text() -> str:
    """The schema as stable, indented JSON text."""
    import json

    from ...models import TrainingJob

    schema = TrainingJob.model_json_schema()
    schema["$id"] = "https://kohya-orchestrator.invalid/job.schema.json"
    schema["title"] = "kohya_orchestrator job file"
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def run(args: argparse.Namespace) -> int:
    """Print or check the schema."""
    import sys
    from pathlib import Path

    text = job_schema_text()
    if args.check:
        path = Path(args.check)
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != text:
            sys.stderr.write(
                f"{path} is out of date; regenerate it with: "
                f"python -m kohya_orchestrator schema > {path}\n"
            )
            return 1
        return 0
    sys.stdout.write(text)
    return 0
