"""Compiled patterns for the console output of kohya-ss sd-scripts ``train_network.py``.

Grouped by where the text comes from. Every pattern names the capture under
``tests/fixtures/sd-scripts/sd-scripts-logs/<scenario>/`` that exercises it and the sd-scripts
source line (``sd:`` = sd-scripts commit ``48d368fa``) as listed in
``docs/sd-scripts-reference.md`` section 5.
Patterns run on one *segment* at a time: the text between two ``\\r``/``\\n``, ANSI codes removed.
Failure patterns (what went wrong, category, remedy) live in ``failures.py``.
"""

from __future__ import annotations

import re
from typing import Final

from .types import Phase

__all__ = [
    "ANSI_RE",
    "BANNER_FIELDS",
    "BANNER_LINE_RE",
    "BANNER_START",
    "CHECKPOINT_EPOCH_SUFFIX_RE",
    "CHECKPOINT_RE",
    "CHECKPOINT_STEP_SUFFIX_RE",
    "CHILD_FAILED_RE",
    "EPOCH_RE",
    "EXCEPTION_LINE_RE",
    "GUI_HEAD_RE",
    "LEVEL_PREFIX_RE",
    "LYCORIS_RE",
    "OVERRIDE_STEPS_RE",
    "PHASE_PREFIXES",
    "PYTHON_WARNING_RE",
    "PYTHON_WARNING_SOURCE_RE",
    "RICH_HEAD_RE",
    "RICH_MESSAGE_COLUMN",
    "RICH_TRACEBACK_TOP",
    "SAMPLE_FILENAME_RE",
    "SAMPLE_KEY_RE",
    "SAMPLING_RE",
    "SAVE_TRAINED_RE",
    "STATE_SAVED_RE",
    "TQDM_RE",
    "TRACEBACK_START",
    "WRAPPER_PREFIX_RE",
]

# --- terminal control -------------------------------------------------------------------------

# CSI sequences (colours, cursor moves) and OSC strings.
# b_loha, b_loha_preset, d_ia3_ly34: LyCORIS colours its level names (`\x1b[0;32mINFO\x1b[0m`).
# a_lora_accelerate, h_simplelog: the sampling bar moves the cursor up (`\x1b[A`) because the
# `steps` bar still holds line 0 (tqdm position=1; sd: train_util.py sample_image_inference).
ANSI_RE: Final = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")

# --- tqdm bars (stderr, redrawn after `\r`) ----------------------------------------------------

# tqdm's default layout `{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining},
# {rate}{postfix}]`, or without a total `{desc}: {n}it [{elapsed}, {rate}{postfix}]`.
# The match ends at the bar's closing `]`; text glued after it (a log record, `Traceback …`) is
# parsed as a line of its own.
# - `steps:` training bar, `s/it` and `it/s`, `avr_loss` postfix: a_lora_accelerate, b_loha_preset
#   (sd: train_network.py:1357-1359 creates it, 1512-1516 sets the postfix).
# - no desc (`loading image sizes.`, `caching latents...`, sampling): every scenario
#   (sd: train_util.py:992, 1170; diffusers pipeline bar while sampling).
# - `read caption:`: a_lora_accelerate (sd: train_util.py, right after `found directory …`, 2059).
# - no total `0it [00:00, ?it/s]`: f_missing_dir (sd: train_util.py:992 over zero images).
# - no `|bar|` (`steps:   0% 0/2300 [00:01<?, ?it/s]`), as notebooks and Colab show a bar:
#   old-formats/colab_no_bar.log (synthetic; shape from issue 15).
# - postfix `loss=` instead of `avr_loss=` (2023 builds): old-formats/v0_5_loss_postfix.log
#   (sd v0.5.1: train_network.py:560 `logs = {"loss": avr_loss}`; `avr_loss` from v0.7.1).
TQDM_RE: Final = re.compile(
    r"(?:(?P<desc>[^|\[\]]*?): ?)?\s*"
    r"(?:(?P<pct>\d+)%(?:\|(?P<bar>[^|]*)\|)? ?(?P<n>\d+)/(?P<total>\d+) "
    r"|(?P<n_only>\d+)(?:it|[A-Za-z]+) )"
    r"\[(?P<elapsed>[\d:]+)(?:<(?P<remaining>[\d:]+|\?))?, *"
    r"(?P<rate>\d+(?:\.\d+)?(?:e[+-]?\d+)?|\?) ?(?P<rate_unit>[A-Za-z]*/s|s/[A-Za-z]+)"
    r"(?:, (?P<postfix>[^\]]*))?\]"
)

