"""Dataset report: what a kohya folder tree holds and what to fix before training.

Every image is read once: its bytes are hashed (exact duplicates), its header parsed (size, mode,
EXIF rotation; see imageheaders.py) and its end checked (truncation). Pixels are decoded only with
``verify_pixels``. Captions are read as sd-scripts reads them (UTF-8, first line). Bad files are
reported with what to do and the scan goes on: a report never raises for what it finds, only for
a root folder that is missing or is a file. report_models.py holds the models and finding codes.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field

from ..errors import Problem
from .buckets import BucketCount, BucketSelector
from .findings import Severity, make_finding
from .imageheaders import HeaderError, ImageHeader, parse_header
from .report_models import (
    FEW_IMAGES,
    INSPECT_FINDINGS,
    MANY_IMAGES,
    STYLE_REPEATS,
    DatasetReport,
    RatioCount,
    SizeCount,
    SubsetReport,
    TagCount,
)
from .tree import (
    CAPTION_EXTENSIONS,
    DEFAULT_CAPTION_EXTENSION,
    SubsetFolder,
    normalize_caption_extension,
    read_tree,
)

__all__ = ["inspect_dataset", "ratio_label"]

_ROTATIONS = {
    2: "mirrored",
    3: "upside down",
    4: "flipped vertically",
    5: "rotated 90° and mirrored",
    6: "rotated 90°",
    7: "rotated 270° and mirrored",
    8: "rotated 270°",
}
_FORMAT_EXTENSIONS = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg"),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
}
_COMMON_RATIOS = [(1, 1), (5, 4), (4, 5), (4, 3), (3, 4), (3, 2), (2, 3), (16, 9), (9, 16)]
_COMMON_RATIOS += [(2, 1), (1, 2), (21, 9), (9, 21)]


def _note(code: str, path: str, *, severity: Severity | None = None, **values: object) -> Problem:
    return make_finding(INSPECT_FINDINGS, code, path, values, severity=severity)


_RATIO_TABLE = sorted((a / b, f"{a}:{b}") for a, b in _COMMON_RATIOS)
_RATIO_KEYS = [r for r, _ in _RATIO_TABLE]


def ratio_label(width: int, height: int) -> str:
    """A readable aspect ratio: the nearest common one within 2% (``"2:3"``), else ``"1.23:1"``."""
    r = width / height
    k = bisect.bisect_left(_RATIO_KEYS, r)
    for i in (k - 1, k):  # the 2% windows do not overlap: only the neighbours can match
        if 0 <= i < len(_RATIO_KEYS) and abs(r / _RATIO_KEYS[i] - 1) < 0.02:
            return _RATIO_TABLE[i][1]
    return f"{r:.2f}:1"


# ----------------------------------------------------------------------------- scanning
@dataclass
class _Tally:
    """Running totals for one subset (nothing kept per image: counters keyed by image kind)."""

    kinds: Counter[tuple[str, str, int, int, int, int]] = field(default_factory=Counter)
    """(format, mode, width, height, sd width, sd height) -> images."""
    tags: Counter[str] = field(default_factory=Counter)
    captioned: int = 0
    missing: list[str] = field(default_factory=list)
    other_ext: list[str] = field(default_factory=list)
    empty: int = 0
    tiny: int = 0
    unreadable: int = 0
    truncated: int = 0
    unusual: int = 0
    duplicates: int = 0
    trigger_missing: list[str] = field(default_factory=list)
    long: list[tuple[str, int]] = field(default_factory=list)
    """(caption file, at least this many CLIP tokens) over CLIP's 75."""


@dataclass
class _Scan:
    resolution: tuple[int, int]
    caption_extension: str
    verify_pixels: bool
    selector: BucketSelector
    findings: list[Problem] = field(default_factory=list)
    digests: dict[bytes, str] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)


