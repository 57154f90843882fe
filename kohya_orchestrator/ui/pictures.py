"""Pictures for judging a run by eye: a contact sheet of samples and a loss curve (Pillow only).

Both functions are pure: they take plain values (labels, image paths, ``(step, loss)`` pairs) and
return a :class:`Picture` holding the PIL image and the layout it was drawn with, so tests can
check every label and cell by its box, and notebooks show it inline (``_repr_png_``).
:mod:`kohya_orchestrator.outputs.collect` turns a run directory into these inputs.

The seed recipe's advice is that the lowest loss is not the best epoch: the contact sheet puts the
same prompt side by side across epochs (rows = prompts, columns = epochs), and the loss curve marks
where each checkpoint was saved, so the two can be read together.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .._fs import write_atomic

__all__ = [
    "Box",
    "CurveLayout",
    "Picture",
    "SheetLayout",
    "draw_contact_sheet",
    "draw_loss_curve",
]

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels; x1/y1 exclusive."""
Point = tuple[int, int]

_BG = (255, 255, 255)
_INK = (25, 25, 25)
_DIM = (110, 110, 110)
_CELL_BG = (232, 232, 232)
_GRID = (225, 225, 225)
_CURRENT = (150, 185, 235)
_AVERAGE = (25, 70, 170)
_EPOCH = (160, 160, 160)
_CHECKPOINT = (225, 110, 0)
_PAD = 8

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _font(size: int) -> Font:
    # Pillow >= 10.1 ships a scalable default font when FreeType is present; older builds or
    # builds without FreeType fall back to the fixed bitmap font.
    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError, ImportError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _text_w(draw: ImageDraw.ImageDraw, text: str, font: Font) -> int:
    x0, _, x1, _ = draw.textbbox((0, 0), text, font=font)
    return int(x1 - x0)


def _line_h(font: Font) -> int:
    _, top, _, bottom = font.getbbox("Ag|")
    return int(bottom) + 4 if top >= 0 else int(bottom - top) + 4


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if _text_w(draw, text, font) <= width:
        return text
    while text and _text_w(draw, text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, font: Font, width: int, max_lines: int
) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last line gets an ellipsis when cut."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if _text_w(draw, candidate, font) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
    return [_fit(draw, line, font, width) for line in lines[: max(max_lines, 1)]]


@dataclass(frozen=True)
class SheetLayout:
    """Where the contact sheet put everything (pixel boxes)."""

    width: int
    height: int
    cell_size: tuple[int, int]
    title_box: Box | None
    column_label_boxes: list[Box]
    row_label_boxes: list[Box]
    cell_boxes: dict[tuple[int, int], Box]
    """``(row, column) -> box`` for every cell, drawn or missing."""
    missing: list[tuple[int, int]] = field(default_factory=list)
    """Cells with no (readable) image."""


@dataclass(frozen=True)
class CurveLayout:
    """Where the loss curve put everything, and the scale it used."""

    width: int
    height: int
    plot_box: Box
    title_box: Box
    legend_box: Box | None
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    epoch_lines: dict[int, int]
    """epoch -> x pixel of its end boundary."""
    checkpoint_points: list[tuple[int, int]]
    """Pixel centres of the checkpoint markers."""
    checkpoint_label_boxes: list[Box] = field(default_factory=list)
    """Each checkpoint marker's box and its label's (``e1``, ``final``); the legend avoids them."""

    def to_px(self, step: float, loss: float) -> tuple[int, int]:
        """The pixel of a ``(step, loss)`` point."""
        x0, y0, x1, y1 = self.plot_box
        (a, b), (lo, hi) = self.x_range, self.y_range
        x = x0 + (step - a) / ((b - a) or 1.0) * (x1 - 1 - x0)
        y = y1 - 1 - (loss - lo) / ((hi - lo) or 1.0) * (y1 - 1 - y0)
        return round(x), round(y)


