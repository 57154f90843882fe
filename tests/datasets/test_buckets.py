"""Bucket set and bucket choice, against values printed by sd-scripts itself.

Expected values were printed by sd-scripts' own model_util.make_bucket_resolutions and
BucketManager.select_bucket (commit 48d368f).
"""

from __future__ import annotations

import pytest

from kohya_orchestrator.datasets.buckets import BucketError, BucketSelector, make_bucket_resolutions

SD_BUCKETS_512 = [
    (256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640),
    (448, 576), (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256),
    (896, 256), (960, 256), (1024, 256),
]  # fmt: skip
SIZES = [
    (1000, 250), (250, 1000), (600, 800), (800, 600), (512, 512), (640, 384), (333, 777),
    (1920, 1080), (100, 100), (576, 448),
]  # fmt: skip


class TestBuckets:
    def test_bucket_set_equals_sd_scripts(self) -> None:
        assert make_bucket_resolutions((512, 512)) == SD_BUCKETS_512
        xl = make_bucket_resolutions((1024, 1024), 256, 2048, 32)
        assert len(xl) == 81
        assert xl[:3] == [(256, 2048), (288, 2048), (320, 2048)]

    def test_choice_equals_sd_scripts(self) -> None:
        sel = BucketSelector((512, 512))
        assert [sel.select(*s) for s in SIZES] == [
            (1024, 256), (256, 1024), (448, 576), (576, 448), (512, 512), (640, 384),
            (320, 768), (640, 384), (512, 512), (576, 448),
        ]  # fmt: skip

    def test_no_upscale_choice_equals_sd_scripts(self) -> None:
        sel = BucketSelector((512, 512), no_upscale=True)
        assert [sel.select(*s) for s in [*SIZES, (70, 2000)]] == [
            (960, 192), (192, 960), (384, 512), (512, 384), (512, 512), (640, 384), (320, 768),
            (640, 384), (64, 64), (576, 448), (64, 1984),
        ]  # fmt: skip

    def test_no_bucketing_is_one_bucket(self) -> None:
        sel = BucketSelector((256, 320), enable_bucket=False)
        assert {sel.select(*s) for s in SIZES} == {(256, 320)}

    @pytest.mark.parametrize("size", [(50, 50), (2000, 10), (0, 10)])
    def test_zero_sized_bucket_is_an_error(self, size: tuple[int, int]) -> None:
        with pytest.raises(BucketError):
            BucketSelector((512, 512), no_upscale=True).select(*size)
