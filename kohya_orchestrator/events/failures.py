"""Known ways a sd-scripts run fails: a table of (pattern, category, remedy), and a classifier.

The parser consults :data:`FAILURE_RULES` for every traceback's exception line (rules with
``scope="exception"``) and for every other message (``scope="message"``), and turns a match into a
:class:`~kohya_orchestrator.events.types.ChildError` carrying the category and remedy.
:func:`classify_failure` picks the one error that best explains a failed run.

Remedies may use the pattern's named groups as ``{name}`` placeholders, plus ``{package}`` (the pip
name of a missing module); a ``status`` group is written out by :func:`describe_exit_status`
(``3221225477 = 0xC0000005, a Windows access violation …``).

:func:`classify_traceback` also reads a traceback's frames where the exception line alone does not
say whose problem it is (``duplicated lora name``: LyCORIS, or sd-scripts' own ``networks/lora.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from .types import ChildError, ErrorCategory, Event

__all__ = [
    "FAILURE_RULES",
    "GENERIC_REMEDIES",
    "FailureRule",
    "classify_exception",
    "classify_failure",
    "classify_known",
    "classify_message",
    "classify_traceback",
    "describe_exit_status",
]


@dataclass(frozen=True)
class FailureRule:
    """One known failure: where to look, what it matches, what it means, how to fix it."""

    category: ErrorCategory
    pattern: re.Pattern[str]
    remedy: str | None
    scope: Literal["exception", "message"]
    """``exception``: only a traceback's exception line; ``message``: any log message or print."""
    example: str
    """A real line the pattern must match (from the capture in ``fixture``, else as sd-scripts,
    torch, accelerate or argparse print it); the tests check every rule against its example."""
    fixture: str | None = None
    """The capture in ``tests/fixtures/sd-scripts/sd-scripts-logs`` showing it (None: none yet)."""


# pip names of modules sd-scripts and its plugins import, where they differ from the module name.
_PIP_NAMES = {
    "lycoris": "lycoris-lora",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "prodigyopt": "prodigyopt",
    "dadaptation": "dadaptation",
    "schedulefree": "schedulefree",
    "bitsandbytes": "bitsandbytes",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "google.protobuf": "protobuf",
}

_VENV_PIP = "<venv python> -m pip install {package}"

