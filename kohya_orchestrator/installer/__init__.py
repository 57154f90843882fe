"""``install``: from nothing to a kohya-ss sd-scripts install the product finds and trains with.

:mod:`.plan` decides (pure: the torch build for the driver, the requirements to install);
:mod:`.steps` does it (git, venv, pip), idempotently. The project's own real-trainer lab
(``tests/lab/build_lab.py``) is this same install plus test models and data.
"""

from .plan import (
    DEFAULT_SOURCE,
    MARKER,
    PINNED_COMMIT,
    InstallOptions,
    TorchChoice,
    choose_torch,
    explain_failure,
    filter_requirements,
    parse_cuda_version,
)
from .steps import InstallResult, StepReport, detect_cuda, run_install

__all__ = [
    "DEFAULT_SOURCE",
    "MARKER",
    "PINNED_COMMIT",
    "InstallOptions",
    "InstallResult",
    "StepReport",
    "TorchChoice",
    "choose_torch",
    "detect_cuda",
    "explain_failure",
    "filter_requirements",
    "parse_cuda_version",
    "run_install",
]
