"""e2e: random jobs across the whole schema mean to sd-scripts exactly what they say.

A hypothesis strategy draws jobs from the job models themselves: for every field of the training,
scheduler and dataset sections, of each network algo and of each optimizer type, a value of the
field's own type within its bounds (or none, leaving sd-scripts' default), on four families
(SD1.5, SDXL, FLUX.1, SD3), datasets of one or two subsets with hostile names (spaces, CJK,
quotes, a backslash). Each job is either refused by validation, every problem naming a key path, a
reason and a fix, or rendered; then sd-scripts itself, in the lab's venv (ONE subprocess for all),
reads every rendered pair with its own parser, ``read_config_from_file``, ``verify_training_args``,
the trainer's ``key=value`` split of ``network_args`` / ``optimizer_args`` / ``lr_scheduler_args``
and the dataset blueprint, and the test checks every value means what the job says.

``EXAMPLES`` follows the hypothesis profile: ``pytest -m e2e --hypothesis-profile=long`` draws
thousands (tests/conftest.py registers it); the default draws a few hundred.
"""

from __future__ import annotations

import random
import types
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from lab_oracle import collect_examples, render_case, run_schema_oracle
from pydantic.fields import FieldInfo

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob
from kohya_orchestrator.models.dataset import DatasetConfig, DreamBoothSubset
from kohya_orchestrator.models.network import LYCORIS_BUILTIN_PRESETS
from kohya_orchestrator.models.optimizer import SchedulerConfig
from kohya_orchestrator.models.training import TrainingConfig
from kohya_orchestrator.render.toml import (
    RenderPaths,
    network_args,
    optimizer_args,
    training_config_dict,
)

pytestmark = pytest.mark.e2e
EXAMPLES = max(300, settings.default.max_examples)

# Fields whose values are paths, names or free text: fixed by the base job, not drawn.
SKIP = {
    "output_dir", "output_name", "resume", "logging_dir", "log_prefix", "log_with",
    "training_comment", "network_weights", "image_dir", "metadata_file", "subsets", "datasets",
    "kind", "type", "algo", "preset", "lr_scheduler_args", "extra_args", "metadata_title",
    "metadata_author", "metadata_description", "metadata_license", "metadata_tags",
    "metadata_trigger_phrase", "block_dims", "block_alphas", "conv_block_dims",
    "conv_block_alphas", "down_lr_weight", "mid_lr_weight", "up_lr_weight", "save_state",
    "save_state_on_train_end", "validation_split", "validation_seed", "lowram", "highvram",
}  # fmt: skip
TEXT = ["oil", "zengxin oilpaint", "曾鑫", "a, b", "|||", " ", "it's"]
FAMILIES: dict[str, dict[str, Any]] = {
    "sd15": {"pretrained_model_name_or_path": "/m/sd15.safetensors"},
    "sdxl": {"family": "sdxl", "pretrained_model_name_or_path": "/m/sdxl.safetensors"},
    "flux": {
        "family": "flux",
        "pretrained_model_name_or_path": "/m/flux.safetensors",
        "clip_l": "/m/clip_l.safetensors",
        "t5xxl": "/m/t5xxl.safetensors",
        "ae": "/m/ae.safetensors",
    },
    "sd3": {
        "family": "sd3",
        "pretrained_model_name_or_path": "/m/sd3.safetensors",
        "clip_l": "/m/clip_l.safetensors",
        "clip_g": "/m/clip_g.safetensors",
        "t5xxl": "/m/t5xxl.safetensors",
    },
}
FOLDERS = ["20_zengxin oilpaint", "3_曾鑫 油画", '10_it\'s a "test"', "5_a\\b", "1_x"]


def _bounds(info: FieldInfo) -> tuple[float | None, float | None, bool, bool]:
    low = high = None
    low_open = high_open = False
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            low = m.ge  # type: ignore[assignment]
        elif isinstance(m, annotated_types.Gt):
            low, low_open = m.gt, True  # type: ignore[assignment]
        elif isinstance(m, annotated_types.Le):
            high = m.le  # type: ignore[assignment]
        elif isinstance(m, annotated_types.Lt):
            high, high_open = m.lt, True  # type: ignore[assignment]
    return low, high, low_open, high_open


