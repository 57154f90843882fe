"""Job-specific remedies: which switches would make *this* job fit in less memory.

The order is fixed (cheapest loss of quality first) so a queue can retry an out-of-memory job with
progressively lighter plans and record which ones it applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import TrainingJob
from ..models.family import profile
from ..models.optimizer import AdamWOptimizer

__all__ = ["Remedy", "memory_remedies"]


@dataclass(frozen=True)
class Remedy:
    """One change to the job: what it does, and the ``--set`` overrides that apply it."""

    description: str
    overrides: dict[str, Any]

    def as_set_args(self) -> str:
        """The change as ``--set`` options."""
        return " ".join(f"--set {k}={_toml(v)}" for k, v in self.overrides.items())


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def memory_remedies(job: TrainingJob) -> list[Remedy]:
    """Memory-saving changes that this job does not use yet, lightest first."""
    t, ds, out = job.training, job.dataset, []
    family_remedies = profile(job.model.family).memory_remedies
    if not t.cache_latents and not (ds.color_aug or ds.random_crop):
        out.append(
            Remedy("cache latents (the VAE leaves the GPU)", {"training.cache_latents": True})
        )
    if t.attention in ("none", "mem_eff_attn"):
        out.append(Remedy("memory-efficient attention (sdpa)", {"training.attention": "sdpa"}))
    if t.mixed_precision == "no":
        out.append(Remedy("mixed precision bf16", {"training.mixed_precision": "bf16"}))
    if not t.gradient_checkpointing:
        out.append(
            Remedy(
                "gradient checkpointing (slower, much less memory)",
                {"training.gradient_checkpointing": True},
            )
        )
    if isinstance(job.optimizer, AdamWOptimizer) and job.optimizer.type == "AdamW":
        out.append(Remedy("8-bit AdamW (bitsandbytes)", {"optimizer.type": "AdamW8bit"}))
    if "te_cache" in family_remedies and not t.cache_text_encoder_outputs:
        out.append(
            Remedy(
                "U-Net only with cached text-encoder outputs",
                {
                    "network.network_train_unet_only": True,
                    "training.cache_text_encoder_outputs": True,
                    "dataset.shuffle_caption": False,
                },
            )
        )
    if ds.batch_size > 1 and not ds.datasets:
        half = max(1, ds.batch_size // 2)
        out.append(
            Remedy(
                f"batch size {ds.batch_size} -> {half} with gradient accumulation x2 "
                "(same effective batch)",
                {
                    "dataset.batch_size": half,
                    "training.gradient_accumulation_steps": t.gradient_accumulation_steps * 2,
                },
            )
        )
    if not t.fp8_base and t.mixed_precision != "no" and "fp8_base" in family_remedies:
        out.append(Remedy("base model in fp8", {"training.fp8_base": True}))
    swap = profile(job.model.family).swap_blocks
    if "blocks_to_swap" in family_remedies and not getattr(job.model, "blocks_to_swap", None):
        out.append(
            Remedy(
                f"swap {swap} DiT blocks to the CPU (slower; more saves more)",
                {"model.blocks_to_swap": swap},
            )
        )
    return out
