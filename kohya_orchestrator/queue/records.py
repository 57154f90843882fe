"""What the queue stores: jobs, attempts, and what ``add`` takes. Data only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..models import TrainingJob

__all__ = ["FINISHED", "Attempt", "JobStatus", "NewJob", "QueueJob", "default_queue_dir"]


def default_queue_dir() -> Path:
    """``~/.local/share/kohya_orchestrator/queue``."""
    return Path.home() / ".local" / "share" / "kohya_orchestrator" / "queue"


class JobStatus(str, Enum):
    """Where a queued job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"
    """Its runner died mid-run; it waits for ``retry`` (rerun) or ``retry --resume``."""
    EXPORTED = "exported"
    """Handed to a SLURM array script (or submitted: its array task takes it); a local
    ``queue run`` leaves it alone."""


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class QueueJob(BaseModel):
    """One job of the queue, as stored."""

    model_config = ConfigDict(frozen=True)

    id: int = Field(description="Queue id (also the order: lower ids run first).")
    name: str = Field(description="The job's display name (name, else output_name).")
    status: JobStatus
    job_file: Path = Field(description="The frozen copy of the job in the queue folder.")
    source: str | None = Field(default=None, description="The file it was added from.")
    overrides: list[str] = Field(
        default_factory=list, description="--set/--grid it was added with."
    )
    sweep: str | None = Field(default=None, description="The sweep it belongs to.")
    labels: dict[str, str] = Field(default_factory=dict, description="Sweep grid values.")
    reason: str | None = Field(default=None, description="Why it failed or was interrupted.")
    added_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = Field(default=0, description="Attempts so far (OOM retries included).")
    resume_from: str | None = Field(default=None, description="State folder the next run resumes.")
    cancel_requested: bool = False
    runner_id: str | None = None
    runner_pid: int | None = None
    runner_host: str | None = None
    gpu: str | None = Field(default=None, description="GPU id of the worker that ran it.")
    run_dir: Path | None = Field(default=None, description="Run directory of the latest attempt.")
    trainer_pid: int | None = None
    heartbeat_at: float | None = None


class Attempt(BaseModel):
    """One run of a queued job: the first, an OOM retry with a lighter plan, a rerun, a resume."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    n: int = Field(description="1-based attempt number.")
    kind: str = Field(description="first, oom-retry, rerun or resume.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Dotted keys applied.")
    remedies: list[str] = Field(default_factory=list, description="Memory remedies applied.")
    resumed_from: str | None = None
    run_dir: Path | None = None
    gpu: str | None = None
    runner_id: str | None = None
    status: str
    reason: str | None = None
    returncode: int | None = None
    started_at: float
    finished_at: float | None = None


@dataclass(frozen=True)
class NewJob:
    """A validated job to add, with where it came from."""

    job: TrainingJob
    source: str | None = None
    overrides: Sequence[str] = ()
    labels: dict[str, str] = field(default_factory=dict)
