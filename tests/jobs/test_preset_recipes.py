"""The recipes: overlays, extends, copies, and the layer named in errors; `preset NAME` trains
through the stand-in trainer when data and an install are given (epochs from data:
test_epochs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.errors import ConfigError, PresetNotFound
from kohya_orchestrator.jobs.loading import load_job
from kohya_orchestrator.jobs.presets import (
    PRESET_ONLY_KEYS,
    compose_preset,
    list_presets,
    preset_copy_text,
    preset_job,
    vram_overlay,
)
from kohya_orchestrator.render.command import LaunchOptions
from kohya_orchestrator.run import start

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_sd_scripts"
MODEL = "/models/sd15.safetensors"


def _problems(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(p.format() for p in exc.value.problems)


# ----------------------------------------------------------------------------- overlays
class TestOverlays:
    def test_vram_8gb_changes_the_memory_switches_not_the_steps(self, paintings: Path) -> None:
        plain = preset_job("oilpaint", data=paintings, model=MODEL)
        small = preset_job("oilpaint", data=paintings, model=MODEL, overlays=["vram-8gb"])
        t = small.job.training
        assert (small.job.dataset.batch_size, t.gradient_accumulation_steps) == (1, 2)
        assert t.gradient_checkpointing and t.cache_latents_to_disk and t.vae_batch_size == 1
        assert small.job.preset == "oilpaint+vram-8gb"
        assert small.presets == ("oilpaint", "vram-8gb")
        assert small.epochs is not None and plain.epochs is not None
        assert small.epochs.steps_per_epoch == plain.epochs.steps_per_epoch == 400
        assert "/ batch 1 / 2 accumulation steps = 400 steps per epoch" in small.epochs.summary
        assert not t.cache_text_encoder_outputs  # the SDXL part does not apply to SD 1.5
        # everything else is still the preset's
        assert small.job.network.algo == "loha" and small.job.optimizer.type == "Prodigy"

    def test_the_sdxl_part_applies_to_sdxl(self, paintings: Path) -> None:
        built = preset_job("sdxl-style", data=paintings, model=MODEL, overlays=["vram-8gb"])
        j = built.job
        assert j.training.cache_text_encoder_outputs and j.training.fp8_base
        assert j.network.network_train_unet_only and j.dataset.shuffle_caption is False
        assert "preset 'vram-8gb' (sdxl part)" in [layer.name for layer in built.layers]

    def test_24gb_trades_memory_for_speed_except_on_sdxl(self, paintings: Path) -> None:
        sd15 = preset_job("oilpaint", data=paintings, model=MODEL, overlays=["vram-24gb"])
        sdxl = preset_job("sdxl-style", data=paintings, model=MODEL, overlays=["vram-24gb"])
        assert sd15.job.training.gradient_checkpointing is False
        assert sd15.job.training.persistent_data_loader_workers
        assert sdxl.job.training.gradient_checkpointing is True

    def test_12gb_sdxl_goes_to_batch_1(self, paintings: Path) -> None:
        built = preset_job("sdxl-style", data=paintings, model=MODEL, overlays=["vram-12gb"])
        assert built.job.dataset.batch_size == 1
        assert built.job.training.gradient_accumulation_steps == 2

    def test_an_overlay_alone_is_shown_over_its_standalone_base(self, paintings: Path) -> None:
        built = preset_job("vram-8gb", data=paintings, model=MODEL)
        assert built.presets == ("lora-character", "vram-8gb")
        assert built.job.preset == "vram-8gb" and built.job.network.algo == "lora"

    def test_vram_tiers(self) -> None:
        assert vram_overlay(12) == "vram-12gb"
        with pytest.raises(ConfigError):
            vram_overlay(6)

    def test_overlays_are_listed_as_such(self) -> None:
        kinds = {i.name: i.overlay for i in list_presets()}
        assert kinds["vram-8gb"] and kinds["vram-12gb"] and kinds["vram-24gb"]
        assert not kinds["oilpaint"]

    def test_the_cli_applies_vram(
        self,
        paintings: Path,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(tmp_path / "none"))
        rc = main(["preset", "oilpaint", "--data", str(paintings), "--vram", "8", "--dry-run"])
        out = capsys.readouterr().out
        assert rc == 0
        assert "preset oilpaint+vram-8gb" in out
        assert "gradient_accumulation_steps = 2" in out
        assert (
            "epochs from your data: 40 images x 20 repeats / batch 1 / 2 accumulation steps = "
            "400 steps per epoch; 6 epochs -> 2400 steps (target 1500-3000)"
        ) in out


# ----------------------------------------------------------------------------- extends and files
class TestExtendsAndFiles:
    def test_lokr_style_extends_oilpaint(self, paintings: Path) -> None:
        built = preset_job("lokr-style", data=paintings, model=MODEL)
        n = built.job.network
        assert n.algo == "lokr" and n.factor == 8 and n.preset == "attn-mlp"  # type: ignore[union-attr]
        assert built.job.optimizer.type == "Prodigy"  # from oilpaint
        assert built.presets == ("oilpaint", "lokr-style")
        assert built.epochs is not None and built.epochs.target.low == 1500  # inherited

    def test_your_own_preset_file_extends_shipped_ones(
        self, paintings: Path, tmp_path: Path
    ) -> None:
        mine = tmp_path / "mine.toml"
        mine.write_text(
            'extends = ["oilpaint", "vram-8gb"]\n[network]\nnetwork_dim = 16\n'
            '[training]\noutput_dir = "out"\n',
            encoding="utf-8",
        )
        built = preset_job(str(mine), data=paintings, model=MODEL)
        j = built.job
        assert j.preset == "mine.toml" and j.network.network_dim == 16  # type: ignore[union-attr]
        assert j.dataset.batch_size == 1  # from the overlay in its extends
        assert j.training.output_dir == str(tmp_path / "out")  # relative to the file

    def test_extends_cycles_are_refused(self, tmp_path: Path) -> None:
        (tmp_path / "a.toml").write_text('extends = ["b.toml"]\n', encoding="utf-8")
        (tmp_path / "b.toml").write_text('extends = ["./a.toml"]\n', encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            compose_preset(str(tmp_path / "a.toml"))
        assert "extends itself in a cycle: " in _problems(info)
        assert _problems(info).endswith("b.toml -> ./a.toml")

    def test_unknown_overlay_did_you_mean(self, paintings: Path) -> None:
        with pytest.raises(PresetNotFound) as info:
            preset_job("oilpaint", data=paintings, model=MODEL, overlays=["vram-8g"])
        assert "did you mean 'vram-8gb'" in _problems(info)

    def test_preset_only_keys_are_checked(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.toml"
        bad.write_text(
            'extends = "oilpaint"\n[overlay]\nbase = "x"\n[for_family.sdxxl.training]\nlowram = true\n',
            encoding="utf-8",
        )
        with pytest.raises(ConfigError) as info:
            compose_preset(str(bad))
        text = _problems(info)
        assert "overlay.base: unknown key 'base'" in text
        assert "for_family.sdxxl: unknown family 'sdxxl'" in text and "did you mean 'sdxl'" in text


# ----------------------------------------------------------------------------- layer in errors
class TestLayerNamedInErrors:
    def test_set_override(self, paintings: Path) -> None:
        with pytest.raises(ConfigError) as info:
            preset_job("oilpaint", data=paintings, model=MODEL, overrides=["network.network_dim=0"])
        assert "network.network_dim: must be >= 1 (got 0) (set by --set)" in _problems(info)

    def test_your_preset_file(self, paintings: Path, tmp_path: Path) -> None:
        bad = tmp_path / "bad.toml"
        bad.write_text('extends = ["oilpaint"]\n[network]\nalgo = "locom"\n', encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            preset_job(str(bad), data=paintings, model=MODEL)
        text = _problems(info)
        assert "network.algo: unknown algo 'locom' (set by preset file bad.toml)" in text
        assert "did you mean 'locon'?" in text

    def test_an_overlays_family_part(self, paintings: Path) -> None:
        with pytest.raises(ConfigError) as info:
            preset_job(
                "sdxl-style",
                data=paintings,
                model=MODEL,
                overlays=["vram-8gb"],
                overrides=["training.mixed_precision=no"],
            )
        assert "training.fp8_base: fp8_base needs mixed_precision" in _problems(info)
        assert "(set by preset 'vram-8gb' (sdxl part))" in _problems(info)

    def test_the_cli_reports_the_layer(
        self, paintings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        rc = main(["preset", "oilpaint", "--data", str(paintings), "--set", "training.seed=-1"])
        assert rc == 2
        assert "(set by --set)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- copy and show
class TestCopyAndShow:
    def test_copy_of_a_plain_preset_is_a_job_file(self, paintings: Path, tmp_path: Path) -> None:
        text = preset_copy_text("oilpaint")
        assert text.startswith("# oilpaint: ") and 'algo = "loha"' in text
        assert not set(tomllib.loads(text)) & set(PRESET_ONLY_KEYS)
        assert "picks max_train_epochs from your data" in text
        path = tmp_path / "mine.toml"
        path.write_text(text, encoding="utf-8")
        subsets = f'dataset.subsets=[{{image_dir = "{paintings / "20_zengxin oilpaint"}"}}]'
        job = load_job(path, overrides=[subsets])
        assert job.training.max_train_epochs == 10 and job.preset == "oilpaint"

    @pytest.mark.parametrize("name", ["lokr-style", "vram-8gb"])
    def test_copy_of_a_layered_preset_is_resolved(self, name: str, paintings: Path) -> None:
        text = preset_copy_text(name)
        data = tomllib.loads(text)
        assert not set(data) & set(PRESET_ONLY_KEYS)
        assert f"Resolved by `preset copy {name}` from:" in text
        assert data["preset"] == name

    def test_show_points_at_the_parent(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["preset", "show", "lokr-style"]) == 0
        captured = capsys.readouterr()
        assert 'extends = ["oilpaint"]' in captured.out
        assert "preset show oilpaint" in captured.err

    def test_list_shows_kinds(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["preset", "list"]) == 0
        out = capsys.readouterr().out
        assert "overlay" in out and "ia3-quick" in out and "sdxl-style" in out


# ----------------------------------------------------------------------------- the train path
@pytest.fixture
def fake_install() -> Install:
    return Install(
        root=FAKE,
        sd_scripts_dir=FAKE,
        python=Path(sys.executable),
        layout="explicit",
        source="argument",
    )


def _replay(monkeypatch: pytest.MonkeyPatch, captures: Path, out: Path) -> None:
    replay = captures / "sd-scripts-logs" / "b_loha_preset" / "chunks.jsonl"
    monkeypatch.setenv("FAKE_SD_SCRIPTS_REPLAY", str(replay))
    monkeypatch.setenv("FAKE_SD_SCRIPTS_ARGS", "--speed 0")
    monkeypatch.setenv("FAKE_SD_SCRIPTS_OUTPUT_DIR", str(out))


def _train(job, install: Install, runs: Path):
    # the stand-in trainer has no accelerate and its Python no lycoris: no probe
    run = start(
        job, install=install, runs=runs, launch=LaunchOptions(use_accelerate=False), probe=False
    )
    return run.wait(60)


def test_a_preset_job_trains_with_the_stand_in_trainer(
    captures_dir: Path,
    paintings: Path,
    tmp_path: Path,
    fake_install: Install,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    _replay(monkeypatch, captures_dir, tmp_path / "out")
    built = preset_job(
        "oilpaint",
        data=paintings,
        model=model,
        output=tmp_path / "out",
        overrides=["training.output_name=b_loha_preset"],
    )
    result = _train(built.job, fake_install, tmp_path / "runs")
    assert result.ok, result.reason
    assert [p.name for p in result.outputs][-1] == "b_loha_preset.safetensors"
    config = tomllib.loads((result.run_dir / "config.toml").read_text(encoding="utf-8"))
    assert config["training_arguments"]["max_train_epochs"] == 6  # picked from the data
    assert "preset=attn-mlp" in config["network_arguments"]["network_args"]


def test_preset_cli_trains_when_data_and_an_install_are_given(
    captures_dir: Path,
    paintings: Path,
    tmp_path: Path,
    fake_install: Install,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kohya_orchestrator.cli.commands.train as train_verb
    import kohya_orchestrator.environment.discovery as environment

    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    _replay(monkeypatch, captures_dir, tmp_path / "out")
    monkeypatch.setattr(environment, "find_install", lambda *a, **k: fake_install)
    calls = []

    def train_job(job, *, install, runs, announce=None, **_kw):
        calls.append((job, install, runs))
        result = _train(job, install, runs)  # started: the verb's announce comes now
        print(f"✓ {announce}")
        return 0 if result.ok else 1

    monkeypatch.setattr(train_verb, "train_job", train_job)
    monkeypatch.chdir(tmp_path)
    argv = ["preset", "oilpaint", "--data", str(paintings), "--model", str(model)]
    argv += ["--output", "out", "--set", "training.output_name=b_loha_preset"]
    assert main([*argv, "--dry-run"]) == 0
    assert calls == [] and not (tmp_path / "runs").exists()  # --dry-run only plans
    assert "--dry-run: nothing was trained" in capsys.readouterr().out
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "6 epochs -> 2400 steps" in out and "starting training: oilpaint" in out
    assert out.index("resolved job") < out.index("starting training")  # shows, then trains
    ((job, install, runs),) = calls
    assert install is fake_install and runs == Path("runs")
    assert job.training.max_train_epochs == 6 and job.training.output_dir == str(tmp_path / "out")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "status").read_text().strip() == "succeeded"


def test_preset_cli_without_data_never_trains(
    tmp_path: Path,
    fake_install: Install,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kohya_orchestrator.cli.commands.train as train_verb
    import kohya_orchestrator.environment.discovery as environment

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(environment, "find_install", lambda *a, **k: fake_install)
    monkeypatch.setattr(train_verb, "train_job", lambda *a, **k: pytest.fail("trained"))
    assert main(["preset", "ia3-quick"]) == 0
    captured = capsys.readouterr()
    assert "command" in captured.out and str(FAKE / "train_network.py") in captured.out
    assert "epochs from your data: 6 images x 10 repeats / batch 2" in captured.out
    assert "nothing was trained" in captured.out


def test_preset_cli_does_not_launch_on_a_folder_without_images(
    tmp_path: Path,
    fake_install: Install,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import kohya_orchestrator.cli.commands.train as train_verb
    import kohya_orchestrator.environment.discovery as environment

    data = tmp_path / "img" / "20_zengxin oilpaint"
    data.mkdir(parents=True)
    (data / "broken.jpg").write_bytes(b"not a jpeg")  # plan says sd-scripts would stop on it
    model = tmp_path / "sd15.safetensors"
    model.write_bytes(b"")
    monkeypatch.setattr(environment, "find_install", lambda *a, **k: fake_install)
    calls: list[object] = []
    monkeypatch.setattr(train_verb, "train_job", lambda *a, **k: calls.append(a) or 0)
    monkeypatch.chdir(tmp_path)
    argv = ["preset", "oilpaint", "--data", str(tmp_path / "img"), "--model", str(model)]
    assert main(argv) == 2
    assert calls == []
    err = capsys.readouterr().err
    assert "broken.jpg: cannot read the image size" in err
    assert "no images to train on" in err
