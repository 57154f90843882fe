"""Cross-field rules on a job: ``check_*`` return errors, ``warn_*`` return warnings.

Each rule names the key as the user wrote it (dotted path), says what is wrong and how to fix it.
Sources are the sd-scripts checks listed in docs/sd-scripts-reference.md section 1.5 and the
peers' complaints (peers.md section 4.8). One module per topic (``dataset``, ``training``,
``network``, ``lr_weights``, ``optimizer``, ``sampling``, ``model``, ``extra_args``); this one runs them all, in
the order below, so problems are always reported in the same order. The rules read the job
through :class:`~.base.JobView`, so they never import the job model (which runs them).
"""

from __future__ import annotations

from ...errors import Problem
from ..arguments import Arguments
from .base import JobView, Rule
from .clients import warn_clients
from .dataset import check_buckets, check_dataset_shape, warn_dataset
from .extra_args import check_extra_args
from .family import check_family
from .lr_weights import check_lr_weights, warn_lr_weights
from .model import warn_model
from .network import check_network, warn_network
from .optimizer import check_optimizer, warn_adaptive
from .sampling import MAX_TORCH_SEED, check_sample_prompts, check_sampling, warn_cadence
from .training import (
    check_caching,
    check_length,
    check_noise_and_loss,
    check_precision,
    check_saving,
)

__all__ = [
    "MAX_TORCH_SEED",
    "JobView",
    "Rule",
    "check_buckets",
    "check_caching",
    "check_dataset_shape",
    "check_extra_args",
    "check_family",
    "check_job",
    "check_length",
    "check_lr_weights",
    "check_network",
    "check_noise_and_loss",
    "check_optimizer",
    "check_precision",
    "check_sample_prompts",
    "check_sampling",
    "check_saving",
    "job_warnings",
    "warn_adaptive",
    "warn_cadence",
    "warn_clients",
    "warn_dataset",
    "warn_lr_weights",
    "warn_model",
    "warn_network",
]

_CHECKS: tuple[Rule, ...] = (
    check_length,
    check_sampling,
    check_sample_prompts,
    check_saving,
    check_precision,
    check_caching,
    check_noise_and_loss,
    check_dataset_shape,
    check_buckets,
    check_family,
    check_network,
    check_lr_weights,
    check_optimizer,
)
_WARNINGS: tuple[Rule, ...] = (
    warn_adaptive,
    warn_network,
    warn_clients,
    warn_lr_weights,
    warn_model,
    warn_cadence,
    warn_dataset,
)


def check_job(job: JobView, arguments: Arguments | None = None) -> list[Problem]:
    """Every cross-field error in the job (empty when it is valid).

    ``arguments``: what the sd-scripts that will run the job accepts (``extra_args`` are checked
    against it); the built-in list of sd-scripts 48d368fa when None.
    """
    problems = [p for rule in _CHECKS for p in rule(job)]
    return problems + list(check_extra_args(job, arguments))


def job_warnings(job: JobView) -> list[Problem]:
    """Things that are allowed but probably not what the user wants."""
    return [
        Problem(p.path, p.message, p.hint, severity="warning")
        for rule in _WARNINGS
        for p in rule(job)
    ]
