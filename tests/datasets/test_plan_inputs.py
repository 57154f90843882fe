"""Plan inputs from a job: values fall back like sd-scripts' dataset config."""

from __future__ import annotations

from pathlib import Path

from dsgen import make_subset

from kohya_orchestrator.datasets.plan import plan_job
from kohya_orchestrator.jobs.loading import validate_job


class TestJob:
    def _job(self, dataset: dict[str, object], **training: object) -> dict[str, object]:
        return {
            "model": {"pretrained_model_name_or_path": "m.safetensors"},
            "dataset": dataset,
            "training": {"max_train_epochs": 2, **training},
        }

    def test_fallbacks_subset_then_dataset(self, tmp_path: Path) -> None:
        make_subset(tmp_path, "4_a", [(512, 512)] * 3)
        make_subset(tmp_path, "plain", [(512, 512)] * 2)
        data = self._job(
            {
                "resolution": 512,
                "min_bucket_reso": 128,
                "num_repeats": 7,
                "subsets": [
                    {"image_dir": str(tmp_path / "4_a")},
                    {"image_dir": str(tmp_path / "plain")},
                ],
            },
            gradient_accumulation_steps=2,
        )
        plan = plan_job(validate_job(data))
        subsets = plan.datasets[0].subsets
        assert [s.num_repeats for s in subsets] == [4, 7]  # the folder name, then the default
        assert plan.datasets[0].min_bucket_reso == 128
        assert (plan.dataset_batches, plan.steps_per_epoch, plan.total_steps) == (26, 13, 26)

    def test_finetuning_subsets_are_left_out(self, tmp_path: Path) -> None:
        make_subset(tmp_path, "4_a", [(512, 512)])
        data = self._job(
            {
                "datasets": [
                    {"subsets": [{"image_dir": str(tmp_path / "4_a")}]},
                    {"subsets": [{"metadata_file": str(tmp_path / "meta.json")}]},
                ]
            }
        )
        plan = plan_job(validate_job(data))
        assert "finetuning_subset" in [w.code for w in plan.warnings]
        assert plan.train_images_with_repeats == 4
