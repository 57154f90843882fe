"""Generated datasets + settings on which our step plan must equal sd-scripts' own numbers.

The e2e test builds each case's datasets with sd-scripts' code (via _sd_dataset_oracle.py) and
compares live; test_plan_golden compares with sd_scripts_expected.json, recorded by the e2e test
(`pytest -m e2e tests/datasets/test_e2e_sd_scripts.py --update-goldens`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsgen import VARIED, cycle_sizes, make_image, make_subset

from kohya_orchestrator.datasets.plan import plan_dataset, plan_job
from kohya_orchestrator.datasets.plan_models import StepPlan
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.render.toml import render_dataset_toml


@dataclass
class Case:
    """One comparison: a job (rendered to a dataset TOML) or a folder tree (sd-scripts' legacy
    --train_data_dir/--reg_data_dir)."""

    name: str
    job: dict[str, Any] | None = None
    train_dir: Path | None = None
    reg_dir: Path | None = None
    tree_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 1
    exact: bool = True
    """False where sd-scripts itself is not predictable (a split without validation_seed)."""

    def plan(self) -> StepPlan:
        if self.job is not None:
            return plan_job(validate_job(self.job))
        assert self.train_dir is not None
        return plan_dataset(self.train_dir, self.reg_dir, seed=self.seed, **self.tree_options)

    def oracle_case(self, workdir: Path) -> dict[str, Any]:
        """The argv sd-scripts' own argument parser gets for this case."""
        if self.job is not None:
            job = validate_job(self.job)
            toml_path = workdir / f"{self.name}.toml"
            toml_path.write_text(render_dataset_toml(job), encoding="utf-8")
            t = job.training
            argv = ["--dataset_config", str(toml_path), "--seed", str(t.seed)]
            argv += ["--gradient_accumulation_steps", str(t.gradient_accumulation_steps)]
            if t.max_train_epochs is not None:
                argv += ["--max_train_epochs", str(t.max_train_epochs)]
            return {"argv": argv, "seed": t.seed, "legacy": False}
        o = self.tree_options
        res = o["resolution"]
        argv = ["--train_data_dir", str(self.train_dir), "--resolution", f"{res},{res}"]
        if self.reg_dir is not None:
            argv += ["--reg_data_dir", str(self.reg_dir)]
        argv += ["--train_batch_size", str(o["batch_size"])]
        argv += ["--max_train_epochs", str(o["max_train_epochs"])]
        if o.get("enable_bucket", True):
            argv += ["--enable_bucket"]
            for key in ("min_bucket_reso", "max_bucket_reso", "bucket_reso_steps"):
                if key in o:
                    argv += [f"--{key}", str(o[key])]
        return {"argv": argv, "seed": self.seed, "legacy": True}


def _job(dataset: dict[str, Any], **training: Any) -> dict[str, Any]:
    return {
        "model": {"pretrained_model_name_or_path": "model.safetensors"},
        "dataset": dataset,
        "training": {"seed": 42, **training},
    }


def _counts_only(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "datasets": [
            {
                "images": sum(b["count"] for b in d["buckets"]),
                "train_images_with_repeats": d["train_images_with_repeats"],
                "reg_images_with_repeats": d["reg_images_with_repeats"],
            }
            for d in summary["datasets"]
        ]
    }


def summary(plan: StepPlan, exact: bool = True) -> dict[str, Any]:
    """The fields the oracle reports, from our plan (only the counts when not ``exact``)."""
    out = {
        "batches": plan.dataset_batches,
        "total_steps": plan.total_steps if plan.max_train_epochs is not None else None,
        "datasets": [
            {
                "buckets": [
                    {"resolution": list(b.resolution), "count": b.count} for b in d.buckets
                ],
                "batches": d.batches,
                "train_images_with_repeats": d.train_images_with_repeats,
                "reg_images_with_repeats": d.reg_images_with_repeats,
            }
            for d in plan.datasets
        ],
    }
    return out if exact else _counts_only(out)


def oracle_summary(result: dict[str, Any], exact: bool = True) -> dict[str, Any]:
    """The same fields from the oracle's output (subset details dropped)."""
    out = {
        "batches": result["batches"],
        "total_steps": result["total_steps"],
        "datasets": [
            {k: d[k] for k in ("buckets", "batches", "train_images_with_repeats",
                               "reg_images_with_repeats")}
            for d in result["datasets"]
        ],
    }  # fmt: skip
    return out if exact else _counts_only(out)


