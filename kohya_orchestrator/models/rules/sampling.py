"""Rules on ``[sampling]``: a cadence needs prompts; prompts must reach sd-scripts as written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ...errors import Problem
from .base import JobView

__all__ = ["MAX_TORCH_SEED", "check_sample_prompts", "check_sampling", "warn_cadence"]


def check_sampling(job: JobView) -> Iterator[Problem]:
    s = job.sampling
    if s.sample_every_n_epochs is not None and s.sample_every_n_steps is not None:
        yield Problem(
            "sampling.sample_every_n_steps",
            "both sample_every_n_epochs and sample_every_n_steps are set; sd-scripts ignores "
            "the steps one",
            "keep one of them",
        )
    cadence = s.sample_every_n_epochs or s.sample_every_n_steps or s.sample_at_first
    if cadence and not s.prompts:
        yield Problem(
            "sampling.prompts",
            "sampling is scheduled but there are no prompts",
            'add [[sampling.prompts]] with prompt = "..." or remove the sample_every_* keys',
        )


# What sd-scripts' .txt prompt-file reader does with a line (library/train_util.py load_prompts
# and line_to_prompt_dict at the pinned commit; this is our own table, not its code): a line whose
# first character is "#" is skipped, the rest is stripped and split on " --", and every part, the
# prompt itself included, is matched case-insensitively (Python re) against these option starts.
_SD_PROMPT_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("w", r"\d", "width"),
    ("h", r"\d", "height"),
    ("d", r"\d", "seed"),
    ("s", r"\d", "steps"),
    ("l", r"[\d.]", "CFG scale"),
    ("g", r"[\d.]", "guidance scale"),
    ("n", r".", "negative prompt"),
    ("ss", r".", "sampler"),
    ("cn", r".", "ControlNet image"),
    ("ctr", r".", "CFG truncation ratio"),
    ("rcfg", r".", "renorm CFG"),
    ("fs", r".", "flow shift"),
)
_SD_OPTION_STARTS = tuple(
    (re.compile(f"{name} {value}", re.IGNORECASE), name, meaning)
    for name, value, meaning in _SD_PROMPT_OPTIONS
)
MAX_TORCH_SEED = 0xFFFF_FFFF_FFFF_FFFF
"""torch.manual_seed's upper bound; sd-scripts seeds each sample with it."""


def _prompt_text_problems(path: str, text: str, *, negative: bool) -> Iterator[Problem]:
    """Why sd-scripts would not read ``text`` back exactly from a rendered prompt line."""
    if "\n" in text or "\r" in text:
        yield Problem(
            path,
            "is not a single line; sd-scripts reads one prompt per line",
            "put it on one line",
        )
    if " --" in text:
        yield Problem(
            path,
            "contains ' --', where sd-scripts' prompt reader starts an option (--n, --w, ...); "
            "the rest of the text would be misread",
            "drop the space before '--' or the dashes (e.g. 'a--b' or 'a - b')",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # pydantic lets lone surrogates into `str | None` fields
        yield Problem(
            path,
            "contains a character that cannot be written as UTF-8 (a lone surrogate)",
            "remove it",
        )
    if negative:
        if text and not text.strip():
            yield Problem(
                path,
                "is only whitespace",
                'write a negative prompt, or "" for none',
            )
        return
    if not text.strip():
        yield Problem(
            path,
            "is blank; sd-scripts skips blank lines, so this sample would never be made",
            "write a prompt, or remove this entry",
        )
        return
    if text[0].isspace():
        yield Problem(
            path,
            "begins with whitespace, which sd-scripts strips from each prompt line",
            "remove the leading whitespace",
        )
    elif text.startswith("#"):
        yield Problem(
            path,
            "begins with '#', so sd-scripts would skip the whole line as a comment",
            "reword the start of the prompt (move the '#' later)",
        )
    for pattern, name, meaning in _SD_OPTION_STARTS:
        m = pattern.match(text)
        if m:
            yield Problem(
                path,
                f"begins with {m.group(0)!r}, which sd-scripts reads as its --{name} option "
                f"({meaning}), not as prompt text",
                "reword the start of the prompt (put another word first)",
            )
            break


def check_sample_prompts(job: JobView) -> Iterator[Problem]:
    """Prompt texts and numbers that sd-scripts' prompt file would not carry exactly."""
    s = job.sampling
    holders: list[tuple[str, Any]] = [("sampling", s)]
    holders += [(f"sampling.prompts[{i}]", p) for i, p in enumerate(s.prompts)]
    for where, holder in holders:
        if holder is not s:
            yield from _prompt_text_problems(f"{where}.prompt", holder.prompt, negative=False)
        if holder.negative_prompt is not None:
            yield from _prompt_text_problems(
                f"{where}.negative_prompt", holder.negative_prompt, negative=True
            )
        for key in ("width", "height"):
            value = getattr(holder, key)
            if value is not None and value % 8:
                low = value - value % 8
                yield Problem(
                    f"{where}.{key}",
                    f"{value} is not a multiple of 8; sd-scripts rounds it down to {low}",
                    f"use {low} or {low + 8}",
                )
        if holder.seed is not None and holder.seed > MAX_TORCH_SEED:
            yield Problem(
                f"{where}.seed",
                f"{holder.seed} is above {MAX_TORCH_SEED}, the largest seed torch takes; "
                "sampling would fail",
                "use a smaller seed",
            )


def warn_cadence(job: JobView) -> Iterator[Problem]:
    t, s = job.training, job.sampling
    if t.max_train_epochs and t.save_every_n_epochs and t.save_every_n_epochs >= t.max_train_epochs:
        yield Problem(
            "training.save_every_n_epochs",
            f"saving every {t.save_every_n_epochs} epochs in a {t.max_train_epochs}-epoch run keeps "
            "only the final file, nothing to compare",
            "save every 1-2 epochs to pick the best epoch by eye",
        )
    if s.prompts and not (s.sample_every_n_epochs or s.sample_every_n_steps or s.sample_at_first):
        yield Problem(
            "sampling.sample_every_n_epochs",
            "there are prompts but no sampling cadence, so no samples will be made",
            "set sampling.sample_every_n_epochs (e.g. 1)",
        )
    if s.prompts and not t.save_every_n_epochs and not t.save_every_n_steps:
        yield Problem(
            "training.save_every_n_epochs",
            "samples are made but only the final checkpoint is saved",
            "set training.save_every_n_epochs to keep the epochs you compare",
        )
