"""Multi-line blocks the parser collects into one event each.

The training banner (``running training / 学習開始`` and its indented lines), the settings of one
sample prompt (one record per key) and a Python warning with its source line. The parser offers
each following message to the open block; ``consume`` answers :data:`REJECT` (not mine: the block
is complete and the message is parsed on its own), :data:`TAKE` or :data:`DONE` (mine, and the
block is complete). ``event(seq, t)`` then builds the block's one event.
"""

from __future__ import annotations

from typing import Final

from .fields import to_float, to_int
from .patterns import BANNER_FIELDS, BANNER_LINE_RE, PYTHON_WARNING_SOURCE_RE, SAMPLE_KEY_RE
from .types import ChildWarning, SamplePrompt, TrainingPlan, trusted_constructor

# Built from values computed here: no validation (types.trusted_constructor says why).
_ChildWarning = trusted_constructor(ChildWarning)
_SamplePrompt = trusted_constructor(SamplePrompt)
_TrainingPlan = trusted_constructor(TrainingPlan)

__all__ = ["DONE", "REJECT", "TAKE", "Banner", "Block", "Prompt", "PyWarning"]

REJECT: Final = 0
TAKE: Final = 1
DONE: Final = 2

WARNING_BLOCK_MAX_LINES: Final = 64


class Banner:
    """``running training / 学習開始`` and its indented lines."""

    __slots__ = ("lines", "plan", "values")

    def __init__(self, first: str) -> None:
        self.lines = [first]
        self.values: dict[str, str] = {}
        self.plan: TrainingPlan | None = None

    def consume(self, message: str, level: str | None) -> int:
        if level is not None or not message.startswith("  "):
            return REJECT
        m = BANNER_LINE_RE.match(message)
        if m is None:
            return REJECT
        self.lines.append(message)
        field = BANNER_FIELDS.get(m["label"].strip())
        if field is not None:
            self.values[field] = m["value"]
        return DONE if field == "total_steps" else TAKE

    def event(self, seq: int, t: float) -> TrainingPlan:
        """The :class:`TrainingPlan` the banner shows (also kept as :attr:`plan`)."""
        v = self.values

        def num(key: str) -> int | None:
            return int(v[key]) if key in v else None

        sizes = v.get("batch_size_per_device")
        self.plan = _TrainingPlan(
            seq=seq,
            t=t,
            text="\n".join(self.lines),
            train_images_with_repeats=num("train_images_with_repeats"),
            validation_images_with_repeats=num("validation_images_with_repeats"),
            reg_images=num("reg_images"),
            batches_per_epoch=num("batches_per_epoch"),
            epochs=num("epochs"),
            batch_size_per_device=[int(s) for s in sizes.split(",")] if sizes else None,
            gradient_accumulation_steps=num("gradient_accumulation_steps"),
            total_steps=num("total_steps"),
        )
        return self.plan


class Prompt:
    """The settings sd-scripts logs for one sample prompt, one record per key."""

    __slots__ = ("epoch", "index", "lines", "step", "values")

    def __init__(self, first: str, prompt: str, index: int, step: int | None, epoch: int | None):
        self.lines = [first]
        self.values = {"prompt": prompt}
        self.index = index
        self.step = step
        self.epoch = epoch

    def consume(self, message: str, level: str | None) -> int:
        m = SAMPLE_KEY_RE.match(message)
        if m is None or m["key"] in self.values:
            return REJECT
        self.values[m["key"]] = m["value"]
        self.lines.append(message)
        return TAKE

    def event(self, seq: int, t: float) -> SamplePrompt:
        """The :class:`SamplePrompt` with the settings collected."""
        v = self.values
        steps = v.get("sample_steps")
        scale = v.get("scale")
        seed = v.get("seed")
        width = v.get("width")
        height = v.get("height")
        return _SamplePrompt(
            seq=seq,
            t=t,
            text="\n".join(self.lines),
            prompt=v["prompt"],
            negative_prompt=v.get("negative_prompt"),
            width=to_int(width) if width is not None else None,
            height=to_int(height) if height is not None else None,
            sample_steps=to_int(steps) if steps is not None else None,
            scale=to_float(scale) if scale is not None else None,
            sampler=v.get("sample_sampler"),
            seed=to_int(seed) if seed is not None else None,
            prompt_index=self.index,
            step=self.step,
            epoch=self.epoch,
        )


class PyWarning:
    """``file.py:12: XWarning: message`` up to its indented source line."""

    __slots__ = ("lines", "source")

    def __init__(self, first: str, source: str) -> None:
        self.lines = [first]
        self.source = source

    def consume(self, message: str, level: str | None) -> int:
        if level is not None or len(self.lines) >= WARNING_BLOCK_MAX_LINES:
            return REJECT
        self.lines.append(message)
        return DONE if PYTHON_WARNING_SOURCE_RE.match(message) else TAKE

    def event(self, seq: int, t: float) -> ChildWarning:
        """The :class:`ChildWarning` holding the whole block."""
        return _ChildWarning(seq=seq, t=t, message="\n".join(self.lines), source=self.source)


Block = Banner | Prompt | PyWarning
