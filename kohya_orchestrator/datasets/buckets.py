"""Aspect-ratio buckets: the bucket set and each image's bucket, chosen as sd-scripts chooses them.

Re-derived from reading sd-scripts (``model_util.make_bucket_resolutions`` and
``train_util.BucketManager``), not imported from it; tests/datasets/test_buckets.py holds values
printed by sd-scripts itself.
"""

from __future__ import annotations

import bisect
import math

from pydantic import BaseModel, ConfigDict

__all__ = ["BucketCount", "BucketError", "BucketSelector", "make_bucket_resolutions"]


class BucketCount(BaseModel):
    """One aspect-ratio bucket: its resolution and how many images x repeats it holds."""

    model_config = ConfigDict(frozen=True)

    resolution: tuple[int, int]
    count: int
    batches: int = 0


def make_bucket_resolutions(
    max_reso: tuple[int, int], min_size: int = 256, max_size: int = 1024, divisible: int = 64
) -> list[tuple[int, int]]:
    """The predefined bucket resolutions for a training resolution (sd-scripts' set, sorted).

    One square bucket of the resolution's area, then for each width from ``min_size`` to
    ``max_size`` in steps of ``divisible`` the tallest height (a multiple of ``divisible``, at
    most ``max_size``) whose area fits, plus its transpose.
    """
    width, height = max_reso
    area = width * height
    resos = {(int(math.sqrt(area) // divisible) * divisible,) * 2}
    side = min_size
    while side <= max_size:
        other = min(max_size, int((area // side) // divisible) * divisible)
        if other >= min_size:
            resos.add((side, other))
            resos.add((other, side))
        side += divisible
    return sorted(resos)


class BucketError(ValueError):
    """The image cannot be put in a bucket (sd-scripts would fail on it)."""


class BucketSelector:
    """Chooses an image's bucket the way sd-scripts' BucketManager does.

    Without ``no_upscale`` the image goes to the predefined bucket with the nearest aspect ratio
    (the first one on ties; an exact resolution match wins). With ``no_upscale`` an image larger
    than the resolution's area is scaled down to that area, and the bucket is the (scaled) size
    rounded down to multiples of ``steps``. Without bucketing there is one bucket.
    """

    def __init__(
        self,
        resolution: tuple[int, int],
        *,
        enable_bucket: bool = True,
        no_upscale: bool = False,
        min_size: int = 256,
        max_size: int = 1024,
        steps: int = 64,
    ) -> None:
        """Prepare the bucket set.

        Args:
            resolution: ``(width, height)`` of training.
            enable_bucket: Aspect-ratio bucketing on; off means one bucket of ``resolution``.
            no_upscale: sd-scripts' bucket_no_upscale.
            min_size: min_bucket_reso (already rounded to ``steps``).
            max_size: max_bucket_reso (already rounded to ``steps``).
            steps: bucket_reso_steps.
        """
        self.no_upscale = enable_bucket and no_upscale
        self.max_area = resolution[0] * resolution[1]
        self.steps = steps
        if not enable_bucket:
            predefined = [resolution]
        elif not self.no_upscale:
            predefined = make_bucket_resolutions(resolution, min_size, max_size, steps)
        else:
            predefined = []
        self.predefined = predefined
        self._predefined_set = set(predefined)
        ratios = [w / h for w, h in predefined]
        # nearest ratio by bisection; each distinct ratio keeps its first index (argmin's pick)
        self._first: dict[float, int] = {}
        for i, r in enumerate(ratios):
            self._first.setdefault(r, i)
        self._sorted = sorted(self._first)
        self._cache: dict[tuple[int, int], tuple[int, int]] = {}

    def select(self, width: int, height: int) -> tuple[int, int]:
        """The bucket ``(width, height)`` for an image of this size.

        Raises:
            BucketError: sd-scripts would divide by zero (a zero side, or a bucket side rounded
                down to 0 with no_upscale).
        """
        key = (width, height)
        hit = self._cache.get(key)
        if hit is None:
            try:
                hit = self._select(width, height)
            except ZeroDivisionError:
                raise BucketError(f"{width}x{height}") from None
            if hit[0] <= 0 or hit[1] <= 0:
                raise BucketError(f"{width}x{height} -> {hit[0]}x{hit[1]}")
            self._cache[key] = hit
        return hit

    def _round(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.steps

    def _select(self, width: int, height: int) -> tuple[int, int]:
        aspect = width / height
        if not self.no_upscale:
            if (width, height) in self._predefined_set:
                return width, height
            # sd-scripts: np.abs(ratios - aspect).argmin(), i.e. the smallest error, and on a tie
            # the first bucket. The smallest error is at one of the two neighbours of aspect.
            ratios, first = self._sorted, self._first
            k = bisect.bisect_left(ratios, aspect)
            if k == 0:
                best = ratios[0]
            elif k == len(ratios):
                best = ratios[-1]
            else:
                lo, hi = ratios[k - 1], ratios[k]
                err_lo, err_hi = abs(lo - aspect), abs(hi - aspect)
                tie = err_lo == err_hi and first[lo] < first[hi]
                best = lo if err_lo < err_hi or tie else hi
            return self.predefined[first[best]]
        if width * height > self.max_area:
            # scale down to the area, then round the side whose rounding keeps the ratio best
            scaled_w = math.sqrt(self.max_area * aspect)
            scaled_h = self.max_area / scaled_w
            w_rounded = self._round(scaled_w)
            h_in_wr = self._round(w_rounded / aspect)
            ar_w = w_rounded / h_in_wr
            h_rounded = self._round(scaled_h)
            w_in_hr = self._round(h_rounded * aspect)
            ar_h = w_in_hr / h_rounded
            if abs(ar_w - aspect) < abs(ar_h - aspect):
                resized = (w_rounded, int(w_rounded / aspect + 0.5))
            else:
                resized = (int(h_rounded * aspect + 0.5), h_rounded)
        else:
            resized = (width, height)
        bucket = (resized[0] - resized[0] % self.steps, resized[1] - resized[1] % self.steps)
        _ = bucket[0] / bucket[1]  # sd-scripts computes the ratio error here (and may divide by 0)
        return bucket
