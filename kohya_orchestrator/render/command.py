"""Build the trainer command as data (pure): argv, environment additions and cwd."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LaunchSpec"]


class LaunchSpec(BaseModel):
    """A command to run, as data. The caller merges ``env`` into ``os.environ`` at spawn time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    argv: tuple[str, ...] = Field(description="Program and arguments; never run through a shell.")
    env: Mapping[str, str] = Field(
        default_factory=dict, description="Only the variables we add or override."
    )
    cwd: Path = Field(description="Working directory of the child (the sd-scripts checkout).")
