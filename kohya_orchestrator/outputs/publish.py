"""Pick one epoch's file and publish it: a copy with publish metadata, a model card, its samples.

``pick_epoch(run_dir, epoch)`` finds that epoch's checkpoint (:func:`.collect.run_outputs`),
copies it to a new folder (never over an existing file, never touching the original), writes the
``modelspec.*`` keys that model sites and UIs read into the copy's safetensors header, and puts a
``README.md`` model card and the epoch's sample images beside it.

Only the header of the copy changes: the safetensors format is an 8-byte header length, the JSON
header (tensor table and ``__metadata__``), then the tensor data, addressed by offsets relative to
the start of the data. The copy gets a new header and the original data bytes unchanged, so its
tensors are byte-identical by construction (a test compares them); the result is opened with the
``safetensors`` library before it is put in place. Nothing is loaded into memory but the header.

The keys follow the Stability AI model spec (``modelspec.*``, sd-scripts' ``library/sai_model_spec.py``
writes the others): ``title``, ``author``, ``description``, ``license``, ``tags`` (comma separated),
``trigger_phrase``, ``date``, ``resolution`` (``WxH``) and ``thumbnail`` (a ``data:image/jpeg``
URI of the epoch's first sample, at most 256 pixels).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError, Problem
from ..models.family import FAMILIES
from .collect import run_outputs
from .lora import LoraInfo, inspect_lora
from .lora_header import HeaderError, read_header
from .view import EpochEntry, RunOutputs, SampleEntry

__all__ = [
    "PUBLISH_KEYS",
    "PickResult",
    "PublishOptions",
    "find_epoch",
    "model_card",
    "pick_epoch",
    "publish_metadata",
    "write_with_metadata",
]

PUBLISH_KEYS = (
    "modelspec.title",
    "modelspec.author",
    "modelspec.description",
    "modelspec.license",
    "modelspec.tags",
    "modelspec.trigger_phrase",
    "modelspec.date",
    "modelspec.resolution",
    "modelspec.thumbnail",
)
"""The metadata keys ``runs pick`` writes (those it has a value for)."""

THUMBNAIL_SIZE = 256
README = "README.md"


@dataclass(frozen=True)
class PublishOptions:
    """What the person publishing says about the file (None: derived from the run)."""

    title: str | None = None
    author: str | None = None
    description: str | None = None
    license: str | None = None
    tags: tuple[str, ...] = ()
    trigger_phrase: str | None = None


@dataclass(frozen=True)
class PickResult:
    """What ``pick_epoch`` wrote."""

    source: Path
    file: Path
    readme: Path
    samples: tuple[Path, ...]
    metadata: dict[str, str] = field(repr=False)
    """The publish keys written into the copy (the thumbnail as its data URI)."""
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- finding the epoch
def find_epoch(outputs: RunOutputs, epoch: int) -> EpochEntry:
    """The entry of ``epoch`` whose checkpoint file exists.

    Raises:
        ConfigError: no existing checkpoint holds that epoch (the message lists those that do).
    """
    entries = [e for e in outputs.by_epoch() if e.epoch is not None]
    found = [e for e in entries if e.epoch == epoch and e.checkpoint and e.checkpoint.exists]
    if found:
        return found[-1]
    saved = sorted({e.epoch for e in entries if e.checkpoint and e.checkpoint.exists and e.epoch})
    have = ", ".join(str(e) for e in saved) if saved else "none"
    gone = [e for e in entries if e.epoch == epoch and e.checkpoint and not e.checkpoint.exists]
    what = (
        f"the checkpoint of epoch {epoch} ({gone[0].checkpoint.name}) is gone"
        if gone and gone[0].checkpoint
        else f"no checkpoint was saved for epoch {epoch}"
    )
    raise ConfigError(
        [
            Problem(
                "--epoch",
                f"{what} in run {outputs.run_id}",
                f"epochs with a checkpoint file: {have}; save more often with "
                "training.save_every_n_epochs",
            )
        ]
    )


# --------------------------------------------------------------------------- metadata
def _class_tokens(info: LoraInfo, job: Mapping[str, Any]) -> list[str]:
    tokens = [d.class_tokens for d in info.dataset_dirs if d.class_tokens and not d.is_reg]
    if not tokens:
        tokens = [t for t in _job_class_tokens(job.get("dataset")) if t]
    return list(dict.fromkeys(tokens))


def _job_class_tokens(node: Any, reg: bool = False) -> Iterator[str]:
    # dataset -> subsets / datasets[].subsets; a regularisation subset's tokens are not triggers
    if isinstance(node, dict):
        is_reg = reg or bool(node.get("is_reg"))
        if isinstance(node.get("class_tokens"), str) and not is_reg:
            yield node["class_tokens"]
        for key in ("subsets", "datasets"):
            for child in node.get(key) or []:
                yield from _job_class_tokens(child, is_reg)


def _thumbnail(sample: Path) -> str:
    from PIL import Image

    with Image.open(sample) as img:
        img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _family_title(info: LoraInfo) -> str | None:
    family = info.family
    return FAMILIES[family].title if family in FAMILIES else None


def publish_metadata(
    info: LoraInfo,
    *,
    options: PublishOptions,
    job: Mapping[str, Any] | None = None,
    samples: Sequence[SampleEntry] = (),
    epoch: int | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The ``modelspec.*`` strings to write into the published copy.

    Args:
        info: The checkpoint's header (:func:`.lora.inspect_lora`).
        options: What the publisher gave; None fields are derived.
        job: The run's ``job.json`` (class tokens when the file does not record them).
        samples: The epoch's samples; the first existing one becomes the thumbnail.
        epoch: The epoch, for the description.
        now: The date when the file records none (default: now, UTC).

    Returns:
        Only the keys there is a value for (an unknown author is left out, not invented).
    """
    job = job or {}
    out: dict[str, str] = {}
    title = options.title or info.title or info.output_name or (job.get("name") or None)
    if title:
        out["modelspec.title"] = str(title)
    if options.author:
        out["modelspec.author"] = options.author
    description = options.description
    if description is None:
        algo = info.algo or "network"
        family = _family_title(info)
        at = f" at epoch {epoch}" if epoch is not None else ""
        of = f" of {info.num_epochs}" if epoch is not None and info.num_epochs else ""
        description = (
            f"{algo} for {family or 'its base model'}, trained with kohya-ss sd-scripts "
            f"(kohya_orchestrator){at}{of}"
        )
    out["modelspec.description"] = description
    if options.license:
        out["modelspec.license"] = options.license
    if options.tags:
        out["modelspec.tags"] = ", ".join(t.strip() for t in options.tags if t.strip())
    trigger = options.trigger_phrase
    if trigger is None:
        trigger = ", ".join(_class_tokens(info, job)) or None
    if trigger:
        out["modelspec.trigger_phrase"] = trigger
    date = info.date
    if date is None and info.training_finished_at is not None:
        date = info.training_finished_at.strftime("%Y-%m-%dT%H:%M:%S")
    if date is None:
        date = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S")
    out["modelspec.date"] = date
    if info.resolution is not None:
        # the training resolution; sd-scripts writes 512x512 when --resolution is not given
        out["modelspec.resolution"] = f"{info.resolution[0]}x{info.resolution[1]}"
    first = sorted((s for s in samples if s.exists), key=lambda s: s.prompt_index or 0)
    if first:
        out["modelspec.thumbnail"] = _thumbnail(first[0].path)
    return out