# --- rich logging (stderr; the default console mode) -------------------------------------------

# Rich's log row when piped: time (blank when repeated within the same second), level padded to 8,
# message (wrapped into its column), right-aligned `file.py:123`; padded to the console width.
# 80 columns: a_lora_accelerate and most others; 200 columns: h_columns200
# (sd: library/utils.py:41-87 setup_logging; rich `_log_render.py`).
RICH_HEAD_RE: Final = re.compile(
    r"(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d| {19}) (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) "
)
# The message starts in this column on the head row and on every continuation row. The head row
# ends with the `file.py:123` column (its last word; the message may be empty: the blank `INFO`
# record before sampling, a_lora_accelerate; sd: train_util.py:6393).
RICH_MESSAGE_COLUMN: Final = 29

# A rich row without the time column, as a wrapper that strips each line (or rich with
# show_time=False) leaves it: the level padded to 8, one space, the message (`ERROR    No data
# found.   train_network.py:576`). old-formats/wrapper_records.log (synthetic, from rich 14.1
# logging.RichHandler / _log_render.py column layout as in a_lora_accelerate).
# Also Python's own `logging` default format `LEVEL:logger:message` (`WARNING:xformers:A matching
# Triton is not available`) and a bare `ERROR: message`.
LEVEL_PREFIX_RE: Final = re.compile(
    r"(?P<level>DEBUG {4}|INFO {5}|WARNING {2}|ERROR {4}|CRITICAL )(?=\S)"
    r"|(?P<plain>DEBUG|INFO|WARNING|ERROR|CRITICAL):(?:(?P<logger>[A-Za-z_][\w.]*):)? ?"
)

# The kohya_ss GUI's own records (its rich console, `log_time_format="%H:%M:%S-%f"`,
# show_path=False; kohya_gui/custom_logging.py): `14:06:40-973914 INFO     Training has ended.`
# The message starts in column 25. old-formats/wrapper_records.log (synthetic).
GUI_HEAD_RE: Final = re.compile(
    r"\d\d:\d\d:\d\d-\d{6} (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) +(?=\S)"
)

# --- wrappers that prefix every line ------------------------------------------------------------

# Stripped before anything else is read from a segment (each shape exactly, nothing looser):
# - `[08:03:35] [STDERR] ` / `[STDOUT] ` (a time in brackets, then the stream) and a bare
#   `[stderr] ` / `[stdout] `: process-capturing launchers that label each stream (issue 15);
# - `docker compose logs`: `<service>-<n>  | ` (the service name, its replica number, padding).
# old-formats/wrapper_prefixes.log (synthetic).
WRAPPER_PREFIX_RE: Final = re.compile(
    r"(?:\[(?:\d{4}-\d\d-\d\d[ T])?\d\d:\d\d:\d\d(?:[.,]\d+)?\] )?"
    r"\[(?:STDOUT|STDERR|stdout|stderr)\] ?"
    r"|[a-z0-9][a-z0-9_.-]*-\d+ +\| "
)

# --- LyCORIS's own logger (stdout, coloured) ---------------------------------------------------

# `2026-11-24 21:53:55|[LyCORIS]-INFO: Using rank adaptation algo: loha` once ANSI is removed.
# b_loha, b_loha_preset (WARNING lines too), d_ia3_ly34 (LyCORIS 3.4; lycoris/logging.py).
LYCORIS_RE: Final = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\|\[(?P<source>[^\]]+)\]-"
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL): ?(?P<message>.*)$"
)

# --- prints and log messages of train_network.py -----------------------------------------------

