"""Lay out a flat folder of images as kohya `<repeats>_<name>` folders (``dataset create``).

The source is never moved or modified and existing files are never overwritten; folders are read
back with :mod:`.tree`, the way sd-scripts reads them.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError, Problem
from .findings import FindingTable, make_finding
from .tree import CAPTION_EXTENSIONS, read_tree, require_dir, scan_folder

__all__ = ["LAYOUT_FINDINGS", "CreateResult", "CreatedFolder", "create_subsets", "split_sizes"]

# code -> (severity, message, hint); "{...}" fields are filled per finding. docs/datasets.md lists them.
LAYOUT_FINDINGS: FindingTable = {
    "split_class_tokens": (
        "warning",
        "{n} image(s) have no caption file: sd-scripts captions them with the folder's class "
        "tokens, which differ between split folders ('{name}', '{name} 2', ...)",
        "caption every image, or set class_tokens for each subset in the job",
    ),
    "uncaptioned": (
        "info",
        "{n} image(s) have no .txt or .caption file: sd-scripts uses the class tokens '{name}' "
        "as their caption",
        None,
    ),
}


def _note(code: str, path: str, **values: object) -> Problem:
    return make_finding(LAYOUT_FINDINGS, code, path, values)


@dataclass(frozen=True)
class CreatedFolder:
    """One folder laid out by create_subsets."""

    path: str
    images: int
    captions: int


@dataclass(frozen=True)
class CreateResult:
    """What create_subsets did (or would do, with ``dry_run``).

    Attributes:
        folders: The `<repeats>_<name>` folders, in order.
        files: ``(source, destination)`` pairs, images and captions.
        mode: ``copy``, ``hard`` or ``sym``.
        findings: Source files skipped and other advice.
    """

    folders: tuple[CreatedFolder, ...]
    files: tuple[tuple[str, str], ...]
    mode: str
    findings: tuple[Problem, ...] = field(default=())


def split_sizes(n: int, limit: int | None) -> list[int]:
    """Split ``n`` images into the fewest folders of at most ``limit``, as evenly as possible.

    ``split_sizes(150, 100)`` is ``[75, 75]``; ``split_sizes(201, 100)`` is ``[67, 67, 67]``.
    """
    if limit is None or n <= limit:
        return [n]
    parts = math.ceil(n / limit)
    base, extra = divmod(n, parts)
    return [base + 1 if i < extra else base for i in range(parts)]


def _folder_names(repeats: int, name: str, parts: int) -> list[str]:
    first = f"{repeats}_{name}"
    return [first] + [f"{first} {i}" for i in range(2, parts + 1)]


def _check_name(name: str) -> str:
    clean = name.strip()
    bad = [c for c in ("/", "\\", "\0") if c in clean]
    if not clean or clean in (".", "..") or bad:
        raise ConfigError(
            [Problem("--name", f"{name!r} cannot be a folder name", 'e.g. --name "my subject"')]
        )
    return clean


def _device(path: str) -> int:
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return os.stat(probe).st_dev


def create_subsets(
    src: str | os.PathLike[str],
    into: str | os.PathLike[str],
    *,
    repeats: int,
    name: str,
    link: Literal["hard", "sym"] | None = None,
    max_per_subset: int | None = None,
    dry_run: bool = False,
) -> CreateResult:
    """Lay out a flat folder of images (and captions) as `INTO/<repeats>_<name>/`.

    The source is never moved or modified and existing files are never overwritten: if any
    destination exists, nothing is written. With ``max_per_subset``, more images than that are
    split as evenly as possible into ``<repeats>_<name>``, ``<repeats>_<name> 2``, ... (sorted by
    file name). A mixed-case image extension (``.Png``) is written in lower case so sd-scripts
    finds the file on Linux.

    Args:
        src: The flat folder of images, with ``.txt``/``.caption`` files beside them.
        into: The parent folder to create the subset folders in (created if missing).
        repeats: The ``<repeats>`` prefix (1 or more).
        name: The folder name after the prefix: the class tokens, e.g. ``zengxin oilpaint``.
        link: ``"hard"`` or ``"sym"`` to link instead of copying.
        max_per_subset: Split into several folders above this many images.
        dry_run: Only plan; write nothing.

    Returns:
        What was (or would be) created.

    Raises:
        ConfigError: Bad arguments, no images in ``src``, or destinations that already exist.
    """
    src_dir, into_dir = os.fspath(src), os.fspath(into)
    problems: list[Problem] = []
    if repeats < 1:
        problems.append(Problem("--repeats", f"{repeats} must be 1 or more", "e.g. --repeats 10"))
    if max_per_subset is not None and max_per_subset < 1:
        problems.append(Problem("--max-per-subset", "must be 1 or more", "e.g. 100"))
    clean = _check_name(name)
    require_dir(src_dir, "source folder")
    if problems:
        raise ConfigError(problems, source="dataset create")
    if os.path.exists(into_dir) and not os.path.isdir(into_dir):
        raise ConfigError([Problem(into_dir, "--into is a file, not a folder", "give a folder")])
    images, names, findings = scan_folder(src_dir)
    # mixed-case extensions are taken too (and written in lower case)
    mixed = [f for f in findings if f.code == "mixed_case_extension"]
    images = sorted(images + [f.path for f in mixed])
    findings = [f for f in findings if f.code != "mixed_case_extension"]
    if not images:
        tree = read_tree(src_dir)
        hint = "give the folder that holds the images themselves"
        if tree.subsets:
            hint = f"{src_dir} already has `<repeats>_<name>` folders: it is laid out already"
        raise ConfigError([Problem(src_dir, "no images sd-scripts reads in this folder", hint)])
    if link == "hard" and not dry_run and _device(src_dir) != _device(into_dir):
        raise ConfigError(
            [
                Problem(
                    into_dir,
                    "hard links need the source and --into on the same file system",
                    "copy instead (leave out --link) or use --link sym",
                )
            ]
        )
    sizes = split_sizes(len(images), max_per_subset)
    folder_names = _folder_names(repeats, clean, len(sizes))
    plan: list[tuple[str, str]] = []
    planned: set[str] = set()
    folders: list[CreatedFolder] = []
    missing = 0
    start = 0
    for size, folder_name in zip(sizes, folder_names, strict=True):
        dest_dir = os.path.join(into_dir, folder_name)
        n_captions = 0
        for image in images[start : start + size]:
            stem, ext = os.path.splitext(os.path.basename(image))
            if ext not in (ext.lower(), ext.upper()):
                ext = ext.lower()  # '.Png' -> '.png': sd-scripts on Linux skips mixed case
            dst = os.path.join(dest_dir, stem + ext)
            if dst in planned:
                raise ConfigError(
                    [
                        Problem(
                            image,
                            f"two source images would both become {dst}",
                            "rename one of them",
                        )
                    ]
                )
            planned.add(dst)
            plan.append((image, dst))
            has_caption = False
            for cap_ext in CAPTION_EXTENSIONS:
                if stem + cap_ext in names:
                    cap_dst = os.path.join(dest_dir, stem + cap_ext)
                    has_caption = True
                    if cap_dst not in planned:
                        planned.add(cap_dst)
                        plan.append((os.path.join(src_dir, stem + cap_ext), cap_dst))
                        n_captions += 1
            missing += not has_caption
        folders.append(CreatedFolder(dest_dir, size, n_captions))
        start += size
    existing = [dst for _, dst in plan if os.path.lexists(dst)]
    if existing:
        raise ConfigError(
            [
                Problem(dst, "already exists; refusing to overwrite it", None)
                for dst in existing[:20]
            ]
            + (
                [Problem(into_dir, f"... and {len(existing) - 20} more existing files", None)]
                if len(existing) > 20
                else []
            ),
            source="dataset create",
        )
    if missing:
        code = "split_class_tokens" if len(sizes) > 1 else "uncaptioned"
        findings.append(_note(code, into_dir if len(sizes) > 1 else src_dir, n=missing, name=clean))
    mode = link or "copy"
    if not dry_run:
        _write(plan, folders, mode)
    return CreateResult(tuple(folders), tuple(plan), mode, tuple(findings))


def _write(plan: Iterable[tuple[str, str]], folders: Iterable[CreatedFolder], mode: str) -> None:
    done = 0
    try:
        for folder in folders:
            os.makedirs(folder.path, exist_ok=True)
        for source, dest in plan:
            if mode == "hard":
                os.link(source, dest)
            elif mode == "sym":
                os.symlink(os.path.abspath(source), dest)
            else:
                with open(source, "rb") as fin, open(dest, "xb") as fout:  # "x": never overwrite
                    shutil.copyfileobj(fin, fout, 1 << 20)
                shutil.copystat(source, dest)
            done += 1
    except OSError as exc:
        where = exc.filename or ""
        raise ConfigError(
            [
                Problem(
                    str(where),
                    f"could not write: {exc.strerror or exc}",
                    f"{done} file(s) were "
                    "written before this one; fix the cause and run again into a new folder",
                )
            ],
            source="dataset create",
        ) from None
