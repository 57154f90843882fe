"""`python -m kohya_orchestrator`, `kohya-orch` once installed: argparse verbs, one error handler.

User errors (OrchestratorError subclasses) print a message and exit with their code (2 for bad
input), never a traceback. Anything unexpected exits 3 and saves the traceback to
~/.cache/kohya_orchestrator/last-error.log (shown with KOHYA_ORCH_DEBUG=1). Ctrl-C exits 130.
"""

from __future__ import annotations

# Only argparse, os, signal and sys at import time: `--help` must start about as fast as Python
# itself (benchmarks/bench_foundation.py). Verb modules follow the same rule and import lazily in
# run().
import argparse
import os
import signal
import sys

from .._version import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ..errors import OrchestratorError

__all__ = ["main"]

# CLI verb -> (module in cli/commands, one-line help), in the order `--help` lists them. Each
# module has add_parser(subparsers) and run(args). Only the chosen verb's module is imported, so
# `--help` and every verb start fast; tests/cli/test_main.py checks that these help lines match
# the modules' own.
VERBS: dict[str, tuple[str, str]] = {
    "preset": ("preset", "list, show, copy or run a preset (e.g. preset oilpaint)"),
    "validate": ("validate", "check a job file (types, rules, paths)"),
    "render": ("render", "write config.toml, dataset.toml and sample_prompts.txt for sd-scripts"),
    "train": ("train", "train a job with sd-scripts, with live progress and a run directory"),
    "queue": (
        "queue",
        "a persistent training queue: add, list, run (one worker per GPU), cancel, retry, "
        "export-slurm",
    ),
    "sweep": (
        "sweep",
        "expand a grid of settings into queued jobs, run them and compare the results",
    ),
    "plan": ("plan", "exact steps, epochs and buckets sd-scripts will run"),
    "dataset": ("dataset", "lay out, inspect and caption kohya dataset folders"),
    "install": (
        "install",
        "create a kohya-ss sd-scripts install (checkout, venv, torch, requirements)",
    ),
    "doctor": ("doctor", "check the sd-scripts install, its Python, torch, GPU and packages"),
    "runs": ("runs", "list run directories or show one"),
    "lora": ("lora", "inspect a trained LoRA file's metadata (header only, no torch)"),
    "replay": ("replay", "re-parse a console log into events (JSONL or a summary)"),
    "import-config": (
        "import_kohya",
        "convert an existing sd-scripts config.toml (+ dataset.toml) into a job file",
    ),
    "import-preset": (
        "import_preset",
        "convert a kohya_ss GUI preset or saved config (.json) into a preset file",
    ),
    "schema": ("schema", "print the JSON Schema of job files"),
}


def _prog() -> str:
    """The command as the user typed it: ``kohya-orch`` (the console script) or ``python -m``."""
    name = sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] if sys.argv else ""
    return "kohya-orch" if name.startswith("kohya-orch") else "python -m kohya_orchestrator"


def _build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Typed jobs, exact TOML rendering, launching and live progress for "
        "kohya-ss sd-scripts LoRA training.",
        epilog="examples (paths from the repository root; docs/examples/oilpaint.toml is an "
        "example job\nwith a tiny demo dataset):\n"
        "  python -m kohya_orchestrator preset oilpaint\n"
        "  python -m kohya_orchestrator validate docs/examples/oilpaint.toml "
        "--set network.network_dim=16\n"
        "  python -m kohya_orchestrator render docs/examples/oilpaint.toml --out rendered/\n\n"
        "Once the package is installed (python -m pip install .), kohya-orch is the same "
        "command:\n"
        "  kohya-orch preset oilpaint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"kohya_orchestrator {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module_name, help_text) in VERBS.items():
        if name == verb:
            module = __import__(f"{__package__}.commands.{module_name}", fromlist=["add_parser"])
            module.add_parser(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
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


def _restore_sigint() -> None:
    """Handle SIGINT again when we were started with it ignored (``nohup … &`` from a script).

    An ignored signal stays ignored across exec, so every trainer we start would ignore the
    SIGINT that cancel sends first (it would take the SIGTERM after the grace period instead).
    Our trainers run in their own session, out of reach of the terminal, so restoring the
    default only brings back graceful cancel (and ``kill -INT`` of this process: exit 130).
    """
    if os.name == "posix" and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    _restore_sigint()
    args_list = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in args_list if not a.startswith("-")), None)
    parser = _build_parser(verb if verb in VERBS else None)
    args = parser.parse_args(args_list)
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
