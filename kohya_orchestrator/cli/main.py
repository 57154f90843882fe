"""`python -m kohya_orchestrator`: argparse verbs and the one error handler.

User errors (OrchestratorError subclasses) print a message and exit with their code (2 for bad
input), never a traceback. Anything unexpected exits 3 and saves the traceback to
~/.cache/kohya_orchestrator/last-error.log (shown with KOHYA_ORCH_DEBUG=1). Ctrl-C exits 130.
"""

from __future__ import annotations

# Only argparse and sys at import time: `--help` must start about as fast as Python itself
# (benchmarks/bench_cli_startup.py). Verb modules follow the same rule and import lazily in run().
import argparse
import sys

from .._version import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ..errors import OrchestratorError

__all__ = ["main"]

# Verb modules, in the order `--help` lists them. Each has add_parser(subparsers) and run(args).
VERBS = (
    "preset",
    "validate",
    "render",
    "schema",
    "import_kohya",
    "train",
    "doctor",
    "replay",
    "runs",
    "plan",
    "dataset",
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kohya_orchestrator",
        description="Typed jobs, exact TOML rendering, launching and live progress for "
        "kohya-ss sd-scripts LoRA training.",
        epilog="examples:\n"
        "  python -m kohya_orchestrator preset oilpaint\n"
        "  python -m kohya_orchestrator validate job.toml --set network.network_dim=16\n"
        "  python -m kohya_orchestrator render job.toml --out rendered/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"kohya_orchestrator {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERBS:
        try:
            module = __import__(f"{__package__}.commands.{name}", fromlist=["add_parser"])
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"commands.{name}"):
                continue  # verb not built yet
            raise
        module.add_parser(sub)
    return parser


def _log_path() -> Path:
    from pathlib import Path

    return Path.home() / ".cache" / "kohya_orchestrator" / "last-error.log"


def _report(exc: OrchestratorError) -> None:
    from ..errors import ConfigError, SetupError, TrainingFailed
    from ..ui.messages import fail, hint, print_problems

    if isinstance(exc, ConfigError):
        n = len(exc.problems)
        fail(f"{n} problem{'s' if n != 1 else ''} in {exc.source or 'the job'}:")
        print_problems(exc.problems)
    elif isinstance(exc, SetupError):
        fail(str(exc).split("\n  hint: ")[0])
        if exc.hint:
            hint(exc.hint, file=sys.stderr)
    elif isinstance(exc, TrainingFailed):
        fail(str(exc))
        for line in exc.tail:
            sys.stderr.write(f"    {line}\n")
        if exc.run_dir is not None:
            hint(f"full log: {exc.run_dir / 'console.log'}", file=sys.stderr)
    else:
        fail(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from ..errors import OrchestratorError

    try:
        return int(args.func(args) or 0)
    except OrchestratorError as exc:
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # e.g. `... | head`
        return 0
    except Exception:
        import os
        import traceback

        text = traceback.format_exc()
        log = _log_path()
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(text, encoding="utf-8")
            where = f"the traceback is in {log}"
        except OSError:
            where = "the traceback could not be saved"
        sys.stderr.write(f"An unexpected error has occurred; {where}.\n")
        if os.environ.get("KOHYA_ORCH_DEBUG") == "1":
            sys.stderr.write(text)
        return 3
