"""Rules on ``[network]``: switches that exclude each other, block counts, LyCORIS limits."""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Problem
from ..family import profile
from ..network import DyLoraNetwork, IA3Network, LoraNetwork, _Factorised
from .base import JobView

__all__ = ["check_network", "warn_network"]


def check_network(job: JobView) -> Iterator[Problem]:
    n = job.network
    if n.network_train_unet_only and n.network_train_text_encoder_only:
        yield Problem(
            "network.network_train_text_encoder_only",
            "network_train_unet_only and network_train_text_encoder_only are both on",
            "keep one",
        )
    expected = profile(job.model.family).lora_blocks
    if isinstance(n, LoraNetwork) and expected is not None:  # else check_family refuses them
        pairs = (("block_dims", "block_alphas"), ("conv_block_dims", "conv_block_alphas"))
        for dims_key, alphas_key in pairs:
            dims, alphas = getattr(n, dims_key), getattr(n, alphas_key)
            if dims is not None and len(dims) != expected:
                yield Problem(
                    f"network.{dims_key}",
                    f"{len(dims)} values; {job.model.family} has {expected} blocks",
                    f"give exactly {expected} values",
                )
            if alphas is not None and (dims is None or len(alphas) != len(dims)):
                yield Problem(
                    f"network.{alphas_key}",
                    f"{alphas_key} needs {dims_key} with the same number of values",
                    f"set {dims_key} and give both {expected} values",
                )
        lr_weights = (n.down_lr_weight, n.mid_lr_weight, n.up_lr_weight)
        if n.conv_block_dims is not None and n.block_dims is None and lr_weights == (None,) * 3:
            yield Problem(
                "network.conv_block_dims",
                "conv_block_dims without block_dims: networks.lora reads per-block settings only "
                "with block_dims (or block LR weights), so no conv layer would train",
                f"also set block_dims ({expected} values)",
            )
        if n.conv_alpha is not None and n.conv_dim is None:
            yield Problem(
                "network.conv_alpha", "conv_alpha without conv_dim", "set network.conv_dim"
            )
    if isinstance(n, DyLoraNetwork) and n.conv_dim is not None and n.conv_dim != n.network_dim:
        yield Problem(
            "network.conv_dim",
            f"DyLoRA needs conv_dim equal to network_dim ({n.network_dim})",
            f"set conv_dim = {n.network_dim} or remove it",
        )
    if isinstance(n, _Factorised) and n.dora_wd and n.bypass_mode:
        yield Problem(
            "network.bypass_mode",
            "dora_wd turns bypass mode off in LyCORIS; they cannot be combined",
            "turn one of them off",
        )


def warn_network(job: JobView) -> Iterator[Problem]:
    n = job.network
    if isinstance(n, _Factorised) and n.conv_dim and n.preset in ("attn-mlp", "attn-only"):
        yield Problem(
            "network.conv_dim",
            f"preset '{n.preset}' trains no conv layers, so conv_dim is ignored",
            'remove conv_dim, or use preset = "kohya_orchestrator:full-sd15" (trains convs on SD1.5 '
            'with lycoris-lora 4.x, where the built-in "full" fails)',
        )
    if isinstance(n, IA3Network) and n.preset in (None, "ia3", "full"):
        yield Problem(
            "network.preset",
            "LyCORIS' built-in presets give IA3 nothing to train on SD1.5 with lycoris-lora 4.x "
            "(optimizer got an empty parameter list)",
            'leave network.preset unset: the default "kohya_orchestrator:ia3-sd15" targets '
            "attention k/v and the MLP output",
        )
    if type(n).__name__ == "LoHaNetwork" and getattr(n, "network_dim", 0) > 32:
        yield Problem(
            "network.network_dim",
            "LoHa above dim 32 is prone to NaN losses (LyCORIS guidance)",
            "use dim 32 or less, or lower the learning rate",
        )
    if n.network_train_unet_only and job.optimizer.text_encoder_lr:
        yield Problem(
            "optimizer.text_encoder_lr",
            "text_encoder_lr is set but only the U-Net is trained",
            "remove text_encoder_lr or network_train_unet_only",
        )