@dataclass(frozen=True)
class Picture:
    """A drawn picture: the PIL image and its layout. Shows inline in Jupyter."""

    image: Image.Image
    layout: SheetLayout | CurveLayout

    def to_png(self) -> bytes:
        """The picture as PNG bytes."""
        buf = io.BytesIO()
        self.image.save(buf, format="PNG", optimize=False)
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def save(self, path: Path | str) -> Path:
        """Write the PNG atomically (temporary file, then rename).

        Returns:
            The file's path.
        """
        return write_atomic(path, self.to_png(), mkdir=True)


# --------------------------------------------------------------------------- contact sheet
def draw_contact_sheet(
    rows: Sequence[str],
    columns: Sequence[Sequence[str]],
    cells: Mapping[tuple[int, int], Path | Image.Image | None],
    *,
    title: str | None = None,
    cell_size: int = 256,
    row_label_width: int = 240,
) -> Picture:
    """Draw a grid of sample images: one row per prompt, one column per epoch (or step).

    Args:
        rows: Row labels (the prompts), top to bottom.
        columns: Label lines of each column, left to right (e.g. ``["epoch 2", "step 8",
            "loss 1.10", "my-000002.safetensors"]``; the first line is drawn larger).
        cells: ``(row, column) -> image`` (a path or an image). Missing keys, None and unreadable
            files are drawn as a grey "no image" cell.
        title: A line above the grid.
        cell_size: Each image is scaled to fit a square of this many pixels.
        row_label_width: Width of the prompt column on the left.

    Returns:
        The picture and its :class:`SheetLayout`.
    """
    title_font, head_font, text_font = _font(20), _font(15), _font(13)
    n_rows, n_cols = max(len(rows), 1), max(len(columns), 1)
    cw = ch = max(int(cell_size), 32)
    head_lh, text_lh = _line_h(head_font), _line_h(text_font)
    n_label_lines = max((len(c) for c in columns), default=1)
    col_label_h = _PAD * 2 + head_lh + text_lh * max(n_label_lines - 1, 0)
    title_h = _line_h(title_font) + _PAD * 2 if title else 0
    # margins of _PAD all round; _PAD between cells
    width = _PAD + row_label_width + n_cols * (cw + _PAD)
    height = title_h + col_label_h + n_rows * (ch + _PAD)
    image = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(image)

    title_box: Box | None = None
    if title:
        title_box = (_PAD, _PAD, width - _PAD, title_h)
        draw.text(
            (_PAD, _PAD),
            _fit(draw, title, title_font, width - 2 * _PAD),
            font=title_font,
            fill=_INK,
        )

    x_first = _PAD + row_label_width
    y_first = title_h + col_label_h
    col_boxes: list[Box] = []
    for c in range(n_cols):
        x = x_first + c * (cw + _PAD)
        box = (x, title_h, x + cw, title_h + col_label_h)
        col_boxes.append(box)
        lines = list(columns[c]) if c < len(columns) else []
        y = title_h + _PAD
        for i, line in enumerate(lines):
            font = head_font if i == 0 else text_font
            draw.text((x, y), _fit(draw, line, font, cw), font=font, fill=_INK if i == 0 else _DIM)
            y += head_lh if i == 0 else text_lh

    row_boxes: list[Box] = []
    for r in range(n_rows):
        y = y_first + r * (ch + _PAD)
        box = (_PAD, y, _PAD + row_label_width - _PAD, y + ch)
        row_boxes.append(box)
        label = rows[r] if r < len(rows) else ""
        lines = _wrap(draw, label, text_font, row_label_width - 2 * _PAD, max(ch // text_lh, 1))
        for i, line in enumerate(lines):
            draw.text((_PAD, y + i * text_lh), line, font=text_font, fill=_INK)

    cell_boxes: dict[tuple[int, int], Box] = {}
    missing: list[tuple[int, int]] = []
    for r in range(len(rows)):
        for c in range(len(columns)):
            x = x_first + c * (cw + _PAD)
            y = y_first + r * (ch + _PAD)
            box = (x, y, x + cw, y + ch)
            cell_boxes[(r, c)] = box
            draw.rectangle((x, y, x + cw - 1, y + ch - 1), fill=_CELL_BG)
            picture = _open(cells.get((r, c)))
            if picture is None:
                missing.append((r, c))
                note = "no image"
                draw.text(
                    (x + (cw - _text_w(draw, note, text_font)) // 2, y + ch // 2 - text_lh // 2),
                    note,
                    font=text_font,
                    fill=_DIM,
                )
                continue
            fitted = _fit_image(picture, cw, ch)
            image.paste(fitted, (x + (cw - fitted.width) // 2, y + (ch - fitted.height) // 2))

    layout = SheetLayout(
        width=width,
        height=height,
        cell_size=(cw, ch),
        title_box=title_box,
        column_label_boxes=col_boxes,
        row_label_boxes=row_boxes,
        cell_boxes=cell_boxes,
        missing=missing,
    )
    return Picture(image=image, layout=layout)


def _open(source: Path | Image.Image | None) -> Image.Image | None:
    if source is None:
        return None
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    try:
        with Image.open(source) as im:
            im.load()
            converted: Image.Image = im.convert("RGB")
            return converted
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _fit_image(image: Image.Image, w: int, h: int) -> Image.Image:
    scale = min(w / image.width, h / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    # Upscaling small samples (64 px CPU tests) keeps pixels crisp; downscaling is smoothed.
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    return image.resize(size, resample)


# --------------------------------------------------------------------------- loss curve
def _nice_step(span: float, target: int) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    return next((m * mag for m in (1.0, 2.0, 2.5, 5.0) if raw <= m * mag), 10.0 * mag)


def _ticks(lo: float, hi: float, target: int) -> list[float]:
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    out, v = [], first
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) >= 1:
        return str(int(v))
    return f"{v:.4g}"


def _finite(points: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(s, v) for s, v in points if v is not None and math.isfinite(v)]


def draw_loss_curve(
    average: Sequence[tuple[int, float]],
    current: Sequence[tuple[int, float]] = (),
    *,
    epoch_ends: Mapping[int, int] | None = None,
    checkpoints: Sequence[tuple[int, str]] = (),
    title: str = "loss",
    size: tuple[int, int] = (960, 480),
) -> Picture:
    """Draw loss against step: current loss, average loss, epoch boundaries, checkpoints.

    Args:
        average: ``(step, loss)`` of the moving-average loss (sd-scripts' ``avr_loss``,
            TensorBoard ``loss/average``).
        current: ``(step, loss)`` of the per-step loss (TensorBoard ``loss/current``), if known.
        epoch_ends: ``epoch -> last step of that epoch``: a dashed line is drawn after each.
        checkpoints: ``(step, label)`` of each saved checkpoint: a marker on the average curve.
        title: The line above the plot.
        size: ``(width, height)`` in pixels.

    Returns:
        The picture and its :class:`CurveLayout`. NaN and infinite values are left out.
    """
    avg, cur = _finite(average), _finite(current)
    ends = dict(sorted((epoch_ends or {}).items()))
    width, height = max(size[0], 320), max(size[1], 200)
    title_font, font = _font(18), _font(12)
    lh = _line_h(font)
    image = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(image)

    values = [v for _, v in avg + cur]
    steps = [s for s, _ in avg + cur] + list(ends.values()) + [s for s, _ in checkpoints]
    x_hi = float(max(steps, default=1) or 1)
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 0.05)
    lo, hi = lo - pad, hi + pad
    y_ticks = _ticks(lo, hi, 6)
    x_ticks = _ticks(0.0, x_hi, 8)

    title_h = _line_h(title_font) + 2 * _PAD
    label_w = max((_text_w(draw, _fmt(t), font) for t in y_ticks), default=20)
    plot_box: Box = (
        _PAD * 2 + label_w + 4,
        title_h + lh,
        width - _PAD * 3,
        height - (lh * 2 + _PAD * 2),
    )
    layout = CurveLayout(
        width=width,
        height=height,
        plot_box=plot_box,
        title_box=(_PAD, _PAD, width - _PAD, title_h),
        legend_box=None,
        x_range=(0.0, x_hi),
        y_range=(lo, hi),
        epoch_lines={},
        checkpoint_points=[],
    )
    draw.text(
        (_PAD, _PAD), _fit(draw, title, title_font, width - 2 * _PAD), font=title_font, fill=_INK
    )
    x0, y0, x1, y1 = plot_box

    # grid and axes
    for t in y_ticks:
        _, y = layout.to_px(0, t)
        if y0 <= y < y1:
            draw.line((x0, y, x1 - 1, y), fill=_GRID)
            text = _fmt(t)
            draw.text((x0 - 6 - _text_w(draw, text, font), y - lh // 2), text, font=font, fill=_DIM)
    for t in x_ticks:
        x, _ = layout.to_px(t, lo)
        if x0 <= x < x1:
            draw.line((x, y1 - 1, x, y1 + 3), fill=_DIM)
            text = _fmt(t)
            draw.text((x - _text_w(draw, text, font) // 2, y1 + 5), text, font=font, fill=_DIM)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=_DIM)
    axis = "step"
    draw.text(((x0 + x1 - _text_w(draw, axis, font)) // 2, y1 + 5 + lh), axis, font=font, fill=_DIM)

    # epoch boundaries (dashed), labelled at the top of the plot
    for epoch, step in ends.items():
        x, _ = layout.to_px(step, lo)
        layout.epoch_lines[epoch] = x
        for y in range(y0 + 1, y1 - 1, 8):
            draw.line((x, y, x, min(y + 4, y1 - 2)), fill=_EPOCH)
        label = f"e{epoch}"
        draw.text((x - _text_w(draw, label, font) - 2, y0 + 2), label, font=font, fill=_EPOCH)

    if not values:
        note = "no loss recorded"
        draw.text(
            ((x0 + x1 - _text_w(draw, note, font)) // 2, (y0 + y1) // 2), note, font=font, fill=_DIM
        )
    if len(cur) > 1:
        draw.line([layout.to_px(s, v) for s, v in cur], fill=_CURRENT, width=1)
    elif cur:
        _dot(draw, layout.to_px(*cur[0]), 2, _CURRENT)
    if len(avg) > 1:
        draw.line([layout.to_px(s, v) for s, v in avg], fill=_AVERAGE, width=2, joint="curve")
    elif avg:
        _dot(draw, layout.to_px(*avg[0]), 3, _AVERAGE)

    # checkpoints: a diamond on the average curve (or the current one) at the save step
    points = layout.checkpoint_points
    series = avg or cur
    for step, label in checkpoints:
        value = _value_at(series, step)
        if value is None:
            continue
        x, y = layout.to_px(step, value)
        points.append((x, y))
        r = 6
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=_CHECKPOINT)
        labels = layout.checkpoint_label_boxes
        labels.append((x - r, y - r, x + r + 1, y + r + 1))  # the marker too
        if label:
            tw = _text_w(draw, label, font)
            tx = min(max(x - tw // 2, x0 + 2), x1 - tw - 2)
            ty = y - r - lh - 1 if y - r - lh - 1 > y0 else y + r + 2
            draw.text((tx, ty), label, font=font, fill=_CHECKPOINT)
            labels.append((tx, ty, tx + tw, ty + lh))

    # the legend goes in the corner that hides no checkpoint (its "final" label sits at the right
    # edge, where a rising loss ends up under a top-right legend) and the fewest curve points
    drawn = [layout.to_px(s, v) for s, v in avg + cur]
    legend_box = _legend(
        draw, font, plot_box, bool(cur), bool(avg), bool(ends), bool(points),
        avoid=layout.checkpoint_label_boxes, points=drawn,
    )  # fmt: skip
    return Picture(image=image, layout=dataclasses.replace(layout, legend_box=legend_box))


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _legend_corner(
    plot: Box, size: tuple[int, int], top: int, avoid: Sequence[Box], points: Sequence[Point]
) -> Box:
    """Top-right, else the first other corner that covers no box in ``avoid`` (then fewest
    ``points``); top-right when every corner covers one."""
    w, h = size
    left, right, bottom = plot[0] + _PAD, plot[2] - _PAD, plot[3] - _PAD
    corners: list[Box] = [
        (right - w, top, right, top + h),
        (left, top, left + w, top + h),
        (right - w, bottom - h, right, bottom),
        (left, bottom - h, left + w, bottom),
    ]

    def cost(box: Box) -> tuple[int, int]:
        hidden = sum(_overlaps(box, other) for other in avoid)
        inside = sum(box[0] <= x < box[2] and box[1] <= y < box[3] for x, y in points)
        return hidden, inside

    clear = [box for box in corners if cost(box)[0] == 0]
    if not clear:
        return corners[0]
    if cost(clear[0])[1] == 0:
        return clear[0]
    return min(clear, key=lambda box: cost(box)[1])


def _dot(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], r: int, fill: tuple[int, int, int]
) -> None:
    x, y = xy
    draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)


def _value_at(series: Sequence[tuple[int, float]], step: int) -> float | None:
    """The value at ``step``, or at the nearest earlier step (the loss when it was saved)."""
    best: float | None = None
    for s, v in series:
        if s <= step:
            best = v
        else:
            break
    if best is None and series:
        best = series[0][1]
    return best


def _legend(
    draw: ImageDraw.ImageDraw,
    font: Font,
    plot: Box,
    has_current: bool,
    has_average: bool,
    has_epochs: bool,
    has_checkpoints: bool,
    *,
    avoid: Sequence[Box] = (),
    points: Sequence[Point] = (),
) -> Box | None:
    entries: list[tuple[str, tuple[int, int, int], str]] = []
    if has_current:
        entries.append(("current loss", _CURRENT, "line"))
    if has_average:
        entries.append(("average loss", _AVERAGE, "line"))
    if has_epochs:
        entries.append(("epoch end", _EPOCH, "dash"))
    if has_checkpoints:
        entries.append(("checkpoint", _CHECKPOINT, "diamond"))
    if not entries:
        return None
    lh = _line_h(font)
    w = 28 + max(_text_w(draw, e[0], font) for e in entries) + 2 * _PAD
    h = lh * len(entries) + _PAD
    box = _legend_corner(plot, (w, h), plot[1] + _PAD + lh, avoid, points)
    x0, y0, x1, _ = box
    draw.rectangle((x0, y0, x1 - 1, y0 + h - 1), fill=_BG, outline=_GRID)
    for i, (label, color, kind) in enumerate(entries):
        y = y0 + _PAD // 2 + i * lh + lh // 2
        if kind == "diamond":
            cx = x0 + _PAD + 9
            draw.polygon([(cx, y - 5), (cx + 5, y), (cx, y + 5), (cx - 5, y)], fill=color)
        elif kind == "dash":
            draw.line((x0 + _PAD, y, x0 + _PAD + 6, y), fill=color, width=2)
            draw.line((x0 + _PAD + 12, y, x0 + _PAD + 18, y), fill=color, width=2)
        else:
            draw.line((x0 + _PAD, y, x0 + _PAD + 18, y), fill=color, width=2)
        draw.text((x0 + _PAD + 24, y - lh // 2), label, font=font, fill=_INK)
    return box
