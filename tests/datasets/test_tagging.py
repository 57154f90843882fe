"""WD14 tagging through sd-scripts' own tagger: command building, option handling, safety."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
from PIL import Image

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.datasets.tagging import (
    TAGGER_SCRIPT,
    TaggerOptions,
    build_tagger_spec,
    check_before_tagging,
    run_tagger,
)
from kohya_orchestrator.errors import ConfigError


def _models(tmp_path: Path) -> str:
    """A model cache folder laid out the way sd-scripts' tagger looks it up."""
    (tmp_path / "wd14" / "SmilingWolf_wd-v1-4-convnext-tagger-v2").mkdir(
        parents=True, exist_ok=True
    )
    return str(tmp_path / "wd14")


def _images(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (32, 32), (i * 40, 80, 120)).save(folder / f"p{i}.png")


def test_spec_maps_every_option(tmp_path: Path) -> None:
    opts = TaggerOptions(
        model_dir="/models/wd14",
        general_threshold=0.3,
        character_threshold=0.9,
        undesired_tags=["watermark", "text"],
        always_first_tags=["zengxin oilpaint"],
        recursive=True,
        append_tags=True,
        batch_size=2,
    )
    spec = build_tagger_spec(
        opts, tmp_path, python=Path("/venv/bin/python"), sd_scripts_dir=Path("/sd")
    )
    argv = list(spec.argv)
    assert argv[:3] == ["/venv/bin/python", f"/sd/{TAGGER_SCRIPT}", str(tmp_path)]
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--model_dir"] == "/models/wd14"
    assert pairs["--general_threshold"] == "0.3" and pairs["--character_threshold"] == "0.9"
    assert pairs["--undesired_tags"] == "watermark,text"
    assert pairs["--always_first_tags"] == "zengxin oilpaint"
    assert pairs["--caption_extension"] == ".txt" and pairs["--batch_size"] == "2"
    for flag in ("--onnx", "--recursive", "--remove_underscore", "--append_tags"):
        assert flag in argv
    assert "--force_download" not in argv and "--use_rating_tags" not in argv
    assert spec.cwd == Path("/sd") and spec.env["PYTHONUNBUFFERED"] == "1"


def test_bad_threshold_is_a_config_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _images(tmp_path / "10_x")
    assert (
        main(
            [
                "dataset",
                "tag",
                str(tmp_path / "10_x"),
                "--model-dir",
                str(tmp_path),
                "--general-threshold",
                "1.5",
            ]
        )
        == 2
    )
    assert "general_threshold" in capsys.readouterr().err


def test_needs_a_model(tmp_path: Path) -> None:
    _images(tmp_path / "10_x")
    with pytest.raises(ConfigError, match="no tagger model given"):
        check_before_tagging(TaggerOptions(), tmp_path / "10_x")
    with pytest.raises(ConfigError, match="SmilingWolf_wd-v1-4-convnext-tagger-v2"):
        check_before_tagging(TaggerOptions(model_dir=str(tmp_path)), tmp_path / "10_x")


def test_existing_captions_are_refused_then_backed_up(tmp_path: Path) -> None:
    folder = tmp_path / "10_x"
    _images(folder)
    (folder / "p0.txt").write_text("my hand-edited tags", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"already have \.txt captions"):
        check_before_tagging(TaggerOptions(model_dir=_models(tmp_path)), folder)
    assert (
        check_before_tagging(TaggerOptions(model_dir=_models(tmp_path), append_tags=True), folder)
        == []
    )
    replaced = check_before_tagging(
        TaggerOptions(model_dir=_models(tmp_path), overwrite=True), folder
    )
    assert replaced == [folder / "p0.txt"]


FAKE_TAGGER = """
import sys, pathlib, time
folder = pathlib.Path(sys.argv[1])
images = sorted(p for p in folder.iterdir() if p.suffix == ".png")
print(f"found {len(images)} images.", flush=True)
for p in images:
    p.with_suffix(".txt").write_text("oil painting, brush strokes", encoding="utf-8")
sys.exit(int(dict(zip(sys.argv, sys.argv[1:])).get("--batch_size", "1")) - 4)
"""


def test_run_tagger_backs_up_and_counts(tmp_path: Path) -> None:
    """A stand-in tagger script (process plumbing only; the real tagger needs a model)."""
    sd = tmp_path / "sd"
    (sd / "finetune").mkdir(parents=True)
    (sd / TAGGER_SCRIPT).write_text(FAKE_TAGGER, encoding="utf-8")
    folder = tmp_path / "10_x"
    _images(folder)
    (folder / "p1.txt").write_text("old", encoding="utf-8")
    opts = TaggerOptions(model_dir=_models(tmp_path), overwrite=True)
    result = run_tagger(
        opts, folder, python=Path(sys.executable), sd_scripts_dir=sd, log_file=tmp_path / "tag.log"
    )
    assert result.ok and result.tagged == 3 and result.images == 3
    assert result.backup is not None
    assert (Path(result.backup) / "p1.txt").read_text() == "old"
    assert "found 3 images." in (tmp_path / "tag.log").read_text()
    bad = run_tagger(
        opts.model_copy(update={"batch_size": 5}),
        folder,
        python=Path(sys.executable),
        sd_scripts_dir=sd,
        log_file=tmp_path / "tag2.log",
    )
    assert bad.returncode == 1 and not bad.ok
