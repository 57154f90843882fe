"""The CLI's one error handler: each kind of failure maps to its exit code and its lines.

A verb (``schema``) is replaced by one that raises, so every branch of ``main``'s handler is
reached the way a real verb would reach it. The real verbs' own failures are tested per verb.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from kohya_orchestrator.cli.commands import schema
from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import LaunchError, RenderError, SetupError, TrainingFailed


def _verb_raises(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def raising(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(schema, "run", raising)


def test_training_failed_prints_the_tail_and_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _verb_raises(
        monkeypatch,
        TrainingFailed(
            "training failed: exit code 1",
            returncode=1,
            run_dir=tmp_path,
            tail=["Traceback (most recent call last):", "ValueError: bad"],
        ),
    )
    assert main(["schema"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "⨯ training failed: exit code 1",
        "    Traceback (most recent call last):",
        "    ValueError: bad",
        f"  hint: full log: {tmp_path / 'console.log'}",
    ]


def test_training_failed_without_a_run_directory_has_no_log_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _verb_raises(monkeypatch, TrainingFailed("training failed: exit code 2"))
    assert main(["schema"]) == 1
    assert capsys.readouterr().err.splitlines() == ["⨯ training failed: exit code 2"]


def test_setup_error_prints_message_then_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _verb_raises(monkeypatch, SetupError("no sd-scripts", hint="pass --sd-scripts PATH"))
    assert main(["schema"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "⨯ no sd-scripts",
        "  hint: pass --sd-scripts PATH",
    ]


def test_setup_error_without_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _verb_raises(monkeypatch, SetupError("no GPU"))
    assert main(["schema"]) == 2
    assert capsys.readouterr().err.splitlines() == ["⨯ no GPU"]


@pytest.mark.parametrize(
    ("exc", "code"),
    [(RenderError("config.toml did not render"), 3), (LaunchError("could not start"), 1)],
)
def test_other_orchestrator_errors_print_one_line_with_their_code(
    exc: Exception,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _verb_raises(monkeypatch, exc)
    assert main(["schema"]) == code
    assert capsys.readouterr().err.splitlines() == [f"⨯ {exc}"]


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _verb_raises(monkeypatch, KeyboardInterrupt())
    assert main(["schema"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_broken_pipe_is_a_quiet_success(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _verb_raises(monkeypatch, BrokenPipeError())
    assert main(["schema"]) == 0
    assert capsys.readouterr().err == ""


def test_unexpected_error_when_the_log_cannot_be_saved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KOHYA_ORCH_DEBUG", raising=False)
    _verb_raises(monkeypatch, RuntimeError("kaboom"))
    assert main(["schema"]) == 3
    assert capsys.readouterr().err == (
        "An unexpected error has occurred; the traceback could not be saved.\n"
    )


def test_unexpected_error_with_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KOHYA_ORCH_DEBUG", "1")
    _verb_raises(monkeypatch, RuntimeError("kaboom"))
    assert main(["schema"]) == 3
    err = capsys.readouterr().err
    log = tmp_path / ".cache" / "kohya_orchestrator" / "last-error.log"
    assert err.startswith(f"An unexpected error has occurred; the traceback is in {log}.\n")
    assert "Traceback (most recent call last):" in err and "RuntimeError: kaboom" in err
    assert log.read_text(encoding="utf-8") in err


def test_argv_defaults_to_sys_argv(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["kohya-orch", "schema"])
    assert main() == 0
    assert '"properties"' in capsys.readouterr().out
