"""Rules on ``[model]``: settings the family's base models ignore or do not expect."""

from __future__ import annotations

from collections.abc import Iterator

from ...errors import Problem
from ..family import profile
from .base import JobView

__all__ = ["warn_model"]


def warn_model(job: JobView) -> Iterator[Problem]:
    m = job.model
    if profile(m.family).warn_v_parameterization and getattr(m, "v_parameterization", False):
        yield Problem(
            "model.v_parameterization",
            "SD 1.5 models predict noise, not v",
            "remove it unless your model is a v-prediction fine-tune",
        )
    if not profile(m.family).uses_clip_skip and getattr(m, "clip_skip", None) is not None:
        yield Problem(
            "model.clip_skip",
            f"{profile(m.family).title} ignores clip_skip",
            "remove model.clip_skip",
        )
