"""`dataset inspect` output for repeated findings, unreadable subsets and clean data, and
`dataset tag` end to end against a stand-in sd-scripts checkout (process plumbing only: the real
WD14 tagger needs a model download)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "datasets"))
from dsgen import make_subset

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.datasets.tagging import TAGGER_SCRIPT


# ----------------------------------------------------------------------------- inspect
def test_repeated_findings_are_grouped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "10_broken"
    folder.mkdir()
    for i in range(3):
        (folder / f"z{i}.png").write_bytes(b"")
    assert main(["dataset", "inspect", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("⨯ 3 × 0-byte file: sd-scripts stops on it")
    assert lines[start + 1 : start + 5] == [
        "    10_broken/z0.png",
        "    10_broken/z1.png",
        "    10_broken/z2.png",
        "    hint: remove it or copy the image again",
    ]
    for i in range(3, 7):
        (folder / f"z{i}.png").write_bytes(b"")
    assert main(["dataset", "inspect", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    start = lines.index("⨯ 7 × 0-byte file: sd-scripts stops on it")
    assert lines[start + 1 : start + 8] == [
        "    10_broken/z0.png",
        "    10_broken/z1.png",
        "    10_broken/z2.png",
        "    10_broken/z3.png",
        "    10_broken/z4.png",
        "    ... and 2 more",
        "    hint: remove it or copy the image again",
    ]
    row = next(line for line in lines if line.startswith("10_broken"))
    assert row.split("│")[4:6] == ["      0/7 ", " -     "]  # no readable size
    assert "7 error(s), 2 warning(s): sd-scripts would fail on this data" in captured.err


def test_clean_data_has_no_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_subset(tmp_path, "10_style", [(512, 512)] * 15)
    assert main(["dataset", "inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tags in 10_style: common 15, style 15, tag0 5, tag1 5, tag2 5" in out
    assert "trigger 'style' in 15/15 captions" in out
    assert "✓ no problems found" in out
    assert f"next: python -m kohya_orchestrator plan --train-dir {tmp_path} --epochs 10" in out


def test_uncaptioned_subset_prints_no_tag_or_trigger_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_subset(tmp_path, "10_style", [(512, 512)] * 2, captions=False)
    assert main(["dataset", "inspect", str(tmp_path), "--trigger", "style"]) == 0
    out = capsys.readouterr().out
    assert "tags in" not in out and "trigger 'style' in" not in out
    assert "2 image(s) have no .txt caption (img0000.png, img0001.png)" in out
    assert "✓ no errors; 2 warning(s) to look at" in out


# ----------------------------------------------------------------------------- tag
FAKE_TAGGER = """
import sys, pathlib
folder = pathlib.Path(sys.argv[1])
images = sorted(p for p in folder.iterdir() if p.suffix == ".png")
print(f"found {len(images)} images.", flush=True)
batch = sys.argv[sys.argv.index("--batch_size") + 1]
if batch == "5":
    raise ModuleNotFoundError("No module named 'onnxruntime'")
if batch == "6":
    raise RuntimeError("model.onnx: protobuf parsing failed")
for p in images:
    p.with_suffix(".txt").write_text("oil painting, brush strokes", encoding="utf-8")
"""


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in sd-scripts checkout with the tagger script, run by this test's Python."""
    sd = tmp_path / "sd-scripts"
    (sd / "library").mkdir(parents=True)
    (sd / "train_network.py").write_text("", encoding="utf-8")
    (sd / "finetune").mkdir()
    (sd / TAGGER_SCRIPT).write_text(FAKE_TAGGER, encoding="utf-8")
    monkeypatch.setenv("KOHYA_PYTHON", sys.executable)
    return sd


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """A model cache folder laid out the way sd-scripts' tagger looks it up."""
    folder = tmp_path / "wd14"
    (folder / "SmilingWolf_wd-v1-4-convnext-tagger-v2").mkdir(parents=True)
    return folder


def _argv(folder: Path, install: Path, models: Path, *more: str) -> list[str]:
    argv = ["dataset", "tag", str(folder), "--model-dir", str(models)]
    return [*argv, "--sd-scripts", str(install), *more]


def test_tag_dry_run_prints_the_command(
    tmp_path: Path, install: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_subset(tmp_path, "10_x", [(32, 32)] * 2, captions=False)
    argv = _argv(folder, install, models, "--dry-run", "--always-first-tags", "zx, oil")
    assert main(argv) == 0
    line = capsys.readouterr().out.strip()
    cd, _, command = line.partition(" && ")
    assert cd == f"cd {shlex.quote(str(install))}"
    words = shlex.split(command)
    assert words[:3] == [sys.executable, str(install / TAGGER_SCRIPT), str(folder.resolve())]
    assert words[words.index("--always_first_tags") + 1] == "zx,oil"
    assert not (folder / "img0000.txt").exists()


def test_tag_writes_captions_and_backs_up_the_old_ones(
    tmp_path: Path, install: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_subset(tmp_path, "10_x", [(32, 32)] * 3, captions=["old", None, None])
    log = tmp_path / "tag.log"
    assert main(_argv(folder, install, models, "--overwrite", "--log", str(log))) == 0
    out = capsys.readouterr().out
    assert f"tagging {folder} with sd-scripts' WD14 tagger (log: {log})" in out
    assert "original captions saved in" in out
    assert "✓ tagged 3 of 3 images" in out
    assert (folder / "img0000.txt").read_text(encoding="utf-8") == "oil painting, brush strokes"
    assert "found 3 images." in log.read_text(encoding="utf-8")


def test_a_failing_tagger_exits_1_with_its_error(
    tmp_path: Path, install: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_subset(tmp_path, "10_x", [(32, 32)] * 2, captions=False)
    log = tmp_path / "tag.log"
    argv = _argv(folder, install, models, "--batch-size", "5", "--log", str(log))
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "tagger exited 1; 0 of 2 images tagged" in captured.err
    assert "ModuleNotFoundError: No module named 'onnxruntime'" in captured.err
    assert f"full log: {log}" in captured.err
    assert captured.err.splitlines() == [
        "⨯ tagger exited 1; 0 of 2 images tagged",
        "⨯ ModuleNotFoundError: No module named 'onnxruntime'",
        "  hint: Install it into the Python that runs sd-scripts: "
        "`<venv python> -m pip install onnxruntime`.",
        f"  hint: full log: {log}",
    ]
    assert not (folder / "img0000.txt").exists()


def test_a_tagger_error_without_a_known_remedy(
    tmp_path: Path, install: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_subset(tmp_path, "10_x", [(32, 32)], captions=False)
    log = tmp_path / "tag.log"
    assert main(_argv(folder, install, models, "--batch-size", "6", "--log", str(log))) == 1
    assert capsys.readouterr().err.splitlines() == [
        "⨯ tagger exited 1; 0 of 1 images tagged",
        "⨯ RuntimeError: model.onnx: protobuf parsing failed",
        f"  hint: full log: {log}",
    ]


def test_tag_without_an_install_is_a_setup_error(
    tmp_path: Path,
    models: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = make_subset(tmp_path, "10_x", [(32, 32)], captions=False)
    monkeypatch.setenv("KOHYA_PYTHON", sys.executable)
    argv = ["dataset", "tag", str(folder), "--model-dir", str(models)]
    assert main([*argv, "--sd-scripts", str(tmp_path / "nowhere"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"argument {tmp_path / 'nowhere'}: does not exist" in err
