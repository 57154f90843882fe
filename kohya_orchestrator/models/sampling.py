"""`[sampling]`: sample images during training, so epochs can be compared by eye."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field

from .base import StrictModel

__all__ = ["SAMPLERS", "SamplePrompt", "SamplingConfig"]

Sampler = Literal[
    "ddim",
    "pndm",
    "lms",
    "euler",
    "euler_a",
    "heun",
    "dpm_2",
    "dpm_2_a",
    "dpmsolver",
    "dpmsolver++",
    "dpmsingle",
    "k_lms",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
]
SAMPLERS: tuple[str, ...] = get_args(Sampler)


class SamplePrompt(StrictModel):
    """One sample prompt. Rendered as a line of sd-scripts' prompt file (`--w 512 --h 512 ...`)."""

    # Text sd-scripts' prompt-line reader would misread (a " --" in it, a prompt that starts like
    # one of its options or with "#", ...) is refused by check_sample_prompts in rules/sampling.py,
    # with the key path, the reason and the fix (the schema is unchanged: docs/job.schema.json).

    prompt: Annotated[str, Field(min_length=1, description="The prompt text.")]
    negative_prompt: Annotated[str | None, Field(description="Negative prompt (--n).")] = None
    width: Annotated[int | None, Field(ge=64, le=4096, description="Width in pixels (--w).")] = None
    height: Annotated[int | None, Field(ge=64, le=4096, description="Height in pixels (--h).")] = (
        None
    )
    sample_steps: Annotated[
        int | None, Field(ge=1, le=1000, description="Denoising steps (--s).")
    ] = None
    seed: Annotated[
        int | None, Field(ge=0, description="Seed; fixed seeds make epochs comparable (--d).")
    ] = None
    scale: Annotated[float | None, Field(gt=0, description="CFG scale (--l).")] = None
    sample_sampler: Annotated[
        Sampler | None, Field(description="Sampler for this prompt (--ss).")
    ] = None


class SamplingConfig(StrictModel):
    """`[sampling]`: prompts and cadence."""

    prompts: Annotated[
        list[SamplePrompt], Field(description="Prompts rendered to the sample prompt file.")
    ] = []
    sample_every_n_epochs: Annotated[
        int | None, Field(ge=1, description="Sample every N epochs (--sample_every_n_epochs).")
    ] = None
    sample_every_n_steps: Annotated[
        int | None, Field(ge=1, description="Sample every N steps (--sample_every_n_steps).")
    ] = None
    sample_at_first: Annotated[
        bool, Field(description="Also sample before training starts (--sample_at_first).")
    ] = False
    sample_sampler: Annotated[Sampler, Field(description="Default sampler (--sample_sampler).")] = (
        "euler_a"
    )
    width: Annotated[
        int | None, Field(ge=64, le=4096, description="Default width for prompts.")
    ] = None
    height: Annotated[
        int | None, Field(ge=64, le=4096, description="Default height for prompts.")
    ] = None
    sample_steps: Annotated[int | None, Field(ge=1, le=1000, description="Default steps.")] = None
    scale: Annotated[float | None, Field(gt=0, description="Default CFG scale.")] = None
    seed: Annotated[int | None, Field(ge=0, description="Default seed.")] = None
    negative_prompt: Annotated[str | None, Field(description="Default negative prompt.")] = None
