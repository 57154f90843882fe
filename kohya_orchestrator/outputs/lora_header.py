"""Read a ``.safetensors`` header (no torch) and check a trained file against the job that made it.

The safetensors format starts with an 8-byte little-endian header length N, then N bytes of JSON:
``{"<tensor>": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}``
(offsets relative to the data section that follows). sd-scripts writes its ``ss_*`` keys into
``__metadata__`` as strings (``str(v)``: ``None`` becomes ``"None"``; JSON blobs are strings;
docs/sd-scripts-reference.md section 6.2).

:func:`verify_output` compares one file with the job and the step plan (the sd-scripts banner, or
:mod:`kohya_orchestrator.datasets.plan`): network module, algo and ``network_args``, dim and alpha, epochs
and steps, resolution, base model version, learning rate, scheduler and optimizer class.
:func:`check_run_outputs` does it for every checkpoint of a finished run, writes
``output_check.json`` into the run directory and returns one warning event per mismatch.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import Problem
from ..models import DatasetBlock, DatasetConfig, LoraNetwork, TrainingJob
from ..models.family import profile
from ..models.network import shipped_preset_filename, shipped_preset_name

if TYPE_CHECKING:
    from ..events import Event
    from ..launch.rundir import RunDir

__all__ = [
    "MAX_HEADER_BYTES",
    "HeaderError",
    "SafetensorsHeader",
    "TensorInfo",
    "check_run_outputs",
    "read_header",
    "verify_output",
]

MAX_HEADER_BYTES = 100 * 1024 * 1024
"""safetensors refuses headers above 100 MB; so do we (a corrupt length would read the file)."""

OUTPUT_CHECK_NAME = "output_check.json"
_EPOCH_FILE = re.compile(r"-(\d{6})$")
# sd-scripts names these optimizers after another class (train_util.get_optimizer).
_RENAMED_OPTIMIZERS = {"dadaptation", "sgdnesterov", "sgdnesterov8bit"}


class HeaderError(ValueError):
    """The file is not a readable safetensors file (too short, bad length, bad JSON)."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor entry of the header."""

    dtype: str
    shape: tuple[int, ...]
    data_offsets: tuple[int, int]


@dataclass(frozen=True)
class SafetensorsHeader:
    """What the header says: metadata strings and the tensor table."""

    path: Path
    header_size: int
    file_size: int
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo] = field(repr=False)

    @property
    def tensor_bytes(self) -> int:
        """Size of the data section the tensors cover."""
        return max((t.data_offsets[1] for t in self.tensors.values()), default=0)


def read_header(path: Path) -> SafetensorsHeader:
    """Read only the header of a ``.safetensors`` file.

    Raises:
        HeaderError: the file is shorter than its header says, or the header is not valid.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise HeaderError(f"{path.name}: {len(head)} bytes, not a safetensors file")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise HeaderError(
                    f"{path.name}: header length {length} does not fit the file ({size} bytes)"
                )
            raw = fh.read(length)
    except OSError as exc:
        raise HeaderError(f"{path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeaderError(f"{path.name}: header is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise HeaderError(f"{path.name}: header is not a JSON object")
    meta = data.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise HeaderError(f"{path.name}: __metadata__ is not a string-to-string table")
    tensors: dict[str, TensorInfo] = {}
    for name, entry in data.items():
        try:
            begin, end = entry["data_offsets"]
            info = TensorInfo(
                str(entry["dtype"]), tuple(int(x) for x in entry["shape"]), (begin, end)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise HeaderError(f"{path.name}: bad entry for tensor {name!r}") from exc
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
            raise HeaderError(f"{path.name}: bad data_offsets for tensor {name!r}")
        tensors[name] = info
    header = SafetensorsHeader(path, length, size, dict(meta), tensors)
    if 8 + length + header.tensor_bytes > size:
        raise HeaderError(
            f"{path.name}: the tensors need {header.tensor_bytes} bytes after the header, the "
            f"file has {size - 8 - length} (truncated?)"
        )
    return header


class _Plan(Protocol):
    """The step plan: sd-scripts' banner (events.TrainingPlan) or plan.StepPlan."""

    @property
    def epochs(self) -> int | None: ...

    @property
    def total_steps(self) -> int | None: ...

    @property
    def steps_per_epoch(self) -> int | None: ...


def _expected_args(job: TrainingJob) -> dict[str, str]:
    from ..render.toml import network_args  # render imports this package's siblings only

    return dict(a.split("=", 1) for a in network_args(job))


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _same_number(text: str | None, value: float) -> bool:
    try:
        return text is not None and math.isclose(float(text), value, rel_tol=1e-6)
    except ValueError:
        return False