FAILURE_RULES: tuple[FailureRule, ...] = (
    FailureRule(
        category="oom",
        pattern=re.compile(r"CUDA out of memory|OutOfMemoryError"),
        remedy=(
            "The GPU ran out of memory. Lower train_batch_size or the resolution, turn on "
            "gradient_checkpointing and cache_latents, train in mixed_precision 'fp16'/'bf16' "
            "with sdpa or xformers, or use an 8-bit optimizer (AdamW8bit)."
        ),
        example=(
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. "
            "GPU 0 has a total capacity of 7.79 GiB of which 3.31 MiB is free."
        ),
        scope="exception",
    ),
    FailureRule(
        category="model_weights",
        # A model file lacking tensors its family's loader needs: torch's strict load_state_dict
        # (transformers models), sd-scripts' own check (library/anima_models.py) or a module
        # left on the meta device by an assign-load (library/lumina_util.py); captured in the
        # lab with shrunk DiT checkpoints.
        pattern=re.compile(
            r"Error\(s\) in loading state_dict for (?P<model>\w+)|Missing keys in checkpoint"
            r"|Cannot copy out of meta tensor"
        ),
        remedy=(
            "A model file lacks weights its loader needs: it is not a complete checkpoint of the "
            "job's family (another family, a pruned or partial file, or a text encoder or VAE "
            "given for the wrong key). Check model.pretrained_model_name_or_path and each "
            "component path (clip_l, t5xxl, ae, gemma2, text_encoder, qwen3, vae); "
            "`validate` tells a checkpoint's family from its header."
        ),
        example=(
            "RuntimeError: Missing keys in checkpoint: ['blocks.1.self_attn.q_proj.weight', "
            "'blocks.1.self_attn.q_norm.weight']"
        ),
        scope="exception",
    ),
    FailureRule(
        category="fp16_no_gpu",
        pattern=re.compile(r"fp16 mixed precision requires a GPU"),
        remedy=(
            "fp16 needs a CUDA GPU. On a CPU set mixed_precision = 'no' (and accelerate launch "
            "--mixed_precision no); otherwise check that torch sees the GPU."
        ),
        example="ValueError: fp16 mixed precision requires a GPU (not 'mps').",
        scope="exception",
    ),
    FailureRule(
        category="missing_module",
        pattern=re.compile(r"No module named '(?P<module>[^']+)'"),
        remedy="Install it into the Python that runs sd-scripts: `" + _VENV_PIP + "`.",
        example="ModuleNotFoundError: No module named 'lycoris'",
        scope="exception",
    ),
    FailureRule(
        category="missing_module",
        # sd: train_util.py get_optimizer raises ImportError("No bitsandbytes / …").
        pattern=re.compile(r"No (?P<module>bitsandbytes) / "),
        remedy="Install it into the Python that runs sd-scripts: `" + _VENV_PIP + "`.",
        example="ImportError: No bitsandbytes / bitsandbytesがインストールされていないようです",
        scope="exception",
    ),
    FailureRule(
        category="lycoris_duplicated_name",
        pattern=re.compile(r"duplicated lora name"),
        remedy=(
            "LyCORIS 4.x's default preset wraps some modules twice. Set an explicit preset, "
            "e.g. network_args = ['preset=attn-mlp', ...], or pin lycoris-lora 3.x "
            "(`<venv python> -m pip install 'lycoris-lora<4'`)."
        ),
        example="AssertionError: duplicated lora name: lora_unet_time_embedding_linear_1",
        scope="exception",
        fixture="b_loha",
    ),
    FailureRule(
        category="lycoris_ia3_keyerror",
        pattern=re.compile(r"^KeyError: 'ia3'$"),
        remedy=(
            "This LyCORIS (3.x) lost the 'ia3' algorithm. Upgrade to lycoris-lora 4.x "
            "(`<venv python> -m pip install 'lycoris-lora>=4'`) and give IA3 a custom preset "
            "file (network_args preset=<file.toml>) naming the modules to adapt."
        ),
        example="KeyError: 'ia3'",
        scope="exception",
        fixture="d_ia3_ly34",
    ),
    FailureRule(
        category="lycoris_empty_params",
        pattern=re.compile(r"optimizer got an empty parameter list"),
        remedy=(
            "The LyCORIS preset matched no modules, so there is nothing to train. Use "
            "preset=attn-mlp or full, or fix the module names in the custom preset."
        ),
        example="ValueError: optimizer got an empty parameter list",
        scope="exception",
    ),
    FailureRule(
        category="interrupted",
        pattern=re.compile(r"^KeyboardInterrupt\b"),
        remedy=(
            "The trainer was interrupted (SIGINT). Only files from 'saving checkpoint' lines "
            "before the interrupt exist; use save_state and resume to continue a run."
        ),
        example="KeyboardInterrupt",
        scope="exception",
        fixture="g_sigint_accelerate_group",
    ),
    FailureRule(
        category="launcher_failed",
        pattern=re.compile(
            r"CalledProcessError: .*returned non-zero exit status (?P<status>-?\d+)"
        ),
        remedy=(
            "accelerate launch only reports the trainer's exit status ({status}); the trainer's "
            "own error, if it printed one, is earlier in the log."
        ),
        example=(
            "subprocess.CalledProcessError: Command '['/srv/kohya/venv/bin/python', "
            "'train_network.py']' returned non-zero exit status 1."
        ),
        scope="exception",
    ),
    FailureRule(
        category="no_data",
        # sd: train_network.py:576 (rich ERROR record, or a bare line with --console_log_simple).
        pattern=re.compile(r"^No data found\."),
        remedy=(
            "No training images were found (sd-scripts still exits 0). train_data_dir must be "
            "the parent of '<repeats>_<name>' folders (e.g. img/ holding img/10_mystyle/); with "
            "a dataset config, check that each subset's image_dir exists and holds images."
        ),
        example=(
            "No data found. Please verify arguments (train_data_dir must be the parent of "
            "folders with images) / 画像がありません。引数指定を確認してください"
            "（train_data_dirには画像があるフォルダではなく、画像があるフォルダの親フォルダを"
            "指定する必要があります）"
        ),
        scope="message",
        fixture="f_missing_dir",
    ),
    FailureRule(
        category="config_not_found",
        # sd: train_util.py:4741, then exit(1).
        pattern=re.compile(r"^(?P<path>.+\.toml) not found\.$"),
        remedy=(
            "The --config_file does not exist: {path}. Check the path (sd-scripts adds .toml "
            "when the name lacks it)."
        ),
        example="/srv/kohya/configs/train_a_lora.toml not found.",
        scope="message",
    ),
    FailureRule(
        category="bad_argument",
        # argparse, exit 2: `train_network.py: error: unrecognized arguments: --foo`.
        pattern=re.compile(
            r"^\S+: error: (?P<detail>unrecognized arguments: .*|argument .*"
            r"|the following arguments are required: .*)$"
        ),
        remedy=(
            "sd-scripts rejected an option ({detail}). Check its spelling and value against "
            "`<venv python> train_network.py --help` of the installed sd-scripts commit."
        ),
        example="train_network.py: error: unrecognized arguments: --network_dimm 16",
        scope="message",
    ),
    FailureRule(
        category="bad_argument",
        # An sd-scripts that predates the optimizer looks any other name up in torch.optim
        # (train_util.get_optimizer); captured with v0.6.0 and Prodigy
        # (tests/fixtures/sd-scripts/old-version-logs/v0.6.0/prodigy_unknown).
        pattern=re.compile(r"module 'torch\.optim' has no attribute '(?P<optimizer>[\w.]+)'"),
        remedy=(
            "This sd-scripts does not know optimizer {optimizer} (it looked the name up in "
            "torch.optim, as releases from before that optimizer do): update sd-scripts, or "
            "choose an optimizer.type it has (AdamW, AdamW8bit, Lion, AdaFactor, ...)."
        ),
        example="AttributeError: module 'torch.optim' has no attribute 'Prodigy'",
        scope="exception",
    ),
)
"""Known failures, first match wins. ``nan_loss`` comes from the loss value, not from a line."""

