"""e2e: ``lora export-diff`` turns a real IA3 file into exact ``.diff`` weights for its base.

The IA3 file is a real sd-scripts + LyCORIS output (tests/fixtures/sd-scripts/loras/, SD 1.5);
the base is the lab's random-weight SD 1.5 (a diffusers folder). The export runs the lab's own
Python through the CLI; LyCORIS' own ``IA3Module`` then says what the merged weight is at two
strengths (tests/e2e/_ia3_diff_oracle.py), and ``base + strength * diff`` must equal it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_oracle import run_lab_oracle

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.outputs.lora_header import read_header

pytestmark = pytest.mark.e2e
ORACLE = Path(__file__).with_name("_ia3_diff_oracle.py")
IA3 = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "sd-scripts"
    / "loras"
    / "d_ia3_custompreset.safetensors"
)


def test_an_ia3_file_becomes_exact_diff_weights(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = lab_env / "models" / "sd15-random-diffusers"
    out = tmp_path / "published" / "oilpaint-ia3-diff.safetensors"
    argv = ["lora", "export-diff", str(IA3), "--base", str(base), "--out", str(out)]
    assert main([*argv, "--sd-scripts", str(lab_env)]) == 0
    said = capsys.readouterr()
    assert "modules" in said.out + said.err
    header = read_header(out)
    meta = header.metadata
    assert meta["kohya_orchestrator.exported_from"] == IA3.name  # a name, never a path
    assert not any(str(tmp_path) in v or "/root" in v for v in meta.values())
    got = run_lab_oracle(lab_env, ORACLE, IA3, out, base, timeout_s=900)
    assert got["extra"] == []
    assert got["diff_modules"] == got["ia3_modules"] > 0
    # fp16 weights: the base plus the exported difference is LyCORIS' merged weight
    assert got["worst"]["1.0"] < 2e-3 and got["worst"]["0.6"] < 2e-3, got
    # never replaces a file
    assert main([*argv, "--sd-scripts", str(lab_env)]) == 2
    assert "never replaced" in capsys.readouterr().err
