"""e2e: sd-scripts' real WD14 tagger script, launched by `dataset tag`, on a synthetic model.

The tagger model is the user's to have (none can be downloaded here), so the test writes a tiny
ONNX model in the WD14 layout with the kohya venv's own onnx package. Skips when the kohya venv
has no onnx/onnxruntime (the tagger needs them for --onnx).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from kohya_orchestrator.cli.main import main

pytestmark = pytest.mark.e2e
REPO_DIR = "SmilingWolf_wd-v1-4-convnext-tagger-v2"  # sd-scripts' default repo, as a folder name


def test_dataset_tag_with_the_real_tagger(
    lab_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    python = lab_env / "venv" / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import onnx, onnxruntime"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(
            "the kohya venv has no onnx/onnxruntime: <venv>/bin/python -m pip install onnx onnxruntime"
        )
    models = tmp_path / "wd14"
    subprocess.run(
        [
            str(python),
            str(Path(__file__).with_name("_make_tagger_model.py")),
            str(models / REPO_DIR),
        ],
        check=True,
        capture_output=True,
    )
    folder = tmp_path / "img" / "20_zengxin oilpaint"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (96, 64), (200, 100 + i * 30, 40)).save(folder / f"p{i}.png")
    (folder / "p0.txt").write_text("hand, edited", encoding="utf-8")
    rc = main(
        [
            "dataset",
            "tag",
            str(folder),
            "--model-dir",
            str(models),
            "--undesired-tags",
            "watermark",
            "--always-first-tags",
            "brush strokes",
            "--batch-size",
            "1",
            "--overwrite",
            "--log",
            str(tmp_path / "tag.log"),
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err + (tmp_path / "tag.log").read_text(errors="replace")[-3000:]
    assert "tagged 3 of 3 images" in out.out
    for i in range(3):
        assert (folder / f"p{i}.txt").read_text(
            encoding="utf-8"
        ).strip() == "brush strokes, oil painting"
    (backup,) = (folder / ".caption-backups").iterdir()
    assert (backup / "p0.txt").read_text(encoding="utf-8") == "hand, edited"