def _for_type(tp: Any, info: FieldInfo) -> st.SearchStrategy[Any] | None:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _for_type(args[0], info)
    if origin in (typing.Union, types.UnionType):
        found = [_for_type(a, info) for a in args if a is not type(None)]
        options = [s for s in found if s is not None]
        return st.one_of(options) if options else None
    if origin is typing.Literal:
        return st.sampled_from(args)
    if tp is bool:
        return st.booleans()
    low, high, low_open, high_open = _bounds(info)
    if tp is int:
        lo = int(low) + (1 if low_open else 0) if low is not None else 0
        hi = int(high) - (1 if high_open else 0) if high is not None else max(lo, 0) + 2000
        return st.integers(lo, hi)
    if tp is float:
        lo = float(low) if low is not None else 0.0
        hi = float(high) if high is not None else max(lo, 0.0) + 1.0
        return st.one_of(
            st.floats(lo, hi, exclude_min=low_open, exclude_max=high_open, allow_nan=False),
            st.sampled_from([v for v in (1e-4, 5e-5, 0.1, 0.5, 1.0) if lo <= v <= hi]),
        )
    if tp is str:
        return st.sampled_from(TEXT)
    if origin in (list, tuple):
        inner = _for_type(args[0], info) if args else None
        if inner is None:
            return None
        if origin is tuple and len(args) == 2 and args[1] is not Ellipsis:
            second = _for_type(args[1], info)
            return st.tuples(inner, inner if second is None else second).map(list)
        return st.lists(inner, min_size=1, max_size=3)
    return None


