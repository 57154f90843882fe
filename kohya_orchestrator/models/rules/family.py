"""Rules on what the family's script and its network module can do (the family profile)."""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Problem
from ..family import FAMILIES, FamilyProfile, profile
from ..network import LYCORIS_ONLY, LoraNetwork, native_module, shipped_preset_name
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
    native = native_module(n)
    if native is not None:
        yield from _check_native(n, fam, native)
    elif not isinstance(n, LoraNetwork) and n.algo not in fam.lycoris_algos:
        offered = ", ".join(("lora", *fam.lycoris_algos))
        groups: dict[tuple[str, ...], list[str]] = {}
        for other in FAMILIES.values():
            if other.lycoris_algos and other.lycoris_algos != fam.lycoris_algos:
                groups.setdefault(other.lycoris_algos, []).append(other.title)
        elsewhere = "; ".join(
            f"{', '.join(titles)}: {', '.join(algos)}" for algos, titles in groups.items()
        )
        yield Problem(
            "network.algo",
            f"LyCORIS {n.algo} is not offered for {fam.title}: kohya_orchestrator offers only what "
            f"trained in its lab ({fam.title}: {offered}; LyCORIS elsewhere: {elsewhere})",
            f"use one of: {offered} (lora trains with {fam.lora_module})",
        )
    preset = getattr(n, "preset", None)
    if fam.lora_blocks is None and shipped_preset_name(preset) is not None:
        yield Problem(
            "network.preset",
            f"'{preset}' names SD 1.5 U-Net layers: on {fam.title} it matches nothing and the "
            "optimizer stops with an empty parameter list",
            'use preset = "attn-mlp" (the preset measured on the DiT families)',
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


def _check_native(n: object, fam: FamilyProfile, module: str) -> Iterator[Problem]:
    """sd-scripts' own networks.loha / networks.lokr: the families they know, the args they read."""
    algo = getattr(n, "algo", "")
    if algo not in fam.native_networks:
        knows = ", ".join(p.title for p in FAMILIES.values() if algo in p.native_networks)
        other = 'implementation = "lycoris"' if algo in fam.lycoris_algos else 'algo = "lora"'
        yield Problem(
            "network.implementation",
            f"sd-scripts' own {module} trains {knows} only (it detects those architectures and "
            f"stops on any other), not {fam.title}",
            f"use {other}",
        )
    for key in LYCORIS_ONLY:
        if getattr(n, key, False):
            yield Problem(
                f"network.{key}",
                f"{module} does not read {key} (a LyCORIS setting); it would be ignored",
                'remove it, or use implementation = "lycoris"',
            )
    preset = getattr(n, "preset", "attn-mlp")
    if preset != "attn-mlp":
        yield Problem(
            "network.preset",
            f"{module} has no presets (it picks the layers of its architecture itself)",
            'remove preset, or use implementation = "lycoris"',
        )