# Phase markers: message prefix -> phase entered. Every scenario runs through most of them
# (a_lora_accelerate has all); f_missing_dir stops after preparing_buckets.
PHASE_PREFIXES: Final[tuple[tuple[str, Phase], ...]] = (
    ("Loading settings from ", Phase.LOADING_CONFIG),  # sd: train_util.py:4744
    ("Loading dataset config from ", Phase.PREPARING_DATASET),  # sd: train_network.py:519
    ("prepare images.", Phase.PREPARING_DATASET),  # sd: train_util.py:2112
    ("[Prepare dataset ", Phase.PREPARING_BUCKETS),  # sd: config_util.py:591
    ("loading image sizes.", Phase.PREPARING_BUCKETS),  # sd: train_util.py:992
    ("make buckets", Phase.PREPARING_BUCKETS),  # sd: train_util.py:1017 ff. (bucketed runs)
    ("preparing accelerator", Phase.LOADING_MODEL),  # sd: train_network.py:593
    ("loading model for process ", Phase.LOADING_MODEL),  # sd: train_util.py:5574
    ("load StableDiffusion checkpoint: ", Phase.LOADING_MODEL),  # sd: train_util.py:5530
    ("load Diffusers pretrained models: ", Phase.LOADING_MODEL),  # sd: train_util.py:5536
    ("caching latents", Phase.CACHING_LATENTS),  # sd: train_util.py:1120, 1170
    ("import network module: ", Phase.CREATING_NETWORK),  # sd: train_network.py:643 (print)
    ("prepare optimizer, data loader etc.", Phase.PREPARING_OPTIMIZER),  # sd: train_network.py:730
    ("saving state at ", Phase.SAVING),  # sd: train_util.py:5941-5993 (no capture yet)
    ("saving last state", Phase.SAVING),  # sd: train_util.py:5993 (no capture yet)
    ("model saved.", Phase.FINISHED),  # sd: train_network.py:1729
)

# The banner (print, stdout): a_lora_accelerate and every run that reached training
# (sd: train_network.py:987-1000). Each following line is `  <english> / <japanese>: N`
# (`= N` for gradient accumulation).
BANNER_START: Final = "running training / 学習開始"
BANNER_LINE_RE: Final = re.compile(r"  (?P<label>[^/]+?) / .*?(?:: | = )(?P<value>\d+(?:, \d+)*)$")
# English label -> TrainingPlan field.
BANNER_FIELDS: Final[dict[str, str]] = {
    "num train images * repeats": "train_images_with_repeats",
    "num validation images * repeats": "validation_images_with_repeats",
    "num reg images": "reg_images",
    "num batches per epoch": "batches_per_epoch",
    "num epochs": "epochs",
    "batch size per device": "batch_size_per_device",
    "gradient accumulation steps": "gradient_accumulation_steps",
    "total optimization steps": "total_steps",
}

# `epoch 1/2` (print between blank lines): a_lora_accelerate (sd: train_network.py:1402).
EPOCH_RE: Final = re.compile(r"epoch (?P<epoch>\d+)/(?P<total>\d+)$")

# `saving checkpoint: <path>` (print): a_lora_accelerate, e_prodigy, h_simplelog
# (sd: train_network.py:1300 per epoch/step, 1726 final). File names (sd: train_util.py):
# `<name>-000001.<ext>` per epoch, `<name>-step00000500.<ext>` per step, `<name>.<ext>` at the end.
CHECKPOINT_RE: Final = re.compile(r"saving checkpoint: (?P<path>.+?)\s*$")
CHECKPOINT_EPOCH_SUFFIX_RE: Final = re.compile(r"-(?P<epoch>\d{6})\.[A-Za-z0-9]+$")
CHECKPOINT_STEP_SUFFIX_RE: Final = re.compile(r"-step(?P<step>\d{8})\.[A-Za-z0-9]+$")

# `save train state to <dir>/train_state.json at epoch E step S` (log): no capture yet; format
# from the reference doc (sd: train_network.py:946).
STATE_SAVED_RE: Final = re.compile(
    r"save train state to (?P<path>.+?)[/\\]train_state\.json at epoch (?P<epoch>\d+) "
    r"step (?P<step>\d+)"
)

# `save trained model to <path>`: the final model of early-2023 builds (print; sd v0.4.0
# train_network.py:427, v0.5.1:622, through v0.6.2:713; from v0.6.3 the final save is a
# `saving checkpoint:` line too). old-formats/v0_5_loss_postfix.log (synthetic).
SAVE_TRAINED_RE: Final = re.compile(r"save trained model to (?P<path>.+?)\s*$")

# `override steps. steps for 2 epochs is / 指定エポックまでのステップ数: 8`: the total when
# max_train_epochs sets it (print in v0.3.2-v0.7.x, train_network.py:183 in v0.5.1; a log record
# today, a_lora_accelerate). old-formats/v0_5_loss_postfix.log, v0_4_oom_before_banner.log.
OVERRIDE_STEPS_RE: Final = re.compile(
    r"override steps\. steps for (?P<epochs>\d+) epochs is\b.*?: ?(?P<total>\d+)\s*$"
)

