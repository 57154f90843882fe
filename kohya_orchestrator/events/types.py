"""Typed events: what every consumer (terminal, notebook, JSONL) reads.

Events are frozen pydantic models discriminated on ``kind``. Each carries ``seq`` (0-based, in
emission order, assigned by whoever emits the event) and ``t`` (seconds since the run started, as
told by the caller; the log parser never reads a clock).

The log parser emits the parsed kinds (``PhaseChanged`` … ``LogLine``). The runner emits
``RunStarted``/``RunFinished`` and ``SampleImageSaved`` (sd-scripts does not print sample paths; the
runner scans the sample folder), ``PlanPredicted``, ``PlanMismatch`` and ``SampleSuspect`` (its own
checks), and the resource monitor emits ``ResourceSample``.

Events parsed from console text carry ``text``: the message they came from, with rich's layout
removed and wrapped lines joined (see ``docs/events.md``). ``ChildWarning``/``ChildError`` keep it
in ``message`` (and ``traceback``) instead.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "ERROR_CATEGORIES",
    "CheckpointSaved",
    "ChildError",
    "ChildWarning",
    "EpochStarted",
    "ErrorCategory",
    "Event",
    "EventAdapter",
    "LogLine",
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
    "SampleImageSaved",
    "SampleProblem",
    "SamplePrompt",
    "SampleSuspect",
    "SamplingStarted",
    "StateSaved",
    "StepProgress",
    "TrainingPlan",
    "trusted_constructor",
]


class RunStatus(str, Enum):
    """Lifecycle of one training run (also written to ``runs/<id>/status``)."""

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Phase(str, Enum):
    """Coarse stage of ``train_network.py``, in the order sd-scripts normally goes through them."""

    LOADING_CONFIG = "loading_config"
    PREPARING_DATASET = "preparing_dataset"
    PREPARING_BUCKETS = "preparing_buckets"
    LOADING_MODEL = "loading_model"
    CACHING_LATENTS = "caching_latents"
    CREATING_NETWORK = "creating_network"
    PREPARING_OPTIMIZER = "preparing_optimizer"
    TRAINING = "training"
    SAMPLING = "sampling"
    SAVING = "saving"
    FINISHED = "finished"


ErrorCategory = Literal[
    "oom",
    "no_data",
    "missing_module",
    "lycoris_duplicated_name",
    "lycoris_ia3_keyerror",
    "lycoris_empty_params",
    "bad_argument",
    "fp16_no_gpu",
    "nan_loss",
    "config_not_found",
    "model_weights",
    "interrupted",
    "launcher_failed",
    "logged_error",
    "exception",
]
"""What went wrong, as a stable key. ``exception`` is any other Python traceback,
``logged_error`` any other ERROR/CRITICAL log record, ``launcher_failed`` accelerate's
``CalledProcessError`` wrapper around a failed trainer."""

ERROR_CATEGORIES: tuple[str, ...] = get_args(ErrorCategory)
"""Every ``ErrorCategory`` value."""


class _EventBase(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        # NaN losses must survive a JSONL round trip; strings keep the line valid JSON.
        ser_json_inf_nan="strings",
    )

    kind: str
    seq: int = Field(ge=0, description="0-based position in the event stream, by emission order.")
    t: float = Field(default=0.0, description="Seconds since the run started (from the caller).")


class _ParsedEvent(_EventBase):
    text: str | None = Field(
        default=None,
        description="Console message this event was parsed from (layout removed, wraps joined).",
    )


# --- emitted by the runner / monitor ------------------------------------------------------------


class RunStarted(_EventBase):
    """The trainer process was started (emitted by the runner)."""

    kind: Literal["run_started"] = "run_started"
    run_id: str = Field(description="Run identifier (the run directory name).")
    argv: list[str] = Field(description="The command that was started.")
    cwd: str = Field(description="Working directory of the child.")


class RunFinished(_EventBase):
    """The trainer process ended (emitted by the runner; always the last event)."""

    kind: Literal["run_finished"] = "run_finished"
    status: RunStatus = Field(description="Final status.")
    returncode: int | None = Field(default=None, description="Exit code; negative = signal.")
    duration_s: float = Field(description="Wall time of the run in seconds.")
    reason: str | None = Field(default=None, description="Why it ended, in a few words.")


class ResourceSample(_EventBase):
    """One sample of the process tree's resource use (emitted by the monitor)."""

    kind: Literal["resource_sample"] = "resource_sample"
    cpu_percent: float = Field(description="CPU use of the whole process tree (100 = one core).")
    rss_bytes: int = Field(ge=0, description="Resident memory of the whole process tree.")
    num_processes: int = Field(ge=0, description="Processes in the tree.")
    gpu_memory_used_mb: list[int] | None = Field(
        default=None, description="Used memory per visible GPU in MiB, when known."
    )


