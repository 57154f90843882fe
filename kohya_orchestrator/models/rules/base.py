"""What a rule reads: the job as a structural type, so the rules never import the job model.

``models/job.py`` runs the rules from its validator; typing them against :class:`JobView`
instead of ``TrainingJob`` keeps the import one-way (job -> rules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar, Protocol

from pydantic.fields import FieldInfo

from ...errors import Problem
from ..dataset import DatasetBlock, DatasetConfig
from ..model import ModelConfig
from ..network import Network
from ..optimizer import ArgValue, Optimizer, SchedulerConfig
from ..sampling import SamplingConfig
from ..training import TrainingConfig

__all__ = ["JobView", "Rule", "blocks"]


class JobView(Protocol):
    """The sections of a job that rules read (``TrainingJob`` has them all)."""

    __pydantic_fields__: ClassVar[dict[str, FieldInfo]]
    """The job format's fields (a pydantic model's), for the keys each section models."""

    @property
    def model(self) -> ModelConfig: ...
    @property
    def dataset(self) -> DatasetConfig: ...
    @property
    def network(self) -> Network: ...
    @property
    def optimizer(self) -> Optimizer: ...
    @property
    def scheduler(self) -> SchedulerConfig: ...
    @property
    def training(self) -> TrainingConfig: ...
    @property
    def sampling(self) -> SamplingConfig: ...
    @property
    def extra_args(self) -> Mapping[str, ArgValue]: ...


Rule = Callable[[JobView], Iterator[Problem]]
"""A ``check_*`` or ``warn_*`` function: every problem of its kind in the job."""


def blocks(ds: DatasetConfig) -> list[tuple[str, DatasetConfig | DatasetBlock]]:
    """``[dataset]`` and each ``[[dataset.datasets]]`` entry, with the dotted path of each."""
    return [("dataset", ds)] + [(f"dataset.datasets[{i}]", b) for i, b in enumerate(ds.datasets)]
