"""The LyCORIS compatibility table, its checks, the shipped preset files and their rendering."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import toml
from fake_runs import add_image

from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.environment.doctor import diagnose
from kohya_orchestrator.environment.lycoris import (
    check_before_launch,
    check_network_compat,
    describe_lycoris,
    network_guidance,
)
from kohya_orchestrator.environment.lycoris_table import (
    COMPAT_TABLE,
    LYCORIS_ALGOS,
    MEASURED_VERSIONS,
    V3,
    V4,
    VersionRange,
    lookup,
    parse_version,
)
from kohya_orchestrator.environment.probe import Environment
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models import TrainingJob
from kohya_orchestrator.models.family import FAMILIES
from kohya_orchestrator.models.network import (
    LYCORIS_BUILTIN_PRESETS,
    SHIPPED_LYCORIS_PRESETS,
    SHIPPED_PRESET_PREFIX,
)
from kohya_orchestrator.render.files import render_into, write_rendered
from kohya_orchestrator.render.lycoris_presets import resolve_symbolic_preset, shipped_preset_file
from kohya_orchestrator.render.toml import RenderPaths, network_args, render_job
from kohya_orchestrator.run import start

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PRESETS = REPO / "kohya_orchestrator" / "lycoris_presets"
# PresetConfig keys LyCORIS accepts in a preset file (ly:lycoris/config_sdk.py VALID_PRESET_KEYS,
# lycoris-lora 4.1.3; 3.4.0 has the same file). Unknown keys make read_preset fail.
LYCORIS_PRESET_KEYS = {
    "enable_conv",
    "target_module",
    "target_name",
    "module_algo_map",
    "name_algo_map",
    "lora_prefix",
    "use_fnmatch",
    "unet_target_module",
    "unet_target_name",
    "text_encoder_target_module",
    "text_encoder_target_name",
    "exclude_name",
}


def job(network: dict[str, Any], family: str = "sd15", **sections: Any) -> TrainingJob:
    data: dict[str, Any] = {
        "model": {"pretrained_model_name_or_path": "/m/model.safetensors", "family": family},
        "dataset": {"subsets": [{"image_dir": "/d/img/20_x"}]},
        "network": network,
        "training": {"max_train_epochs": 4},
    }
    if family == "sdxl":
        data["dataset"]["resolution"] = 1024
    data.update(sections)
    return validate_job(data)


class TestVersions:
    @pytest.mark.parametrize(
        ("text", "parsed"),
        [("4.1.3", (4, 1, 3)), ("3.2.0.post2", (3, 2, 0)), ("4.2.0rc1", (4, 2, 0)), ("4", (4,))],
    )
    def test_parse(self, text: str, parsed: tuple[int, ...]) -> None:
        assert parse_version(text) == parsed

    def test_parse_garbage(self) -> None:
        assert parse_version("unknown") is None

    @pytest.mark.parametrize(
        ("version", "v3", "v4"),
        [
            ("2.2.0.post3", False, False),
            ("3.0.0", True, False),
            ("3.4.0", True, False),
            ("3.2.0.post2", True, False),
            ("4.0.0", False, True),
            ("4.1.3", False, True),
            ("5.0.0", False, False),
            ("junk", False, False),
        ],
    )
    def test_ranges(self, version: str, v3: bool, v4: bool) -> None:
        assert (version in V3, version in V4) == (v3, v4)

    def test_open_range_and_str(self) -> None:
        assert "99.0" in VersionRange("4.0.0")
        assert str(V3) == ">=3.0.0,<4.0.0" and str(VersionRange("4")) == ">=4"


class TestTable:
    def test_rows_are_well_formed(self) -> None:
        known = {*LYCORIS_BUILTIN_PRESETS, "*"} | {
            SHIPPED_PRESET_PREFIX + n for n in SHIPPED_LYCORIS_PRESETS
        }
        for row in COMPAT_TABLE:
            assert set(row.algos) <= set(LYCORIS_ALGOS)
            assert set(row.presets) <= known
            assert set(row.families) <= {"sd15", "sd2", "sdxl", "flux", "sd3"}
            assert set(row.families) <= {n for n, p in FAMILIES.items() if p.lycoris}
            assert row.source
            if row.outcome == "fails":
                assert row.message and row.fix, row
            else:
                assert row.message is None and row.fix is None

    @pytest.mark.parametrize("version", MEASURED_VERSIONS)
    @pytest.mark.parametrize("algo", LYCORIS_ALGOS)
    def test_every_default_trains_on_sd15(self, algo: str, version: str) -> None:
        """`network = {algo = "..."}` alone is a job that trains (IA3 needs lycoris-lora 4)."""
        j = job({"algo": algo})
        row = lookup(algo, getattr(j.network, "preset", None), version, "sd15")
        assert row is not None
        expected = "fails" if (algo, version) in (("ia3", "3.4.0"), ("full", "3.4.0")) else "trains"
        assert row.outcome == expected

    @pytest.mark.parametrize(
        ("algo", "preset", "version", "family", "outcome", "message"),
        [
            ("loha", "full", "4.1.3", "sd15", "fails", "duplicated lora name"),
            ("loha", None, "4.0.0", "sd2", "fails", "duplicated lora name"),
            ("dylora", "unet-only", "4.1.3", "sd15", "fails", "duplicated lora name"),
            ("loha", "full", "4.1.3", "sdxl", "trains", None),
            ("loha", "full", "3.4.0", "sd15", "trains", None),
            ("lokr", "kohya_orchestrator:full-sd15", "4.1.3", "sd15", "trains", None),
            ("ia3", "ia3", "4.1.3", "sdxl", "fails", "empty parameter list"),
            ("ia3", "ia3", "3.4.0", "sd15", "fails", "empty parameter list"),
            ("locon", "ia3", "3.4.0", "sd15", "fails", "empty parameter list"),
            ("ia3", "attn-mlp", "3.2.0", "sd15", "fails", "KeyError: 'ia3'"),
            ("ia3", "/my/own.toml", "3.4.0", "sd15", "fails", "KeyError: 'ia3'"),
            ("ia3", "kohya_orchestrator:ia3-sd15", "4.1.3", "sd15", "trains", None),
            ("ia3", "kohya_orchestrator:ia3-sd15", "4.1.3", "sdxl", "trains", None),
        ],
    )
    def test_lookup(
        self,
        algo: str,
        preset: str | None,
        version: str,
        family: str,
        outcome: str,
        message: str | None,
    ) -> None:
        row = lookup(algo, preset, version, family)
        assert row is not None
        assert row.outcome == outcome
        assert (message or "") in (row.message or "")

    def test_no_verdict_for_a_user_file_or_an_old_version(self) -> None:
        assert lookup("loha", "/my/preset.toml", "4.1.3", "sd15") is None
        assert lookup("loha", "attn-mlp", "2.2.0", "sd15") is None


class TestCheckNetworkCompat:
    def test_canonical_message(self) -> None:
        (p,) = check_network_compat(job({"algo": "loha", "preset": "full"}), "4.1.3")
        assert (p.path, p.severity) == ("network.preset", "error")
        assert p.message == (
            "algo 'loha' with preset 'full' fails on lycoris-lora 4.1.3 with sd15: "
            "AssertionError: duplicated lora name: lora_unet_time_embedding_linear_1"
        )
        assert p.hint == (
            'use preset = "attn-mlp" (attention and MLP, no convs), or preset = '
            "\"kohya_orchestrator:full-sd15\" (the same layers as 'full', convs included), or "
            'downgrade LyCORIS: pip install "lycoris-lora==3.4.0"'
        )

    def test_lycoris_default_preset_is_named(self) -> None:
        (p,) = check_network_compat(job({"algo": "dylora", "preset": None}), "4.1.3")
        assert "preset 'full' (LyCORIS' default when none is given)" in p.message

    def test_ia3_on_3x_points_at_the_upgrade(self) -> None:
        (p,) = check_network_compat(job({"algo": "ia3"}), "3.4.0")
        assert p.path == "network.algo"
        assert p.message.endswith("KeyError: 'ia3'")
        assert p.hint == 'upgrade LyCORIS in the kohya venv: pip install "lycoris-lora==4.1.3"'

    def test_python_in_the_commands(self) -> None:
        (p,) = check_network_compat(job({"algo": "ia3"}), "3.4.0", python="/kohya/venv/bin/python")
        assert p.hint is not None
        assert '/kohya/venv/bin/python -m pip install "lycoris-lora==4.1.3"' in p.hint

    @pytest.mark.parametrize("version", ["4.1.3", "3.4.0", "3.2.0"])
    def test_defaults_pass(self, version: str) -> None:
        for algo in ("locon", "loha", "lokr", "dylora", "diag-oft", "boft"):
            assert check_network_compat(job({"algo": algo}), version) == []

    def test_full_needs_4_or_an_older_3(self) -> None:
        assert check_network_compat(job({"algo": "full"}), "4.1.3") == []
        assert check_network_compat(job({"algo": "full"}), "3.2.0") == []
        (p,) = check_network_compat(job({"algo": "full"}), "3.3.0")
        assert p.path == "network.algo"
        assert p.message.endswith("AttributeError: 'Conv2d' object has no attribute 'weight'")

    def test_lora_never_needs_lycoris(self) -> None:
        assert check_network_compat(job({"algo": "lora"}), None) == []

    def test_not_installed(self) -> None:
        (p,) = check_network_compat(job({"algo": "loha"}), None)
        assert p.severity == "error" and "not installed" in p.message

    def test_outside_the_table_is_a_warning(self) -> None:
        (p,) = check_network_compat(job({"algo": "loha"}), "5.0.0")
        assert p.severity == "warning"
        assert "outside the versions" in p.message

    def test_sdxl_full_is_fine_on_4(self) -> None:
        assert check_network_compat(job({"algo": "loha", "preset": "full"}, "sdxl"), "4.1.3") == []


class TestGuidance:
    def test_ia3_learning_rate(self) -> None:
        (p,) = network_guidance(job({"algo": "ia3"}))
        assert p.path == "optimizer.learning_rate" and p.severity == "warning"
        assert network_guidance(job({"algo": "ia3"}, optimizer={"learning_rate": 5e-3})) == []
        adaptive = {"type": "Prodigy", "learning_rate": 1.0}
        assert network_guidance(job({"algo": "ia3"}, optimizer=adaptive)) == []

    def test_full_learning_rate(self) -> None:
        (p,) = network_guidance(job({"algo": "full"}))
        assert "native fine-tuning" in p.message
        assert network_guidance(job({"algo": "full"}, optimizer={"learning_rate": 2e-6})) == []

    def test_lokr_alpha_ignored_at_full_dimension(self) -> None:
        (p,) = network_guidance(job({"algo": "lokr", "network_alpha": 4.0}))
        assert p.path == "network.network_alpha"
        assert network_guidance(job({"algo": "lokr"})) == []

    def test_defaults_are_quiet(self) -> None:
        assert network_guidance(job({"algo": "loha"})) == []


class TestDoctorLine:
    @pytest.mark.parametrize(
        ("version", "status", "fragment"),
        [
            ("4.1.3", "warn", "duplicated lora name"),
            ("4.0.0", "warn", "empty parameter"),
            ("3.4.0", "warn", "KeyError: 'ia3'; algo=full fails with AttributeError"),
            ("3.2.0", "warn", "lycoris-lora 3.2.0: algo=ia3 fails with KeyError: 'ia3'"),
            ("2.2.0", "ok", "not in kohya_orchestrator's compatibility table"),
            ("5.1.0", "ok", "not in kohya_orchestrator's compatibility table"),
        ],
    )
    def test_describe(self, version: str, status: str, fragment: str) -> None:
        got, detail, _ = describe_lycoris(version)
        assert got == status and fragment in detail

    def test_diagnose_uses_the_table(self) -> None:
        env = Environment(
            sd_scripts_dir=Path("/k/sd-scripts"),
            python=Path("/k/venv/bin/python"),
            python_version="3.10.11",
            torch_version="2.5.1+cu124",
            cuda_version="12.4",
            lycoris_version="3.4.0",
        )
        (check,) = [c for c in diagnose(env) if c.name == "lycoris"]
        assert check.fix == (
            'for ia3 and full, upgrade: /k/venv/bin/python -m pip install "lycoris-lora==4.1.3" '
            "(the other algos train on 3.4.0)"
        )


class TestShippedPresets:
    def test_the_folder_holds_exactly_the_known_names(self) -> None:
        assert sorted(p.stem for p in PRESETS.glob("*.toml")) == sorted(SHIPPED_LYCORIS_PRESETS)

    @pytest.mark.parametrize("name", SHIPPED_LYCORIS_PRESETS)
    def test_files_read_like_lycoris_reads_them(self, name: str) -> None:
        path = resolve_symbolic_preset(SHIPPED_PRESET_PREFIX + name)
        assert path is not None and path.is_file()
        data = toml.load(path)  # LyCORIS' read_preset uses the toml package
        assert data == tomllib.loads(path.read_text(encoding="utf-8"))
        assert set(data) <= LYCORIS_PRESET_KEYS
        assert path.read_text(encoding="utf-8").startswith("# LyCORIS preset file shipped")

    def test_ia3_preset_targets(self) -> None:
        path = resolve_symbolic_preset("kohya_orchestrator:ia3-sd15")
        assert path is not None
        data = toml.load(path)
        assert data["use_fnmatch"] is True and data["enable_conv"] is False
        assert data["unet_target_name"] == ["*to_k", "*to_v", "*ff.net.2"]
        assert data["text_encoder_target_name"] == ["*k_proj", "*v_proj", "*mlp.fc2"]

    def test_not_symbolic_and_unknown(self) -> None:
        assert resolve_symbolic_preset("attn-mlp") is None
        assert resolve_symbolic_preset(None) is None
        with pytest.raises(ConfigError, match="ships no LyCORIS preset 'nope'"):
            resolve_symbolic_preset("kohya_orchestrator:nope")

    def test_the_model_rejects_an_unknown_name_with_did_you_mean(self) -> None:
        with pytest.raises(ConfigError) as info:
            job({"algo": "loha", "preset": "kohya_orchestrator:full-sd1"})
        (p,) = info.value.problems
        assert p.path == "network.preset"
        assert "did you mean 'kohya_orchestrator:full-sd15'?" in p.message

    def test_ia3_default(self) -> None:
        assert job({"algo": "ia3"}).network.preset == "kohya_orchestrator:ia3-sd15"  # type: ignore[union-attr]

    def test_shipped_preset_file(self) -> None:
        name, text = shipped_preset_file(job({"algo": "ia3"})) or ("", "")
        assert name == "lycoris-ia3-sd15.toml"
        assert text == (PRESETS / "ia3-sd15.toml").read_text(encoding="utf-8")
        assert shipped_preset_file(job({"algo": "loha"})) is None

    def test_shipped_in_the_wheel(self, built_wheel: Path) -> None:
        wheel = built_wheel
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
        for name in SHIPPED_LYCORIS_PRESETS:
            assert f"kohya_orchestrator/lycoris_presets/{name}.toml" in names


class TestRendering:
    def test_beside_the_dataset_config_by_default(self) -> None:
        files = render_job(job({"algo": "ia3"}), RenderPaths("/run/dataset.toml"))
        assert (
            'network_args = ["algo=ia3", "preset=/run/lycoris-ia3-sd15.toml"]' in files.config_toml
        )

    def test_explicit_path(self) -> None:
        paths = RenderPaths("/run/dataset.toml", lycoris_preset="/elsewhere/p.toml")
        assert "preset=/elsewhere/p.toml" in render_job(job({"algo": "ia3"}), paths).config_toml

    def test_without_paths(self) -> None:
        assert network_args(job({"algo": "ia3"})) == ["algo=ia3", "preset=lycoris-ia3-sd15.toml"]
        assert network_args(job({"algo": "loha"}))[:2] == ["algo=loha", "preset=attn-mlp"]

    def test_render_out_folder_gets_the_copy(self, tmp_path: Path) -> None:
        out = tmp_path / "out"
        written = write_rendered(
            job({"algo": "locon", "preset": "kohya_orchestrator:full-sd15"}), out
        )
        assert sorted(p.name for p in written) == [
            "config.toml",
            "dataset.toml",
            "lycoris-full-sd15.toml",
        ]
        config = toml.load(out / "config.toml")
        preset = config["network_arguments"]["network_args"][1]
        assert preset == f"preset={(out / 'lycoris-full-sd15.toml').resolve()}"
        assert (out / "lycoris-full-sd15.toml").read_text() == (
            PRESETS / "full-sd15.toml"
        ).read_text()
        again = render_into(job({"algo": "locon", "preset": "kohya_orchestrator:full-sd15"}), out)
        assert again.config_toml == (out / "config.toml").read_text()


# ------------------------------------------------------------------------------ before a launch
def _env(lycoris: str | None, python_version: str | None = "3.10.11") -> Environment:
    return Environment(
        sd_scripts_dir=Path("/k/sd-scripts"),
        python=Path(sys.executable),
        python_version=python_version,
        lycoris_version=lycoris,
    )


@pytest.fixture
def install(tmp_path: Path) -> Install:
    fake = REPO / "tests" / "fixtures" / "fake_sd_scripts"
    return Install(
        root=fake,
        sd_scripts_dir=fake,
        python=Path(sys.executable),
        layout="explicit",
        source="argument",
    )


def _runnable(tmp_path: Path, network: dict[str, Any]) -> TrainingJob:
    (tmp_path / "img" / "2_x").mkdir(parents=True, exist_ok=True)
    (tmp_path / "m.safetensors").write_bytes(b"")
    return job(
        network,
        model={"pretrained_model_name_or_path": str(tmp_path / "m.safetensors")},
        dataset={"subsets": [{"image_dir": str(tmp_path / "img" / "2_x")}]},
        training={"max_train_epochs": 1, "output_dir": str(tmp_path / "out"), "output_name": "n"},
    )


class TestBeforeLaunch:
    def test_start_refuses_before_creating_a_run(self, tmp_path: Path, install: Install) -> None:
        j = _runnable(tmp_path, {"algo": "lokr", "preset": "full"})
        with pytest.raises(ConfigError) as info:
            start(j, install=install, runs=tmp_path / "runs", environment=_env("4.1.3"))
        assert "duplicated lora name" in str(info.value)
        assert not (tmp_path / "runs").exists()

    def test_only_errors_block(self, install: Install, tmp_path: Path) -> None:
        j = _runnable(tmp_path, {"algo": "loha"})
        assert check_before_launch(j, install, _env("5.0.0")) == []
        assert check_before_launch(j, install, _env("4.1.3")) == []
        assert [p.path for p in check_before_launch(j, install, _env(None))] == ["network.algo"]

    def test_unknown_when_the_probe_failed_or_was_skipped(
        self, install: Install, tmp_path: Path
    ) -> None:
        j = _runnable(tmp_path, {"algo": "loha", "preset": "full"})
        assert check_before_launch(j, install, _env(None, python_version=None)) == []
        assert check_before_launch(j, install, None, probe=False) == []

    def test_probes_the_install_python(self, install: Install, tmp_path: Path) -> None:
        # this Python has no lycoris-lora: a LyCORIS job is stopped, a LoRA job is not
        (p,) = check_before_launch(_runnable(tmp_path, {"algo": "loha"}), install, None)
        assert "not installed" in p.message and sys.executable in (p.hint or "")
        assert check_before_launch(_runnable(tmp_path, {"algo": "lora"}), install, None) == []

    def test_run_directory_gets_the_copy(
        self, captures_dir: Path, tmp_path: Path, install: Install, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        replay = captures_dir / "sd-scripts-logs" / "a_lora_accelerate" / "chunks.jsonl"
        monkeypatch.setenv("FAKE_SD_SCRIPTS_REPLAY", str(replay))
        monkeypatch.setenv("FAKE_SD_SCRIPTS_ARGS", "--speed 0")
        from kohya_orchestrator.render.command import LaunchOptions

        run = start(
            _runnable(tmp_path, {"algo": "ia3"}),
            install=install,
            runs=tmp_path / "runs",
            environment=_env("4.1.3"),
            launch=LaunchOptions(use_accelerate=False),
        )
        result = run.wait(60)
        copy = result.run_dir / "lycoris-ia3-sd15.toml"
        assert copy.read_text() == (PRESETS / "ia3-sd15.toml").read_text()
        config = toml.load(result.run_dir / "config.toml")
        # named by its file name: the trainer starts in the run directory, and sd-scripts stores
        # network_args in every output's metadata (no user path travels with a published LoRA)
        assert config["network_arguments"]["network_args"] == [
            "algo=ia3",
            "preset=lycoris-ia3-sd15.toml",
        ]
        command = json.loads((result.run_dir / "command.json").read_text())
        assert Path(command["cwd"]) == result.run_dir.resolve()


# ------------------------------------------------------------------------------ validate
class TestValidate:
    @pytest.fixture
    def job_file(self, tmp_path: Path) -> Path:
        add_image(tmp_path / "img" / "2_x")
        (tmp_path / "m.safetensors").write_bytes(b"")
        path = tmp_path / "job.toml"
        path.write_text(
            '[model]\npretrained_model_name_or_path = "m.safetensors"\n'
            '[[dataset.subsets]]\nimage_dir = "img/2_x"\n'
            '[network]\nalgo = "ia3"\n[training]\nmax_train_epochs = 1\n',
            encoding="utf-8",
        )
        return path

    @pytest.fixture
    def sd_scripts(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        sd = tmp_path / "sd-scripts"
        (sd / "library").mkdir(parents=True)
        (sd / "train_network.py").write_text("")
        monkeypatch.setenv("KOHYA_PYTHON", sys.executable)  # a Python without lycoris-lora
        monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
        return sd

    def test_guidance_without_an_install(
        self, job_file: Path, sd_scripts: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from kohya_orchestrator.cli.main import main

        assert main(["validate", str(job_file)]) == 0
        err = capsys.readouterr().err
        assert "optimizer.learning_rate" in err and "5e-3" in err

    def test_with_sd_scripts_checks_lycoris(
        self, job_file: Path, sd_scripts: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from kohya_orchestrator.cli.main import main

        assert main(["validate", str(job_file), "--sd-scripts", str(sd_scripts)]) == 2
        err = capsys.readouterr().err
        assert "network.algo" in err and "lycoris-lora is not installed" in err
        assert f"{sys.executable} -m pip install" in err

    def test_env_variable_counts_as_pointing_at_an_install(
        self,
        job_file: Path,
        sd_scripts: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        from kohya_orchestrator.cli.main import main
        from kohya_orchestrator.environment.discovery import explicit_install

        assert explicit_install(None, env={}) is None
        monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(sd_scripts))
        assert main(["validate", str(job_file), "--set", "network.algo=lora"]) == 0
        assert main(["validate", str(job_file)]) == 2


def test_a_family_whose_script_the_install_lacks_is_refused(
    tmp_path: Path, install: Install
) -> None:
    # the stand-in install has train_network.py only, like a kohya_ss from before FLUX.1
    (tmp_path / "img" / "2_x").mkdir(parents=True)
    flux = job(
        {"algo": "lora"},
        model={"family": "flux", "pretrained_model_name_or_path": str(tmp_path / "f.safetensors")},
        dataset={"subsets": [{"image_dir": str(tmp_path / "img" / "2_x")}]},
        training={"max_train_epochs": 1, "output_dir": str(tmp_path / "out"), "output_name": "n"},
    )
    (p,) = check_before_launch(flux, install, None, probe=False)
    assert p.path == "model.family"
    assert "flux_train_network.py is not in this sd-scripts" in p.message
    assert "update sd-scripts" in (p.hint or "")
