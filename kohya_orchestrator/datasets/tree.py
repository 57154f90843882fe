"""Kohya dataset trees: read `<repeats>_<name>` folders exactly as sd-scripts does.

sd-scripts' folder convention (``config_util.generate_dreambooth_subsets_config_by_subdirs``):
every immediate subfolder of the train (or reg) folder whose name splits on the first ``_`` into
an integer and a rest is a subset; the integer is ``num_repeats`` and the rest the class tokens.
Folders without a numeric prefix (hidden ones included) are skipped with a warning, folders with
fewer than 1 repeat silently, and files directly in the parent are ignored.

Inside a subset folder sd-scripts globs ``*.png *.jpg *.jpeg *.webp *.bmp`` and their upper-case
spellings (``train_util.glob_images``): on Linux and macOS ``.Png`` is *not* matched, hidden files
are skipped, and ``.avif``/``.jxl`` count only when their Pillow plugins import in sd-scripts'
venv. The caption of ``img.png`` is ``img<caption_extension>``; sd-scripts' own default extension
is ``.caption``, while our jobs render ``.txt`` unless told otherwise.

Everything here reports instead of raising: each skipped folder or file becomes a finding (an
:class:`~kohya_orchestrator.errors.Problem` with a code, see findings.py) saying where, why, and
what to do. layout.py writes such trees (``dataset create``).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass

from ..errors import ConfigError, Problem
from ..models.dataset import parse_repeats_folder
from .findings import FindingTable, Severity, make_finding

__all__ = [
    "CAPTION_EXTENSIONS",
    "DEFAULT_CAPTION_EXTENSION",
    "IMAGE_EXTENSIONS",
    "PLUGIN_EXTENSIONS",
    "SD_SCRIPTS_CAPTION_EXTENSION",
    "TREE_FINDINGS",
    "DatasetTree",
    "SubsetFolder",
    "find_caption",
    "normalize_caption_extension",
    "read_tree",
    "require_dir",
    "scan_folder",
    "subsets_from_tree",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""Extensions sd-scripts reads (train_util.py IMAGE_EXTENSIONS), in lower case."""
PLUGIN_EXTENSIONS: dict[str, str] = {
    ".avif": "pillow-avif-plugin",
    ".jxl": "pillow-jxl-plugin (or jxlpy)",
}
"""Extensions sd-scripts reads only when the named package imports in its venv."""
CAPTION_EXTENSIONS: tuple[str, ...] = (".txt", ".caption")
SD_SCRIPTS_CAPTION_EXTENSION = ".caption"
"""sd-scripts' own default (--caption_extension) when a job or config says nothing."""
DEFAULT_CAPTION_EXTENSION = ".txt"
"""What our jobs render unless told otherwise (dataset.caption_extension)."""

_OTHER_IMAGES = frozenset(
    {".gif", ".tif", ".tiff", ".jfif", ".heic", ".heif", ".ico", ".psd", ".svg", ".jp2", ".tga"}
)
_SIDECARS = frozenset({".npz", ".json", ".bak", ".toml"})
_WINDOWS = sys.platform == "win32"

