"""The CLI frame: exit codes, no tracebacks for user errors, help."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for verb in ("preset", "validate", "render", "schema", "import-config"):
        assert verb in out


def test_no_verb_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage:" in capsys.readouterr().out


def test_user_error_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.toml"
    job.write_text("[network]\nalgo = 'ia3'\nnetwork_dim = 4\n", encoding="utf-8")
    assert main(["validate", str(job)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "network.network_dim" in err and "model" in err


def test_unexpected_error_exit_3_saves_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kohya_orchestrator.cli.commands import schema

    def boom(args: object) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(schema, "run", boom)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["schema"]) == 3
    err = capsys.readouterr().err
    assert "An unexpected error has occurred" in err and "Traceback" not in err
    assert "kaboom" in (tmp_path / ".cache" / "kohya_orchestrator" / "last-error.log").read_text()


def test_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kohya_orchestrator", "--version"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("kohya_orchestrator ")


def test_import_never_pulls_torch() -> None:
    code = (
        "import sys, kohya_orchestrator as k\n"
        "import kohya_orchestrator.cli.main, kohya_orchestrator.jobs.loading, kohya_orchestrator.render.toml\n"
        "import kohya_orchestrator.jobs.presets, kohya_orchestrator.jobs.import_toml\n"
        "k.TrainingJob\n"
        "bad = [m for m in ('torch', 'diffusers', 'lycoris', 'transformers', 'accelerate') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_static_verb_help_matches_each_module() -> None:
    import argparse

    from kohya_orchestrator.cli.main import VERBS, _build_parser

    for verb, (_module, help_text) in VERBS.items():
        parser = _build_parser(verb)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps = {c.dest: c.help for c in sub._choices_actions}
        assert helps[verb] == help_text, verb
        assert sub.choices[verb].get_default("func") is not None, verb


@pytest.mark.parametrize(
    "verb",
    [
        "preset",
        "validate",
        "render",
        "train",
        "plan",
        "dataset",
        "doctor",
        "runs",
        "replay",
        "import-config",
        "schema",
    ],
)
def test_every_verb_has_help_with_examples(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([verb, "--help"])
    assert info.value.code == 0
    assert "python -m kohya_orchestrator" in capsys.readouterr().out


CHILD_SIGINT = (
    "import signal, subprocess, sys\n"
    "{setup}"
    "probe = 'import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)'\n"
    "print(subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True).stdout)\n"
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal dispositions")
@pytest.mark.parametrize(
    ("setup", "child_handles_sigint"),
    [
        ("", "False"),  # control: an ignored SIGINT is inherited by the child
        ("from kohya_orchestrator.cli.main import main\nmain([])\n", "True"),
    ],
)
def test_cli_started_with_sigint_ignored_gives_children_default_sigint(
    setup: str, child_handles_sigint: str
) -> None:
    """`nohup … &` starts us with SIGINT ignored; the trainers we start must still take it."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_SIGINT.format(setup=setup)],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stdout.strip().splitlines()[-1] == child_handles_sigint