class SampleImageSaved(_EventBase):
    """A sample image appeared in ``<output_dir>/sample`` (emitted by the runner's folder scan)."""

    kind: Literal["sample_image_saved"] = "sample_image_saved"
    path: str = Field(description="Path of the image file.")
    epoch: int | None = Field(default=None, description="Epoch from an ``_e000001_`` name.")
    step: int | None = Field(default=None, description="Step from a ``_000010_`` name.")
    prompt_index: int | None = Field(default=None, description="0-based index of the prompt.")


class PlanPredicted(_EventBase):
    """The numbers the run expects sd-scripts' banner to show (emitted by the runner at start).

    Computed from the job and its dataset folders before launching (``datasets/plan.py``), the
    same arithmetic as ``plan JOB``.
    """

    kind: Literal["plan_predicted"] = "plan_predicted"
    train_images_with_repeats: int = Field(ge=0, description="Images × repeats.")
    batches_per_epoch: int = Field(ge=0, description="Batches in one epoch.")
    epochs: int = Field(ge=0, description="Number of epochs.")
    total_steps: int = Field(ge=0, description="Total optimization steps.")
    exact: bool = Field(description="False when the prediction knows it may be off.")
    notes: list[str] = Field(
        default_factory=list, description="Why the prediction may be off (when not exact)."
    )


class PlanDifference(BaseModel):
    """One number on which the prediction and sd-scripts' banner disagree."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quantity: Literal["images x repeats", "batches per epoch", "epochs", "total steps"]
    predicted: int = Field(description="What the run predicted.")
    actual: int = Field(description="What sd-scripts printed.")


class PlanMismatch(_EventBase):
    """A warning: sd-scripts' banner disagrees with the predicted plan (emitted by the runner)."""

    kind: Literal["plan_mismatch"] = "plan_mismatch"
    differences: list[PlanDifference] = Field(description="Each number that differs.")
    message: str = Field(description="The differences in one line, with both numbers.")


SampleProblem = Literal["black", "one_colour", "nan", "unreadable"]
"""What is wrong with a sample image."""


class SampleSuspect(_EventBase):
    """A warning: a sample image is all black, one colour, or came after a NaN (runner's check)."""

    kind: Literal["sample_suspect"] = "sample_suspect"
    path: str = Field(description="Path of the image file.")
    problem: SampleProblem = Field(
        description="``black``, ``one_colour``, ``nan``, ``unreadable``."
    )
    epoch: int | None = Field(default=None, description="Epoch of the sample, when known.")
    step: int | None = Field(default=None, description="Step of the sample, when known.")
    prompt_index: int | None = Field(default=None, description="0-based index of the prompt.")
    prompt: str | None = Field(default=None, description="The prompt, when it was logged.")
    message: str = Field(description="What is wrong, naming the epoch (or step) and the prompt.")


# --- emitted by the log parser -----------------------------------------------------------------


class PhaseChanged(_EventBase):
    """sd-scripts moved on to another stage. Emitted only when the phase actually changes."""

    kind: Literal["phase_changed"] = "phase_changed"
    phase: Phase = Field(description="The stage now running.")