def _read_image(path: str, scan: _Scan, tally: _Tally) -> None:
    """Read one image file once: hash, header, truncation and mode checks."""
    try:
        fd = os.open(path, _FLAGS)
        try:
            data = _read_all(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        scan.findings.append(_note("unreadable_file", path, why=exc.strerror or exc))
        tally.unreadable += 1
        return
    if not data:
        scan.findings.append(_note("empty_file", path))
        tally.unreadable += 1
        return
    digest = hashlib.blake2b(data, digest_size=16).digest()
    first = scan.digests.setdefault(digest, path)
    if first != path:
        scan.groups.setdefault(first, [first]).append(path)
        scan.findings.append(_note("duplicate_image", path, first=first))
        tally.duplicates += 1
    try:
        header = parse_header(data, path=path)
    except HeaderError as exc:
        scan.findings.append(_note("corrupt_image", path, why=exc))
        tally.unreadable += 1
        return
    if header.width <= 0 or header.height <= 0:
        why = f"{header.width}x{header.height} pixels"
        scan.findings.append(_note("corrupt_image", path, why=why))
        tally.unreadable += 1
        return
    if header.complete is False:
        scan.findings.append(_note("truncated_image", path, why=header.incomplete_reason))
        tally.truncated += 1
    elif scan.verify_pixels:
        error = _decode(path)
        if error:
            scan.findings.append(_note("undecodable_pixels", path, why=error))
            tally.unreadable += 1
    _check_header(path, header, scan, tally)


_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    data = os.read(fd, size) if size else b""
    if len(data) < size:  # a short read: keep reading to the end
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        data = b"".join(chunks)
    return data


def _decode(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
    except Exception as exc:  # Pillow raises many types for bad data
        return str(exc) or type(exc).__name__
    return None


_FORMAT_OK = {(fmt, ext) for fmt, exts in _FORMAT_EXTENSIONS.items() for ext in exts}


def _check_header(path: str, h: ImageHeader, scan: _Scan, tally: _Tally) -> None:
    fmt, mode, w, h_ = h.format, h.mode, h.width, h.height
    ext = path[path.rfind(".") :].lower()
    if (fmt, ext) not in _FORMAT_OK and fmt in _FORMAT_EXTENSIONS:
        scan.findings.append(_note("extension_mismatch", path, ext=ext, fmt=fmt))
    if mode != "RGB" or h.has_alpha or h.bit_depth != 8:
        unusual = True
        if mode == "CMYK":
            scan.findings.append(_note("cmyk", path))
        elif h.bit_depth > 8:
            extra = " with clipping: most greys come out white" if mode.startswith("I;16") else ""
            scan.findings.append(
                _note("sixteen_bit", path, depth=h.bit_depth, mode=mode, extra=extra)
            )
        elif h.has_alpha:
            scan.findings.append(_note("transparency", path, mode=mode))
        elif mode in ("L", "1"):
            scan.findings.append(_note("grayscale", path, mode=mode))
        else:
            unusual = False
        tally.unusual += unusual
    if h.exif_orientation is not None and h.exif_orientation in _ROTATIONS:
        what = _ROTATIONS[h.exif_orientation]
        scan.findings.append(_note("exif_rotated", path, orientation=h.exif_orientation, what=what))
    if h.animated:
        scan.findings.append(_note("animated", path, fmt=fmt))
    sw, sh = h.sd_size
    if sw != w or sh != h_:
        scan.findings.append(_note("sd_size_differs", path, fmt=fmt, sw=sw, sh=sh, w=w, h=h_))
    rw, rh = scan.resolution
    if w * h_ < rw * rh:
        factor = f"{(rw * rh / (w * h_)) ** 0.5:.1f}"
        scan.findings.append(_note("tiny_image", path, w=w, h=h_, rw=rw, rh=rh, f=factor))
        tally.tiny += 1
    tally.kinds[(fmt, mode, w, h_, sw, sh)] += 1


def _read_caption(path: str, scan: _Scan) -> str | None:
    """The caption as sd-scripts reads it (first line, stripped), or None when it cannot."""
    try:
        fd = os.open(path, _FLAGS)
        try:
            raw = _read_all(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        scan.findings.append(_note("unreadable_caption", path, why=exc.strerror or exc))
        return None
    if not raw:
        scan.findings.append(_note("empty_caption_file", path))
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        scan.findings.append(_note("caption_not_utf8", path, pos=exc.start))
        return None
    if text.startswith("\ufeff"):
        scan.findings.append(_note("caption_bom", path))
    # text mode with universal newlines, then readlines()[0].strip() (train_util.read_caption)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n", 1)[0].strip()


def _trigger_pattern(trigger: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(trigger.lower()) + r"(?!\w)")


CLIP_TOKENS = 75
"""What CLIP reads of a caption in sd-scripts without ``--max_token_length`` (77 minus the start
and end tokens); the rest is cut."""

# CLIP's pre-tokenizer (openai/CLIP simple_tokenizer.py, transformers' CLIPTokenizer): letters in
# runs, every digit alone, punctuation in runs; BPE then splits words further, so counting these
# pieces gives a floor.
_CLIP_PIECES = re.compile(r"'(?:s|t|re|ve|m|ll|d)|[^\W\d_]+|\d|[^\s\w]+|_+")


def clip_token_floor(caption: str) -> int:
    """At least this many CLIP tokens (BPE only ever splits the pieces counted here further)."""
    return len(_CLIP_PIECES.findall(caption.lower()))


def _examples(paths: list[str], n: int = 3) -> str:
    names = [os.path.basename(p) for p in paths[:n]]
    more = f" and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(names) + more


def _scan_subset(subset: SubsetFolder, scan: _Scan, trigger: str | None) -> SubsetReport:
    tally = _Tally()
    ext = scan.caption_extension
    others = [e for e in CAPTION_EXTENSIONS if e != ext]
    word = trigger if trigger is not None else (subset.class_tokens or None)
    search = _trigger_pattern(word).search if word else None
    folder, names = subset.path, subset.file_names
    prefix = folder if folder.endswith(os.sep) else folder + os.sep
    tags = tally.tags
    for image in subset.images:
        _read_image(image, scan, tally)
        # fast path for find_caption's first candidate; it handles the face-crop fallback
        stem = image[len(prefix) : image.rfind(".")]
        cap_path = prefix + stem + ext if stem + ext in names else subset.caption_for(image, ext)
        if cap_path is None:
            tally.missing.append(image)
            if any(subset.caption_for(image, o) for o in others):
                tally.other_ext.append(image)
            continue
        caption = _read_caption(cap_path, scan)
        if caption is None:
            continue
        tally.captioned += 1
        if not caption:
            tally.empty += 1
            scan.findings.append(_note("empty_caption", cap_path))
            continue
        low = caption.lower()
        tokens = clip_token_floor(low)
        if tokens > CLIP_TOKENS:
            tally.long.append((cap_path, tokens))
        tags.update(filter(None, [t.strip() for t in low.split(",")]))
        if search is not None and not search(low):
            tally.trigger_missing.append(image)
    _subset_findings(subset, tally, scan, word)
    return _subset_report(subset, tally, scan, word)


def _subset_report(
    subset: SubsetFolder, tally: _Tally, scan: _Scan, word: str | None
) -> SubsetReport:
    formats: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    sizes: Counter[tuple[int, int]] = Counter()
    ratios: Counter[str] = Counter()
    orientations: Counter[str] = Counter()
    buckets: Counter[tuple[int, int]] = Counter()
    for (fmt, mode, w, h, sw, sh), n in tally.kinds.items():
        formats[fmt] += n
        modes[mode] += n
        sizes[(w, h)] += n
        buckets[scan.selector.select(sw, sh)] += n
    for (w, h), n in sizes.items():
        ratios[ratio_label(w, h)] += n
        orientations["square" if w == h else ("landscape" if w > h else "portrait")] += n
    by_area = sorted(sizes, key=lambda s: (s[0] * s[1], s))
    return SubsetReport(
        path=subset.path,
        name=subset.name,
        is_reg=subset.is_reg,
        repeats=subset.repeats,
        class_tokens=subset.class_tokens,
        image_count=len(subset.images),
        images_with_repeats=len(subset.images) * subset.repeats,
        captioned=tally.captioned,
        missing_captions=len(tally.missing),
        empty_captions=tally.empty,
        formats=dict(formats.most_common()),
        modes=dict(modes.most_common()),
        min_size=by_area[0] if by_area else None,
        max_size=by_area[-1] if by_area else None,
        orientations=dict(orientations.most_common()),
        aspect_ratios=[RatioCount(ratio=r, count=c) for r, c in ratios.most_common()],
        sizes=[SizeCount(size=s, count=c) for s, c in sizes.most_common(10)],
        buckets=[BucketCount(resolution=r, count=c) for r, c in sorted(buckets.items())],
        tiny_images=tally.tiny,
        unreadable_images=tally.unreadable,
        truncated_images=tally.truncated,
        unusual_modes=tally.unusual,
        duplicates=tally.duplicates,
        tags=[TagCount(tag=t, count=c) for t, c in sorted(tally.tags.items(), key=_by_count)],
        trigger=word,
        trigger_missing=len(tally.trigger_missing),
    )


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def _subset_findings(subset: SubsetFolder, t: _Tally, scan: _Scan, word: str | None) -> None:
    path, n = subset.path, len(subset.images)
    ext = scan.caption_extension
    if t.missing:
        fallback = (
            f"sd-scripts captions them with the class tokens '{subset.class_tokens}'"
            if subset.class_tokens
            else "they train with an empty caption"
        )
        names = _examples(t.missing)
        scan.findings.append(
            _note(
                "missing_captions",
                path,
                # reg images usually go uncaptioned on purpose: their class tokens are the caption
                severity="info" if subset.is_reg and subset.class_tokens else None,
                n=len(t.missing),
                ext=ext,
                names=names,
                fallback=fallback,
            )
        )
    if t.long:
        worst_path, worst = max(t.long, key=lambda item: item[1])
        scan.findings.append(
            _note(
                "long_caption",
                path,
                n=len(t.long),
                limit=CLIP_TOKENS,
                most=worst,
                name=os.path.basename(worst_path),
            )
        )
    if t.other_ext:
        other = next(e for e in CAPTION_EXTENSIONS if e != ext)
        scan.findings.append(
            _note("other_caption_extension", path, n=len(t.other_ext), other=other, ext=ext)
        )
    if word and t.trigger_missing:
        scan.findings.append(
            _note(
                "trigger_missing",
                path,
                n=len(t.trigger_missing),
                total=t.captioned,
                trigger=word,
                qtrigger=shlex.quote(word),
                names=_examples(t.trigger_missing),
            )
        )
    if subset.is_reg:
        return
    if n < FEW_IMAGES:
        scan.findings.append(_note("few_images", path, n=n))
    elif n > MANY_IMAGES:
        scan.findings.append(
            _note("many_images", path, n=n, repeats=subset.repeats, name=subset.class_tokens)
        )
    lo, hi = STYLE_REPEATS
    if not lo <= subset.repeats <= hi:
        scan.findings.append(
            _note(
                "repeats_range",
                path,
                repeats=subset.repeats,
                lo=lo,
                hi=hi,
                name=subset.class_tokens,
            )
        )


def inspect_dataset(
    path: str | os.PathLike[str],
    reg_dir: str | os.PathLike[str] | None = None,
    *,
    resolution: int | tuple[int, int] = 512,
    trigger: str | None = None,
    caption_extension: str = DEFAULT_CAPTION_EXTENSION,
    verify_pixels: bool = False,
    bucket_reso_steps: int = 64,
) -> DatasetReport:
    """Inspect a kohya dataset tree and report counts, sizes, captions and problems.

    Args:
        path: The parent of `<repeats>_<name>` folders, or one such folder.
        reg_dir: The same for regularisation images.
        resolution: Training resolution (one side or ``(width, height)``), for tiny-image checks
            and the bucket preview.
        trigger: The trigger word to look for in captions; default: each subset's class tokens.
        caption_extension: Where captions are read from (``.txt``, our jobs' default; sd-scripts'
            own default is ``.caption``).
        verify_pixels: Also decode every image fully (slow; finds damage inside the data).
        bucket_reso_steps: Bucket step for the preview (a multiple of the model family's
            ``bucket_step``, see models/family.py).

    Returns:
        The report.

    Raises:
        ConfigError: ``path`` or ``reg_dir`` is missing or is a file.
    """
    res = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    res_wh: tuple[int, int] = (int(res[0]), int(res[1]))
    tree = read_tree(path, reg_dir)
    steps = bucket_reso_steps
    lo = min(256, *res_wh) // steps * steps or steps
    hi = -(-max(1024, *res_wh) // steps) * steps
    selector = BucketSelector(res_wh, min_size=lo, max_size=hi, steps=steps)
    scan = _Scan(res_wh, normalize_caption_extension(caption_extension), verify_pixels, selector)
    scan.findings += tree.findings
    reports = []
    for subset in tree.subsets:
        reports.append(_scan_subset(subset, scan, trigger))
    train = [r for r in reports if not r.is_reg]
    reg = [r for r in reports if r.is_reg]
    return DatasetReport(
        root=tree.train_dir,
        reg_root=tree.reg_dir,
        resolution=res_wh,
        caption_extension=scan.caption_extension,
        verified_pixels=verify_pixels,
        subsets=reports,
        image_count=sum(r.image_count for r in train),
        images_with_repeats=sum(r.images_with_repeats for r in train),
        reg_image_count=sum(r.image_count for r in reg),
        reg_images_with_repeats=sum(r.images_with_repeats for r in reg),
        duplicate_groups=list(scan.groups.values()),
        findings=scan.findings,
    )