# --------------------------------------------------------------------------- the copy
def _raw_header(path: Path) -> tuple[dict[str, Any], int]:
    read_header(path)  # validates length, JSON and offsets; raises HeaderError
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return header, 8 + length


def write_with_metadata(src: Path, dest: Path, updates: Mapping[str, str]) -> None:
    """Copy ``src`` to the new file ``dest`` with ``updates`` merged into its ``__metadata__``.

    The tensor data is copied byte for byte; only the header is rewritten. ``dest`` must not exist
    (it is created with a hard link from a finished temporary file, which never replaces a file).

    Raises:
        ConfigError: ``dest`` exists, or ``src`` is not a safetensors file; nothing was written.
    """
    src, dest = Path(src), Path(dest)
    try:
        header, data_start = _raw_header(src)
        _read_back(src)
    except (HeaderError, ValueError, OSError) as exc:
        raise ConfigError(
            [
                Problem(
                    str(src),
                    f"not a readable safetensors file: {exc}",
                    "pick a file sd-scripts saved (the safetensors library must open it)",
                )
            ]
        ) from None
    metadata = {str(k): str(v) for k, v in (header.pop("__metadata__", None) or {}).items()}
    metadata.update(updates)
    raw = json.dumps({"__metadata__": metadata, **header}, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads its header to 8 bytes with spaces
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as data:
            out.write(struct.pack("<Q", len(raw)))
            out.write(raw)
            data.seek(data_start)
            shutil.copyfileobj(data, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        _check_written(tmp, metadata, header)
        _place(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _read_back(path: Path) -> tuple[dict[str, str], set[str]]:
    # the safetensors library checks the header, the offsets and that they cover the data
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return dict(f.metadata() or {}), set(f.keys())
    except SafetensorError as exc:
        raise ValueError(str(exc)) from None


def _check_written(path: Path, metadata: Mapping[str, str], header: Mapping[str, Any]) -> None:
    if _read_back(path) != (dict(metadata), set(header)):  # pragma: no cover - a writer bug
        raise RuntimeError(f"{path}: the written header does not read back")


def _place(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` to ``dest``, refusing (not replacing) an existing ``dest``."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise _exists(dest) from None
    except OSError:  # a file system without hard links: exclusive create, then copy
        try:
            with dest.open("xb") as out, tmp.open("rb") as data:
                shutil.copyfileobj(data, out, 1 << 20)
        except FileExistsError:
            raise _exists(dest) from None


def _exists(path: Path) -> ConfigError:
    return ConfigError(
        [Problem(str(path), "already exists; nothing was written", "choose another --to")]
    )


def _write_new(path: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        _place(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the model card
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def model_card(
    info: LoraInfo,
    metadata: Mapping[str, str],
    *,
    file_name: str,
    entry: EpochEntry,
    samples: Sequence[tuple[str, str | None]],
    run_id: str | None = None,
) -> str:
    """The ``README.md`` beside the published file (Markdown, relative links only).

    Args:
        info: The published file's header.
        metadata: The publish keys written into it.
        file_name: The published file's name.
        entry: The epoch it holds.
        samples: ``(image file name beside the card, prompt)`` per sample.
        run_id: The run it came from.
    """
    title = metadata.get("modelspec.title") or file_name
    family = _family_title(info)
    network = info.algo or "?"
    if info.network_module:
        network += f" ({info.network_module})"
    if info.uses_dim_alpha and info.network_dim is not None:
        alpha = f"{info.network_alpha:g}" if info.network_alpha is not None else "?"
        network += f", dim {info.network_dim}, alpha {alpha}"
    args = {k: v for k, v in info.network_args.items() if k not in ("algo", "preset") and v}
    if args:
        network += ", " + ", ".join(f"{k}={v}" for k, v in args.items())
    optimizer = info.optimizer_name or "?"
    if info.optimizer_args:
        optimizer += " (" + ", ".join(f"{k}={v}" for k, v in info.optimizer_args.items()) + ")"
    if info.learning_rate is not None:
        optimizer += f", lr {info.learning_rate:g}"
    if info.lr_scheduler:
        optimizer += f", scheduler {info.lr_scheduler}"
    folders = [d for d in info.dataset_dirs if not d.is_reg]
    images = sum(d.images or 0 for d in folders)
    dataset = f"{images} images in {len(folders)} folder(s)" if folders else "?"
    if info.num_train_images is not None:
        dataset += f"; {info.num_train_images} per epoch with repeats"
    if info.num_reg_images:
        dataset += f"; {info.num_reg_images} regularisation images"
    epochs = f"epoch {entry.epoch}" + (f" of {info.num_epochs}" if info.num_epochs else "")
    steps = f"step {info.steps if info.steps is not None else entry.step or '?'}"
    if info.max_train_steps:
        steps += f" of {info.max_train_steps}"
    base = info.base_model_name or "?"
    if family:
        base += f" ({family})"
    rows: list[tuple[str, str]] = [
        ("file", f"`{file_name}`"),
        ("base model", base),
        ("network", network),
        ("optimizer", optimizer),
        ("training", f"{epochs}, {steps}"),
        ("resolution", metadata.get("modelspec.resolution", "?")),
        ("dataset", dataset),
        ("trigger words", f"`{metadata['modelspec.trigger_phrase']}`")
        if "modelspec.trigger_phrase" in metadata
        else ("trigger words", "none recorded"),
    ]
    if entry.loss is not None:
        rows.append(("loss at this epoch", f"{entry.loss:.4f}"))
    for label, key in (("author", "author"), ("license", "license"), ("tags", "tags")):
        if f"modelspec.{key}" in metadata:
            rows.append((label, metadata[f"modelspec.{key}"]))
    if info.clients_line:
        rows.append(("loads in", info.clients_line))
    if run_id:
        rows.append(("run", f"`{run_id}` (kohya_orchestrator)"))
    lines = [f"# {title}", "", metadata.get("modelspec.description", ""), ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {label} | {_cell(value)} |" for label, value in rows]
    if samples:
        lines += ["", f"## Samples at epoch {entry.epoch}", ""]
        for name, prompt in samples:
            alt = _cell(prompt or name).replace("[", "(").replace("]", ")")
            lines += [f"![{alt}]({quote(name)})", "", f"*{_cell(prompt or name)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- the whole pick
def _destination(outputs: RunOutputs, source: Path, to: Path | None) -> tuple[Path, Path]:
    """(folder, file) of the copy."""
    if to is not None and to.suffix == ".safetensors":
        return to.parent, to
    folder = to
    if folder is None:
        base = outputs.output_dir if outputs.output_dir is not None else outputs.run_dir
        folder = base / "published" / source.stem
    return folder, folder / source.name


def pick_epoch(
    run_dir: Path | str,
    epoch: int,
    *,
    to: Path | str | None = None,
    options: PublishOptions | None = None,
    now: datetime | None = None,
) -> PickResult:
    """Publish one epoch of a run: the copy with metadata, ``README.md`` and the samples.

    Args:
        run_dir: The run directory.
        epoch: The epoch to publish.
        to: A folder (created), or a ``.safetensors`` path (its folder gets the card). Default:
            ``<output_dir>/published/<checkpoint name>/``.
        options: Title, author, description, license, tags, trigger phrase.
        now: The date used when the file records none.

    Returns:
        What was written.

    Raises:
        ConfigError: no checkpoint for the epoch, or a file to write exists (nothing is written).
    """
    outputs = run_outputs(Path(run_dir), use_tensorboard=False)
    entry = find_epoch(outputs, epoch)
    assert entry.checkpoint is not None
    source = entry.checkpoint.path
    if source.suffix != ".safetensors":
        raise ConfigError(
            [Problem(str(source), "only .safetensors files can carry publish metadata", None)]
        )
    folder, dest = _destination(outputs, source, Path(to) if to is not None else None)
    samples = [s for s in entry.samples if s.exists]
    sample_names = [s.path.name for s in samples]
    targets = [dest, folder / README, *(folder / n for n in sample_names)]
    clash = [t for t in targets if t.exists() or t.is_symlink()]
    if clash:
        raise _exists(clash[0])
    if len(set(targets)) != len(targets):  # pragma: no cover - names from one folder are unique
        raise ConfigError([Problem(str(folder), "two files would get the same name", None)])

    info = inspect_lora(source)
    job: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((Path(run_dir) / "job.json").read_text(encoding="utf-8"))
        job = loaded if isinstance(loaded, dict) else {}
    opts = options or PublishOptions()
    metadata = publish_metadata(info, options=opts, job=job, samples=samples, epoch=epoch, now=now)
    notes: list[str] = []
    if "modelspec.thumbnail" not in metadata:
        notes.append(f"epoch {epoch} has no sample image: no thumbnail")
    if "modelspec.trigger_phrase" not in metadata:
        notes.append("no class tokens recorded: no trigger phrase (pass --trigger)")

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        write_with_metadata(source, dest, metadata)
        written.append(dest)
        copied: list[Path] = []
        for s in samples:
            target = folder / s.path.name
            _write_new(target, s.path.read_bytes())
            written.append(target)
            copied.append(target)
        published = inspect_lora(dest)
        card = model_card(
            published,
            metadata,
            file_name=dest.name,
            entry=entry,
            samples=[(s.path.name, s.prompt) for s in samples],
            run_id=outputs.run_id,
        )
        _write_new(folder / README, card.encode("utf-8"))
        written.append(folder / README)
    except BaseException:
        for path in written:  # a half-published folder is worse than none
            path.unlink(missing_ok=True)
        raise
    return PickResult(
        source=source,
        file=dest,
        readme=folder / README,
        samples=tuple(copied),
        metadata=metadata,
        notes=tuple(notes),
    )
