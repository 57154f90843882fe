"""Tagging with sd-scripts' own WD14 tagger (finetune/tag_images_by_wd14_tagger.py).

The seed's first step: tag the paintings with wd14, then edit the tags by hand (captions.py). The
tagger runs in the kohya venv through the same launch machinery as training (launch/process.py),
with its options typed here and its progress parsed by the same event parser. The tagger model is
the user's (a local ``model_dir``, or a Hugging Face repo id that it downloads once).

Existing captions are never overwritten silently: without ``overwrite`` or ``append_tags`` a
folder that already has captions is refused; with ``overwrite`` the old captions are first copied
to ``<subset>/.caption-backups/<timestamp>/``.
"""

from __future__ import annotations

import codecs
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import Field

from ..errors import ConfigError, Problem
from ..events import ChildError, Event, LogParser, ProgressBar
from ..models.base import StrictModel
from ..render.command import LaunchSpec

__all__ = ["TAGGER_SCRIPT", "TagResult", "TaggerOptions", "build_tagger_spec", "run_tagger"]

TAGGER_SCRIPT = "finetune/tag_images_by_wd14_tagger.py"
DEFAULT_TAGGER_REPO = "SmilingWolf/wd-v1-4-convnext-tagger-v2"  # the tagger's own default
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


class TaggerOptions(StrictModel):
    """Options of sd-scripts' WD14 tagger, typed (each names the tagger's own flag)."""

    repo_id: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Tagger repo (--repo_id); sd-scripts' default is "
            "SmilingWolf/wd-v1-4-convnext-tagger-v2. Downloaded once into model_dir.",
        ),
    ] = None
    model_dir: Annotated[
        str | None,
        Field(
            min_length=1, description="Local folder holding (or receiving) the model (--model_dir)."
        ),
    ] = None
    onnx: Annotated[bool, Field(description="Run the ONNX model (--onnx).")] = True
    batch_size: Annotated[int, Field(ge=1, description="Images per inference batch.")] = 4
    general_threshold: Annotated[
        float, Field(gt=0, lt=1, description="Confidence for general tags (--general_threshold).")
    ] = 0.35
    character_threshold: Annotated[
        float,
        Field(gt=0, lt=1, description="Confidence for character tags (--character_threshold)."),
    ] = 0.85
    undesired_tags: Annotated[
        list[str], Field(description="Tags never written (--undesired_tags).")
    ] = []
    always_first_tags: Annotated[
        list[str], Field(description="Tags put first when present, e.g. the trigger word.")
    ] = []
    caption_extension: Annotated[str, Field(pattern=r"^\.\w+$", description="e.g. .txt")] = ".txt"
    caption_separator: Annotated[str, Field(min_length=1, description="Between tags.")] = ", "
    recursive: Annotated[bool, Field(description="Also tag images in subfolders.")] = False
    remove_underscore: Annotated[bool, Field(description="'long_hair' -> 'long hair'.")] = True
    character_tags_first: Annotated[bool, Field(description="Character tags before general.")] = (
        False
    )
    use_rating_tags: Annotated[bool, Field(description="Add rating tags.")] = False
    append_tags: Annotated[
        bool, Field(description="Append to existing captions (--append_tags).")
    ] = False
    overwrite: Annotated[
        bool, Field(description="Replace existing captions (backed up first). Not a tagger flag.")
    ] = False
    force_download: Annotated[bool, Field(description="Download the model again.")] = False
    max_data_loader_n_workers: Annotated[int | None, Field(ge=0, description="Loader workers.")] = (
        None
    )


def build_tagger_spec(
    options: TaggerOptions, image_dir: Path, *, python: Path, sd_scripts_dir: Path
) -> LaunchSpec:
    """The tagger command as data (pure)."""
    argv: list[str] = [str(python), str(sd_scripts_dir / TAGGER_SCRIPT), str(image_dir)]
    if options.repo_id:
        argv += ["--repo_id", options.repo_id]
    if options.model_dir:
        argv += ["--model_dir", options.model_dir]
    argv += [
        "--batch_size", str(options.batch_size),
        "--general_threshold", repr(options.general_threshold),
        "--character_threshold", repr(options.character_threshold),
        "--caption_extension", options.caption_extension,
        "--caption_separator", options.caption_separator,
    ]  # fmt: skip
    if options.undesired_tags:
        argv += ["--undesired_tags", ",".join(options.undesired_tags)]
    if options.always_first_tags:
        argv += ["--always_first_tags", ",".join(options.always_first_tags)]
    if options.max_data_loader_n_workers is not None:
        argv += ["--max_data_loader_n_workers", str(options.max_data_loader_n_workers)]
    flags = {
        "--onnx": options.onnx,
        "--recursive": options.recursive,
        "--remove_underscore": options.remove_underscore,
        "--character_tags_first": options.character_tags_first,
        "--use_rating_tags": options.use_rating_tags,
        "--append_tags": options.append_tags,
        "--force_download": options.force_download,
    }
    argv += [flag for flag, on in flags.items() if on]
    env = {
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "COLUMNS": "200",
        "NO_COLOR": "1",
        # finetune/ scripts import sd-scripts' own `library` package from the checkout
        "PYTHONPATH": str(sd_scripts_dir),
    }
    return LaunchSpec(argv=tuple(argv), env=env, cwd=sd_scripts_dir)