def build_cases(root: Path) -> list[Case]:
    """Generate every case's images under ``root`` (about 500 small files, ~1 s)."""
    cases: list[Case] = []

    # A: three train subsets (Unicode, spaces), two reg subsets that outnumber them
    a = root / "a"
    make_subset(a / "train", "10_zengxin oilpaint", cycle_sizes(23), seed=1)
    make_subset(a / "train", "3_sks dog", cycle_sizes(11, VARIED[5:]), seed=2)
    make_subset(a / "train", "2_日本語 スタイル", cycle_sizes(9, VARIED[2:]), seed=3)
    make_subset(a / "reg", "1_dog", cycle_sizes(200, VARIED[1:]), seed=4, captions=False)
    make_subset(a / "reg", "2_cat", cycle_sizes(30), seed=5, captions=False)
    subsets = [
        {"image_dir": str(a / "train" / n)}
        for n in ("10_zengxin oilpaint", "3_sks dog", "2_日本語 スタイル")
    ] + [{"image_dir": str(a / "reg" / n), "is_reg": True} for n in ("1_dog", "2_cat")]
    ds = {"resolution": 256, "batch_size": 3, "min_bucket_reso": 128, "max_bucket_reso": 512}
    cases.append(Case("reg_outnumbers_train", _job({**ds, "subsets": subsets}, max_train_epochs=4)))

    # B: bucket_no_upscale, min/max rounded to steps, WebP with alpha (imagesize quirk), BMP, JPEG
    b = root / "b" / "5_mixed formats"
    make_subset(b.parent, b.name, cycle_sizes(12), seed=6)
    for i, size in enumerate([(600, 600), (513, 300), (300, 517), (1000, 1000)]):
        make_image(b / f"alpha{i}.webp", size, mode="RGBA", seed=100 + i)
        make_image(b / f"photo{i}.jpg", size, seed=200 + i)
        make_image(b / f"old{i}.bmp", size, seed=300 + i)
        make_image(b / f"lossless{i}.webp", size, seed=400 + i, lossless=True)
    ds = {
        "resolution": [256, 320],
        "batch_size": 2,
        "min_bucket_reso": 100,
        "max_bucket_reso": 500,
        "bucket_no_upscale": True,
        "subsets": [{"image_dir": str(b)}],
    }
    job = _job(ds, max_train_epochs=3, gradient_accumulation_steps=3)
    cases.append(Case("no_upscale_formats", job))

    # C: no bucketing; reg fewer than train (several balancing passes); steps, not epochs
    c = root / "c"
    make_subset(c / "train", "4_style", cycle_sizes(17), seed=7)
    make_subset(c / "reg", "1_person", cycle_sizes(5), seed=8, captions=False)
    ds = {
        "resolution": 192,
        "batch_size": 4,
        "enable_bucket": False,
        "subsets": [
            {"image_dir": str(c / "train" / "4_style")},
            {"image_dir": str(c / "reg" / "1_person"), "is_reg": True},
        ],
    }
    cases.append(Case("no_bucket_steps", _job(ds, max_train_steps=100)))

    # D: validation split with a validation seed; E: split seeded by the training seed only
    d = root / "d"
    make_subset(d, "6_split me", cycle_sizes(37), seed=9)
    make_subset(d, "2_and me", cycle_sizes(21, VARIED[4:]), seed=10)
    split_subsets = [{"image_dir": str(d / "6_split me")}, {"image_dir": str(d / "2_and me")}]
    ds = {"resolution": 256, "batch_size": 2, "min_bucket_reso": 128, "max_bucket_reso": 512}
    cases.append(
        Case(
            "validation_seeded",
            _job(
                {**ds, "validation_split": 0.25, "validation_seed": 7, "subsets": split_subsets},
                max_train_epochs=2,
            ),
        )
    )
    cases.append(
        Case(
            "validation_training_seed",
            _job({**ds, "validation_split": 0.2, "subsets": split_subsets}, max_train_epochs=2),
            exact=False,
        )
    )

    # F: two datasets with their own resolution/batch; explicit repeats; a duplicate image_dir
    f = root / "f"
    make_subset(f, "9_first", cycle_sizes(19), seed=11)
    make_subset(f, "second", cycle_sizes(14, VARIED[7:]), seed=12)
    datasets = [
        {
            "resolution": 256,
            "batch_size": 4,
            "min_bucket_reso": 128,
            "max_bucket_reso": 512,
            "subsets": [
                {"image_dir": str(f / "9_first")},
                {"image_dir": str(f / "second"), "num_repeats": 3},
                {"image_dir": str(f / "9_first"), "num_repeats": 5},
            ],
        },
        {
            "resolution": 320,
            "batch_size": 3,
            "bucket_reso_steps": 64,
            "min_bucket_reso": 192,
            "max_bucket_reso": 640,
            "subsets": [{"image_dir": str(f / "second"), "num_repeats": 2}],
        },
    ]
    cases.append(Case("two_datasets", _job({"datasets": datasets}, max_train_epochs=5)))

    # G: SDXL-like 32-px steps at 512
    g = root / "g"
    make_subset(g, "8_xl", cycle_sizes(28), seed=13)
    ds = {
        "resolution": 512,
        "batch_size": 5,
        "bucket_reso_steps": 32,
        "subsets": [{"image_dir": str(g / "8_xl")}],
    }
    job = _job(ds, max_train_epochs=2)
    job["model"]["family"] = "sdxl"
    cases.append(Case("sdxl_steps_32", job))

    # H: sd-scripts' legacy folder convention, with folders it skips
    h = root / "h"
    make_subset(h / "train", "12_ünïcode name", cycle_sizes(13), seed=14)
    make_subset(h / "train", "5_sks_dog", cycle_sizes(8, VARIED[3:]), seed=15)
    make_subset(h / "train", "abc_no repeats", cycle_sizes(3), seed=16)
    make_subset(h / "train", "0_zero", cycle_sizes(3), seed=17)
    make_subset(h / "train", ".ipynb_checkpoints", cycle_sizes(2), seed=18)
    (h / "train" / "7_empty").mkdir()
    make_image(h / "train" / "loose.png", (64, 64))
    make_subset(h / "reg", "1_reg", cycle_sizes(40), seed=19, captions=False)
    options = {
        "resolution": 256,
        "batch_size": 2,
        "max_train_epochs": 3,
        "min_bucket_reso": 128,
        "max_bucket_reso": 512,
    }
    cases.append(
        Case("legacy_tree", train_dir=h / "train", reg_dir=h / "reg", tree_options=options)
    )
    return cases
