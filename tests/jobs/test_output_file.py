"""Writing the file a command was told to write: new folders are made, existing files are kept.

``import-config``, ``import-preset`` and ``preset copy`` all write through write_new_file; each is
run here into a folder that does not exist yet, and over a file that does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.output_file import write_new_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# The real configs sd-scripts was given for the captures (tests/conftest.py's SD_LOGS / "_configs").
CONFIGS = (
    Path(__file__).resolve().parents[1] / "fixtures" / "sd-scripts" / "sd-scripts-logs" / "_configs"
)


def test_write_new_file_makes_the_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "job.toml"
    assert write_new_file(target, "x = 1\n") == target
    assert target.read_text(encoding="utf-8") == "x = 1\n"


def test_write_new_file_refuses_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "job.toml"
    target.write_text("# mine\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        write_new_file(target, "x = 1\n")
    (problem,) = info.value.problems
    assert (problem.path, problem.message, problem.hint) == (
        str(target),
        "already exists; nothing was written",
        "choose another path or pass --force",
    )
    assert target.read_text(encoding="utf-8") == "# mine\n"
    assert [p.name for p in tmp_path.iterdir()] == ["job.toml"]  # no temporary file left


def test_write_new_file_replaces_with_force(tmp_path: Path) -> None:
    target = tmp_path / "job.toml"
    target.write_text("# mine\n", encoding="utf-8")
    write_new_file(target, "x = 1\n", force=True)
    assert target.read_text(encoding="utf-8") == "x = 1\n"


def _import_config(tmp_path: Path, out: Path) -> list[str]:
    return [
        "import-config",
        str(CONFIGS / "train_a_lora.toml"),
        "--dataset",
        str(CONFIGS / "dataset.toml"),
        "--out",
        str(out),
    ]


def _import_preset(tmp_path: Path, out: Path) -> list[str]:
    gui = tmp_path / "my_loha.json"
    gui.write_text(
        json.dumps({"LoRA_type": "LyCORIS/LoHa", "network_dim": 8, "epoch": 4}), encoding="utf-8"
    )
    return ["import-preset", str(gui), "--out", str(out)]


def _preset_copy(tmp_path: Path, out: Path) -> list[str]:
    return ["preset", "copy", "oilpaint", str(out)]


COMMANDS = pytest.mark.parametrize(
    "command",
    [_import_config, _import_preset, _preset_copy],
    ids=["import-config", "import-preset", "preset copy"],
)


@COMMANDS
def test_writes_into_a_folder_that_does_not_exist(
    command: Callable[[Path, Path], list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "new" / "deeper" / "job.toml"
    assert main(command(tmp_path, out)) == 0
    assert tomllib.loads(out.read_text(encoding="utf-8"))  # a TOML file with something in it


@COMMANDS
def test_never_overwrites_an_existing_file(
    command: Callable[[Path, Path], list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "job.toml"
    out.write_text("# edited\n", encoding="utf-8")
    assert main(command(tmp_path, out)) == 2
    assert "already exists; nothing was written" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "# edited\n"
    assert main([*command(tmp_path, out), "--force"]) == 0
    assert out.read_text(encoding="utf-8") != "# edited\n"