def _resolutions(job: TrainingJob) -> list[tuple[int, int]]:
    ds = job.dataset
    blocks: list[DatasetBlock | DatasetConfig] = list(ds.datasets) if ds.datasets else [ds]
    out = []
    for block in blocks:
        res = block.resolution if block.resolution is not None else ds.resolution
        out.append((res, res) if isinstance(res, int) else (res[0], res[1]))
    return out


def _json(meta: dict[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except (KeyError, ValueError):
        return None


def verify_output(job: TrainingJob, path: Path, plan: _Plan | None = None) -> list[Problem]:
    """Mismatches between a saved network file and the job (and plan) that should have made it.

    Every problem is a warning whose path is ``<file name>: <metadata key>``. An unreadable file
    is one problem. Keys sd-scripts did not write (``--no_metadata``) are not checked.
    """
    path = Path(path)
    try:
        meta = read_header(path).metadata
    except HeaderError as exc:
        return [Problem(path.name, f"cannot read the file: {exc}", None, severity="warning")]
    problems: list[Problem] = []

    def mismatch(key: str, message: str, hint: str | None = None) -> None:
        problems.append(Problem(f"{path.name}: {key}", message, hint, severity="warning"))

    n = job.network
    module = "networks.lora" if isinstance(n, LoraNetwork) else "lycoris.kohya"
    if "ss_network_module" in meta and meta["ss_network_module"] != module:
        mismatch(
            "ss_network_module",
            f"is '{meta['ss_network_module']}', the job asked for algo '{n.algo}' ({module})",
        )
    if "ss_network_module" in meta or "ss_network_args" in meta:
        _check_args(job, meta, mismatch)
    dim = getattr(n, "network_dim", None)
    if dim is not None and "ss_network_dim" in meta and meta["ss_network_dim"] != str(dim):
        mismatch("ss_network_dim", f"is {meta['ss_network_dim']}, the job asked for {dim}")
    alpha = getattr(n, "network_alpha", None)
    if (
        alpha is not None
        and "ss_network_alpha" in meta
        and not _same_number(meta["ss_network_alpha"], alpha)
    ):
        mismatch("ss_network_alpha", f"is {meta['ss_network_alpha']}, the job asked for {alpha:g}")
    _check_length(job, path, meta, plan, mismatch)
    _check_training(job, meta, mismatch)
    return problems


def _check_args(job: TrainingJob, meta: dict[str, str], mismatch: Any) -> None:
    expected = _expected_args(job)
    actual = _json(meta, "ss_network_args")
    if not isinstance(actual, dict):
        if expected:
            mismatch("ss_network_args", f"missing; the job's network_args were {expected}")
        return
    preset = getattr(job.network, "preset", None)
    for key, want in expected.items():
        got = actual.get(key)
        if key == "preset" and shipped_preset_name(preset) is not None and preset is not None:
            ok = isinstance(got, str) and Path(got).name == shipped_preset_filename(preset)
        else:  # LyCORIS and networks.lora parse numbers: "1" and "1.0" are the same value
            ok = got == want or (isinstance(got, str) and _same_number(got, _number(want)))
        if not ok:
            mismatch("ss_network_args", f"{key} is {got!r}, the job asked for {want!r}")
    # sd-scripts adds dropout for LyCORIS (train_network.py: "workaround for LyCORIS")
    extra = sorted(set(actual) - set(expected) - {"dropout"})
    if extra:
        mismatch(
            "ss_network_args",
            f"has arguments the job did not ask for: {', '.join(extra)}",
            "check extra_args and the sd-scripts version",
        )


def _check_length(
    job: TrainingJob, path: Path, meta: dict[str, str], plan: _Plan | None, mismatch: Any
) -> None:
    t = job.training
    epochs = plan.epochs if plan is not None else None
    if epochs is None:
        epochs = t.max_train_epochs
    total = plan.total_steps if plan is not None else None
    if epochs is not None and "ss_num_epochs" in meta and meta["ss_num_epochs"] != str(epochs):
        mismatch("ss_num_epochs", f"is {meta['ss_num_epochs']}, the plan was {epochs} epochs")
    if total is not None and "ss_max_train_steps" in meta:
        if meta["ss_max_train_steps"] != str(total):
            mismatch(
                "ss_max_train_steps", f"is {meta['ss_max_train_steps']}, the plan was {total} steps"
            )
    epoch_file = _EPOCH_FILE.search(path.stem)
    if path.stem == t.output_name:
        if total is not None and "ss_steps" in meta and meta["ss_steps"] != str(total):
            mismatch("ss_steps", f"is {meta['ss_steps']} in the final file, the plan was {total}")
    elif epoch_file is not None:
        number = int(epoch_file.group(1))
        if "ss_epoch" in meta and meta["ss_epoch"] != str(number):
            mismatch("ss_epoch", f"is {meta['ss_epoch']} in the file of epoch {number}")
        per_epoch = plan.steps_per_epoch if plan is not None else None
        if (
            per_epoch is not None
            and t.max_train_epochs is not None
            and "ss_steps" in meta
            and meta["ss_steps"] != str(per_epoch * number)
        ):
            mismatch(
                "ss_steps",
                f"is {meta['ss_steps']} after epoch {number}, the plan was "
                f"{per_epoch * number} ({per_epoch} per epoch)",
            )


def _check_training(job: TrainingJob, meta: dict[str, str], mismatch: Any) -> None:
    datasets = _json(meta, "ss_datasets")
    wanted = _resolutions(job)
    if isinstance(datasets, list) and datasets:
        got = [tuple(d.get("resolution") or ()) for d in datasets if isinstance(d, dict)]
        if got != wanted:
            mismatch("ss_datasets", f"resolution {got}, the job asked for {wanted}")
    elif "ss_resolution" in meta and meta["ss_resolution"] != str(wanted[0]):
        mismatch("ss_resolution", f"is {meta['ss_resolution']}, the job asked for {wanted[0]}")
    accepted = profile(job.model.family).base_model_versions  # prefixes, e.g. ("sd_v1",)
    version = meta.get("ss_base_model_version")
    if version is not None and not version.startswith(accepted):
        mismatch("ss_base_model_version", f"is {version}, the job is {job.model.family}")
    o = job.optimizer
    if "ss_learning_rate" in meta and not _same_number(meta["ss_learning_rate"], o.learning_rate):
        mismatch(
            "ss_learning_rate",
            f"is {meta['ss_learning_rate']}, the job asked for {o.learning_rate:g}",
        )
    scheduler = job.scheduler.lr_scheduler
    if "ss_lr_scheduler" in meta and meta["ss_lr_scheduler"] != scheduler:
        mismatch("ss_lr_scheduler", f"is {meta['ss_lr_scheduler']}, the job asked for {scheduler}")
    kind = o.type.split(".")[-1].lower()
    optimizer = meta.get("ss_optimizer")
    if optimizer is not None and o.type.lower() not in _RENAMED_OPTIMIZERS:
        name = optimizer.split("(", 1)[0].split(".")[-1].lower()
        if name != kind:
            mismatch("ss_optimizer", f"is {optimizer}, the job asked for {o.type}")


def check_run_outputs(
    job: TrainingJob, run_dir: RunDir, checkpoints: Sequence[Path], plan: _Plan | None
) -> list[Event]:
    """Verify every checkpoint of a succeeded run; write ``output_check.json``; warn per mismatch.

    Never raises: a failure of the check itself is recorded in the file and as a warning.
    """
    from ..events import ChildWarning

    t = job.training
    out_dir = Path(t.output_dir)
    names = list(dict.fromkeys(Path(p).name for p in checkpoints))
    final = f"{t.output_name}.{t.save_model_as}"
    if final not in names:
        names.append(final)
    report: dict[str, Any] = {"ok": True, "files": []}
    events: list[Event] = []
    try:
        for name in names:
            path = out_dir / name
            if path.suffix != ".safetensors" or not path.is_file():
                continue
            found = verify_output(job, path, plan)
            report["files"].append(
                {
                    "path": str(path),
                    "ok": not found,
                    "problems": [{"key": p.path, "message": p.message} for p in found],
                }
            )
            report["ok"] = report["ok"] and not found
            events += [
                ChildWarning(seq=0, message=f"output check: {p.path}: {p.message}", source="output")
                for p in found
            ]
        clients = _clients_warning(job)
        if clients is not None:
            report["clients"] = clients
            events.append(ChildWarning(seq=0, message=f"output check: {clients}", source="output"))
    except Exception as exc:  # the check must never fail a finished training
        report.update(ok=False, error=repr(exc))
        events.append(ChildWarning(seq=0, message=f"output check failed: {exc!r}", source="output"))
    run_dir.write_json(OUTPUT_CHECK_NAME, report)
    return events


def _clients_warning(job: TrainingJob) -> str | None:
    """A sentence when some client loads the job's files wrongly or not at all (models/clients.py)."""
    from ..models.clients import client_line, client_row

    n = job.network
    row = client_row(
        n.algo,
        dora_wd=bool(getattr(n, "dora_wd", False)),
        wd_on_output=bool(getattr(n, "wd_on_output", True)),
    )
    if not any(s in ("none", "wrong") for s in row.support):
        return None
    return f"{row.label} files: {client_line(row, job.model.family)}"