_CRASH = "sd-scripts globs it as an image and stops when it cannot open it"
# code -> (severity, message, hint); "{...}" fields are filled per finding. docs/datasets.md lists them.
TREE_FINDINGS: FindingTable = {
    "unreadable_folder": (
        "warning",
        "cannot list the folder ({why}); sd-scripts would find no images in it",
        "check the folder's permissions",
    ),
    "hidden_image": (
        "info",
        "hidden file: sd-scripts skips names starting with '.'",
        "rename it without the leading dot if it should be trained on",
    ),
    "folder_named_like_image": (
        "error",
        f"a folder named like an image: {_CRASH}",
        "rename the folder so it does not end in {ext}",
    ),
    "symlink_loop": ("error", f"symbolic link loop: {_CRASH}", "remove the link"),
    "broken_link": (
        "error",
        f"symbolic link to a missing file: {_CRASH}",
        "remove it or point it at a real image",
    ),
    "not_a_file": ("error", f"not a regular file: {_CRASH}", "remove it"),
    "unreadable_file": ("error", f"cannot read it ({{why}}): {_CRASH}", "check its permissions"),
    "mixed_case_extension": (
        "warning",
        "skipped: sd-scripts matches only '{low}' or '{up}' on Linux and macOS, not '{ext}'",
        "rename it to end in '{low}'",
    ),
    "needs_plugin": (
        "info",
        "skipped unless sd-scripts' venv has {plugin} installed",
        "install the plugin there, or convert the image to PNG",
    ),
    "unsupported_format": (
        "warning",
        "'{ext}' images are not read by sd-scripts",
        "convert it to PNG, JPEG or WebP",
    ),
    "nested_folder": (
        "info",
        "nested folder ignored: sd-scripts does not look into subfolders",
        "move its images up, or make it a `<repeats>_<name>` folder of its own",
    ),
    "ignored_file": ("info", "{n} other file(s) ignored: {names}", None),
    "bad_link_folder": ("warning", "{what}: sd-scripts skips it", "remove the link or fix it"),
    "hidden_folder": (
        "info",
        "hidden folder skipped (sd-scripts logs 'ignore directory without repeats' for it)",
        None,
    ),
    "no_repeats_prefix": (
        "warning",
        "no '<repeats>_' prefix: sd-scripts skips this folder ('ignore directory without repeats')",
        "rename it to '10_{name}' (10 = how often each image is seen per epoch)",
    ),
    "zero_repeats": (
        "warning",
        "{repeats} repeats: sd-scripts skips this folder without a word",
        "rename it with 1 or more repeats, e.g. '10_{rest}'",
    ),
    "no_images": (
        "warning",
        "no images sd-scripts reads: it skips this folder ('no images found')",
        "add .png/.jpg/.webp/.bmp images, or remove the folder",
    ),
    "images_in_parent": (
        "warning",
        "{n} image(s) directly in the {what} folder are ignored: {names}; sd-scripts wants them "
        "in a `<repeats>_<name>` subfolder",
        'python -m kohya_orchestrator dataset create {qpath} --repeats 10 --name "my subject" '
        "--into <new folder>",
    ),
    "files_in_parent": ("info", "{n} file(s) directly in the folder are ignored: {names}", None),
    "no_subsets": (
        "error",
        "no `<repeats>_<name>` folder with images: sd-scripts would say 'No data found' and exit "
        "0 without training",
        "put images in a subfolder such as '10_my subject' (see 'dataset create')",
    ),
}


def _note(code: str, path: str, *, severity: Severity | None = None, **values: object) -> Problem:
    return make_finding(TREE_FINDINGS, code, path, values, severity=severity)


@dataclass(frozen=True)
class SubsetFolder:
    """One `<repeats>_<name>` folder as sd-scripts sees it.

    Attributes:
        path: The folder (the ``image_dir`` string sd-scripts gets).
        repeats: From the name prefix (``num_repeats``).
        class_tokens: The rest of the name after the first ``_``.
        is_reg: Found under the reg folder.
        images: Image paths sd-scripts globs, sorted as it sorts them.
        file_names: Names of the regular files in the folder (for caption look-ups).
    """

    path: str
    repeats: int
    class_tokens: str
    is_reg: bool
    images: tuple[str, ...]
    file_names: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        """The folder name."""
        return os.path.basename(self.path)

    def caption_for(self, image: str, extension: str) -> str | None:
        """The caption file sd-scripts reads for ``image``, or None."""
        return find_caption(image, extension, self.path, self.file_names)


