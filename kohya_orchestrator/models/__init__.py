"""Typed job models: what a user can say about a training job."""

from .dataset import (
    CaptionOptions,
    DatasetBlock,
    DatasetConfig,
    DreamBoothSubset,
    FineTuningSubset,
    Subset,
    parse_repeats_folder,
)
from .family import FAMILIES, FamilyProfile
from .job import RuleViolations, TrainingJob
from .model import ModelConfig
from .network import (
    BoftNetwork,
    DiagOftNetwork,
    DyLoraNetwork,
    FullNetwork,
    IA3Network,
    LoConNetwork,
    LoHaNetwork,
    LoKrNetwork,
    LoraNetwork,
    Network,
)
from .optimizer import (
    AdaFactorOptimizer,
    AdamWOptimizer,
    CustomOptimizer,
    DAdaptOptimizer,
    LionOptimizer,
    Optimizer,
    ProdigyOptimizer,
    ScheduleFreeOptimizer,
    SchedulerConfig,
    SGDNesterovOptimizer,
)
from .rules import check_job, job_warnings
from .sampling import SamplePrompt, SamplingConfig
from .training import TrainingConfig

__all__ = [
    "FAMILIES",
    "FamilyProfile",
    "AdaFactorOptimizer",
    "AdamWOptimizer",
    "BoftNetwork",
    "CaptionOptions",
    "CustomOptimizer",
    "DAdaptOptimizer",
    "DatasetBlock",
    "DatasetConfig",
    "DiagOftNetwork",
    "DreamBoothSubset",
    "DyLoraNetwork",
    "FineTuningSubset",
    "FullNetwork",
    "IA3Network",
    "LionOptimizer",
    "LoConNetwork",
    "LoHaNetwork",
    "LoKrNetwork",
    "LoraNetwork",
    "ModelConfig",
    "Network",
    "Optimizer",
    "ProdigyOptimizer",
    "RuleViolations",
    "SGDNesterovOptimizer",
    "SamplePrompt",
    "SamplingConfig",
    "ScheduleFreeOptimizer",
    "SchedulerConfig",
    "Subset",
    "TrainingConfig",
    "TrainingJob",
    "check_job",
    "job_warnings",
    "parse_repeats_folder",
]
