"""Step-plan arithmetic: reg balancing, splits, bucket rounding, steps and epochs.

The recorded dataset numbers live in sd_scripts_expected.json (see test_e2e_sd_scripts.py); the
bucket set and choice are tested in test_buckets.py.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from dsgen import cycle_sizes, make_image, make_subset
from plancases import build_cases, oracle_summary, summary

from kohya_orchestrator.datasets.plan import plan_dataset

EXPECTED = Path(__file__).resolve().parent / "sd_scripts_expected.json"


def _tree(root: Path, subsets: dict[str, list[tuple[int, int]]], reg: bool = False) -> Path:
    for name, sizes in subsets.items():
        make_subset(root, name, sizes, captions=not reg)
    return root


class TestCounts:
    def test_bucket_rounding(self, tmp_path: Path) -> None:
        # 3 images x 3 repeats in each of two buckets, batch 4: ceil(9/4) * 2 = 6, not ceil(18/4) = 5
        _tree(tmp_path, {"3_a": [(512, 512)] * 3 + [(1024, 256)] * 3})
        plan = plan_dataset(tmp_path, batch_size=4, max_train_epochs=2)
        assert [(b.resolution, b.count, b.batches) for b in plan.buckets] == [
            ((512, 512), 9, 3),
            ((1024, 256), 9, 3),
        ]
        assert (plan.dataset_batches, plan.steps_per_epoch, plan.total_steps) == (6, 6, 12)
        causes = [d.cause for d in plan.differences]
        assert causes == ["bucket_rounding"]
        assert plan.seed_formula.endswith("= (6 × 3) × 2 / 4 = 9")

    def test_reg_balanced_first_pass_then_plus_one(self, tmp_path: Path) -> None:
        _tree(tmp_path / "train", {"5_t": [(512, 512)] * 4})  # 20 train samples
        _tree(tmp_path / "reg", {"3_r": [(512, 512)] * 3}, reg=True)  # 9 raw, balanced to 20
        plan = plan_dataset(tmp_path / "train", tmp_path / "reg", max_train_epochs=1)
        reg = plan.datasets[0].subsets[1]
        # first pass 3+3+3 = 9, then +1 each: 12, 15, 18, then 2 more: 20
        assert (plan.reg_images_with_repeats, reg.samples_per_epoch) == (9, 20)
        assert plan.samples_per_epoch == 40
        assert plan.dataset_batches == 40

    def test_reg_outnumbering_train_is_cut(self, tmp_path: Path) -> None:
        _tree(tmp_path / "train", {"1_t": [(512, 512)] * 3})
        _tree(tmp_path / "reg", {"2_r": [(512, 512)] * 5}, reg=True)
        plan = plan_dataset(tmp_path / "train", tmp_path / "reg", max_train_epochs=1)
        assert plan.datasets[0].subsets[1].samples_per_epoch == 4  # two images x 2 repeats
        assert [w.code for w in plan.warnings] == ["reg_unused"]

    def test_validation_split_with_seed_is_exact(self, tmp_path: Path) -> None:
        sizes = cycle_sizes(10)
        _tree(tmp_path, {"2_a": sizes})
        plan = plan_dataset(tmp_path, validation_split=0.25, validation_seed=3, max_train_epochs=1)
        assert plan.exact
        names = [f"img{i:04d}.png" for i in range(10)]
        pairs = [(n, None) for n in names]
        random.Random(3).shuffle(pairs)
        assert plan.datasets[0].subsets[0].image_count == math.ceil(10 * 0.75) == 8
        assert plan.validation_images == round(10 * 0.25)
        assert plan.train_images_with_repeats == 16
        assert next(d.cause for d in plan.differences) == "validation_split"

    def test_validation_split_without_seed_is_marked_approximate(self, tmp_path: Path) -> None:
        _tree(tmp_path, {"2_a": cycle_sizes(10)})
        plan = plan_dataset(tmp_path, validation_split=0.5, max_train_epochs=1, seed=1)
        assert not plan.exact
        assert "split_unseeded" in [w.code for w in plan.warnings]
        assert plan.train_images_with_repeats == 10


class TestSteps:
    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        return _tree(tmp_path, {"10_a": [(512, 512)] * 7})  # 70 samples

    def test_grad_accum_and_processes(self, tree: Path) -> None:
        plan = plan_dataset(
            tree,
            batch_size=2,
            max_train_epochs=3,
            gradient_accumulation_steps=4,
            num_processes=2,
        )
        # 35 batches; ceil(35/2) = 18 per process; ceil(18/4) = 5 steps; 3 epochs
        assert (plan.dataset_batches, plan.batches_per_epoch) == (35, 18)
        assert (plan.steps_per_epoch, plan.epochs, plan.total_steps) == (5, 3, 15)
        assert [d.cause for d in plan.differences] == ["num_processes", "gradient_accumulation"]

    def test_epochs_win_over_steps(self, tree: Path) -> None:
        plan = plan_dataset(tree, max_train_epochs=2, max_train_steps=999)
        assert plan.total_steps == 140

    def test_steps_without_epochs(self, tree: Path) -> None:
        plan = plan_dataset(tree, max_train_steps=100)
        assert (plan.total_steps, plan.epochs) == (100, 2)
        assert "partial_epoch" in [w.code for w in plan.warnings]

    def test_default_1600_steps(self, tree: Path) -> None:
        plan = plan_dataset(tree)
        assert (plan.total_steps, plan.epochs) == (1600, 23)
        assert "default_steps" in [w.code for w in plan.warnings]

    def test_no_data(self, tmp_path: Path) -> None:
        (tmp_path / "10_empty").mkdir()
        plan = plan_dataset(tmp_path, max_train_epochs=2)
        assert (plan.total_steps, plan.epochs, plan.dataset_batches) == (0, 0, 0)
        assert {"no_subsets", "no_data"} <= {e.code for e in plan.errors}


class TestBadImages:
    def test_unreadable_image_is_an_error_and_left_out(self, tmp_path: Path) -> None:
        folder = make_subset(tmp_path, "2_a", [(512, 512)] * 2)
        (folder / "zero.png").write_bytes(b"")
        (folder / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
        plan = plan_dataset(tmp_path, max_train_epochs=1)
        assert [e.code for e in plan.errors] == ["unreadable_image", "unreadable_image"]
        assert plan.samples_per_epoch == 4 and not plan.exact

    def test_zero_bucket_with_no_upscale(self, tmp_path: Path) -> None:
        folder = make_subset(tmp_path, "2_a", [(512, 512)])
        make_image(folder / "small.png", (40, 300))
        plan = plan_dataset(tmp_path, bucket_no_upscale=True, max_train_epochs=1)
        assert [e.code for e in plan.errors] == ["zero_bucket"]

    def test_min_max_rounding_and_assertions(self, tmp_path: Path) -> None:
        make_subset(tmp_path, "2_a", [(512, 512)])
        plan = plan_dataset(tmp_path, min_bucket_reso=300, max_bucket_reso=500, max_train_epochs=1)
        codes = [w.code for w in plan.warnings]
        assert codes[:2] == ["min_reso_rounded", "max_reso_rounded"]
        assert (plan.datasets[0].min_bucket_reso, plan.datasets[0].max_bucket_reso) == (256, 512)
        plan = plan_dataset(tmp_path, min_bucket_reso=640, max_train_epochs=1)
        assert [e.code for e in plan.errors] == ["min_reso_too_big"]


@pytest.fixture(scope="module")
def golden_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return {c.name: c for c in build_cases(tmp_path_factory.mktemp("golden"))}


@pytest.mark.parametrize("name", sorted(json.loads(EXPECTED.read_text("utf-8"))))
def test_plan_equals_recorded_sd_scripts(name: str, golden_cases: dict[str, object]) -> None:
    """The e2e cases against what sd-scripts computed for them (no lab needed)."""
    case = golden_cases[name]
    expected = json.loads(EXPECTED.read_text("utf-8"))[name]
    recorded = {"batches": expected["batches"], "total_steps": expected["total_steps"]}
    recorded["datasets"] = expected["datasets"]
    plan = case.plan()  # type: ignore[attr-defined]
    exact = case.exact  # type: ignore[attr-defined]
    assert summary(plan, exact) == oracle_summary(recorded, exact)
