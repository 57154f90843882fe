"""`plan JOB.toml` and `plan --train-dir DIR` through the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "datasets"))
from dsgen import make_subset

from kohya_orchestrator.cli.main import main


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    # 5 square + 3 wide images x 10 repeats: buckets of 50 and 30, batch 4 -> 13 + 8 = 21 batches
    make_subset(tmp_path / "train", "10_zengxin oilpaint", [(512, 512)] * 5 + [(1024, 256)] * 3)
    make_subset(tmp_path / "reg", "1_painting", [(512, 512)] * 4, captions=False)
    return tmp_path


def test_tree_json(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--train-dir", str(tree / "train"), "--batch-size", "4", "--epochs", "3"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["train_images_with_repeats"] == 80
    assert data["buckets"] == [
        {"resolution": [512, 512], "count": 50, "batches": 13},
        {"resolution": [1024, 256], "count": 30, "batches": 8},
    ]
    assert (data["batches_per_epoch"], data["steps_per_epoch"]) == (21, 21)
    assert (data["epochs"], data["total_steps"], data["reg_images_with_repeats"]) == (3, 63, 0)
    assert data["warnings"] == []


def test_tree_human_view_explains_the_difference(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["plan", "--train-dir", str(tree / "train"), "--reg-dir", str(tree / "reg")]
    argv += ["--batch-size", "4", "--epochs", "3", "--grad-accum", "2", "--resolution", "512"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "steps = (image_nums * repeat) * epochs / batch_size = (8 × 10) × 3 / 4 = 60" in out
    assert "sd-scripts: 63 steps" in out
    assert "reg images are balanced against the train images: 80 reg samples" in out
    assert "each of the 2 buckets rounds up to whole batches" in out
    assert "one optimizer step takes 2 batches: 21 steps per epoch" in out
    assert "num batches per epoch: 41" in out and "total optimization steps: 63" in out


def _job(tmp_path: Path, image_dir: Path) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(
        '[model]\npretrained_model_name_or_path = "sd15.safetensors"\n'
        f"[dataset]\nbatch_size = 4\n[[dataset.subsets]]\nimage_dir = '{image_dir}'\n"
        "[training]\nmax_train_epochs = 2\n",
        encoding="utf-8",
    )
    return path


def test_job_with_set(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = _job(tree, tree / "train" / "10_zengxin oilpaint")
    assert main(["plan", str(job), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_steps"] == 42
    assert main(["plan", str(job), "--set", "dataset.batch_size=1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["batches_per_epoch"], data["total_steps"]) == (80, 160)
    assert main(["plan", str(job), "--num-processes", "2"]) == 0
    assert "2 processes share each epoch's 21 batches: 11 per process" in capsys.readouterr().out


def test_job_plan_with_bad_data_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_subset(tmp_path, "10_x", [(512, 512)] * 2)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["plan", str(_job(tmp_path, folder))]) == 1
    out = capsys.readouterr().out
    assert "cannot read the image size" in out and "dataset inspect" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "give a job file or --train-dir DIR"),
        (["job.toml", "--train-dir", "x"], "not both"),
        (["job.toml", "--batch-size", "2"], "only for --train-dir"),
        (["--train-dir", "x", "--resolution", "big"], "expected 512 or 512,768"),
        (["--train-dir", "x", "--batch-size", "0"], "must be 1 or more"),
        (["--train-dir", "x", "--validation-split", "1.5"], "must be in [0, 1)"),
        (["--train-dir", "nope"], "train folder does not exist"),
        (["missing.toml"], "job file not found"),
    ],
)
def test_user_errors_exit_2(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.toml").write_text("")
    assert main(["plan", *argv]) == 2
    assert fragment in capsys.readouterr().err
