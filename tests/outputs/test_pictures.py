"""The contact sheet and the loss curve: size, layout geometry, labels drawn, one cell per
(prompt, epoch), on the real e_prodigy samples and loss."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from kohya_orchestrator.outputs.collect import run_outputs
from kohya_orchestrator.ui.pictures import (
    CurveLayout,
    SheetLayout,
    draw_contact_sheet,
    draw_loss_curve,
)

WHITE = (255, 255, 255)


def _crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    return image.crop(box)


def _has_ink(image: Image.Image, box: tuple[int, int, int, int]) -> bool:
    """True when the region is not one flat colour (something was drawn there)."""
    ((lo, hi),) = ImageStat.Stat(_crop(image, box).convert("L")).extrema
    return bool(hi - lo > 60)


def _same(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None


class TestContactSheetOfARun:
    def test_geometry_labels_and_cells(self, prodigy_run: Path) -> None:
        picture = run_outputs(prodigy_run, use_tensorboard=False).contact_sheet(cell_size=128)
        layout = picture.layout
        assert isinstance(layout, SheetLayout)
        assert picture.image.size == (layout.width, layout.height)
        assert layout.cell_size == (128, 128)
        # one row (one prompt) x two columns (epochs 1 and 2): exactly one cell each
        assert sorted(layout.cell_boxes) == [(0, 0), (0, 1)]
        assert len(layout.column_label_boxes) == 2 and len(layout.row_label_boxes) == 1
        assert layout.missing == []
        # the width is the row-label column + the cells; the height the title + labels + cells
        x0, y0, x1, y1 = layout.cell_boxes[(0, 1)]
        assert (x1 - x0, y1 - y0) == (128, 128)
        assert x1 + 8 == layout.width and y1 + 8 == layout.height
        # cells lie under their column label and beside their row label
        for (r, c), (cx0, cy0, cx1, cy1) in layout.cell_boxes.items():
            lx0, _, lx1, ly1 = layout.column_label_boxes[c]
            assert (cx0, cx1) == (lx0, lx1) and cy0 >= ly1
            _, ry0, rx1, ry1 = layout.row_label_boxes[r]
            assert (cy0, cy1) == (ry0, ry1) and cx0 > rx1
        # labels are drawn
        assert layout.title_box is not None and _has_ink(picture.image, layout.title_box)
        for box in [*layout.column_label_boxes, *layout.row_label_boxes]:
            assert _has_ink(picture.image, box)

    def test_cells_hold_the_right_images(self, prodigy_run: Path) -> None:
        out = run_outputs(prodigy_run, use_tensorboard=False)
        picture = out.contact_sheet(cell_size=128)
        layout = picture.layout
        assert isinstance(layout, SheetLayout)
        for sample, col in zip(out.samples, (0, 1), strict=True):
            with Image.open(sample.path) as im:
                expected = im.convert("RGB").resize((128, 128), Image.Resampling.NEAREST)
            assert _same(picture.image.crop(layout.cell_boxes[(0, col)]), expected)
        # epoch 2's sample of the random model came out blank (all black)
        assert picture.image.crop(layout.cell_boxes[(0, 1)]).getextrema() == ((0, 0),) * 3

    def test_column_labels_name_epoch_and_checkpoint(self, prodigy_run: Path) -> None:
        # the labels themselves: rebuild the sheet from the same lines and compare pixels
        out = run_outputs(prodigy_run, use_tensorboard=False)
        picture = out.contact_sheet(cell_size=128)
        blank = draw_contact_sheet(
            ["#0: oilpaint style, a red circle"],
            [[""] * 4, [""] * 4],
            {},
            title=f"{out.job_name}: samples per epoch (rows: prompts)",
            cell_size=128,
        )
        # same title and rows, no column text: the column label boxes differ, nothing else above
        layout = picture.layout
        assert isinstance(layout, SheetLayout)
        for box in layout.column_label_boxes:
            assert not _same(picture.image.crop(box), blank.image.crop(box))
        row = layout.row_label_boxes[0]
        assert _same(picture.image.crop(row), blank.image.crop(row))


class TestContactSheet:
    def test_grid_of_prompts_by_epochs(self, tmp_path: Path) -> None:
        paths = {}
        for r in range(3):
            for c in range(4):
                p = tmp_path / f"{r}{c}.png"
                Image.new("RGB", (64, 96), (r * 80, c * 60, 200)).save(p)
                paths[(r, c)] = p
        del paths[(2, 3)]  # one prompt not drawn at the last epoch
        (tmp_path / "bad.png").write_bytes(b"not an image")
        paths[(1, 3)] = tmp_path / "bad.png"
        rows = ["a cat", "a dog " * 40, "a house"]
        cols = [[f"epoch {c + 1}", f"step {4 * (c + 1)}"] for c in range(4)]
        picture = draw_contact_sheet(rows, cols, paths, title=None, cell_size=100)
        layout = picture.layout
        assert isinstance(layout, SheetLayout)
        assert len(layout.cell_boxes) == 12 and layout.title_box is None
        assert sorted(layout.missing) == [(1, 3), (2, 3)]
        assert picture.image.size == (8 + 240 + 4 * 108, layout.height)
        # portrait images are fitted (100 high, centred) on the cell background
        x0, y0, _, _ = layout.cell_boxes[(0, 0)]
        assert picture.image.getpixel((x0 + 50, y0 + 50)) == (0, 0, 200)
        assert picture.image.getpixel((x0 + 2, y0 + 50)) != (0, 0, 200)
        # a long prompt is wrapped inside its label box, not drawn over the cells
        _, ry0, rx1, ry1 = layout.row_label_boxes[1]
        assert _has_ink(picture.image, layout.row_label_boxes[1])
        gap = picture.image.crop((rx1, ry0, layout.cell_boxes[(1, 0)][0], ry1))
        assert gap.getextrema() == ((255, 255),) * 3

    def test_png_repr_and_save(self, tmp_path: Path) -> None:
        picture = draw_contact_sheet(["p"], [["epoch 1"]], {}, cell_size=64)
        png = picture._repr_png_()
        assert png.startswith(b"\x89PNG")
        with Image.open(io.BytesIO(png)) as im:
            assert im.size == picture.image.size
        saved = picture.save(tmp_path / "sub" / "sheet.png")
        assert saved.read_bytes() == png
        assert [p.name for p in saved.parent.iterdir()] == ["sheet.png"]


class TestLossCurve:
    def test_geometry_of_a_run(self, prodigy_run: Path) -> None:
        pytest.importorskip("tensorboard")
        out = run_outputs(prodigy_run)
        picture = out.loss_curve(size=(800, 400))
        layout = picture.layout
        assert isinstance(layout, CurveLayout)
        assert picture.image.size == (800, 400) == (layout.width, layout.height)
        x0, y0, x1, y1 = layout.plot_box
        assert 0 < x0 < x1 <= 800 and 0 < y0 < y1 <= 400
        assert layout.x_range == (0.0, 8.0)
        lo, hi = layout.y_range
        values = [v for p in out.loss for v in (p.current, p.average) if v is not None]
        assert lo < min(values) and hi > max(values)
        # epoch boundaries at steps 4 and 8, drawn dashed in grey
        assert layout.epoch_lines == {1: layout.to_px(4, lo)[0], 2: layout.to_px(8, lo)[0]}
        x = layout.epoch_lines[1]
        column = [picture.image.getpixel((x, y)) for y in range(y0 + 20, y1 - 20)]
        assert (160, 160, 160) in column and WHITE in column  # dashes and gaps
        # one marker per checkpoint on the average curve, in the marker colour
        assert layout.checkpoint_points == [
            layout.to_px(4, out.loss[3].average),  # type: ignore[arg-type]
            layout.to_px(8, out.loss[7].average),  # type: ignore[arg-type]
        ]
        for px in layout.checkpoint_points:
            assert picture.image.getpixel(px) == (225, 110, 0)
        # title, legend and axes are drawn
        assert _has_ink(picture.image, layout.title_box)
        assert layout.legend_box is not None and _has_ink(picture.image, layout.legend_box)
        assert _has_ink(picture.image, (0, y0, x0, y1))  # y tick labels
        assert _has_ink(picture.image, (x0, y1, x1, 400))  # x tick labels

    def test_both_curves_are_drawn(self) -> None:
        avg = [(s, 1.0 - s / 20) for s in range(1, 11)]
        cur = [(s, 1.0 - s / 20 + (0.1 if s % 2 else -0.1)) for s in range(1, 11)]
        picture = draw_loss_curve(avg, cur, size=(600, 300))
        layout = picture.layout
        assert isinstance(layout, CurveLayout)
        colors = {c for _, c in picture.image.getcolors(600 * 300) or []}
        assert (25, 70, 170) in colors and (150, 185, 235) in colors
        assert picture.image.getpixel(layout.to_px(5, 0.75)) == (25, 70, 170)

    def test_nan_and_empty(self) -> None:
        picture = draw_loss_curve([(1, math.nan), (2, math.inf)], checkpoints=[(2, "final")])
        layout = picture.layout
        assert isinstance(layout, CurveLayout)
        assert layout.checkpoint_points == [] and layout.legend_box is None
        stat = ImageStat.Stat(picture.image.crop(layout.plot_box).convert("L"))
        assert stat.extrema[0][0] < 128  # "no loss recorded" is written in the plot

    def test_single_point(self) -> None:
        picture = draw_loss_curve([(3, 0.5)], [(3, 0.4)], epoch_ends={1: 3}, checkpoints=[(3, "")])
        layout = picture.layout
        assert isinstance(layout, CurveLayout)
        assert layout.epoch_lines and len(layout.checkpoint_points) == 1
