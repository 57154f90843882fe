"""Options and helpers shared by verbs. Module level imports only argparse (startup time)."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time

if TYPE_CHECKING:
    from ..errors import Problem
    from ..models import TrainingJob

RAW = argparse.RawDescriptionHelpFormatter


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set key.path=value`` (repeatable)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one job key, e.g. --set network.network_dim=16 (repeatable; values are "
        'TOML: 1e-4, true, [768, 512], "text")',
    )


def load_job_from_args(args: argparse.Namespace) -> TrainingJob:
    """Load ``args.job`` with ``args.overrides``; raises ConfigError on any problem."""
    from pathlib import Path

    from ..jobs.loading import load_job

    return load_job(Path(args.job), overrides=args.overrides)


def require_no_problems(problems: list[Problem], source: str) -> None:
    """Raise ConfigError when there are problems."""
    if problems:
        from ..errors import ConfigError

        raise ConfigError(problems, source=source)


def print_warnings(job: TrainingJob) -> None:
    """Print the job's warnings once, as a block."""
    from ..models import job_warnings
    from ..ui.messages import print_problems

    warnings = job_warnings(job)
    if warnings:
        print_problems(warnings)