# Windows NTSTATUS codes a crashed process exits with (shown unsigned, 3221225477, or as a signed
# 32-bit number, -1073741819): name and what it usually means for a training run.
_WINDOWS_STATUS: dict[int, tuple[str, str]] = {
    0xC0000005: (
        "STATUS_ACCESS_VIOLATION",
        "the trainer crashed in native code: often a CUDA, xformers or bitsandbytes build that "
        "does not match torch or the driver, too little system RAM or page file, or faulty "
        "memory or overclocking",
    ),
    0xC00000FD: (
        "STATUS_STACK_OVERFLOW",
        "a stack overflow in native code (deep recursion, or a broken extension module)",
    ),
    0xC0000409: (
        "STATUS_STACK_BUFFER_OVERRUN",
        "a native library stopped the process on purpose (fail-fast): usually a CUDA, driver or "
        "extension-module mismatch",
    ),
    0xC000013A: ("STATUS_CONTROL_C_EXIT", "the console was closed or Ctrl+C was pressed"),
    0xC0000135: ("STATUS_DLL_NOT_FOUND", "a DLL (CUDA runtime, cuDNN, MSVC runtime) is missing"),
    0xC0000142: ("STATUS_DLL_INIT_FAILED", "a DLL failed to initialise (often out of resources)"),
}
# POSIX signals (a negative status is the signal that killed the process).
_SIGNALS: dict[int, tuple[str, str]] = {
    1: ("SIGHUP", "its terminal or session went away"),
    2: ("SIGINT", "it was interrupted (Ctrl+C)"),
    6: ("SIGABRT", "it aborted itself (a failed check in a native library)"),
    7: ("SIGBUS", "a bus error in native code"),
    9: ("SIGKILL", "it was killed: often the system ran out of RAM (the kernel's OOM killer)"),
    11: ("SIGSEGV", "it crashed in native code (segmentation fault)"),
    15: ("SIGTERM", "it was asked to stop (another rank failed, or a scheduler stopped it)"),
}


