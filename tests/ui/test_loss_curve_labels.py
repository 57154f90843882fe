"""The loss curve's checkpoint labels stay visible (issue 18 item 8: "final" was clipped): the
legend goes to a corner that covers no checkpoint marker or label."""

from __future__ import annotations

from kohya_orchestrator.ui.pictures import Box, Picture, draw_loss_curve


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _curve(losses: list[float]) -> Picture:
    average = list(enumerate(losses, start=1))
    return draw_loss_curve(
        average, epoch_ends={1: 4, 2: 8}, checkpoints=[(4, "e1"), (8, "final")], title="t"
    )


def _orange(pixel: tuple[int, int, int]) -> bool:
    r, _, b = pixel  # the checkpoint colour, antialiased against white
    return r > 150 and r - b > 80


def _label_pixels(picture: Picture, box: Box) -> int:
    image = picture.image.convert("RGB")
    return sum(
        _orange(image.getpixel((x, y)))  # type: ignore[arg-type]
        for x in range(box[0], box[2])
        for y in range(box[1], box[3])
    )


def test_a_rising_loss_keeps_its_final_label_clear_of_the_legend() -> None:
    picture = _curve([0.10, 0.11, 0.12, 0.13, 0.128, 0.131, 0.134, 0.138])
    layout = picture.layout
    assert layout.legend_box is not None
    final_label = layout.checkpoint_label_boxes[-1]
    assert final_label[0] > layout.plot_box[2] - 60  # at the right edge, near the top
    assert not any(_overlap(layout.legend_box, b) for b in layout.checkpoint_label_boxes)
    # "final" is drawn and not painted over: its first letters too (a top-right legend left
    # only "al" of it)
    left, top, right, bottom = final_label
    assert _label_pixels(picture, (left, top, (left + right) // 2, bottom)) > 10
    assert layout.legend_box[0] < layout.plot_box[0] + 20  # the legend moved to the left


def test_a_falling_loss_keeps_the_legend_top_right() -> None:
    picture = _curve([0.14, 0.13, 0.125, 0.12, 0.118, 0.11, 0.105, 0.10])
    layout = picture.layout
    assert layout.legend_box is not None
    assert layout.legend_box[2] > layout.plot_box[2] - 20 and layout.legend_box[1] < 120
    assert not any(_overlap(layout.legend_box, b) for b in layout.checkpoint_label_boxes)
