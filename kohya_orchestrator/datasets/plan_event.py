"""The plan a run predicts, as the event the runner records before launching."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import PlanPredicted
from .plan import plan_job

if TYPE_CHECKING:
    from ..models import TrainingJob

__all__ = ["predicted_plan"]


def predicted_plan(job: TrainingJob, *, num_processes: int = 1) -> list[PlanPredicted]:
    """The job's step plan (``plan_job``) as a ``plan_predicted`` event.

    Args:
        job: The validated job about to run.
        num_processes: Processes the launch uses (the banner counts batches per process).

    Returns:
        One event, or none when the plan cannot be computed (the run goes on without a
        prediction; sd-scripts reports its own problems).
    """
    try:
        plan = plan_job(job, num_processes=num_processes)
    except Exception:  # a prediction must never stop a run that validated
        return []
    notes = [] if plan.exact else [w.message for w in plan.warnings if w.severity != "info"][:3]
    return [
        PlanPredicted(
            seq=0,
            train_images_with_repeats=plan.train_images_with_repeats,
            batches_per_epoch=plan.batches_per_epoch,
            epochs=plan.epochs,
            total_steps=plan.total_steps,
            exact=plan.exact,
            notes=notes,
        )
    ]