def describe_exit_status(status: int) -> str:
    """An exit status with its meaning when it is a known crash code or signal.

    Args:
        status: As printed (``3221225477``, ``-1073741819``, ``-9``, ``1``).

    Returns:
        e.g. ``3221225477 = 0xC0000005, STATUS_ACCESS_VIOLATION: the trainer crashed …``;
        the number alone when it means nothing special.
    """
    unsigned = status & 0xFFFFFFFF if status < 0 else status
    known = _WINDOWS_STATUS.get(unsigned)
    if known is not None:
        return f"{status} = 0x{unsigned:08X}, a Windows {known[0]}: {known[1]}"
    if -64 < status < 0:
        signal = _SIGNALS.get(-status)
        if signal is not None:
            return f"{status}, signal {signal[0]}: {signal[1]}"
        return f"{status}, killed by signal {-status}"
    return str(status)


GENERIC_REMEDIES: dict[str, str] = {
    "nan_loss": (
        "The loss became NaN. Lower learning_rate, train in bf16 or fp32 instead of fp16 (drop "
        "full_fp16), and check the dataset for broken images."
    ),
}
"""Remedies for categories that have no pattern of their own."""

_EXCEPTION_RULES = tuple(r for r in FAILURE_RULES if r.scope == "exception")
_MESSAGE_RULES = tuple(r for r in FAILURE_RULES if r.scope == "message")
# One search decides whether any message rule could match (most messages match none).
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")
_MESSAGE_ANY = re.compile(
    "|".join("(?:" + _NAMED_GROUP.sub("(?:", r.pattern.pattern) + ")" for r in _MESSAGE_RULES)
)

# Most relevant first: what explains a failed run best.
_RANK: dict[str, int] = {
    "interrupted": 1,
    "exception": 2,
    "nan_loss": 3,
    "logged_error": 4,
    "launcher_failed": 5,
}


def _remedy(rule: FailureRule, match: re.Match[str]) -> str | None:
    if rule.remedy is None:
        return None
    groups = {k: v for k, v in match.groupdict().items() if v is not None}
    status = groups.get("status")
    if status is not None:
        groups["status"] = describe_exit_status(int(status))
    module = groups.get("module")
    if module is not None:
        top = module.split(".")[0]
        if top in ("library", "networks"):
            # sd-scripts' own packages, not pip packages: the script ran outside the checkout
            return (
                f"'{top}' is sd-scripts' own package: run the script with the sd-scripts folder "
                "as working directory and on PYTHONPATH (kohya_orchestrator does both)."
            )
        groups["package"] = _PIP_NAMES.get(module, _PIP_NAMES.get(top, top))
    try:
        return rule.remedy.format(**groups)
    except (KeyError, IndexError):  # pragma: no cover - every rule's placeholders are its groups
        return rule.remedy


def _first_match(
    rules: Sequence[FailureRule], text: str
) -> tuple[ErrorCategory, str | None] | None:
    for rule in rules:
        m = rule.pattern.search(text)
        if m is not None:
            return rule.category, _remedy(rule, m)
    return None


def classify_message(message: str) -> tuple[ErrorCategory, str | None] | None:
    """Classify a log message or printed line that is fatal on its own (``No data found`` …).

    Args:
        message: One message, rich layout removed (may span lines).

    Returns:
        ``(category, remedy)``, or None when the message is not a known failure.
    """
    if _MESSAGE_ANY.search(message) is None:
        return None
    return _first_match(_MESSAGE_RULES, message)


