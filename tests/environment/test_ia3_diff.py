"""``lora export-diff``: what is refused before anything runs, and how the child's answer is taken.

The numbers themselves (``base + strength * diff`` against LyCORIS' own IA3 module) are proven on
a real IA3 output with the lab's Python in tests/e2e/test_ia3_diff_e2e.py. Here a stand-in
interpreter answers like the child does (process control only): a file is put in place only when
every module was found, an existing file is never replaced, and no partial file is left.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.environment.ia3_diff import export_ia3_diff
from kohya_orchestrator.errors import ConfigError

LORAS = Path(__file__).resolve().parents[1] / "fixtures" / "sd-scripts" / "loras"
IA3 = LORAS / "d_ia3_custompreset.safetensors"
LOKR = LORAS / "c_lokr_preset.safetensors"


def _install(tmp_path: Path, answer: str, write: bool) -> Install:
    """A stand-in interpreter: prints ``answer`` after the marker, and writes argv's 4th path."""
    python = tmp_path / "bin" / "python"
    python.parent.mkdir(parents=True)
    body = 'printf "x" > "$5"\n' if write else ""
    python.write_text(f"#!/bin/sh\n{body}echo 'KOHYA_ORCH_IA3_DIFF={answer}'\n", encoding="utf-8")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    sd = tmp_path / "sd-scripts"
    sd.mkdir()
    return Install(
        root=tmp_path, sd_scripts_dir=sd, python=python, layout="explicit", source="argument"
    )


def test_a_complete_answer_puts_the_file_in_place(tmp_path: Path) -> None:
    install = _install(tmp_path, '{"modules": 3, "missing": [], "bytes": 96}', write=True)
    out = tmp_path / "out.safetensors"
    done = export_ia3_diff(install, IA3, tmp_path, out)
    assert (done.modules, done.size_bytes, out.read_text()) == (3, 96, "x")
    assert [p.name for p in tmp_path.glob(".*partial")] == []


def test_a_module_missing_from_the_base_writes_nothing(tmp_path: Path) -> None:
    answer = '{"modules": 2, "missing": ["lora_unet_x_to_k"], "bytes": 0}'
    install = _install(tmp_path, answer, write=True)
    out = tmp_path / "out.safetensors"
    with pytest.raises(ConfigError, match=r"not in .*lora_unet_x_to_k"):
        export_ia3_diff(install, IA3, tmp_path, out)
    assert not out.exists() and [p.name for p in tmp_path.glob(".*partial")] == []


def test_a_child_that_stops_is_reported_with_its_last_lines(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'RuntimeError: out of memory' >&2\nexit 1\n")
    python.chmod(0o755)
    install = Install(
        root=tmp_path, sd_scripts_dir=tmp_path, python=python, layout="explicit", source="argument"
    )
    with pytest.raises(ConfigError, match=r"exit 1.*out of memory"):
        export_ia3_diff(install, IA3, tmp_path, tmp_path / "out.safetensors")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["lora", "export-diff", str(IA3)], "needs the base model"),
        (["lora", "export-diff", str(LOKR), "--base", "."], "not an IA3 file (lokr)"),
        (["lora", "export-diff", str(IA3), "--base", "/no/such/model"], "not found"),
    ],
)
def test_refused_before_anything_runs(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_an_existing_out_file_is_never_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine.safetensors"
    out.write_bytes(b"precious")
    assert main(["lora", "export-diff", str(IA3), "--base", str(tmp_path), "--out", str(out)]) == 2
    assert "never replaced" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
