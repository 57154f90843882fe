"""Rules on ``[training]``: its length, saving, precision, caching, noise and loss."""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Problem
from ..dataset import DatasetConfig
from ..family import profile
from .base import JobView, blocks

__all__ = [
    "check_caching",
    "check_length",
    "check_noise_and_loss",
    "check_precision",
    "check_saving",
]


def check_length(job: JobView) -> Iterator[Problem]:
    t = job.training
    if t.max_train_epochs is not None and t.max_train_steps is not None:
        yield Problem(
            "training.max_train_steps",
            "both max_train_epochs and max_train_steps are set; sd-scripts silently uses epochs",
            "keep one: max_train_epochs (recommended) or max_train_steps",
        )
    if t.max_train_epochs is None and t.max_train_steps is None:
        yield Problem(
            "training.max_train_epochs",
            "no training length; sd-scripts would fall back to 1600 steps whatever the dataset",
            "set training.max_train_epochs (e.g. 10) or training.max_train_steps",
        )


def check_saving(job: JobView) -> Iterator[Problem]:
    t = job.training
    if t.save_last_n_epochs is not None and t.save_every_n_epochs is None:
        yield Problem(
            "training.save_last_n_epochs",
            "save_last_n_epochs has no effect without save_every_n_epochs",
            "set training.save_every_n_epochs",
        )


def check_precision(job: JobView) -> Iterator[Problem]:
    t = job.training
    if t.full_fp16 and t.full_bf16:
        yield Problem("training.full_bf16", "full_fp16 and full_bf16 are both on", "keep one")
    if t.full_fp16 and t.mixed_precision != "fp16":
        yield Problem(
            "training.full_fp16",
            f'full_fp16 needs mixed_precision = "fp16" (it is "{t.mixed_precision}")',
            'set training.mixed_precision = "fp16" or turn full_fp16 off',
        )
    if t.full_bf16 and t.mixed_precision != "bf16":
        yield Problem(
            "training.full_bf16",
            f'full_bf16 needs mixed_precision = "bf16" (it is "{t.mixed_precision}")',
            'set training.mixed_precision = "bf16" or turn full_bf16 off',
        )
    if t.fp8_base and t.mixed_precision == "no":
        yield Problem(
            "training.fp8_base",
            'fp8_base needs mixed_precision "fp16" or "bf16"',
            'set training.mixed_precision = "bf16" (or "fp16")',
        )


def check_caching(job: JobView) -> Iterator[Problem]:
    t = job.training
    if t.cache_latents or t.cache_latents_to_disk:
        for where, opts in _caption_option_holders(job.dataset):
            for key in ("color_aug", "random_crop"):
                if getattr(opts, key):
                    yield Problem(
                        f"{where}.{key}",
                        f"{key} changes the image every step, so latents cannot be cached",
                        f"set training.cache_latents = false, or remove {key}",
                    )
    if t.cache_text_encoder_outputs_to_disk and not t.cache_text_encoder_outputs:
        yield Problem(
            "training.cache_text_encoder_outputs_to_disk",
            "a disk cache of text-encoder outputs needs cache_text_encoder_outputs",
            "also set training.cache_text_encoder_outputs = true",
        )
    if t.cache_text_encoder_outputs:
        if not profile(job.model.family).caches_text_encoder_outputs:
            yield Problem(
                "training.cache_text_encoder_outputs",
                f"{profile(job.model.family).title} cannot cache text-encoder outputs",
                "remove training.cache_text_encoder_outputs",
            )
        if not job.network.network_train_unet_only:
            yield Problem(
                "training.cache_text_encoder_outputs",
                "caching text-encoder outputs needs U-Net-only training",
                "set network.network_train_unet_only = true",
            )
        for where, opts in _caption_option_holders(job.dataset):
            for key in (
                "shuffle_caption",
                "caption_dropout_rate",
                "caption_tag_dropout_rate",
                "caption_dropout_every_n_epochs",
                "token_warmup_step",
            ):
                if getattr(opts, key):
                    yield Problem(
                        f"{where}.{key}",
                        f"{key} changes captions every step, so text-encoder outputs cannot be cached",
                        f"remove {key} or set training.cache_text_encoder_outputs = false",
                    )


def _caption_option_holders(ds: DatasetConfig) -> Iterator[tuple[str, object]]:
    for where, block in blocks(ds):
        yield where, block
    for where, subset in ds.all_subsets():
        yield where, subset


def check_noise_and_loss(job: JobView) -> Iterator[Problem]:
    t = job.training
    if t.adaptive_noise_scale is not None and t.noise_offset is None:
        yield Problem(
            "training.adaptive_noise_scale",
            "adaptive_noise_scale needs noise_offset",
            "set training.noise_offset (e.g. 0.05) or remove adaptive_noise_scale",
        )
    if t.scale_v_pred_loss_like_noise_pred and not getattr(job.model, "v_parameterization", False):
        yield Problem(
            "training.scale_v_pred_loss_like_noise_pred",
            "only applies to v-prediction models",
            "set model.v_parameterization = true or remove it",
        )
    if (
        t.min_timestep is not None
        and t.max_timestep is not None
        and t.min_timestep >= t.max_timestep
    ):
        yield Problem(
            "training.min_timestep",
            f"min_timestep ({t.min_timestep}) must be below max_timestep ({t.max_timestep})",
            "lower min_timestep or raise max_timestep",
        )
    if t.log_with in ("tensorboard", "all") and t.logging_dir is None:
        yield Problem(
            "training.logging_dir",
            f'log_with = "{t.log_with}" needs a logging_dir',
            'set training.logging_dir (e.g. "logs")',
        )
