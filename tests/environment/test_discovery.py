"""environment/discovery.py: install discovery on built trees, and the checkout's commit."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from kohya_orchestrator.environment.discovery import (
    Install,
    find_install,
    read_commit,
    require_install,
)
from kohya_orchestrator.errors import SetupError


def make_sd_scripts(path: Path) -> Path:
    (path / "library").mkdir(parents=True)
    for name in ("train_network.py", "sdxl_train_network.py", "fine_tune.py"):
        (path / name).write_text("")
    return path


def make_venv(path: Path, *, windows: bool = False) -> Path:
    python = path / ("Scripts/python.exe" if windows else "bin/python")
    python.parent.mkdir(parents=True)
    python.write_text("")
    python.chmod(0o755)
    return python


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake HOME, and a current folder that holds no install."""
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return home


def find(path: Path | None = None, env: dict[str, str] | None = None, **kw: object) -> Install:
    install = find_install(path, env=env if env is not None else {}, **kw)  # type: ignore[arg-type]
    assert install is not None
    return install


class TestLayouts:
    def test_kohya_ss_gui_from_root_or_sd_scripts_dir(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        sd = make_sd_scripts(root / "sd-scripts")
        python = make_venv(root / "venv")
        expected = Install(
            root=root,
            sd_scripts_dir=sd,
            python=python,
            layout="kohya_ss_gui",
            source="argument",
            source_detail="argument",
        )
        assert find(root) == expected
        assert find(sd) == expected
        assert find(sd / "train_network.py") == expected

    def test_kohya_ss_gui_uv_venv(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        python = make_venv(root / ".venv")
        install = find(root)
        assert (install.layout, install.python) == ("kohya_ss_gui", python)

    @pytest.mark.parametrize(("venv", "windows"), [("venv", False), (".venv", True)])
    def test_bare_checkout(self, tmp_path: Path, home: Path, venv: str, windows: bool) -> None:
        sd = make_sd_scripts(tmp_path / "my checkout")
        python = make_venv(sd / venv, windows=windows)
        install = find(sd)
        assert (install.layout, install.root, install.sd_scripts_dir) == ("bare_sd_scripts", sd, sd)
        assert install.python == python

    def test_checkout_named_sd_scripts_with_own_venv_is_bare(
        self, tmp_path: Path, home: Path
    ) -> None:
        sd = make_sd_scripts(tmp_path / "sd-scripts")
        make_venv(sd / "venv")
        make_venv(tmp_path / "venv")  # someone else's venv next to it
        assert find(sd).layout == "bare_sd_scripts"

    def test_lora_easy_training_scripts(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "LoRA_Easy_Training_Scripts"
        sd = make_sd_scripts(root / "backend" / "sd_scripts")
        python = make_venv(sd / "venv")
        for given in (root, sd):
            install = find(given)
            assert install.layout == "lora_easy_training_scripts"
            assert (install.root, install.sd_scripts_dir, install.python) == (root, sd, python)

    def test_fluxgym(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "fluxgym"
        sd = make_sd_scripts(root / "sd-scripts")
        python = make_venv(root / "env")
        install = find(root)
        assert (install.layout, install.root, install.sd_scripts_dir) == ("fluxgym", root, sd)
        assert install.python == python

    def test_conda_when_no_venv(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        python = make_venv(tmp_path / "conda" / "envs" / "kohya")
        install = find(root, env={"CONDA_PREFIX": str(tmp_path / "conda" / "envs" / "kohya")})
        assert (install.layout, install.root, install.python) == ("conda", root, python)

    def test_venv_beats_an_active_conda(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        make_venv(root / "venv")
        make_venv(tmp_path / "conda")
        assert find(root, env={"CONDA_PREFIX": str(tmp_path / "conda")}).layout == "kohya_ss_gui"


class TestSources:
    def test_explicit_python_argument(self, tmp_path: Path, home: Path) -> None:
        sd = make_sd_scripts(tmp_path / "sd")
        python = make_venv(tmp_path / "elsewhere")
        install = find(sd, python=python)
        assert (install.layout, install.python, install.source) == ("explicit", python, "argument")

    def test_env_vars(self, tmp_path: Path, home: Path) -> None:
        sd = make_sd_scripts(tmp_path / "sd")
        python = make_venv(tmp_path / "py")
        env = {"KOHYA_SD_SCRIPTS": str(sd), "KOHYA_PYTHON": str(python)}
        install = find(env=env)
        assert (install.source, install.source_detail) == ("env", "$KOHYA_SD_SCRIPTS")
        assert (install.layout, install.python) == ("explicit", python)

    def test_argument_beats_env(self, tmp_path: Path, home: Path) -> None:
        a = make_sd_scripts(tmp_path / "a")
        make_venv(a / "venv")
        b = make_sd_scripts(tmp_path / "b")
        make_venv(b / "venv")
        assert find(a, env={"KOHYA_SD_SCRIPTS": str(b)}).sd_scripts_dir == a

    def test_user_config_file(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        sd = make_sd_scripts(root / "sd-scripts")
        make_venv(root / "venv")
        python = make_venv(tmp_path / "custom")
        config = home / ".config" / "kohya_orchestrator" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(
            f'sd_scripts = "{root.as_posix()}"\npython = "../../../custom/bin/python"\n'
        )
        install = find(env={"HOME": str(home)})
        assert install.source == "config"
        assert install.source_detail == f"sd_scripts in {config}"
        assert (install.sd_scripts_dir, install.python, install.layout) == (sd, python, "explicit")

    def test_xdg_config_home(self, tmp_path: Path, home: Path) -> None:
        sd = make_sd_scripts(tmp_path / "sd")
        make_venv(sd / "venv")
        config = tmp_path / "xdg" / "kohya_orchestrator" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text(f"sd_scripts = '{sd.as_posix()}'\n")
        install = find(env={"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
        assert (install.source, install.sd_scripts_dir) == ("config", sd)

    def test_search_roots_then_home_defaults(self, tmp_path: Path, home: Path) -> None:
        root = home / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        make_venv(root / "venv")
        install = find(env={"HOME": str(home)}, search_roots=[tmp_path / "nothing"])
        assert (install.source, install.root) == ("search", root)
        other = tmp_path / "fluxgym"
        make_sd_scripts(other / "sd-scripts")
        make_venv(other / "env")
        install = find(env={"HOME": str(home)}, search_roots=[other])
        assert (install.layout, install.root) == ("fluxgym", other)

    def test_current_folder_is_searched(
        self, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sd = make_sd_scripts(tmp_path / "here")
        make_venv(sd / "venv")
        monkeypatch.chdir(sd)
        assert find().sd_scripts_dir == sd


class TestNotFound:
    def test_message_lists_what_was_tried(self, tmp_path: Path, home: Path) -> None:
        config = home / ".config" / "kohya_orchestrator" / "config.toml"
        with pytest.raises(SetupError) as info:
            require_install(env={"HOME": str(home)})
        assert str(info.value) == textwrap.dedent(
            f"""\
            No usable kohya-ss sd-scripts install found. Tried:
              - $KOHYA_SD_SCRIPTS: not set
              - config {config}: not found
              - search root {tmp_path / "cwd"}: no sd-scripts checkout (train_network.py + library/) in it, its sd-scripts/ or backend/sd_scripts/
              - search root {home / "kohya_ss"}: does not exist
              - search root {home / "LoRA_Easy_Training_Scripts"}: does not exist
              - search root {home / "fluxgym"}: does not exist
              - search root {home / "sd-scripts"}: does not exist
              - search root {home / "kohya-sd-scripts"}: does not exist
              hint: pass --sd-scripts PATH (the kohya_ss folder or its sd-scripts folder), or set KOHYA_SD_SCRIPTS (and KOHYA_PYTHON for a Python outside the usual venv), or write sd_scripts = "..." and python = "..." to {config}; no install yet: python -m kohya_orchestrator install"""
        )
        assert info.value.exit_code == 2
        assert find_install(env={"HOME": str(home)}) is None

    def test_checkout_without_python(self, tmp_path: Path, home: Path) -> None:
        root = tmp_path / "kohya_ss"
        sd = make_sd_scripts(root / "sd-scripts")
        with pytest.raises(SetupError) as info:
            require_install(root, env={})
        assert (
            f"  - argument {root}: sd-scripts at {sd} but no Python in {sd / 'venv'}, "
            f"{sd / '.venv'}, {root / 'env'}, {root / 'venv'}, {root / '.venv'}; "
            "$CONDA_PREFIX is not set\n"
        ) in str(info.value)

    def test_a_broken_env_var_does_not_fall_through(self, tmp_path: Path, home: Path) -> None:
        root = home / "kohya_ss"
        make_sd_scripts(root / "sd-scripts")
        make_venv(root / "venv")
        env = {"HOME": str(home), "KOHYA_SD_SCRIPTS": str(tmp_path / "moved")}
        with pytest.raises(SetupError, match=r"\$KOHYA_SD_SCRIPTS .*moved: does not exist"):
            require_install(env=env)

    def test_missing_explicit_python(self, tmp_path: Path, home: Path) -> None:
        sd = make_sd_scripts(tmp_path / "sd")
        env = {"KOHYA_PYTHON": str(tmp_path / "nope" / "python")}
        with pytest.raises(SetupError, match=r"\$KOHYA_PYTHON=.*nope/python: no such file"):
            require_install(sd, env=env)

    def test_bad_config_file(self, tmp_path: Path, home: Path) -> None:
        config = tmp_path / "config.toml"
        config.write_text("sd_scripts = \n")
        with pytest.raises(SetupError, match="cannot be read"):
            require_install(env={}, config_file=config)
        config.write_text("sd_scripts = 3\n")
        with pytest.raises(SetupError, match="'sd_scripts' must be a non-empty string"):
            require_install(env={}, config_file=config)


class TestReadCommit:
    SHA = "48d368fa557731ad0488c07304dfeba8c07910eb"

    def test_snapshot_file(self, tmp_path: Path) -> None:
        (tmp_path / ".snapshot-commit").write_text(self.SHA + "\n")
        assert read_commit(tmp_path) == self.SHA

    def test_none_without_git(self, tmp_path: Path) -> None:
        assert read_commit(tmp_path) is None

    def test_git_head_by_hand(self, tmp_path: Path) -> None:
        git = tmp_path / ".git"
        (git / "refs" / "heads").mkdir(parents=True)
        (git / "HEAD").write_text("ref: refs/heads/main\n")
        (git / "refs" / "heads" / "main").write_text(self.SHA + "\n")
        assert read_commit(tmp_path) == self.SHA

    def test_packed_refs_and_submodule_gitdir(self, tmp_path: Path) -> None:
        modules = tmp_path / "kohya_ss" / ".git" / "modules" / "sd-scripts"
        modules.mkdir(parents=True)
        (modules / "HEAD").write_text("ref: refs/heads/dev\n")
        (modules / "packed-refs").write_text(f"# pack-refs\n{self.SHA} refs/heads/dev\n")
        sd = tmp_path / "kohya_ss" / "sd-scripts"
        sd.mkdir()
        (sd / ".git").write_text("gitdir: ../.git/modules/sd-scripts\n")
        assert read_commit(sd) == self.SHA

    def test_detached_head(self, tmp_path: Path) -> None:
        (tmp_path / ".git").mkdir()
        (tmp_path / ".git" / "HEAD").write_text(self.SHA.upper() + "\n")
        assert read_commit(tmp_path) == self.SHA

    @pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
    def test_real_git(self, tmp_path: Path) -> None:
        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path), *args],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()

        git("init", "-q")
        (tmp_path / "f").write_text("x")
        git("add", "f")
        git("commit", "-q", "-m", "x")
        assert read_commit(tmp_path) == git("rev-parse", "HEAD")
