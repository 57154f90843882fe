"""LyCORIS preset names (issue 17, item 5): a misspelt built-in is refused before training.

LyCORIS reads any preset that is not one of its built-in names as a file path, and a name such
as ``attn_mlp`` then stops training with a bare ``AssertionError``. The built-in names are those
of lycoris-lora 4.1.3's ``lycoris.config.PRESET`` (the lab's install lists the same eight).
"""

from __future__ import annotations

import pytest

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models.network import LYCORIS_BUILTIN_PRESETS


def _job(preset: str, algo: str = "loha") -> dict[str, object]:
    return {
        "model": {"pretrained_model_name_or_path": "/m.safetensors"},
        "network": {"algo": algo, "preset": preset},
        "dataset": {"subsets": [{"image_dir": "/d/10_a"}]},
        "training": {"max_train_epochs": 1},
    }


@pytest.mark.parametrize(
    ("preset", "suggestion"),
    [("attn_mlp", "attn-mlp"), ("Full", "full"), ("unet_only", "unet-only"), ("xyz", None)],
)
def test_a_name_that_is_no_builtin_and_no_file_is_refused(
    preset: str, suggestion: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_job(_job(preset))
    [problem] = info.value.problems
    assert problem.path == "network.preset"
    assert f"no built-in preset '{preset}'" in problem.message
    assert ".toml" in problem.message
    if suggestion:
        assert f"did you mean '{suggestion}'?" in problem.message
    else:
        assert "did you mean" not in problem.message


@pytest.mark.parametrize(
    "preset",
    [*LYCORIS_BUILTIN_PRESETS, "my preset.toml", "presets/mine", r"C:\presets\mine", "X.TOML"],
)
def test_builtins_and_file_paths_are_taken(preset: str) -> None:
    job = validate_job(_job(preset, algo="lokr"))
    assert job.network.preset == preset  # type: ignore[union-attr]


def test_the_shipped_presets_keep_their_own_check() -> None:
    assert validate_job(_job("kohya_orchestrator:ia3-sd15", algo="ia3"))
    with pytest.raises(ConfigError, match="ships no LyCORIS preset 'ia3-sdxl'"):
        validate_job(_job("kohya_orchestrator:ia3-sdxl", algo="ia3"))
