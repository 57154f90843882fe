"""The plan as plain text."""

from __future__ import annotations

from pathlib import Path

from dsgen import make_subset

from kohya_orchestrator.datasets.plan import plan_dataset
from kohya_orchestrator.datasets.plan_text import render_plan_text


def _tree(root: Path, subsets: dict[str, list[tuple[int, int]]], reg: bool = False) -> Path:
    for name, sizes in subsets.items():
        make_subset(root, name, sizes, captions=not reg)
    return root


def test_render_plan_text(tmp_path: Path) -> None:
    _tree(tmp_path / "train", {"5_zengxin oilpaint": [(512, 512)] * 3 + [(1024, 256)]})
    _tree(tmp_path / "reg", {"1_painting": [(512, 512)] * 2}, reg=True)
    plan = plan_dataset(tmp_path / "train", tmp_path / "reg", batch_size=2, max_train_steps=30)
    text = render_plan_text(plan)
    lines = text.splitlines()
    assert lines[0] == f"Plan for {tmp_path / 'train'}"
    assert "  5_zengxin oilpaint       4        5              20         20" in lines
    assert "  1_painting (reg)         2        1               2         20" in lines
    assert "  total                 40       21" in lines
    assert "seed formula: steps = (image_nums * repeat) * epochs / batch_size" in text
    assert "  = 2 epoch(s) × 21 steps per epoch, stopping at step 30" in lines
    assert "  num reg images: 2" in lines
