"""Options and helpers shared by verbs. Module level imports only argparse (startup time)."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time

if TYPE_CHECKING:
    from ..environment.discovery import Install
    from ..errors import Problem
    from ..models import TrainingJob
    from ..models.arguments import Arguments

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


def load_job_from_args(args: argparse.Namespace, arguments: Arguments | None = None) -> TrainingJob:
    """Load ``args.job`` with ``args.overrides``; raises ConfigError on any problem.

    ``arguments``: what the install that will run the job accepts (:func:`install_arguments`).
    """
    from pathlib import Path

    from ..jobs.loading import load_job

    return load_job(Path(args.job), overrides=args.overrides, arguments=arguments)


def install_arguments(
    sd_scripts: str | None, *, search: bool, probe: bool = True
) -> tuple[Install | None, Arguments | None]:
    """The install a verb will use (or check against) and its argument manifest.

    ``search``: look for an install like ``train`` does (else only ``sd_scripts`` or
    ``$KOHYA_SD_SCRIPTS``). The first call for an install asks its Python for its parsers (seconds);
    later calls read the cache. A manifest that cannot be read is a warning, and the built-in list
    stands in (None).
    """
    from pathlib import Path

    from ..environment.discovery import explicit_install, find_install
    from ..environment.manifest import arguments_of
    from ..ui.messages import print_problems

    given = Path(sd_scripts) if sd_scripts else None
    install = find_install(given) if search else explicit_install(given)
    if install is None:
        return None, None
    arguments, warning = arguments_of(install, probe=probe)
    if warning is not None:
        print_problems([warning])
    return install, None if arguments.builtin else arguments


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
