"""TrainingJob: the aggregate root. Rules that span sections run here, all at once.

The rules (``models/rules/``) read the job through a structural type, so they never import
this module: the import goes one way, job -> rules.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from .arguments import Arguments
from .base import StrictModel
from .dataset import DatasetConfig
from .model import ModelConfig
from .network import LoraNetwork, Network
from .optimizer import AdamWOptimizer, ArgValue, Optimizer, SchedulerConfig
from .rules import check_job
from .sampling import SamplingConfig
from .training import TrainingConfig

__all__ = ["RuleViolations", "TrainingJob"]


class RuleViolations(ValueError):
    """Raised by the job validator with every cross-field problem found (never just the first)."""

    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


class TrainingJob(StrictModel):
    """A complete LoRA training job: what sd-scripts needs, typed and checked."""

    version: Annotated[Literal[1], Field(description="Job file format version.")] = 1
    name: Annotated[str | None, Field(min_length=1, description="A label for runs and queues.")] = (
        None
    )
    description: Annotated[str | None, Field(description="Free text for people.")] = None
    preset: Annotated[
        str | None, Field(description="The preset this job was built from (provenance only).")
    ] = None
    model: ModelConfig
    dataset: DatasetConfig
    network: Annotated[
        Network, Field(description="What to train: lora, locon, loha, lokr, ia3, ...")
    ] = LoraNetwork()
    optimizer: Annotated[
        Optimizer, Field(description="Optimizer; its type picks its arguments.")
    ] = AdamWOptimizer()
    scheduler: SchedulerConfig = SchedulerConfig()
    training: TrainingConfig = TrainingConfig()
    sampling: SamplingConfig = SamplingConfig()
    extra_args: Annotated[
        dict[str, ArgValue],
        Field(
            description="sd-scripts arguments this job format does not model, written as-is to the "
            "config file. Checked against sd-scripts' own argument names."
        ),
    ] = {}

    @model_validator(mode="after")
    def check_rules(self, info: ValidationInfo) -> TrainingJob:
        context = info.context if isinstance(info.context, dict) else {}
        arguments = context.get("arguments")
        problems = check_job(self, arguments if isinstance(arguments, Arguments) else None)
        if problems:
            raise RuleViolations(problems)
        return self

    @property
    def display_name(self) -> str:
        """name, else the output name."""
        return self.name or self.training.output_name
