"""e2e: the installed sd-scripts decides which arguments a job may use (its own parsers, read once).

A copy of the lab's sd-scripts is patched: its ``setup_parser`` gains an argument and loses
``--min_snr_gamma``. ``validate --sd-scripts`` against the copy accepts the new argument in
``extra_args`` and refuses a job setting ``training.min_snr_gamma``, naming the install; against
the unpatched lab it is the reverse. The second check reads the cached manifest and starts no
Python.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment import manifest as manifest_module
from kohya_orchestrator.environment.discovery import read_commit
from kohya_orchestrator.jobs.loading import dump_job_toml, validate_job

from .conftest import tiny_job

pytestmark = pytest.mark.e2e

NEW = "kohya_orch_new_arg"
PATCH = f"""
    parser.add_argument("--{NEW}", type=int, default=0, choices=[0, 1, 2], help="added by a test")
    for action in list(parser._actions):
        if action.dest == "min_snr_gamma":
            parser._remove_action(action)
            for option in action.option_strings:
                parser._option_string_actions.pop(option, None)
    return parser
"""


def _patched_copy(lab: Path, into: Path) -> Path:
    copy = into / "sd-scripts-patched"
    shutil.copytree(lab / "sd-scripts", copy, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    commit = read_commit(lab / "sd-scripts")
    assert commit is not None
    (copy / ".snapshot-commit").write_text(commit + "\n", encoding="utf-8")
    script = copy / "train_network.py"
    text = script.read_text(encoding="utf-8")
    start = text.index("def setup_parser(")
    end = text.index("\n    return parser\n", start)
    script.write_text(
        text[:end] + PATCH + text[end + len("\n    return parser\n") :], encoding="utf-8"
    )
    return copy


def test_the_install_decides_which_arguments_a_job_may_use(
    lab_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KOHYA_PYTHON", str(lab_env / "venv" / "bin" / "python"))
    copy = _patched_copy(lab_env, tmp_path)
    commit = read_commit(lab_env / "sd-scripts") or ""

    def job_file(name: str, extra: str = "", **training: object) -> Path:
        text = dump_job_toml(validate_job(tiny_job(lab_env, tmp_path, name, training=training)))
        path = tmp_path / f"{name}.toml"
        path.write_text(text + extra, encoding="utf-8")
        return path

    new_arg = job_file("new", f"\n[extra_args]\n{NEW} = 2\n")
    old_arg = job_file("old", min_snr_gamma=5.0)
    bad_value = job_file("bad", f"\n[extra_args]\n{NEW} = 5\n")

    # the patched copy: the new argument is taken, the removed one refused with the install's name
    assert main(["validate", str(new_arg), "--sd-scripts", str(copy)]) == 0, capsys.readouterr()
    assert main(["validate", str(bad_value), "--sd-scripts", str(copy)]) == 2
    assert f"'{NEW}' takes one of 0, 1, 2, not 5" in capsys.readouterr().err  # its own choices
    assert main(["validate", str(old_arg), "--sd-scripts", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "training.min_snr_gamma" in err
    assert f"sd-scripts {commit[:8]} at {copy} has no argument 'min_snr_gamma'" in " ".join(
        err.split()
    )
    # the unpatched lab: the reverse
    lab_sd = str(lab_env / "sd-scripts")
    assert main(["validate", str(old_arg), "--sd-scripts", lab_sd]) == 0, capsys.readouterr()
    assert main(["validate", str(new_arg), "--sd-scripts", lab_sd]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"extra_args.{NEW}" in err
    assert f"sd-scripts {commit[:8]}" in err
    assert f"has no argument '{NEW}'" in err

    # both manifests are cached now: no Python is started for them
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the install's Python was started although its manifest is cached")

    monkeypatch.setattr(manifest_module, "_probe", refuse)
    assert main(["validate", str(new_arg), "--sd-scripts", str(copy)]) == 0
    assert main(["validate", str(old_arg), "--sd-scripts", lab_sd]) == 0
    cached = sorted((tmp_path / "cache" / "kohya_orchestrator" / "manifests").glob("*.json"))
    assert len(cached) == 2