@dataclass(frozen=True)
class DatasetTree:
    """A train folder (and optional reg folder) read like sd-scripts reads them.

    Attributes:
        train_dir: The train folder as given.
        reg_dir: The reg folder, if any.
        subsets: Train subsets first, then reg subsets; each in the order the file system lists
            them, which is the order sd-scripts' ``--train_data_dir`` uses.
        findings: Skipped folders and files, and layout problems.
        single: ``train_dir`` was itself one `<repeats>_<name>` folder, not a parent.
    """

    train_dir: str
    reg_dir: str | None
    subsets: tuple[SubsetFolder, ...]
    findings: tuple[Problem, ...]
    single: bool = False


def normalize_caption_extension(extension: str) -> str:
    """Add the leading dot sd-scripts adds (train_util.py: a missing '.' is prepended)."""
    return extension if extension.startswith(".") else "." + extension


def find_caption(
    image: str, extension: str, folder: str | None = None, names: Collection[str] = ()
) -> str | None:
    """The caption file sd-scripts would read for ``image`` (``read_caption``), or None.

    It tries ``<image without extension><extension>``, then the face-crop variant that drops the
    last four ``_``-separated tokens when there are at least five. Like sd-scripts it splits the
    *whole path* on ``_``, folder names included.

    Args:
        image: The image path.
        extension: The caption extension, with or without the leading dot.
        folder: The image's folder; with ``names`` it avoids a stat per look-up.
        names: Names of the regular files in ``folder``.
    """
    extension = normalize_caption_extension(extension)
    base = os.path.splitext(image)[0]
    candidates = [base + extension]
    tokens = base.split("_")
    if len(tokens) >= 5:
        candidates.append("_".join(tokens[:-4]) + extension)
    for cand in candidates:
        head, tail = os.path.split(cand)
        if folder is not None and names and head == folder:
            if tail in names:
                return cand
        elif os.path.isfile(cand):
            return cand
    return None


def _matches(ext: str, extensions: Collection[str]) -> bool:
    # glob + fnmatch: case-sensitive on POSIX (".png" or ".PNG" only), case-insensitive on Windows
    low = ext.lower()
    if low not in extensions:
        return False
    return _WINDOWS or ext in (low, low.upper())