class TrainingPlan(_ParsedEvent):
    """The ``running training / 学習開始`` banner (printed once, right before the first step)."""

    kind: Literal["training_plan"] = "training_plan"
    train_images_with_repeats: int | None = Field(default=None, description="Images × repeats.")
    validation_images_with_repeats: int | None = Field(
        default=None, description="Validation images × repeats."
    )
    reg_images: int | None = Field(default=None, description="Regularization images.")
    batches_per_epoch: int | None = Field(default=None, description="Batches in one epoch.")
    epochs: int | None = Field(default=None, description="Number of epochs.")
    batch_size_per_device: list[int] | None = Field(
        default=None, description="Batch size of each dataset."
    )
    gradient_accumulation_steps: int | None = Field(default=None, description="Accumulation.")
    total_steps: int | None = Field(default=None, description="Total optimization steps.")

    @property
    def steps_per_epoch(self) -> int | None:
        """Optimizer steps per epoch: ceil(batches per epoch / gradient accumulation)."""
        if self.batches_per_epoch is None:
            return None
        gas = self.gradient_accumulation_steps or 1
        return -(-self.batches_per_epoch // gas)


class EpochStarted(_ParsedEvent):
    """An ``epoch N/M`` line."""

    kind: Literal["epoch_started"] = "epoch_started"
    epoch: int = Field(ge=0, description="1-based epoch now starting.")
    total_epochs: int = Field(ge=0, description="Epochs in the run.")


class StepProgress(_ParsedEvent):
    """A new state of the training bar (tqdm ``steps:``): step or loss changed."""

    kind: Literal["step_progress"] = "step_progress"
    step: int = Field(ge=0, description="Optimizer steps done (the bar's position).")
    total_steps: int = Field(ge=0, description="The bar's total (max_train_steps - initial_step).")
    epoch: int | None = Field(default=None, description="Current epoch, once an epoch started.")
    avr_loss: float | None = Field(default=None, description="Moving average loss; may be NaN.")
    rate_it_s: float | None = Field(default=None, description="Steps per second (tqdm rate).")
    elapsed_s: float | None = Field(default=None, description="Elapsed seconds (tqdm).")
    eta_s: float | None = Field(default=None, description="Seconds left for the run (tqdm).")
    epoch_step: int | None = Field(default=None, description="Steps done in this epoch.")
    epoch_total_steps: int | None = Field(default=None, description="Steps in one epoch.")
    epoch_eta_s: float | None = Field(default=None, description="Seconds left in this epoch.")
    postfix: dict[str, str] | None = Field(
        default=None, description="Other ``key=value`` items of the bar (e.g. ``Keys Scaled``)."
    )


class ProgressBar(_ParsedEvent):
    """A new state of any other tqdm bar (image sizes, captions, latents, sampling, validation)."""

    kind: Literal["progress_bar"] = "progress_bar"
    desc: str | None = Field(default=None, description="tqdm description, when it has one.")
    n: int = Field(ge=0, description="Items done.")
    total: int | None = Field(default=None, description="Items in all; None when unknown.")
    phase: Phase | None = Field(default=None, description="Phase the bar belongs to.")
    rate_it_s: float | None = Field(default=None, description="Items per second.")
    elapsed_s: float | None = Field(default=None, description="Elapsed seconds.")
    eta_s: float | None = Field(default=None, description="Seconds left.")
    postfix: dict[str, str] | None = Field(default=None, description="``key=value`` items.")


class SamplingStarted(_ParsedEvent):
    """``generating sample images at step …``: sample images are being drawn."""

    kind: Literal["sampling_started"] = "sampling_started"
    step: int | None = Field(default=None, description="Global step the samples belong to.")
    epoch: int | None = Field(default=None, description="Current epoch, when known.")


class SamplePrompt(_ParsedEvent):
    """One prompt sd-scripts is about to draw, as it logged it."""

    kind: Literal["sample_prompt"] = "sample_prompt"
    prompt: str = Field(description="The prompt.")
    negative_prompt: str | None = Field(default=None, description="The negative prompt.")
    width: int | None = Field(default=None, description="Image width.")
    height: int | None = Field(default=None, description="Image height.")
    sample_steps: int | None = Field(default=None, description="Denoising steps.")
    scale: float | None = Field(default=None, description="CFG scale.")
    sampler: str | None = Field(default=None, description="Sampler name.")
    seed: int | None = Field(default=None, description="Seed, when one was given.")
    prompt_index: int | None = Field(default=None, description="0-based index in this round.")
    step: int | None = Field(default=None, description="Step of this sampling round.")
    epoch: int | None = Field(default=None, description="Epoch of this sampling round.")


class CheckpointSaved(_ParsedEvent):
    """``saving checkpoint: <path>``: a LoRA file is being written."""

    kind: Literal["checkpoint_saved"] = "checkpoint_saved"
    path: str = Field(description="Path of the .safetensors/.ckpt file.")
    epoch: int | None = Field(default=None, description="Epoch from a ``-000001.`` suffix.")
    step: int | None = Field(default=None, description="Step from a ``-step00000500.`` suffix.")
    final: bool = Field(description="True for the last save (no epoch or step suffix).")


class StateSaved(_ParsedEvent):
    """``save train state to <dir>/train_state.json …``: a resumable state folder was written."""

    kind: Literal["state_saved"] = "state_saved"
    path: str = Field(description="The state directory.")
    epoch: int | None = Field(default=None, description="Epoch recorded in train_state.json.")
    step: int | None = Field(default=None, description="Step recorded in train_state.json.")


class ChildWarning(_EventBase):
    """A warning from the trainer: WARNING log records, LyCORIS warnings, Python warnings."""

    kind: Literal["child_warning"] = "child_warning"
    message: str = Field(description="The warning text (Python warnings: with its source line).")
    source: str | None = Field(default=None, description="``file.py:123`` or ``LyCORIS``.")


class ChildError(_EventBase):
    """Something failed: a traceback, a known fatal message, or a NaN loss."""

    kind: Literal["child_error"] = "child_error"
    message: str = Field(description="The error line (for tracebacks: the exception line).")
    category: ErrorCategory = Field(description="Stable key; see ``failures.FAILURE_RULES``.")
    remedy: str | None = Field(default=None, description="How to fix it, when we know.")
    traceback: list[str] = Field(
        default_factory=list, description="Traceback lines, header to exception line."
    )
    source: str | None = Field(default=None, description="``file.py:123`` of a log record.")


class LogLine(_EventBase):
    """A message the parser did not turn into another event. Nothing is dropped."""

    kind: Literal["log_line"] = "log_line"
    text: str = Field(description="The message (rich layout removed, wrapped lines joined).")
    level: str | None = Field(default=None, description="Log level when the layout shows one.")
    source: str | None = Field(default=None, description="``file.py:123`` or ``LyCORIS``.")


Event = Annotated[
    RunStarted
    | RunFinished
    | ResourceSample
    | SampleImageSaved
    | PlanPredicted
    | PlanMismatch
    | SampleSuspect
    | PhaseChanged
    | TrainingPlan
    | EpochStarted
    | StepProgress
    | ProgressBar
    | SamplingStarted
    | SamplePrompt
    | CheckpointSaved
    | StateSaved
    | ChildWarning
    | ChildError
    | LogLine,
    Field(discriminator="kind"),
]
"""Any event; discriminated on ``kind``."""

EventAdapter: TypeAdapter[Event] = TypeAdapter(Event)
"""Validates/serialises any event: ``EventAdapter.validate_json(line)``."""


_E = TypeVar("_E", bound=BaseModel)
_MISSING: Any = object()


def trusted_constructor(cls: type[_E]) -> Callable[..., _E]:
    """A constructor of ``cls`` that skips validation, for values our own code computed.

    The log parser builds ~100k events per second of log on a busy stream; validating each one
    costs more than parsing it. The parser gives every field its declared type itself (a test
    re-validates every event parsed from every capture and compares the JSON), so validation
    would only re-check what is already true. Input from outside (``events.jsonl``, callers'
    dicts) still goes through :data:`EventAdapter`.

    The constructor takes the fields as keywords (required ones without a default) and is
    generated as source, the way :mod:`dataclasses` does, so that a call costs one dict literal.
    The instance is a normal frozen model: same field order, defaults (default factories are
    called), equality and serialisation as a validated one; like one read back from JSON, all
    its fields count as set.

    Args:
        cls: An event class.

    Returns:
        ``make(**fields)`` returning an instance of ``cls``.
    """
    names = list(cls.model_fields)
    params: list[str] = []
    fills: list[str] = []
    scope: dict[str, Any] = {"cls": cls, "new": cls.__new__, "set_attr": object.__setattr__}
    scope["MISSING"] = _MISSING
    for name, info in cls.model_fields.items():
        if not name.isidentifier() or name in scope:
            raise ValueError(f"{cls.__name__}.{name}: not a plain field name")
        if info.default_factory is not None:
            scope[f"factory_{name}"] = info.default_factory
            params.append(f"{name}=MISSING")
            fills.append(f"    if {name} is MISSING:\n        {name} = factory_{name}()\n")
        elif info.is_required():
            params.append(name)
        else:
            scope[f"default_{name}"] = info.default
            params.append(f"{name}=default_{name}")
    scope["all_fields"] = frozenset(names)
    body = ", ".join(f"{name!r}: {name}" for name in names)
    source = (
        f"def make(*, {', '.join(params)}):\n"
        + "".join(fills)
        + "    obj = new(cls)\n"
        + f"    set_attr(obj, '__dict__', {{{body}}})\n"
        + "    set_attr(obj, '__pydantic_fields_set__', set(all_fields))\n"
        + "    set_attr(obj, '__pydantic_extra__', None)\n"
        + "    set_attr(obj, '__pydantic_private__', None)\n"
        + "    return obj\n"
    )
    exec(source, scope)  # our own field names, checked above
    make: Callable[..., _E] = scope["make"]
    make.__name__ = make.__qualname__ = f"trusted_{cls.__name__}"
    return make