def classify_known(text: str) -> tuple[ErrorCategory, str | None] | None:
    """Like :func:`classify_exception`, but None when no rule matches.

    For text that is not known to be an exception line: an ERROR record, or a line shaped like an
    exception without its traceback (a pasted tail, ``torch.cuda.OutOfMemoryError: …``).
    """
    line = text.strip()
    return _first_match(_EXCEPTION_RULES, line) or _first_match(_MESSAGE_RULES, line)


def classify_exception(exception_line: str) -> tuple[ErrorCategory, str | None]:
    """Classify a traceback by its exception line (``KeyError: 'ia3'``).

    Args:
        exception_line: The last line of a traceback.

    Returns:
        ``(category, remedy)``; ``("exception", None)`` when no rule matches.
    """
    found = classify_known(exception_line)
    return found if found is not None else ("exception", None)


# sd-scripts' own networks/lora.py asserts unique names too (sd v0.4.0 networks/lora.py:123,
# v0.6.6:868, 48d368fa:1059): there it means the model's modules are not named as this
# sd-scripts expects, which is a diffusers/transformers version mismatch, not LyCORIS.
_SD_DUPLICATED_REMEDY = (
    "sd-scripts' own networks/lora.py found two modules with one LoRA name: the installed "
    "diffusers/transformers name the model's modules differently from what this sd-scripts "
    "expects (it is not a LyCORIS problem). Install the versions pinned in sd-scripts' "
    "requirements.txt (`<venv python> -m pip install -r requirements.txt` in the sd-scripts "
    "folder), or update sd-scripts together with them."
)
_SD_LORA_MODULE = re.compile(r"networks[/\\]lora\.py")


def _raised_in_sd_lora(lines: Sequence[str]) -> bool:
    """Whether the innermost frame naming LyCORIS or networks/lora.py is sd-scripts' one."""
    # rich boxes may cut a path across rows: read the rows without their borders, joined.
    text = "".join(line.strip().strip("│").strip() for line in lines)
    sd = max((m.start() for m in _SD_LORA_MODULE.finditer(text)), default=-1)
    return sd > text.rfind("lycoris")


def classify_traceback(
    exception_line: str, lines: Sequence[str] = ()
) -> tuple[ErrorCategory, str | None]:
    """Classify a traceback by its exception line, and by its frames where they decide.

    Args:
        exception_line: The exception (``AssertionError: duplicated lora name: …``).
        lines: The traceback's lines (header, frames, exception; or a rich box's rows).

    Returns:
        ``(category, remedy)`` as :func:`classify_exception`, except that a ``duplicated lora
        name`` raised in sd-scripts' ``networks/lora.py`` (no LyCORIS frame after it) is an
        ``exception`` with the remedy for a diffusers mismatch.
    """
    category, remedy = classify_exception(exception_line)
    if category == "lycoris_duplicated_name" and lines and _raised_in_sd_lora(lines):
        return "exception", _SD_DUPLICATED_REMEDY
    return category, remedy


def classify_failure(events: Iterable[Event]) -> ChildError | None:
    """Pick the error that best explains a failed run.

    Specific categories (``oom``, ``no_data``, LyCORIS problems …) beat ``interrupted``, which
    beats a generic ``exception``, then ``nan_loss``, ``logged_error`` and accelerate's
    ``launcher_failed`` wrapper; among equals the first one wins.

    Args:
        events: Events from the parser (console text is parsed first, e.g. with
            :func:`~kohya_orchestrator.events.parse_log`).

    Returns:
        The most relevant ChildError, or None when there is none.

    Raises:
        TypeError: ``events`` is a string (text must be parsed into events first).
    """
    if isinstance(events, str):
        raise TypeError("classify_failure takes events: parse console text first (parse_log)")
    errors = [e for e in events if isinstance(e, ChildError)]
    if not errors:
        return None
    return min(errors, key=lambda e: _RANK.get(e.category, 0))
