"""Base classes for every model: strict for what users write, lenient for what we read back."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["LenientModel", "StrictModel"]


class StrictModel(BaseModel):
    """For user input: unknown keys are errors, instances are immutable, types are strict.

    Strict means a value is taken only in its own type: ``true`` is not the number 1 and ``"16"``
    is not the integer 16 (an integer is still a valid float). TOML arrays for tuple fields are
    accepted where the field says so (``Strict(False)`` on the tuple; its items stay strict).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        use_attribute_docstrings=True,
        defer_build=True,  # build validators on first use: start-up is on `train`'s critical path
        populate_by_name=False,
        allow_inf_nan=False,
        strict=True,
    )


class LenientModel(BaseModel):
    """For things we read back (safetensors metadata, sd-scripts dumps): unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)