def _images(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in _IMAGE_EXTS and ".caption-backups" not in p.parts
    )  # fmt: skip


def check_before_tagging(options: TaggerOptions, image_dir: Path) -> list[Path]:
    """The captions the tagger would replace; raises ConfigError when it must not."""
    problems: list[Problem] = []
    if not image_dir.is_dir():
        raise ConfigError([Problem(str(image_dir), "not a folder", "give the image folder")])
    if not options.repo_id and not options.model_dir:
        problems.append(
            Problem(
                "model_dir",
                "no tagger model given",
                "pass --model-dir DIR (a local WD14 model) or --repo-id (downloaded once)",
            )
        )
    if options.model_dir and not Path(options.model_dir).is_dir() and not options.repo_id:
        problems.append(
            Problem("model_dir", f"folder not found: {options.model_dir}", "check the path")
        )
    elif options.model_dir:
        repo = options.repo_id or DEFAULT_TAGGER_REPO
        where = Path(options.model_dir) / repo.replace("/", "_")
        if not options.repo_id and not where.is_dir():
            problems.append(
                Problem(
                    "model_dir",
                    f"no tagger model in {where} (sd-scripts looks for '<org>_<name>' inside "
                    "model_dir)",
                    f"put model.onnx and selected_tags.csv in {where}, or pass --repo-id to "
                    "download one",
                )
            )
    images = _images(image_dir, options.recursive)
    if not images:
        problems.append(Problem(str(image_dir), "no images to tag", None))
    existing = [p.with_suffix(options.caption_extension) for p in images]
    existing = [p for p in existing if p.exists()]
    if existing and not (options.overwrite or options.append_tags):
        problems.append(
            Problem(
                str(image_dir),
                f"{len(existing)} image(s) already have {options.caption_extension} captions "
                f"(e.g. {existing[0].name}); the tagger would replace them",
                "pass --append-tags to add to them, or --overwrite (the originals are backed up)",
            )
        )
    if problems:
        raise ConfigError(problems, source="dataset tag")
    return existing if options.overwrite and not options.append_tags else []


def _backup(captions: list[Path], image_dir: Path) -> Path | None:
    if not captions:
        return None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = image_dir / ".caption-backups" / f"{stamp}-before-tagging"
    dest, n = base, 1
    while dest.exists():
        n += 1
        dest = base.with_name(f"{base.name}-{n}")
    for caption in captions:
        target = dest / caption.relative_to(image_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(caption, target)
    return dest


class TagResult(StrictModel):
    """How a tagging run ended."""

    returncode: int | None
    images: int
    tagged: int
    backup: str | None
    errors: list[ChildError] = []
    log: str

    @property
    def ok(self) -> bool:
        """True when the tagger exited 0 and wrote a caption for every image."""
        return self.returncode == 0 and self.tagged == self.images


def run_tagger(
    options: TaggerOptions,
    image_dir: Path,
    *,
    python: Path,
    sd_scripts_dir: Path,
    log_file: Path,
    on_event: Callable[[Event], object] | None = None,
) -> TagResult:
    """Tag every image in ``image_dir`` with sd-scripts' WD14 tagger; blocks until it ends."""
    from ..launch.process import spawn

    replaced = check_before_tagging(options, image_dir)
    backup = _backup(replaced, image_dir)
    images = _images(image_dir, options.recursive)
    before = {
        p: p.with_suffix(options.caption_extension).stat().st_mtime_ns
        if p.with_suffix(options.caption_extension).exists()
        else None
        for p in images
    }
    parser = LogParser()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    errors: list[ChildError] = []
    start = time.monotonic()

    def on_output(chunk: bytes) -> None:
        for event in parser.feed(decoder.decode(chunk), t=time.monotonic() - start):
            if isinstance(event, ChildError):
                errors.append(event)
            if on_event is not None and isinstance(event, ProgressBar | ChildError):
                on_event(event)

    spec = build_tagger_spec(options, image_dir, python=python, sd_scripts_dir=sd_scripts_dir)
    handle = spawn(spec, console_log=log_file, on_output=on_output)
    try:
        rc = handle.wait()
    except KeyboardInterrupt:
        handle.cancel()
        raise
    errors += [e for e in parser.close() if isinstance(e, ChildError)]
    tagged = 0
    for image in images:
        caption = image.with_suffix(options.caption_extension)
        if caption.exists() and caption.stat().st_mtime_ns != before[image]:
            tagged += 1
    return TagResult(
        returncode=rc,
        images=len(images),
        tagged=tagged,
        backup=str(backup) if backup else None,
        errors=errors,
        log=str(log_file),
    )
