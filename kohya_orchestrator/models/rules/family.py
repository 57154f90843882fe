"""Rules on what the family's script and its network module can do (the family profile)."""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Problem
from ..family import FAMILIES, profile
from ..network import LoraNetwork
from .base import JobView

__all__ = ["check_family"]

_LORA_ARG_FIELDS = (
    "conv_dim", "conv_alpha", "rank_dropout", "module_dropout", "block_dims", "block_alphas",
    "conv_block_dims", "conv_block_alphas", "down_lr_weight", "mid_lr_weight", "up_lr_weight",
    "block_lr_zero_threshold", "train_blocks", "split_qkv", "train_t5xxl", "train_llm_adapter",
)  # fmt: skip


def check_family(job: JobView) -> Iterator[Problem]:
    fam = profile(job.model.family)
    n = job.network
    if not isinstance(n, LoraNetwork) and not fam.lycoris:
        with_lycoris = [p.title for p in FAMILIES.values() if p.lycoris]
        yield Problem(
            "network.algo",
            f"{fam.title} trains with {fam.lora_module}; LyCORIS ({n.algo}) is not offered for "
            f"it (LyCORIS is measured on {', '.join(with_lycoris)})",
            'use algo = "lora"',
        )
    if isinstance(n, LoraNetwork):
        for key in _LORA_ARG_FIELDS:
            value = getattr(n, key)
            if value is None or value is False or key in fam.lora_args:
                continue
            reads = ", ".join(sorted(fam.lora_args)) or "none"
            yield Problem(
                f"network.{key}",
                f"{fam.lora_module} ({fam.title}) does not read {key}; it would be ignored",
                f"remove it (its network_args: {reads})",
            )
        if (
            n.train_blocks is not None
            and fam.train_blocks
            and n.train_blocks not in fam.train_blocks
        ):
            yield Problem(
                "network.train_blocks",
                f"'{n.train_blocks}' is not a train_blocks value of {fam.lora_module}; it stops",
                f"use one of: {', '.join(fam.train_blocks)}",
            )
    te_lr = job.optimizer.text_encoder_lr
    if isinstance(te_lr, list) and len(te_lr) > fam.text_encoder_lrs:
        yield Problem(
            "optimizer.text_encoder_lr",
            f"{len(te_lr)} values, but {fam.lora_module} reads {fam.text_encoder_lrs} for "
            f"{fam.title}; the rest would be ignored",
            f"give at most {fam.text_encoder_lrs} value(s)",
        )
    if job.training.fp8_base and not fam.fp8_base:
        yield Problem(
            "training.fp8_base",
            f"{fam.script} does not support fp8_base and turns it off",
            "remove it" + (" (use model.fp8_scaled)" if "fp8_scaled" in fam.only_args else ""),
        )