def _section(draw: st.DrawFn, model: type, chance: float, rng: Any) -> dict[str, Any]:
    """Some of ``model``'s fields, each with probability ``chance`` (``rng``: a
    Random seeded by hypothesis, uniform: hypothesis' own draws favour 0 and would pick almost
    every field)."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():  # type: ignore[attr-defined]
        if name in SKIP or rng.random() > chance:
            continue
        strategy = _for_type(info.annotation, info)
        if strategy is not None:
            out[name] = draw(strategy)
    return out


def _union_members(field: str) -> list[type]:
    annotation = TrainingJob.model_fields[field].annotation
    members = typing.get_args(annotation)
    if members and typing.get_origin(annotation) is typing.Annotated:
        members = typing.get_args(members[0])
    return [
        typing.get_args(m)[0] if typing.get_origin(m) is typing.Annotated else m for m in members
    ]


NETWORKS = _union_members("network")
OPTIMIZERS = [m for m in _union_members("optimizer") if m.__name__ != "CustomOptimizer"]


@st.composite
def job_data(draw: st.DrawFn) -> dict[str, Any]:
    rng = random.Random(draw(st.integers(0, 2**32)))  # uniform choices; values from hypothesis
    family = rng.choice(sorted(FAMILIES))
    net_cls = rng.choice(NETWORKS)
    network = {"algo": typing.get_args(net_cls.model_fields["algo"].annotation)[0]}
    network |= _section(draw, net_cls, 0.15, rng)
    if "preset" in net_cls.model_fields and draw(st.booleans()):
        network["preset"] = draw(st.sampled_from(LYCORIS_BUILTIN_PRESETS))
    opt_cls = rng.choice(OPTIMIZERS)
    optimizer = {
        "type": draw(st.sampled_from(typing.get_args(opt_cls.model_fields["type"].annotation)))
    }
    optimizer |= _section(draw, opt_cls, 0.2, rng)
    folders = rng.sample(FOLDERS, rng.choice([1, 1, 2]))
    subsets = []
    for folder in folders:
        subset = {"image_dir": f"/data/img/{folder}"} | _section(draw, DreamBoothSubset, 0.1, rng)
        subset.pop("is_reg", None)
        subsets.append(subset)
    dataset = _section(draw, DatasetConfig, 0.1, rng) | {"subsets": subsets}
    training = _section(draw, TrainingConfig, 0.06, rng) | {
        "output_dir": "/out",
        "output_name": "oracle",
        "mixed_precision": draw(st.sampled_from(["no", "fp16", "bf16"])),
    }
    if "max_train_steps" not in training:
        training["max_train_epochs"] = draw(st.integers(1, 20))
    return {
        "model": dict(FAMILIES[family]),
        "network": network,
        "optimizer": optimizer,
        "scheduler": _section(draw, SchedulerConfig, 0.25, rng),
        "dataset": dataset,
        "training": training,
    }


def _collect() -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = collect_examples(job_data(), EXAMPLES)
    return examples


def _check_dataset(job: TrainingJob, datasets: list[dict[str, Any]]) -> None:
    got = [s for d in datasets for s in d["subsets"]]
    ours = [s for _, s in job.dataset.all_subsets()]
    assert len(got) == len(ours)
    general = job.dataset
    for theirs, mine in zip(got, ours, strict=True):
        assert theirs["image_dir"] == mine.image_dir
        assert theirs["num_repeats"] == mine.effective_repeats
        assert theirs["class_tokens"] == mine.effective_class_tokens
        for key in ("caption_extension", "shuffle_caption", "keep_tokens", "flip_aug",
                    "color_aug", "random_crop", "caption_dropout_rate",
                    "caption_tag_dropout_rate", "caption_prefix", "caption_suffix",
                    "keep_tokens_separator", "secondary_separator", "enable_wildcard"):  # fmt: skip
            said = getattr(mine, key, None)
            if said is None:
                said = getattr(general, key, None)
            if said is not None:
                assert theirs[key] == said, (key, theirs[key], said)
    (first,) = datasets[:1]
    res = general.resolution
    assert first["resolution"] == ([res, res] if isinstance(res, int) else list(res))
    assert first["batch_size"] == general.batch_size
    assert first["enable_bucket"] == general.enable_bucket


def _check_args(job: TrainingJob, got: dict[str, Any], paths: RenderPaths) -> None:
    net = dict(a.split("=", 1) for a in network_args(job, paths))
    assert got["network_kwargs"] == net  # every value survives sd-scripts' split("=")
    for key, value in net.items():
        said = getattr(job.network, key, None)
        if isinstance(said, bool):  # LyCORIS and sd-scripts read "True"/"False" strings
            assert value.lower() == str(said).lower(), (key, value, said)
    opt = got["optimizer_kwargs"]
    assert "__error__" not in opt, opt
    assert set(opt) == {a.split("=", 1)[0] for a in optimizer_args(job)}
    for key, value in opt.items():
        said = getattr(job.optimizer, key, None)
        if said is not None:
            assert value == (list(said) if isinstance(said, tuple) else said), (key, value, said)
    assert "__error__" not in got["scheduler_kwargs"], got["scheduler_kwargs"]


def test_random_jobs_mean_to_sd_scripts_what_they_say(e2e_lab: Path, tmp_path: Path) -> None:
    examples = _collect()
    accepted: list[tuple[dict[str, Any], TrainingJob, RenderPaths]] = []
    reasons: Counter[str] = Counter()
    cases = []
    for i, data in enumerate(examples):
        try:
            job = validate_job(data)
        except ConfigError as exc:
            for p in exc.problems:
                assert p.path and p.message, (data, p)  # where and why, never a traceback
                reasons[p.path.split("[")[0]] += 1
            continue
        case, paths = render_case(job, tmp_path / f"{i:04d}")
        cases.append(case)
        accepted.append((data, job, paths))
    refused = len(examples) - len(accepted)
    assert len(accepted) >= 0.2 * len(examples) and refused >= 20, (len(accepted), reasons)
    results = run_schema_oracle(e2e_lab, cases, tmp_path, timeout_s=1200)
    verify_refused: Counter[str] = Counter()
    for (data, job, paths), got in zip(accepted, results, strict=True):
        assert "error" not in got, (data, got.get("error"))
        assert got["ignored"] == [], (data, got["ignored"])
        rendered = training_config_dict(job, paths)
        for section in rendered.values():
            for key, value in section.items():
                if key in ("dataset_config", "network_args", "optimizer_args"):
                    continue
                assert got["values"][key] == value, (data, key, got["values"][key], value)
        _check_args(job, got, paths)
        _check_dataset(job, got["datasets"])
        if got["verify"] is not None:  # sd-scripts refuses what validation let through
            verify_refused[got["verify"][:80]] += 1
    assert not verify_refused, verify_refused
    print(
        f"\nschema oracle: {len(examples)} jobs; {len(accepted)} accepted and read back by "
        f"sd-scripts as meant; {refused} refused, by key: {dict(reasons.most_common(12))}"
    )
