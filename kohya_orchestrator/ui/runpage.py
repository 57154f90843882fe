"""The run page: one static ``index.html`` per run directory, built from the run's summary (pure).

:func:`render_run_page` turns a :class:`~kohya_orchestrator.events.RunSummary` (the one fold of a
run's events) and the few facts only the disk knows (where each sample image is, relative to the
page, and each checkpoint's size) into a self-contained HTML page: status and progress, the
predicted plan against sd-scripts' banner, warnings, the loss curve (inline SVG), one table row per
epoch (step, loss, checkpoint, size, warnings, the ``runs pick`` command) and the samples as a
prompts x epochs grid (click a sample to enlarge it). No script, no network: every link is relative,
so the page works from a ``file://`` URL and after the run folder is copied elsewhere. Every text
taken from the run (prompts, paths, messages) is escaped. While the run is live the page reloads
itself (``<meta http-equiv="refresh">``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import PurePath
from urllib.parse import quote

from ..events import RunSummary, SampleImageSaved, plan_line

__all__ = ["MAX_LOSS_POINTS", "REFRESH_S", "PageFiles", "pick_command", "render_run_page"]

REFRESH_S = 5
"""How often a live page reloads itself, in seconds."""

MAX_LOSS_POINTS = 500
"""The loss curve draws at most about this many points (evenly spaced steps)."""


@dataclass(frozen=True)
class PageFiles:
    """What the page needs from the disk (the caller looks; the builder never does)."""

    sample_hrefs: Mapping[str, str] = field(default_factory=dict)
    """Sample event path -> URL of the image relative to the page (already URL-quoted)."""
    checkpoint_sizes: Mapping[str, int | None] = field(default_factory=dict)
    """Checkpoint event path -> size in bytes (None: the file is gone)."""


def pick_command(run_id: str, epoch: int) -> str:
    """The command that keeps one epoch's checkpoint (``runs pick``)."""
    return f"python -m kohya_orchestrator runs pick {run_id} --epoch {epoch}"


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#1a1a1a;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.6em 0 .5em}
.status{display:inline-block;padding:.1em .6em;border-radius:.8em;font-weight:600;background:#ddd}
.status.succeeded{background:#cdeccd}.status.failed{background:#f6caca}
.status.running{background:#d6e4fb}.status.canceled{background:#f3e3b5}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}code{font-size:.92em;background:#f4f4f4;padding:0 .2em}
.warn{color:#8a4b00}.err{color:#a40000}.dim{color:#666}
#epochs code,#epochs td:nth-child(5){white-space:nowrap}.grid td{text-align:center}.grid img{max-width:512px;image-rendering:pixelated;min-width:128px}
.grid .prompt{text-align:left;max-width:18em}
.lightbox{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);z-index:9}
.lightbox:target{display:flex;align-items:center;justify-content:center}
.lightbox img{max-width:95vw;max-height:95vh;min-width:50vmin;image-rendering:pixelated}
svg text{font:11px system-ui,sans-serif;fill:#444}
"""


def render_run_page(
    summary: RunSummary,
    *,
    run_id: str,
    files: PageFiles | None = None,
    live: bool | None = None,
) -> str:
    """The run page's HTML.

    Args:
        summary: The run's events, folded.
        run_id: The run's name (its folder), used in the title and the ``runs pick`` commands.
        files: Sample URLs and checkpoint sizes (default: samples linked by file name under
            ``samples/``, sizes unknown).
        live: Whether the page reloads itself; default: while no ``run_finished`` was folded.

    Returns:
        The whole document.
    """
    files = files or PageFiles()
    if live is None:
        live = summary.finished is None
    status = summary.status.value if summary.status is not None else "running"
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        + (f'<meta http-equiv="refresh" content="{REFRESH_S}">\n' if live else "")
        + f"<title>{escape(run_id)}: {escape(status)}</title>\n<style>{_CSS}</style>\n</head>\n"
    )
    body = [
        f'<h1>{escape(run_id)} <span class="status {escape(status)}" id="status">'
        f"{escape(status)}</span></h1>",
        _progress(summary, live),
        _plan(summary),
        _warnings(summary),
        _loss_svg(summary),
        _epoch_table(summary, run_id, files),
        _samples(summary, files),
    ]
    return head + "<body>\n" + "\n".join(b for b in body if b) + "\n</body>\n</html>\n"


def _progress(s: RunSummary, live: bool) -> str:
    parts: list[str] = []
    step = s.last_step
    if step is not None:
        parts.append(f"step {step.step}/{step.total_steps}")
        if step.epoch is not None and s.epoch_started is not None:
            parts.append(f"epoch {step.epoch}/{s.epoch_started.total_epochs}")
        if step.avr_loss is not None:
            parts.append(f"loss {_fmt_loss(step.avr_loss)}")
        if live and step.eta_s is not None:
            parts.append(f"about {_fmt_time(step.eta_s)} left")
    if s.phase is not None and live:
        parts.append(s.phase.value.replace("_", " "))
    if s.duration_s is not None:
        parts.append(f"took {_fmt_time(s.duration_s)}")
    if s.reason:
        parts.append(s.reason)
    line = " · ".join(escape(p) for p in parts) or "starting"
    note = '<p class="dim">This page reloads itself while the run goes on.</p>' if live else ""
    return f'<p id="progress">{line}</p>{note}'


def _plan(s: RunSummary) -> str:
    rows: list[str] = []
    if s.predicted_plan is not None:
        p = s.predicted_plan
        text = (
            f"{p.train_images_with_repeats} images x repeats, {p.batches_per_epoch} "
            f"batches/epoch, {p.epochs} epochs, {p.total_steps} steps"
        )
        if not p.exact:
            text += " (not exact: " + ("; ".join(p.notes) or "see `plan JOB`") + ")"
        rows.append(f"<tr><th>predicted</th><td>{escape(text)}</td></tr>")
    if s.plan is not None:
        rows.append(f"<tr><th>sd-scripts</th><td>{escape(plan_line(s.plan))}</td></tr>")
    if not rows:
        return ""
    if s.plan_mismatch is not None:
        verdict = f'<span class="warn">{escape(s.plan_mismatch.message)}</span>'
    elif s.predicted_plan is not None and s.plan is not None:
        verdict = "sd-scripts runs the predicted plan"
    elif s.plan is None:
        verdict = '<span class="dim">waiting for sd-scripts\' banner</span>'
    else:
        verdict = '<span class="dim">no prediction was recorded for this run</span>'
    rows.append(f'<tr><th>check</th><td id="plan-check">{verdict}</td></tr>')
    return '<h2>Plan</h2>\n<table id="plan">' + "".join(rows) + "</table>"


def _warnings(s: RunSummary) -> str:
    items: list[str] = []
    failure = s.failure
    if failure is not None:
        text = f"{failure.category}: {failure.message}"
        if failure.remedy:
            text += f" (hint: {failure.remedy})"
        items.append(f'<li class="err">{escape(text)}</li>')
    if s.plan_mismatch is not None:
        items.append(f'<li class="warn">{escape(s.plan_mismatch.message)}</li>')
    items += [f'<li class="warn">{escape(x.message)}</li>' for x in s.suspect_samples]
    if s.warnings:
        items.append(
            f'<li class="dim">{s.warnings} warning(s) from the trainer (in events.jsonl)</li>'
        )
    if not items:
        return ""
    return '<h2>Warnings</h2>\n<ul id="warnings">' + "".join(items) + "</ul>"


def _loss_svg(s: RunSummary) -> str:
    points = [(st, v) for st, v in sorted(s.losses.items()) if math.isfinite(v)]
    if not points:
        return ""
    if len(points) > MAX_LOSS_POINTS:  # a long run: every k-th step, and the last one
        stride = -(-len(points) // MAX_LOSS_POINTS)
        points = [*points[:-1:stride], points[-1]]
    w, h, left, right, top, bottom = 640, 240, 50, 15, 12, 28
    x0, x1 = points[0][0], points[-1][0]
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    def sx(step: float) -> float:
        return left + (step - x0) / (x1 - x0) * (w - left - right)

    def sy(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (h - top - bottom)

    parts = [
        f'<svg id="loss-curve" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="average loss by step">',
        f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" '
        'fill="#fafafa" stroke="#ccc"/>',
    ]
    for epoch, end in sorted(s.epoch_end_steps.items()):
        if x0 <= end <= x1:
            x = sx(end)
            parts.append(
                f'<line class="epoch-end" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
                f'y2="{h - bottom}" stroke="#bbb" stroke-dasharray="3,3"/>'
                f'<text x="{x:.1f}" y="{h - bottom + 12}" text-anchor="middle">e{epoch}</text>'
            )
    path = " ".join(f"{sx(st):.1f},{sy(v):.1f}" for st, v in points)
    parts.append(f'<polyline fill="none" stroke="#1f5fbf" stroke-width="1.5" points="{path}"/>')
    for st, v in points:
        parts.append(
            f'<circle class="loss-point" cx="{sx(st):.1f}" cy="{sy(v):.1f}" r="2.2" '
            f'fill="#1f5fbf"><title>step {st}: {_fmt_loss(v)}</title></circle>'
        )
    parts.append(
        f'<text x="{left - 4}" y="{top + 9}" text-anchor="end">{_fmt_loss(hi)}</text>'
        f'<text x="{left - 4}" y="{h - bottom}" text-anchor="end">{_fmt_loss(lo)}</text>'
        f'<text x="{left}" y="{h - 4}">step {x0}</text>'
        f'<text x="{w - right}" y="{h - 4}" text-anchor="end">step {x1}</text></svg>'
    )
    return "<h2>Loss (average)</h2>\n" + "".join(parts)


def _epochs(s: RunSummary) -> list[int]:
    seen: set[int] = set(s.epoch_end_steps)
    seen.update(c.event.epoch or c.epoch or 0 for c in s.checkpoints)
    seen.update(x.epoch for x in s.samples if x.epoch is not None)
    seen.discard(0)
    return sorted(seen)


def _epoch_table(s: RunSummary, run_id: str, files: PageFiles) -> str:
    epochs = _epochs(s)
    if not epochs:
        return ""
    checkpoints = {}
    for c in s.checkpoints:
        epoch = c.event.epoch if c.event.epoch is not None else c.epoch
        if epoch is not None:
            checkpoints[epoch] = c.event  # the final file wins over none; later saves win
    rows = [
        '<h2>Epochs</h2>\n<table id="epochs"><thead><tr><th>epoch</th><th>step</th><th>loss</th>'
        "<th>checkpoint</th><th>size</th><th>warnings</th><th>keep it</th></tr></thead><tbody>"
    ]
    for epoch in epochs:
        step = s.epoch_end_steps.get(epoch)
        loss = s.losses.get(step) if step is not None else None
        ckpt = checkpoints.get(epoch)
        name = size = pick = ""
        if ckpt is not None:
            name = f'<span title="{escape(ckpt.path)}">{escape(PurePath(ckpt.path).name)}</span>'
            nbytes = files.checkpoint_sizes.get(ckpt.path)
            size = _fmt_size(nbytes) if nbytes is not None else ""
            if ckpt.path in files.checkpoint_sizes and nbytes is None:
                size = '<span class="dim">gone</span>'
            pick = f"<code>{escape(pick_command(run_id, epoch))}</code>"
        warns = "<br>".join(
            f'<span class="warn">{escape(x.problem.replace("_", " "))} sample'
            + (f" (prompt {x.prompt_index})" if x.prompt_index is not None else "")
            + "</span>"
            for x in s.suspect_samples
            if x.epoch == epoch
        )
        rows.append(
            f'<tr class="epoch-row" data-epoch="{epoch}"><td>{epoch}</td>'
            f"<td>{'' if step is None else step}</td>"
            f"<td>{'' if loss is None else escape(_fmt_loss(loss))}</td>"
            f"<td>{name}</td><td>{size}</td><td>{warns}</td><td>{pick}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _samples(s: RunSummary, files: PageFiles) -> str:
    if not s.samples:
        return ""
    by_epoch = any(x.epoch is not None for x in s.samples)
    columns: list[int] = sorted(
        {c for x in s.samples if (c := (x.epoch if by_epoch else x.step)) is not None}
    )
    prompts = sorted(
        {x.prompt_index for x in s.samples if x.prompt_index is not None} | set(s.prompts)
    )
    cells: dict[tuple[int, int], SampleImageSaved] = {}
    for x in s.samples:
        col = x.epoch if by_epoch else x.step
        if col is not None and x.prompt_index is not None:
            cells[(x.prompt_index, col)] = x  # a second image of the same cell: the last wins
    label = "epoch" if by_epoch else "step"
    out = [
        '<h2>Samples</h2>\n<p class="dim">Click a sample to enlarge it.</p>\n'
        '<table class="grid" id="samples"><thead><tr><th>prompt</th>'
        + "".join(f"<th>{label} {c}</th>" for c in columns)
        + "</tr></thead><tbody>"
    ]
    boxes: list[str] = []
    for p in prompts:
        text = s.prompts.get(p, f"prompt {p}")
        row = [f'<tr><td class="prompt">{escape(text)}</td>']
        for c in columns:
            cell = cells.get((p, c))
            if cell is None:
                row.append('<td class="dim">no image</td>')
                continue
            href = files.sample_hrefs.get(cell.path) or "samples/" + quote(PurePath(cell.path).name)
            box = f"sample-{p}-{c}"
            alt = escape(f"{label} {c}: {text}")
            row.append(
                f'<td><a href="#{box}"><img class="sample" src="{escape(href)}" alt="{alt}">'
                "</a></td>"
            )
            boxes.append(
                f'<div class="lightbox" id="{box}"><a href="#samples">'
                f'<img src="{escape(href)}" alt="{alt}"></a></div>'
            )
        out.append("".join(row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out) + "\n" + "\n".join(boxes)


def _fmt_loss(v: float) -> str:
    return "NaN" if math.isnan(v) else f"{v:.4g}"


def _fmt_time(seconds: float) -> str:
    total = max(0, round(seconds))
    h, rest = divmod(total, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _fmt_size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{nbytes} B"
