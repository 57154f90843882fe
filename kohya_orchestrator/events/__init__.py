"""Typed events and the sd-scripts console parser.

``LogParser`` turns ``train_network.py``'s merged stdout/stderr into events; ``parse_log`` and
``parse_bytes_chunks`` are one-shot conveniences. Events serialise to JSON Lines through
``EventAdapter`` (``dump_events_jsonl`` / ``load_events_jsonl``; ``read_events`` reads a run
directory's ``events.jsonl``). ``summarize`` / ``SummaryFold`` fold events into a ``RunSummary``.
See ``docs/events.md``.
"""

from __future__ import annotations

from .failures import FAILURE_RULES, FailureRule, classify_failure
from .jsonl import dump_events_jsonl, load_events_jsonl, read_events
from .logs import Decoder, parse_bytes_chunks, parse_log
from .parser import LogParser
from .plancheck import compare_plan
from .samples import parse_sample_filename
from .summary import RunSummary, SavedCheckpoint, SummaryFold, plan_line, summarize
from .types import (
    ERROR_CATEGORIES,
    CheckpointSaved,
    ChildError,
    ChildWarning,
    EpochStarted,
    ErrorCategory,
    Event,
    EventAdapter,
    LogLine,
    Phase,
    PhaseChanged,
    PlanDifference,
    PlanMismatch,
    PlanPredicted,
    ProgressBar,
    ResourceSample,
    RunFinished,
    RunStarted,
    RunStatus,
    SampleImageSaved,
    SampleProblem,
    SamplePrompt,
    SampleSuspect,
    SamplingStarted,
    StateSaved,
    StepProgress,
    TrainingPlan,
)

__all__ = [
    "ERROR_CATEGORIES",
    "FAILURE_RULES",
    "CheckpointSaved",
    "ChildError",
    "ChildWarning",
    "Decoder",
    "EpochStarted",
    "ErrorCategory",
    "Event",
    "EventAdapter",
    "FailureRule",
    "LogLine",
    "LogParser",
    "Phase",
    "PhaseChanged",
    "PlanDifference",
    "PlanMismatch",
    "PlanPredicted",
    "ProgressBar",
    "ResourceSample",
    "RunFinished",
    "RunStarted",
    "RunStatus",
    "RunSummary",
    "SampleImageSaved",
    "SampleProblem",
    "SamplePrompt",
    "SampleSuspect",
    "SamplingStarted",
    "SavedCheckpoint",
    "StateSaved",
    "StepProgress",
    "SummaryFold",
    "TrainingPlan",
    "classify_failure",
    "compare_plan",
    "dump_events_jsonl",
    "load_events_jsonl",
    "parse_bytes_chunks",
    "parse_log",
    "parse_sample_filename",
    "plan_line",
    "read_events",
    "summarize",
]
