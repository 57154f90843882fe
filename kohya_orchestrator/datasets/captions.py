"""Caption tools: add, remove or replace a tag (or trigger word) across a subset's captions.

Captions are comma-separated tags. Tags are compared case-insensitively after stripping spaces
(sd-scripts lower-cases tags for its tag frequency too) and a changed caption is written back as
``"tag1, tag2, ..."``. Every line of a caption is edited (sd-scripts trains on the first line, or
picks a line at random with ``enable_wildcard``).

Safety: images are never opened for writing. Before a caption changes, the original is copied to
``<subset>/.caption-backups/<timestamp>/`` (a new folder per run, never overwritten; sd-scripts does
not look into subfolders, so backups never train). Each caption is replaced atomically (a temporary
file, then a rename), so a hard- or sym-linked caption is replaced by a new file and the link's
target is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .._fs import write_atomic
from ..errors import ConfigError, Problem
from .tree import (
    DEFAULT_CAPTION_EXTENSION,
    find_caption,
    normalize_caption_extension,
    read_tree,
    scan_folder,
)

__all__ = [
    "BACKUP_DIR",
    "CaptionChange",
    "CaptionEdit",
    "edit_caption_text",
    "edit_captions",
]

BACKUP_DIR = ".caption-backups"
"""Folder inside each subset folder that holds one timestamped backup folder per run."""

Action = Literal["add", "remove", "replace"]
_LINES = re.compile(r"(\r\n|\n|\r)")


@dataclass(frozen=True)
class CaptionChange:
    """One caption file that changes (or would change)."""

    path: str
    before: str
    after: str
    created: bool = False


@dataclass(frozen=True)
class CaptionEdit:
    """What edit_captions did, or would do with ``dry_run``.

    Attributes:
        changes: The captions that change.
        unchanged: Captions already as asked.
        findings: Captions skipped (not UTF-8, unreadable) and images without a caption.
        backups: Backup folders written (empty on a dry run or when nothing changed).
        dry_run: Nothing was written.
    """

    changes: tuple[CaptionChange, ...]
    unchanged: int
    findings: tuple[Problem, ...]
    backups: tuple[str, ...]
    dry_run: bool


def _same(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def _edit_line(line: str, action: Action, tag: str, new: str | None, front: bool) -> str:
    tags = [t.strip() for t in line.split(",")]
    tags = [t for t in tags if t]
    if action == "add":
        if any(_same(t, tag) for t in tags):
            return line
        tags = [tag, *tags] if front else [*tags, tag]
    elif action == "remove":
        if not any(_same(t, tag) for t in tags):
            return line
        tags = [t for t in tags if not _same(t, tag)]
    else:
        assert new is not None
        if not any(_same(t, tag) for t in tags):
            return line
        out: list[str] = []
        for t in tags:
            t = new if _same(t, tag) else t
            if not any(_same(t, o) for o in out):
                out.append(t)
        if front:
            out = [new] + [t for t in out if not _same(t, new)]
        tags = out
    return ", ".join(tags)


def edit_caption_text(
    text: str, action: Action, tag: str, new: str | None = None, *, front: bool = False
) -> str:
    """Apply a tag edit to a caption's text (pure; every non-empty line, line endings kept).

    Args:
        text: The caption file's text.
        action: ``add``, ``remove`` or ``replace``.
        tag: The tag to add, remove or replace.
        new: The replacement (``replace`` only).
        front: ``add``: put the tag first (where ``keep_tokens`` keeps it); ``replace``: move
            the new tag first.

    Returns:
        The new text (the same string when nothing changes).
    """
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    parts = _LINES.split(text[len(bom) :])  # lines at even indexes, their endings at odd ones
    lines = parts[::2]
    edited = [_edit_line(ln, action, tag, new, front) if ln.strip() else ln for ln in lines]
    if action == "add" and not any(ln.strip() for ln in lines):
        edited[0] = tag  # an empty caption gets the tag as its only line
    parts[::2] = edited
    return bom + "".join(parts)


def _check_args(action: str, tag: str, new: str | None) -> None:
    problems: list[Problem] = []
    for name, value in (("TAG", tag), ("NEW", new)):
        if value is None:
            continue
        if not value.strip():
            problems.append(Problem(name, "must not be empty", None))
        elif "," in value or "\n" in value:
            problems.append(Problem(name, f"{value!r} holds a comma or newline", "give one tag"))
    if action == "replace" and new is None:
        problems.append(Problem("NEW", "replace needs the new tag", "... replace OLD NEW"))
    if action != "replace" and new is not None:
        problems.append(Problem("NEW", f"{action} takes one tag", f"... {action} TAG"))
    if action not in ("add", "remove", "replace"):
        problems.append(Problem("ACTION", f"unknown action {action!r}", "add, remove or replace"))
    if problems:
        raise ConfigError(problems, source="dataset captions")


def _folders(folder: str) -> list[tuple[str, tuple[str, ...], frozenset[str]]]:
    """(folder, images, file names) for each subset under ``folder`` (or ``folder`` itself)."""
    images, names, _ = scan_folder(folder)
    if images:
        return [(folder, tuple(images), names)]
    tree = read_tree(folder)
    found = [(s.path, s.images, s.file_names) for s in tree.subsets]
    if not found:
        raise ConfigError(
            [Problem(folder, "no images here or in `<repeats>_<name>` subfolders", None)],
            source="dataset captions",
        )
    return found


def _backup_dir(folder: str, stamp: str) -> str:
    base = os.path.join(folder, BACKUP_DIR, stamp)
    path, n = base, 1
    while os.path.lexists(path):
        n += 1
        path = f"{base}-{n}"
    return path


def edit_captions(
    folder: str | os.PathLike[str],
    action: Action,
    tag: str,
    new: str | None = None,
    *,
    front: bool = False,
    caption_extension: str = DEFAULT_CAPTION_EXTENSION,
    create_missing: bool = False,
    dry_run: bool = False,
    clock: Callable[[], datetime] = datetime.now,
) -> CaptionEdit:
    """Add, remove or replace a tag in every caption of a subset (or of every subset of a parent).

    Args:
        folder: A `<repeats>_<name>` folder (any folder of images), or a parent of such folders.
        action: ``add``, ``remove`` or ``replace``.
        tag: The tag or trigger word.
        new: The replacement tag (``replace`` only).
        front: Put the added (or replacing) tag first.
        caption_extension: The caption files to edit (``.txt`` by default).
        create_missing: ``add`` also writes a caption holding just the tag for images without one.
        dry_run: Report what would change; write nothing.
        clock: Gives the backup folder's timestamp (tests pass a fixed one).

    Returns:
        What changed, with the backup folders.

    Raises:
        ConfigError: Bad arguments, or no images under ``folder``.
    """
    folder_path = os.fspath(folder)
    _check_args(action, tag, new)
    tag, new = tag.strip(), new.strip() if new is not None else None
    ext = normalize_caption_extension(caption_extension)
    if not os.path.isdir(folder_path):
        read_tree(folder_path)  # raises the right ConfigError (missing, a file, a broken link)
    changes: list[CaptionChange] = []
    findings: list[Problem] = []
    unchanged = 0
    per_folder: list[tuple[str, list[CaptionChange]]] = []
    for sub, images, names in _folders(folder_path):
        mine: list[CaptionChange] = []
        seen: set[str] = set()
        for image in images:
            cap = find_caption(image, ext, sub, names)
            if cap is None:
                if action == "add" and create_missing:
                    path = os.path.splitext(image)[0] + ext
                    mine.append(CaptionChange(path, "", tag + "\n", created=True))
                continue
            if cap in seen:
                continue
            seen.add(cap)
            try:
                with open(cap, "rb") as f:
                    text = f.read().decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else exc.strerror
                findings.append(
                    Problem(
                        cap,
                        f"skipped: {why}",
                        "re-save it as UTF-8" if why == "not UTF-8" else None,
                        severity="warning",
                        code="caption_skipped",
                    )
                )
                continue
            after = edit_caption_text(text, action, tag, new, front=front)
            if after == text:
                unchanged += 1
            else:
                mine.append(CaptionChange(cap, text, after))
        changes += mine
        per_folder.append((sub, mine))
    backups: list[str] = []
    if not dry_run:
        stamp = clock().strftime("%Y%m%d-%H%M%S")
        for sub, mine in per_folder:
            if mine:
                backups.append(_apply(sub, mine, stamp))
    return CaptionEdit(tuple(changes), unchanged, tuple(findings), tuple(backups), dry_run)


def _apply(folder: str, changes: list[CaptionChange], stamp: str) -> str:
    backup = _backup_dir(folder, stamp)
    os.makedirs(backup)
    created = []
    for change in changes:
        if change.created:
            created.append(os.path.basename(change.path))
        else:
            shutil.copy2(change.path, os.path.join(backup, os.path.basename(change.path)))
    if created:
        with open(os.path.join(backup, "created-files.txt"), "w", encoding="utf-8") as f:
            f.write("".join(name + "\n" for name in created))
    for change in changes:
        if change.created and os.path.lexists(change.path):
            continue  # never overwrite: appeared since we looked
        write_atomic(change.path, change.after)
    return backup
