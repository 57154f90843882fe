"""The argument manifest: an install's own parsers decide what a job may say.

These tests build small sd-scripts-shaped folders whose training scripts define ``setup_parser()``
with argparse (the names of sd-scripts 48d368fa's, plus or minus one) and run them with this
Python: they check the probe, the cache and the messages. That the probe reads the real scripts
is the e2e test ``tests/e2e/test_manifest_e2e.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fake_runs import add_image

from kohya_orchestrator.cli.main import main
from kohya_orchestrator.environment import manifest as manifest_module
from kohya_orchestrator.environment.discovery import Install
from kohya_orchestrator.environment.manifest import (
    ManifestError,
    arguments_of,
    cached_manifest,
    load_manifest,
)
from kohya_orchestrator.errors import ConfigError
from kohya_orchestrator.jobs.arguments import check_job_arguments
from kohya_orchestrator.jobs.loading import validate_job
from kohya_orchestrator.models.arguments import BUILTIN, ArgSpec, Arguments, check_value
from kohya_orchestrator.models.sd_args import known_args

SCRIPT = """\
import argparse

def setup_parser():
    parser = argparse.ArgumentParser()
    for name in {names!r}:
        parser.add_argument("--" + name)
    parser.add_argument("--new_switch", action="store_true", help="a switch only this install has")
    parser.add_argument("--new_mode", type=str, default="a", choices=["a", "b"], help="a mode")
    parser.add_argument("--new_count", type=int, default=0, help="a count")
    parser.add_argument("--new_list", type=float, nargs="*", help="some numbers")
    return parser

if __name__ == "__main__":
    raise SystemExit("not for running")