def _link_problem(path: str) -> tuple[str, str]:
    """(code, words) for a directory entry that is neither a file nor a folder."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink_loop", "symbolic link loop"
        if exc.errno == errno.ENOENT:
            return "broken_link", "symbolic link to a missing file"
        return "unreadable_file", str(exc.strerror or exc)
    return "not_a_file", "not a regular file"


def _is_other_file(name: str) -> bool:
    low = os.path.splitext(name)[1].lower()
    return low not in CAPTION_EXTENSIONS and low not in _SIDECARS


def _examples(names: list[str], n: int = 3) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def _classify(entry: os.DirEntry[str], extensions: Collection[str]) -> tuple[str, bool]:
    """('image' | 'hidden' | a finding code | 'caption' | 'other', is_file) for one entry."""
    name = entry.name
    ext = os.path.splitext(name)[1]
    low = ext.lower()
    try:
        is_file = entry.is_file()
        is_dir = not is_file and entry.is_dir()
    except OSError:
        is_file = is_dir = False
    if name.startswith("."):  # glob's "*" never matches hidden names
        hidden_image = not is_dir and (low in extensions or low in PLUGIN_EXTENSIONS)
        return ("hidden_image" if hidden_image else "hidden"), is_file
    if _matches(ext, extensions):
        if is_file:
            return "image", True
        return ("folder_named_like_image" if is_dir else "link"), False
    if low in extensions:
        return "mixed_case_extension", is_file
    if low in PLUGIN_EXTENSIONS:
        return "needs_plugin", is_file
    if low in _OTHER_IMAGES:
        return "unsupported_format", is_file
    if is_dir:
        return "nested_folder", False
    if low in CAPTION_EXTENSIONS or low in _SIDECARS:
        return "caption", is_file
    return "other", is_file


def scan_folder(
    folder: str, *, extra_extensions: Collection[str] = ()
) -> tuple[list[str], frozenset[str], list[Problem]]:
    """List the images sd-scripts would glob in one folder, and why the other entries are not used.

    Args:
        folder: The folder to list (not recursive, like sd-scripts).
        extra_extensions: Plugin extensions to count as images (``.avif``, ``.jxl``) because the
            plugin is installed in sd-scripts' venv.

    Returns:
        ``(images, file_names, findings)``: image paths sorted like sd-scripts sorts them, names of
        the regular files (for caption look-ups), and what was skipped.
    """
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:
        return [], frozenset(), [_note("unreadable_folder", folder, why=exc.strerror or exc)]
    extensions = frozenset(IMAGE_EXTENSIONS) | {e.lower() for e in extra_extensions}
    # fast path for the common entries (exact-case image or caption files), the rest classified
    exact = extensions | {e.upper() for e in extensions}
    plain = frozenset(CAPTION_EXTENSIONS) | _SIDECARS
    prefix = folder if folder.endswith(os.sep) else folder + os.sep  # = os.path.join(folder, n)
    images: list[str] = []
    files: set[str] = set()
    ignored: list[str] = []
    findings: list[Problem] = []
    for entry in entries:
        name = entry.name
        ext = name[name.rfind(".") :]  # no dot: the last character, which matches nothing below
        try:
            if ext in exact:
                if name[0] != "." and entry.is_file():
                    files.add(name)
                    images.append(prefix + name)
                    continue
            elif ext.lower() in plain and name[0] != "." and entry.is_file():
                files.add(name)
                continue
        except OSError:
            pass
        kind, is_file = _classify(entry, extensions)
        if is_file:
            files.add(name)
        path = prefix + name
        ext = os.path.splitext(name)[1]
        if kind == "image":
            images.append(path)
        elif kind == "link":
            code, why = _link_problem(path)
            findings.append(_note(code, path, why=why))
        elif kind == "other":
            ignored.append(name)
        elif kind not in ("hidden", "caption"):
            low = ext.lower()
            plugin = PLUGIN_EXTENSIONS.get(low, "")
            findings.append(_note(kind, path, ext=ext, low=low, up=low.upper(), plugin=plugin))
    if ignored:
        names = _examples(sorted(ignored))
        findings.append(_note("ignored_file", folder, n=len(ignored), names=names))
    images.sort()
    return images, frozenset(files), findings


def require_dir(path: str, what: str) -> None:
    if os.path.isdir(path):
        return
    if os.path.lexists(path) and not os.path.exists(path):
        why = _link_problem(path)[1]
        raise ConfigError([Problem(path, f"{what} is a {why}", "point it at a real folder")])
    if os.path.exists(path):
        raise ConfigError(
            [Problem(path, f"{what} is a file, not a folder", "give the folder that holds images")]
        )
    raise ConfigError([Problem(path, f"{what} does not exist", "check the path")])


def _read_parent(
    parent: str, is_reg: bool, extra: Collection[str]
) -> tuple[list[SubsetFolder], list[Problem]]:
    """The subsets of one parent folder (or the folder itself when it is a `<repeats>_` folder)."""
    own = parse_repeats_folder(os.path.basename(os.path.normpath(parent)))
    if own is not None and own[0] >= 1:
        images, names, found = scan_folder(parent, extra_extensions=extra)
        if images:
            return [SubsetFolder(parent, own[0], own[1], is_reg, tuple(images), names)], found
    try:
        with os.scandir(parent) as it:
            # file-system order, as sd-scripts' Path.iterdir(): it decides which reg images are
            # used when reg images outnumber train images (and the order jobs list subsets in)
            entries = list(it)
    except OSError as exc:
        raise ConfigError(
            [Problem(parent, f"cannot list the folder: {exc.strerror}", "check its permissions")]
        ) from None
    findings: list[Problem] = []
    subsets: list[SubsetFolder] = []
    loose_images: list[str] = []
    loose_files: list[str] = []
    for entry in entries:
        name = entry.name
        path = os.path.join(parent, name)
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if not is_dir:
            if entry.is_symlink() and not os.path.exists(path):
                findings.append(_note("bad_link_folder", path, what=_link_problem(path)[1]))
            elif _matches(os.path.splitext(name)[1], IMAGE_EXTENSIONS):
                loose_images.append(name)
            elif not name.startswith(".") and _is_other_file(name):
                loose_files.append(name)
            continue
        parsed = parse_repeats_folder(name)
        if name.startswith("."):
            findings.append(_note("hidden_folder", path))
        elif parsed is None:
            findings.append(_note("no_repeats_prefix", path, name=name))
        elif parsed[0] < 1:
            findings.append(_note("zero_repeats", path, repeats=parsed[0], rest=parsed[1]))
        else:
            images, names, found = scan_folder(path, extra_extensions=extra)
            findings += found
            if images:
                subsets.append(
                    SubsetFolder(path, parsed[0], parsed[1], is_reg, tuple(images), names)
                )
            else:
                findings.append(_note("no_images", path))
    what = "reg" if is_reg else "train"
    if loose_images:
        findings.append(
            _note(
                "images_in_parent",
                parent,
                severity="warning" if subsets else "error",
                n=len(loose_images),
                what=what,
                names=_examples(loose_images),
            )
        )
    if loose_files:
        findings.append(
            _note("files_in_parent", parent, n=len(loose_files), names=_examples(loose_files))
        )
    if not subsets and not loose_images:
        findings.append(_note("no_subsets", parent))
    return subsets, findings


def read_tree(
    train_dir: str | os.PathLike[str],
    reg_dir: str | os.PathLike[str] | None = None,
    *,
    extra_extensions: Collection[str] = (),
) -> DatasetTree:
    """Read a train folder (and a reg folder) the way sd-scripts' folder convention does.

    Args:
        train_dir: The parent of `<repeats>_<name>` folders, or one such folder.
        reg_dir: The same for regularisation images.
        extra_extensions: Plugin extensions (``.avif``, ``.jxl``) to count as images.

    Returns:
        The subsets (train, then reg; each sorted by name) and every finding.

    Raises:
        ConfigError: A folder is missing, is a file, or cannot be listed.
    """
    train = os.fspath(train_dir)
    require_dir(train, "train folder")
    subsets, findings = _read_parent(train, False, extra_extensions)
    single = len(subsets) == 1 and subsets[0].path == train
    reg = None
    if reg_dir is not None:
        reg = os.fspath(reg_dir)
        require_dir(reg, "reg folder")
        reg_subsets, reg_findings = _read_parent(reg, True, extra_extensions)
        subsets += reg_subsets
        findings += reg_findings
    return DatasetTree(train, reg, tuple(subsets), tuple(findings), single)


def subsets_from_tree(
    train_dir: str | os.PathLike[str], reg_dir: str | os.PathLike[str] | None = None
) -> tuple[list[dict[str, object]], list[Problem]]:
    """Turn a kohya folder tree into job subset tables (for ``preset --data DIR``).

    Args:
        train_dir: The parent of `<repeats>_<name>` folders, or a single such folder.
        reg_dir: The same for regularisation images.

    Returns:
        ``(subsets, problems)``: one dict per usable folder, e.g.
        ``{"image_dir": "/data/20_zengxin oilpaint", "num_repeats": 20,
        "class_tokens": "zengxin oilpaint"}`` (``"is_reg": True`` for reg folders), and every
        skipped folder or layout problem as a Problem (severity "error" or "warning").
    """
    try:
        tree = read_tree(train_dir, reg_dir)
    except ConfigError as exc:
        return [], list(exc.problems)
    out: list[dict[str, object]] = []
    for s in tree.subsets:
        entry: dict[str, object] = {"image_dir": s.path, "num_repeats": s.repeats}
        if s.class_tokens:
            entry["class_tokens"] = s.class_tokens
        if s.is_reg:
            entry["is_reg"] = True
        out.append(entry)
    return out, [f for f in tree.findings if f.severity != "info"]
