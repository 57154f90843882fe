"""Rendering paths the golden cases do not reach: the TOML writer's edge cases, optional config
sections, subset shapes, shipped LyCORIS presets, the launch command and writing to a folder.

Every rendered TOML is also read back with the old ``toml`` 0.10.2 (what sd-scripts reads with).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import toml

from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob
from kohya_orchestrator.render._writer import dumps, format_value
from kohya_orchestrator.render.command import (
    CONSOLE_COLUMNS,
    LaunchOptions,
    LaunchSpec,
    build_launch_spec,
)
from kohya_orchestrator.render.files import (
    CONFIG_NAME,
    DATASET_NAME,
    PROMPTS_NAME,
    render_into,
    write_atomic,
    write_rendered,
)
from kohya_orchestrator.render.lycoris_presets import shipped_preset_file
from kohya_orchestrator.render.toml import (
    RenderPaths,
    network_args,
    render_dataset_toml,
    render_job,
    training_config_dict,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BASE: dict[str, Any] = {
    "model": {"pretrained_model_name_or_path": "/m/sd15.safetensors"},
    "dataset": {"subsets": [{"image_dir": "/d/img/20_style"}]},
    "training": {"max_train_epochs": 2},
}
PATHS = RenderPaths("/run/dataset.toml", "/run/sample_prompts.txt")


def make_job(**sections: Any) -> TrainingJob:
    data = copy.deepcopy(BASE)
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(name), dict):
            data[name].update(values)
        else:
            data[name] = values
    return validate_job(data)


def read_back(text: str) -> dict[str, Any]:
    """What sd-scripts sees; tomllib must agree."""
    old = toml.loads(text)
    assert old == tomllib.loads(text)
    return old


# ----------------------------------------------------------------------------- the TOML writer


class TestWriter:
    def test_control_characters_are_unicode_escapes(self) -> None:
        text = "a\x01b\x7fc\td"
        assert format_value(text) == '"a\\u0001b\\u007fc\\td"'
        assert read_back(dumps({"s": text}))["s"] == text

    @pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
    def test_inf_and_nan_are_refused(self, value: float) -> None:
        with pytest.raises(ValueError, match="sd-scripts' TOML reader has no inf/nan"):
            format_value(value)

    @pytest.mark.parametrize(
        ("value", "text"),
        [(1.5e-10, "1.5e-10"), (1e16, "1.0e16"), (-2.5e300, "-2.5e300"), (1e-05, "1.0e-5")],
    )
    def test_exponent_floats(self, value: float, text: str) -> None:
        assert format_value(value) == text
        assert read_back(f"x = {text}\n")["x"] == value

    def test_mixed_type_array_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"mixed-type array \[1, 'a'\]: toml 0.10.2 rejects"):
            format_value([1, "a"])

    def test_bool_and_int_do_not_mix_either(self) -> None:
        with pytest.raises(ValueError, match="mixed-type array"):
            format_value((True, 1))

    def test_empty_and_homogeneous_arrays(self) -> None:
        assert format_value([]) == "[]"
        assert format_value((1.0, 2.5)) == "[1.0, 2.5]"

    def test_unsupported_type(self) -> None:
        with pytest.raises(TypeError, match="cannot write NoneType to TOML"):
            format_value(None)
        with pytest.raises(TypeError, match="cannot write set to TOML"):
            format_value({1, 2})

    def test_table_array_first_in_the_document(self) -> None:
        data = {"datasets": [{"a": 1, "subsets": [{"b": 2}, {"b": 3}]}]}
        text = dumps(data)
        assert text == (
            "[[datasets]]\na = 1\n\n[[datasets.subsets]]\n  b = 2\n\n[[datasets.subsets]]\n  b = 3\n"
        )
        assert read_back(text) == data

    def test_quoted_keys_and_header_only(self) -> None:
        assert dumps({"a.b": {"c d": 1}}) == '["a.b"]\n"c d" = 1\n'
        assert read_back(dumps({"a.b": {"c d": 1}})) == {"a.b": {"c d": 1}}
        assert dumps({}, header=["only a header  "]) == "# only a header\n"


# ----------------------------------------------------------------------------- training config


class TestTrainingConfig:
    def test_preset_is_named_in_both_headers(self) -> None:
        j = make_job(preset="oilpaint-sd15")
        files = render_job(j, PATHS)
        for text in (files.config_toml, files.dataset_toml):
            assert text.splitlines()[1] == "# Preset: oilpaint-sd15."

    def test_no_preset_no_preset_line(self) -> None:
        assert "# Preset:" not in render_job(make_job(), PATHS).config_toml

    def test_scheduler_args_are_python_literals(self) -> None:
        j = make_job(
            scheduler={
                "lr_scheduler": "piecewise_constant",
                "lr_scheduler_args": {"step_rules": "1:10,0.1", "last_epoch": -1, "verbose": True},
            }
        )
        section = read_back(render_job(j, PATHS).config_toml)["optimizer_arguments"]
        assert section["lr_scheduler"] == "piecewise_constant"
        assert section["lr_scheduler_args"] == [
            "step_rules='1:10,0.1'",
            "last_epoch=-1",
            "verbose=True",
        ]

    def test_attention_none_writes_no_kernel_flag(self) -> None:
        training = training_config_dict(make_job(training={"attention": "none"}), PATHS)[
            "training_arguments"
        ]
        assert not {"sdpa", "xformers", "mem_eff_attn", "none"} & set(training)
        xformers = training_config_dict(make_job(training={"attention": "xformers"}), PATHS)
        assert xformers["training_arguments"]["xformers"] is True
        assert "sdpa" not in xformers["training_arguments"]

    def test_logging_section(self) -> None:
        j = make_job(training={"log_with": "tensorboard", "logging_dir": "logs", "log_prefix": "o"})
        text = render_job(j, PATHS).config_toml
        assert (
            '[logging_arguments]\nlogging_dir = "logs"\nlog_with = "tensorboard"\n'
            'log_prefix = "o"\n' in text
        )
        assert read_back(text)["logging_arguments"] == {
            "logging_dir": "logs",
            "log_with": "tensorboard",
            "log_prefix": "o",
        }

    def test_no_logging_section_by_default(self) -> None:
        assert "logging_arguments" not in training_config_dict(make_job(), PATHS)

    def test_prompts_without_a_prompts_path_write_no_sample_section(self) -> None:
        j = make_job(sampling={"sample_every_n_epochs": 1, "prompts": [{"prompt": "a cat"}]})
        assert "sample_prompt_arguments" not in training_config_dict(j, RenderPaths("/r/d.toml"))
        section = training_config_dict(j, PATHS)["sample_prompt_arguments"]
        assert section == {
            "sample_prompts": "/run/sample_prompts.txt",
            "sample_every_n_epochs": 1,
            "sample_sampler": "euler_a",
        }


# ----------------------------------------------------------------------------- dataset config


class TestDatasetConfig:
    def test_subset_shapes(self) -> None:
        j = make_job(
            dataset={
                "num_repeats": 3,
                "subsets": [],
                "datasets": [
                    {
                        "subsets": [
                            {
                                "image_dir": "/d/paintings",
                                "class_tokens": "sks",
                                "cache_info": True,
                                "alpha_mask": False,
                            },
                            {"image_dir": "/d/7", "is_reg": True},
                        ]
                    },
                    {"subsets": [{"metadata_file": "/d/meta.json", "alpha_mask": True}]},
                ],
            }
        )
        text = render_dataset_toml(j)
        body = text.split("\n[general]\n", 1)[1]
        assert body == (
            "resolution = 512\nbatch_size = 1\nenable_bucket = true\nnum_repeats = 3\n"
            'caption_extension = ".txt"\n'
            "\n[[datasets]]\n"
            '\n[[datasets.subsets]]\n  image_dir = "/d/paintings"\n  class_tokens = "sks"\n'
            "  cache_info = true\n  alpha_mask = false\n"
            '\n[[datasets.subsets]]\n  image_dir = "/d/7"\n  num_repeats = 7\n  is_reg = true\n'
            "\n[[datasets]]\n"
            '\n[[datasets.subsets]]\n  metadata_file = "/d/meta.json"\n  alpha_mask = true\n'
        )
        datasets = read_back(text)["datasets"]
        # the folder without a repeat prefix takes [general] num_repeats in sd-scripts
        assert "num_repeats" not in datasets[0]["subsets"][0]
        # "7" alone gives 7 repeats and no class tokens
        assert "class_tokens" not in datasets[0]["subsets"][1]
        assert "image_dir" not in datasets[1]["subsets"][0]
        # the fine-tuning subset takes [general] num_repeats too (it was always rendered as 1)
        assert "num_repeats" not in datasets[1]["subsets"][0]


# ----------------------------------------------------------------------------- shipped presets


class TestShippedPreset:
    def test_preset_arg_without_paths_is_the_bare_file_name(self) -> None:
        j = make_job(network={"algo": "ia3"})
        assert network_args(j) == ["algo=ia3", "preset=lycoris-ia3-sd15.toml"]

    def test_preset_arg_beside_the_dataset_config(self) -> None:
        j = make_job(network={"algo": "ia3"})
        paths = RenderPaths("/run/x/dataset.toml")
        assert network_args(j, paths) == ["algo=ia3", "preset=/run/x/lycoris-ia3-sd15.toml"]

    def test_preset_arg_where_the_caller_put_it(self) -> None:
        j = make_job(network={"algo": "loha", "preset": "kohya_orchestrator:full-sd15"})
        paths = RenderPaths("/run/x/dataset.toml", lycoris_preset="/elsewhere/p.toml")
        assert "preset=/elsewhere/p.toml" in network_args(j, paths)

    def test_other_presets_are_written_as_given(self) -> None:
        j = make_job(network={"algo": "loha", "preset": "attn-mlp"})
        assert "preset=attn-mlp" in network_args(j, RenderPaths("/run/x/dataset.toml"))


# ----------------------------------------------------------------------------- launch command


class TestLaunchSpec:
    def _spec(self, options: LaunchOptions | None = None, **job: Any) -> LaunchSpec:
        return build_launch_spec(
            make_job(**job),
            python=Path("/venv/bin/python"),
            sd_scripts_dir=Path("/sd"),
            config_file=Path("/run/config.toml"),
            options=options,
        )

    def test_default_is_one_process_through_accelerate(self) -> None:
        spec = self._spec()
        assert spec.argv == (
            "/venv/bin/python",
            "-m",
            "accelerate.commands.launch",
            "--num_processes",
            "1",
            "--num_machines",
            "1",
            "--mixed_precision",
            "fp16",
            "--num_cpu_threads_per_process",
            "2",
            "--dynamo_backend",
            "no",
            "/sd/train_network.py",
            "--config_file",
            "/run/config.toml",
        )
        assert dict(spec.env) == {
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
            "COLUMNS": str(CONSOLE_COLUMNS),
            "NO_COLOR": "1",
        }
        assert spec.cwd == Path("/sd")

    def test_multi_gpu_port_and_gpu_ids(self) -> None:
        options = LaunchOptions(num_processes=2, gpu_ids=("0", "3"), main_process_port=29501)
        spec = self._spec(options, training={"mixed_precision": "bf16"})
        argv = list(spec.argv)
        assert argv[argv.index("--mixed_precision") + 1] == "bf16"
        assert argv[argv.index("--num_processes") + 1] == "2"
        tail = argv[argv.index("no") + 1 :]
        assert tail == [
            "--multi_gpu",
            "--main_process_port",
            "29501",
            "/sd/train_network.py",
            "--config_file",
            "/run/config.toml",
        ]
        assert spec.env["CUDA_VISIBLE_DEVICES"] == "0,3"

    def test_without_accelerate(self) -> None:
        spec = self._spec(LaunchOptions(use_accelerate=False), model={"family": "sdxl"})
        assert spec.argv == (
            "/venv/bin/python",
            "/sd/sdxl_train_network.py",
            "--config_file",
            "/run/config.toml",
        )
        assert "CUDA_VISIBLE_DEVICES" not in spec.env

    def test_spec_is_frozen(self) -> None:
        with pytest.raises(ValueError, match="greater than or equal to 1"):
            LaunchOptions(num_processes=0)
        spec = self._spec()
        with pytest.raises(ValueError, match="frozen"):
            spec.cwd = Path("/x")  # type: ignore[misc]


# ----------------------------------------------------------------------------- files on disk


class TestFiles:
    def test_write_atomic_replaces_and_leaves_no_temp_file(self, tmp_path: Path) -> None:
        target = tmp_path / "a.toml"
        target.write_text("old", encoding="utf-8")
        write_atomic(target, "new\nline\n")
        assert target.read_bytes() == b"new\nline\n"
        assert [p.name for p in tmp_path.iterdir()] == ["a.toml"]

    def test_write_atomic_failure_keeps_the_old_file(self, tmp_path: Path) -> None:
        target = tmp_path / "a.toml"
        target.write_text("old", encoding="utf-8")
        with pytest.raises(UnicodeEncodeError):
            write_atomic(target, "bad \ud800 surrogate")
        assert target.read_text(encoding="utf-8") == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["a.toml"]

    def test_write_rendered_with_prompts_and_a_shipped_preset(self, tmp_path: Path) -> None:
        j = make_job(
            network={"algo": "ia3"},
            sampling={"sample_every_n_epochs": 1, "prompts": [{"prompt": "a cat"}]},
        )
        folder = tmp_path / "out"
        written = write_rendered(j, folder)
        names = [p.name for p in written]
        assert names == [CONFIG_NAME, DATASET_NAME, PROMPTS_NAME, "lycoris-ia3-sd15.toml"]
        config = read_back((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        root = folder.resolve()
        assert config["dataset_arguments"]["dataset_config"] == str(root / DATASET_NAME)
        assert config["sample_prompt_arguments"]["sample_prompts"] == str(root / PROMPTS_NAME)
        assert (
            f"preset={root / 'lycoris-ia3-sd15.toml'}"
            in (config["network_arguments"]["network_args"])
        )
        preset = shipped_preset_file(j)
        assert preset is not None
        assert (folder / preset[0]).read_text(encoding="utf-8") == preset[1]
        assert (
            (folder / PROMPTS_NAME).read_text(encoding="utf-8").endswith("a cat --w 512 --h 512\n")
        )

    def test_write_rendered_without_prompts_or_preset(self, tmp_path: Path) -> None:
        written = write_rendered(make_job(), tmp_path)
        assert [p.name for p in written] == [CONFIG_NAME, DATASET_NAME]
        assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_NAME, DATASET_NAME]
        assert render_into(make_job(), tmp_path).sample_prompts is None

    def test_write_rendered_refuses_to_replace_unless_forced(self, tmp_path: Path) -> None:
        (tmp_path / CONFIG_NAME).write_text("mine", encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            write_rendered(make_job(), tmp_path)
        (problem,) = info.value.problems
        assert problem.path == str(tmp_path)
        assert problem.message == "already holds config.toml; nothing was written"
        assert info.value.source == "render"
        assert (tmp_path / CONFIG_NAME).read_text(encoding="utf-8") == "mine"
        assert not (tmp_path / DATASET_NAME).exists()
        write_rendered(make_job(), tmp_path, force=True)
        assert (tmp_path / CONFIG_NAME).read_text(encoding="utf-8").startswith("# sd-scripts")
