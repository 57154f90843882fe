"""Plan vs banner: the numbers the run predicted against the ones sd-scripts printed (pure)."""

from __future__ import annotations

from .types import PlanDifference, PlanMismatch, PlanPredicted, TrainingPlan

__all__ = ["compare_plan"]


def compare_plan(predicted: PlanPredicted, banner: TrainingPlan) -> PlanMismatch | None:
    """Compare the predicted plan with sd-scripts' ``running training`` banner.

    Only numbers the banner printed are compared (an older sd-scripts may leave some out).

    Args:
        predicted: What the run predicted before launching.
        banner: The banner's event.

    Returns:
        A ``plan_mismatch`` warning (``seq`` 0: the emitter numbers it) listing every number that
        differs with both values, or None when they agree.

    Example:
        >>> p = PlanPredicted(seq=0, train_images_with_repeats=8, batches_per_epoch=4, epochs=2,
        ...                   total_steps=8, exact=True)
        >>> b = TrainingPlan(seq=1, train_images_with_repeats=8, batches_per_epoch=4, epochs=3,
        ...                  total_steps=12)
        >>> compare_plan(p, b).message
        'sd-scripts plans another run than predicted: epochs 3 (predicted 2), total steps 12 (predicted 8)'
    """
    pairs = (
        ("images x repeats", predicted.train_images_with_repeats, banner.train_images_with_repeats),
        ("batches per epoch", predicted.batches_per_epoch, banner.batches_per_epoch),
        ("epochs", predicted.epochs, banner.epochs),
        ("total steps", predicted.total_steps, banner.total_steps),
    )
    differences = [
        PlanDifference(quantity=name, predicted=want, actual=got)  # type: ignore[arg-type]
        for name, want, got in pairs
        if got is not None and got != want
    ]
    if not differences:
        return None
    parts = ", ".join(f"{d.quantity} {d.actual} (predicted {d.predicted})" for d in differences)
    message = f"sd-scripts plans another run than predicted: {parts}"
    if not predicted.exact:
        why = "; ".join(predicted.notes) or "see `plan JOB`"
        message += f" (the prediction was marked inexact: {why})"
    return PlanMismatch(seq=0, differences=differences, message=message)