# `generating sample images at step / サンプル画像生成 ステップ: 4` (log; wrapped at 80 columns):
# a_lora_accelerate, h_simplelog, h_columns200 (sd: train_util.py:6394).
SAMPLING_RE: Final = re.compile(r"generating sample images at step\b.*?(?P<step>\d+)\s*$", re.S)

# One log record per prompt setting while sampling: a_lora_accelerate
# (sd: train_util.py:6542-6550; `seed:` only when a seed was given).
SAMPLE_KEY_RE: Final = re.compile(
    r"(?P<key>prompt|negative_prompt|height|width|sample_steps|scale|sample_sampler|seed"
    r"|guidance_scale|controlnet_image): (?P<value>.*)$",
    re.S,
)

# `<name>_e000001_00_20261124215422_1.png` (epoch) or `<name>_000010_00_<ts>.png` (step):
# tests/fixtures/sd-scripts/run-outputs/e_prodigy/sample (sd: train_util.py:6572-6577).
SAMPLE_FILENAME_RE: Final = re.compile(
    r"(?:^|_)(?:e(?P<epoch>\d{6})|(?P<step>\d{6}))_(?P<index>\d{2,})_(?P<ts>\d{14})"
    r"(?:_(?P<seed>-?\d+))?\.(?:png|jpg|jpeg|webp)$",
    re.I,
)

# --- Python itself -----------------------------------------------------------------------------

# b_loha, d_ia3_ly34, f_badargs_lora, g_sigint_accelerate_group (twice: trainer and accelerate).
# Indented lines after it are frames; the first unindented one is the exception line
# (`KeyError: 'ia3'`, `KeyboardInterrupt`) and ends the traceback.
TRACEBACK_START: Final = "Traceback (most recent call last):"

# rich's traceback (rich.traceback.install(), which accelerate runs when ACCELERATE_ENABLE_RICH
# is set, and which 2023 accelerate builds ran whenever rich was installed): a rounded box
# `╭──── Traceback (most recent call last) ────╮`, frame rows `│ … │`, `╰────╯`, then the
# exception as `Name: value` word-wrapped at the box width. old-formats/rich_oom_accelerate.log
# (captured: accelerate 1.6.0, rich 14.1.0).
RICH_TRACEBACK_TOP: Final = re.compile(r"╭─+ Traceback \(most recent call last\) ─+╮$")

# An exception line: `torch.OutOfMemoryError: CUDA out of memory…`, `KeyboardInterrupt`. Used to
# find an exception without a `Traceback` header (a pasted tail) and inside a rich box.
EXCEPTION_LINE_RE: Final = re.compile(
    r"(?:[A-Za-z_]\w*\.)*(?P<name>[A-Z]\w*(?:Error|Exception|Interrupt|Exit)|StopIteration)"
    r"(?::(?: (?P<value>.*))?)?$"
)

# torch.distributed.elastic's report of a failed worker (torchrun, accelerate multi-GPU):
# `…ChildFailedError: ` then a `====` box with the `Root Cause (first observed failure):` record
# (rank, exitcode, error_file, traceback). old-formats/torchrun_exit.log,
# torchrun_oom_record.log (captured: torch 2.14.1, `torch/distributed/elastic/multiprocessing/
# errors/__init__.py` _MSG_FORMAT_TEMPLATE).
CHILD_FAILED_RE: Final = re.compile(r"(?:[\w.]*\.)?ChildFailedError:?\s*$")

# `warnings.formatwarning`: `<file>:<line>: <Category>: <message>` then `  <source line>`.
# a_lora_accelerate (diffusers FutureWarning whose message spans 14 lines), e_prodigy
# (RuntimeWarning: invalid value encountered in cast).
# A Windows path starts with a drive letter (`D:\\kohya\\venv\\…\\accelerator.py:249:
# FutureWarning: …`): old-formats/windows_warning.log (synthetic).
PYTHON_WARNING_RE: Final = re.compile(
    r"(?P<file>(?:[A-Za-z]:[\\/])?[^:\s][^:]*):(?P<line>\d+): (?P<category>[A-Z]\w*Warning): "
    r"(?P<message>.*)$"
)
# The source line that closes a Python warning block (two spaces, then code; not JSON).
PYTHON_WARNING_SOURCE_RE: Final = re.compile(r"  [^\s\"'{}\[\]]")
