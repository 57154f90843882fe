"""Suite-wide fixtures: the real sd-scripts captures (tests/fixtures/sd-scripts) and the e2e lab."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hypothesis import settings

# `pytest --hypothesis-profile=long` (hypothesis' own option): the property tests, and the e2e
# oracles that batch their examples (tests/e2e/test_schema_oracle.py, test_prompt_oracle.py,
# test_lr_weight_oracle.py), draw thousands of examples instead of a few hundred.
settings.register_profile("long", max_examples=3000, deadline=None)

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real sd-scripts captures, kept in the repository as data (tests/fixtures/README.md says what
# produced them): sd-scripts-logs/<scenario>/, sd-scripts-logs/_configs/, loras/, lora-metadata/,
# run-outputs/e_prodigy/.
CAPTURES_DIR = REPO_ROOT / "tests" / "fixtures" / "sd-scripts"
SD_LOGS = CAPTURES_DIR / "sd-scripts-logs"
E2E_DIR = Path(
    os.environ.get("KOHYA_E2E_DIR", Path.home() / ".cache" / "kohya_orchestrator" / "e2e")
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="Rewrite golden files from the current output (review the diff like code).",
    )


def _whole_suite(config: pytest.Config) -> bool:
    """True for the test command itself (``python -m pytest``, also with ``-m "not e2e"``)."""
    markexpr = (config.option.markexpr or "").strip()
    return (
        config.args_source is pytest.Config.ArgsSource.TESTPATHS
        and not config.option.keyword
        and markexpr in ("", "not e2e")
        and not config.getoption("lf", False)
    )


def pytest_configure(config: pytest.Config) -> None:
    # Started in the background (`… &` from a script), this process ignores SIGINT, and so would
    # every trainer the tests start (ignored signals survive exec): cancel tests would see SIGTERM
    # instead. Handle it as a foreground run does (the CLI does the same: cli/main.py).
    if os.name == "posix" and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # pyproject's [tool.coverage.report] fail_under judges the whole suite only: a run of a few
    # files (or of -m e2e alone) measures what it ran, without failing on the total.
    cov = config.pluginmanager.getplugin("_cov")
    if cov is not None and not _whole_suite(config):
        cov.options.cov_fail_under = None


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """tests/fixtures/sd-scripts: the real sd-scripts captures; fails (never skips) when missing."""
    if not SD_LOGS.is_dir():
        pytest.fail(
            f"the real sd-scripts captures are missing: {SD_LOGS} "
            "(they are part of the repository: restore tests/fixtures/sd-scripts)"
        )
    return CAPTURES_DIR


@pytest.fixture(scope="session")
def e2e_lab() -> Path:
    """The real sd-scripts lab built by tests/lab/build_lab.py; skips when absent."""
    if not (E2E_DIR / "READY").is_file():
        pytest.skip(
            f"no real sd-scripts e2e lab at {E2E_DIR} (READY missing): build it once with "
            "'python tests/lab/build_lab.py' (--from <sd-scripts git URL or dir>; "
            "README: Run the real-trainer tests), or set KOHYA_E2E_DIR to one"
        )
    return E2E_DIR


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel once per session (needs hatchling, from the test extra)."""
    import subprocess
    import sys

    pytest.importorskip("hatchling")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("*.whl")
    return wheel
