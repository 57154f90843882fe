"""The smoke job: the exact job, cut to 2 steps with one sample and one save, in a scratch folder.

``train JOB --smoke`` runs :func:`smoke_job` on the real install before committing hours to the
full run: the model loads, the data caches, two optimizer steps run, one sample is drawn and the
final file is saved, all into ``output_dir`` (never the job's own output folder). The transform is
pure (a job and a folder in, a validated job out); the CLI picks the scratch folder.

What changes, and why:

- the length becomes ``max_train_steps = 2``: epochs are dropped, because sd-scripts uses epochs
  when both are set and ``check_length`` refuses that pair;
- the step and epoch saves are dropped (and ``save_last_n_*`` with them, which need them): the one
  save is the final file sd-scripts always writes at the end;
- with prompts, the first prompt is kept and sampled at step 2 (``sample_every_n_steps = 2``;
  sd-scripts samples on steps that divide by it); ``sample_at_first`` is dropped;
- ``output_dir`` is the scratch folder; a ``logging_dir`` moves to ``<scratch>/logs``;
- the name gets a ``-smoke`` suffix, so its run directory is told apart from the real runs.

Everything else (model, dataset, network, optimizer, precision, caching) stays as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models import TrainingJob
from .loading import validate_job

__all__ = ["SMOKE_STEPS", "smoke_job"]

SMOKE_STEPS = 2
"""Optimizer steps of a smoke run: the first one includes warm-up, the second is timed."""

_DROPPED_TRAINING = (
    "max_train_epochs",
    "save_every_n_epochs",
    "save_every_n_steps",
    "save_last_n_epochs",
    "save_last_n_steps",
)


def smoke_job(job: TrainingJob, output_dir: Path | str) -> TrainingJob:
    """The smoke version of ``job`` writing into ``output_dir`` (see the module docstring).

    Args:
        job: The validated job, as it will be trained.
        output_dir: The scratch folder for the smoke run's files; must not be the job's own.

    Returns:
        A validated job.

    Raises:
        ValueError: ``output_dir`` is the job's own output folder.
    """
    scratch = str(output_dir)
    if Path(scratch) == Path(job.training.output_dir):
        raise ValueError(f"the smoke run needs its own folder, not the job's ({scratch})")
    data: dict[str, Any] = job.model_dump(mode="json", exclude_none=True)
    data["name"] = f"{job.display_name}-smoke"
    training = data["training"]
    for key in _DROPPED_TRAINING:
        training.pop(key, None)
    training["max_train_steps"] = SMOKE_STEPS
    training["output_dir"] = scratch
    if job.training.logging_dir is not None:
        training["logging_dir"] = str(Path(scratch) / "logs")
    sampling = data["sampling"]
    if job.sampling.prompts:
        sampling["prompts"] = sampling["prompts"][:1]
        sampling.pop("sample_every_n_epochs", None)
        sampling["sample_every_n_steps"] = SMOKE_STEPS
        sampling["sample_at_first"] = False
    return validate_job(data, source=f"smoke run of {job.display_name}")