"""


def make_install(root: Path, *, drop: tuple[str, ...] = (), broken: bool = False) -> Install:
    """An sd-scripts-shaped folder whose train_network.py parser has sd-scripts' SD names."""
    sd = root / "sd-scripts"
    (sd / "library").mkdir(parents=True, exist_ok=True)
    (sd / "networks").mkdir(exist_ok=True)
    (sd / "library" / "__init__.py").write_text("", encoding="utf-8")
    (sd / "networks" / "lora.py").write_text("", encoding="utf-8")
    (sd / "networks" / "lokr.py").write_text("", encoding="utf-8")
    names = sorted(n for n in known_args("sd15") if n not in drop)
    text = "raise ImportError('no torch here')\n" if broken else SCRIPT.format(names=names)
    (sd / "train_network.py").write_text(text, encoding="utf-8")
    return Install(
        root=sd,
        sd_scripts_dir=sd,
        python=Path(sys.executable),
        layout="explicit",
        source="argument",
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    monkeypatch.setenv("KOHYA_PYTHON", sys.executable)  # the CLI's install is run by this Python
    return folder / "kohya_orchestrator" / "manifests"


def test_the_probe_records_every_action_and_the_networks(tmp_path: Path, cache: Path) -> None:
    manifest, cached = load_manifest(make_install(tmp_path))
    assert not cached
    actions = {a.dest: a for a in manifest.scripts["train_network.py"]}
    assert set(actions) == known_args("sd15") | {"new_switch", "new_mode", "new_count", "new_list"}
    assert actions["new_switch"].kind == "flag"
    assert actions["new_switch"].default is False
    assert actions["new_mode"].choices == ("a", "b")
    assert actions["new_mode"].options == ("--new_mode",)
    assert (actions["new_count"].type, actions["new_count"].kind) == ("int", "value")
    assert (actions["new_list"].type, actions["new_list"].kind) == ("float", "list")
    assert actions["new_count"].help == "a count"
    assert manifest.networks == ("networks.lokr", "networks.lora")
    assert manifest.errors == {}
    assert [p.name for p in cache.iterdir()] == [f"{manifest.fingerprint}.json"]


def test_the_second_call_reads_the_cache_and_starts_no_python(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install = make_install(tmp_path)
    first, _ = load_manifest(install)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the install's Python was started again")

    monkeypatch.setattr(manifest_module, "_probe", refuse)
    again, cached = load_manifest(install)
    assert cached
    assert again == first
    assert cached_manifest(install) == first


def test_an_edited_script_makes_a_new_manifest(tmp_path: Path, cache: Path) -> None:
    install = make_install(tmp_path)
    first, _ = load_manifest(install)
    make_install(tmp_path, drop=("min_snr_gamma",))
    assert cached_manifest(install) is None  # the sources changed: the cache does not answer
    second, cached = load_manifest(install)
    assert not cached
    assert second.fingerprint != first.fingerprint
    assert "min_snr_gamma" not in {a.dest for a in second.scripts["train_network.py"]}


def test_a_broken_install_falls_back_to_the_builtin_list_with_a_warning(
    tmp_path: Path, cache: Path
) -> None:
    install = make_install(tmp_path, broken=True)
    with pytest.raises(ManifestError, match="ImportError: no torch here"):
        load_manifest(install)
    arguments, warning = arguments_of(install)
    assert arguments is BUILTIN
    assert warning is not None
    assert warning.severity == "warning"
    assert "built-in list of sd-scripts 48d368fa" in warning.message
    assert not cache.exists() or not list(cache.iterdir())  # a failure is not cached


def test_without_probing_only_a_cached_manifest_is_used(tmp_path: Path, cache: Path) -> None:
    install = make_install(tmp_path)
    assert arguments_of(install, probe=False) == (BUILTIN, None)
    load_manifest(install)
    arguments, warning = arguments_of(install, probe=False)
    assert warning is None
    assert not arguments.builtin
    assert "new_mode" in (arguments.names("sd15") or ())


def job_data(tmp_path: Path, **extra_args: object) -> dict[str, object]:
    img = tmp_path / "img" / "2_oilpaint style"
    img.mkdir(parents=True, exist_ok=True)
    return {
        "model": {"pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5"},
        "dataset": {"subsets": [{"image_dir": str(img)}]},
        "training": {"max_train_epochs": 1, "output_dir": str(tmp_path / "out")},
        "extra_args": extra_args,
    }


def test_an_argument_only_the_install_has_is_taken_with_its_type_and_choices(
    tmp_path: Path, cache: Path
) -> None:
    arguments = load_manifest(make_install(tmp_path))[0].arguments()
    data = job_data(tmp_path, new_mode="b", new_count=3, new_switch=True, new_list=[1.0, 2])
    job = validate_job(data, arguments=arguments)
    assert job.extra_args["new_mode"] == "b"
    with pytest.raises(ConfigError) as builtin:
        validate_job(data)  # the built-in list does not know them
    assert {p.path for p in builtin.value.problems} >= {"extra_args.new_mode"}
    bad = job_data(tmp_path, new_mode="c", new_count="3", new_switch=1)
    with pytest.raises(ConfigError) as refused:
        validate_job(bad, arguments=arguments)
    messages = {p.path: p.message for p in refused.value.problems}
    assert "'new_mode' takes one of a, b, not 'c'" in messages["extra_args.new_mode"]
    assert "'new_count' takes an integer, not '3'" in messages["extra_args.new_count"]
    assert "'new_switch' is a switch" in messages["extra_args.new_switch"]
    assert all("sd-scripts of unknown commit" in m for m in messages.values())


def test_an_unknown_argument_gets_did_you_mean_from_the_install(
    tmp_path: Path, cache: Path
) -> None:
    arguments = load_manifest(make_install(tmp_path))[0].arguments()
    with pytest.raises(ConfigError) as refused:
        validate_job(job_data(tmp_path, new_cuont=3), arguments=arguments)
    (problem,) = refused.value.problems
    assert problem.path == "extra_args.new_cuont"
    assert problem.hint == "did you mean 'new_count'?"
    assert str(tmp_path / "sd-scripts") in problem.message


def test_a_job_setting_the_install_lacks_names_the_install_and_the_fix(
    tmp_path: Path, cache: Path
) -> None:
    install = make_install(tmp_path, drop=("min_snr_gamma",))
    arguments = load_manifest(install)[0].arguments()
    data = job_data(tmp_path)
    data["training"] = {**data["training"], "min_snr_gamma": 5.0}  # type: ignore[dict-item]
    job = validate_job(data, arguments=arguments)
    (problem,) = check_job_arguments(job, arguments)
    assert problem.path == "training.min_snr_gamma"
    assert "has no argument 'min_snr_gamma' in train_network.py" in problem.message
    assert problem.hint is not None
    assert "pull" in problem.hint
    assert "remove training.min_snr_gamma" in problem.hint
    assert check_job_arguments(validate_job(job_data(tmp_path)), arguments) == []


def test_validate_and_render_check_against_the_install(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install = make_install(tmp_path, drop=("min_snr_gamma",))
    job = tmp_path / "job.toml"
    img = tmp_path / "img" / "2_oilpaint style"
    add_image(img)
    job.write_text(
        "[model]\npretrained_model_name_or_path = 'runwayml/stable-diffusion-v1-5'\n"
        f"[dataset]\nsubsets = [{{image_dir = '{img}'}}]\n"
        f"[training]\nmax_train_epochs = 1\noutput_dir = '{tmp_path / 'out'}'\n"
        "[extra_args]\nnew_mode = 'b'\n",
        encoding="utf-8",
    )
    sd = str(install.sd_scripts_dir)
    assert main(["validate", str(job), "--sd-scripts", sd]) == 0
    assert main(["validate", str(job)]) == 2  # the built-in list does not know new_mode
    err = capsys.readouterr().err
    assert "built-in list of sd-scripts 48d368fa" in err
    assert "--sd-scripts" in err
    over = ["--set", "training.min_snr_gamma=5.0"]
    assert main(["validate", str(job), "--sd-scripts", sd, *over]) == 2
    assert "has no argument 'min_snr_gamma'" in capsys.readouterr().err
    out = tmp_path / "rendered"
    assert main(["render", str(job), "--out", str(out), "--sd-scripts", sd, *over]) == 2
    assert not out.exists()
    assert main(["render", str(job), "--out", str(out), "--sd-scripts", sd]) == 0
    assert 'new_mode = "b"' in (out / "config.toml").read_text(encoding="utf-8")


def test_doctor_names_the_arguments_it_read(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install = make_install(tmp_path)
    rc = main(["doctor", "--sd-scripts", str(install.sd_scripts_dir), "--json"])
    payload = json.loads(capsys.readouterr().out)
    arguments = next(c for c in payload["checks"] if c["name"] == "arguments")
    assert arguments["status"] == "ok", arguments
    assert "train_network.py " in arguments["detail"]
    assert payload["arguments"]["cached"] is False
    assert payload["arguments"]["networks"] == ["networks.lokr", "networks.lora"]
    assert rc in (0, 1)  # this Python has no torch: other checks may fail
    main(["doctor", "--sd-scripts", str(install.sd_scripts_dir), "--json"])
    assert json.loads(capsys.readouterr().out)["arguments"]["cached"] is True


@pytest.mark.parametrize(
    ("spec", "value", "wrong"),
    [
        (ArgSpec("a", kind="flag"), True, None),
        (ArgSpec("a", kind="flag"), "true", "'a' is a switch: use true or false"),
        (ArgSpec("a", type="int"), 3, None),
        (ArgSpec("a", type="int"), True, "'a' takes an integer, not True"),
        (ArgSpec("a", type="float"), 3, None),
        (ArgSpec("a", type="float"), "3", "'a' takes a number, not '3'"),
        (ArgSpec("a", type="str"), [1], "'a' takes one value, not a list"),
        (ArgSpec("a", kind="list", type="str"), "x=1", "'a' takes a list of values: write ['x=1']"),
        (ArgSpec("a", kind="list", type="int"), [1, 2], None),
        (ArgSpec("a", type="str", choices=("x", "y")), "z", "'a' takes one of x, y, not 'z'"),
        (ArgSpec("a"), {"anything": 1}, None),
    ],
)
def test_check_value(spec: ArgSpec, value: object, wrong: str | None) -> None:
    assert check_value(spec, value) == wrong


def test_the_probe_runs_in_the_install_folder_with_its_python(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install = make_install(tmp_path)
    seen: dict[str, object] = {}
    real = subprocess.run

    def spy(argv: list[str], **kwargs: object) -> object:
        seen["argv"], seen["cwd"] = argv, kwargs.get("cwd")
        return real(argv, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(manifest_module.subprocess, "run", spy)
    load_manifest(install)
    assert seen["cwd"] == install.sd_scripts_dir
    argv = seen["argv"]
    assert isinstance(argv, list)
    assert argv[0] == sys.executable
    assert argv[-1] == "train_network.py"


def test_a_folder_without_training_scripts_or_a_python_that_does_not_run(
    tmp_path: Path, cache: Path
) -> None:
    install = make_install(tmp_path)
    empty = install.model_copy(update={"sd_scripts_dir": tmp_path / "empty"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"has no \*train_network\.py"):
        load_manifest(empty)
    gone = install.model_copy(update={"python": tmp_path / "no-such-python"})
    with pytest.raises(ManifestError, match="could not run"):
        load_manifest(gone)
    silent = install.model_copy(update={"python": Path("/bin/true")})
    with pytest.raises(ManifestError, match=r"could not read the parsers \(exit 0\): no output"):
        load_manifest(silent)


def test_a_git_checkout_is_named_by_its_commit_and_date(tmp_path: Path, cache: Path) -> None:
    install = make_install(tmp_path)
    sd = install.sd_scripts_dir
    git = ["git", "-C", str(sd), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    env = {"GIT_COMMITTER_DATE": "2024-05-01T12:00:00+00:00", "PATH": "/usr/bin:/bin"}
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True, env=env)
    manifest, _ = load_manifest(install)
    assert manifest.commit is not None
    assert manifest.commit_date is not None
    assert manifest.commit_date.startswith("2024-05-01")
    assert manifest.label == f"sd-scripts {manifest.commit[:8]} (2024-05-01) at {sd}"


def test_the_cache_folder_follows_xdg_then_home() -> None:
    assert manifest_module.cache_dir({"XDG_CACHE_HOME": "/x"}) == Path(
        "/x/kohya_orchestrator/manifests"
    )
    assert manifest_module.cache_dir({"HOME": "/h"}) == Path(
        "/h/.cache/kohya_orchestrator/manifests"
    )
    assert manifest_module.cache_dir({}) is None


def test_no_home_means_no_cache_but_the_manifest_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("XDG_CACHE_HOME", "HOME", "USERPROFILE"):
        monkeypatch.delenv(name, raising=False)
    install = make_install(tmp_path)
    manifest, cached = load_manifest(install)
    assert not cached
    assert "new_mode" in {a.dest for a in manifest.scripts["train_network.py"]}
    assert cached_manifest(install) is None


def test_the_keys_a_job_renders_are_named_by_the_job_key_that_set_them(tmp_path: Path) -> None:
    job = validate_job(job_data(tmp_path))
    scripts = {
        name: {k: v for k, v in specs.items() if k not in ("optimizer_type", "network_module")}
        for name, specs in BUILTIN.scripts.items()
    }
    older = Arguments(label="sd-scripts old", fix="update, or drop the key", scripts=scripts)
    paths = {p.path for p in check_job_arguments(job, older)}
    assert paths == {"optimizer.type", "network.algo"}
    assert check_job_arguments(job, Arguments(label="none", fix="", scripts={})) == []


def test_import_config_keeps_what_the_install_has(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install = make_install(tmp_path)
    img = tmp_path / "img" / "2_oilpaint style"
    img.mkdir(parents=True)
    config = tmp_path / "config.toml"
    config.write_text(
        "pretrained_model_name_or_path = 'runwayml/stable-diffusion-v1-5'\n"
        f"train_data_dir = '{tmp_path / 'img'}'\noutput_dir = '{tmp_path / 'out'}'\n"
        "max_train_epochs = 1\nnetwork_module = 'networks.lora'\nnew_count = 3\n",
        encoding="utf-8",
    )
    sd = str(install.sd_scripts_dir)
    assert main(["import-config", str(config), "--sd-scripts", sd]) == 0
    out = capsys.readouterr().out
    assert "[extra_args]" in out
    assert "new_count = 3" in out
    assert main(["import-config", str(config)]) == 0  # the built-in list: reported, not kept
    captured = capsys.readouterr()
    assert "new_count" not in captured.out
    assert "new_count" in captured.err


def test_import_preset_keeps_the_options_the_install_has(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install = make_install(tmp_path)
    preset = tmp_path / "gui.json"
    preset.write_text(
        json.dumps({"LoRA_type": "Standard", "additional_parameters": "--new_count 3"}),
        encoding="utf-8",
    )
    sd = str(install.sd_scripts_dir)
    assert main(["import-preset", str(preset), "--sd-scripts", sd]) == 0
    captured = capsys.readouterr()
    assert "new_count = 3" in captured.out
    assert main(["import-preset", str(preset)]) == 0
    captured = capsys.readouterr()
    assert "new_count" not in captured.out
    assert "new_count" in captured.err
