"""Build an sd-scripts install: the only side effects of ``install`` (git, venv, pip).

Each step records what it was asked to do in ``<target>/.install-state.json`` when it finishes;
a rerun skips every step whose inputs did not change and whose result still works, so ``install``
is idempotent and an interrupted one resumes where it stopped. The marker file
(:data:`~kohya_orchestrator.installer.plan.MARKER`) is written last: an install without it is
unfinished. Nothing outside the target folder is touched, except the user config when it names no
install yet (``--no-register`` turns that off). Every child process runs to completion or is
killed before this module returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._fs import write_atomic
from .._version import __version__
from ..errors import SetupError
from .plan import (
    MARKER,
    InstallOptions,
    TorchChoice,
    choose_torch,
    explain_failure,
    filter_requirements,
    parse_cuda_version,
)

__all__ = ["InstallResult", "StepReport", "detect_cuda", "run_install"]

STATE = ".install-state.json"
LOG = "install.log"
_SUPPORTED = ((3, 10), (3, 12))
_STEPS = ("machine", "sd-scripts", "venv", "torch", "requirements", "extras", "verify", "finish")
# Free disk a fresh install needs, in GB (measured: a CPU venv ~2.5 GB, a CUDA one 6-8 GB).
_NEED_GB_CPU = 3.0
_NEED_GB_CUDA = 9.0
_PROGRESS_PREFIXES = (
    "Collecting ",
    "Downloading ",
    "Installing collected packages",
    "Successfully",
)


@dataclass(frozen=True)
class StepReport:
    """One line of progress.

    Attributes:
        index: 1-based number of the step.
        total: How many steps there are.
        step: The step's name (``sd-scripts``, ``venv``, ``torch``, ...).
        status: ``start``, ``progress`` (a line from git/pip), ``done``, ``skipped`` or ``note``.
        detail: What happened, in words.
    """

    index: int
    total: int
    step: str
    status: str
    detail: str


Reporter = Callable[[StepReport], None]


@dataclass
class InstallResult:
    """What the finished install is."""

    target: Path
    sd_scripts_dir: Path
    python: Path
    commit: str
    torch: TorchChoice
    versions: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    registered: Path | None = None
    seconds: float = 0.0


def detect_cuda(timeout_s: float = 20) -> tuple[int, int] | None:
    """The driver's CUDA version from ``nvidia-smi``; None without one (or when it fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_cuda_version(done.stdout) if done.returncode == 0 else None


class _Installer:
    def __init__(self, options: InstallOptions, report: Reporter, env: Mapping[str, str]) -> None:
        self.o = options
        self.report = report
        self.target = Path(os.path.abspath(options.target.expanduser()))
        self.sd_dir = self.target / "sd-scripts"
        self.venv = self.target / "venv"
        self.py = self.venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        self.env = {
            **env,
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "GIT_TERMINAL_PROMPT": "0",  # a private or mistyped URL fails instead of asking
        }
        self.state: dict[str, str] = {}
        self.notes: list[str] = []
        self.index = 0
        self.torch: TorchChoice | None = None
        self.versions: dict[str, str | None] = {}

    # ------------------------------------------------------------------ helpers
    def _say(self, status: str, detail: str) -> None:
        self.report(StepReport(self.index, len(_STEPS), _STEPS[self.index - 1], status, detail))

    def _begin(self, detail: str) -> None:
        self.index += 1
        self._say("start", detail)

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self._say("note", text)

    def _load_state(self) -> None:
        path = self.target / STATE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            self.state = {str(k): str(v) for k, v in data.items()}

    def _save_state(self, step: str, key: str) -> None:
        self.state[step] = key
        write_atomic(self.target / STATE, json.dumps(self.state, indent=2, sort_keys=True) + "\n")

    def _run(self, argv: Sequence[str], what: str, cwd: Path | None = None) -> str:
        """Run one command, logging its output; raise a SetupError that says why it failed."""
        log_path = self.target / LOG
        tail: deque[str] = deque(maxlen=60)
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"\n$ {' '.join(argv)}\n")
            log.flush()
            try:
                proc = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                )
            except OSError as exc:
                raise SetupError(
                    f"{what}: could not run {argv[0]}: {exc}",
                    hint="check that it is installed and on PATH",
                ) from exc
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    tail.append(line)
                    if line.startswith(_PROGRESS_PREFIXES):
                        self._say("progress", line.strip()[:120])
                rc = proc.wait()
            finally:
                if proc.poll() is None:  # interrupted (Ctrl-C) or failed while reading
                    proc.kill()
                    proc.wait()
                proc.stdout.close()  # type: ignore[union-attr]
        text = "".join(tail)
        if rc != 0:
            known = explain_failure(text)
            last = "\n".join(f"    {x.rstrip()}" for x in list(tail)[-8:])
            what_failed = f"{what} failed (exit {rc})"
            if known is not None:
                what_failed += f": {known[0]}"
            raise SetupError(
                f"{what_failed}\n  last lines:\n{last}\n  full log: {log_path}",
                hint=(known[1] if known else "read the log above") + "; finished steps are kept",
            )
        return text

    def _quiet(
        self, argv: Sequence[str], timeout_s: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run a check whose output is not logged; rc -1 when it could not run or timed out."""
        try:
            return subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                env=self.env,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return subprocess.CompletedProcess(list(argv), -1, "", str(exc))

    def _venv_python_runs(self) -> bool:
        return self._quiet([str(self.py), "-m", "pip", "--version"], 60).returncode == 0

    def _installed(self, dists: Sequence[str]) -> dict[str, str | None]:
        code = (
            "import json,sys\nfrom importlib import metadata as m\nout={}\n"
            "for d in sys.argv[1:]:\n"
            "    try: out[d]=m.version(d)\n"
            "    except m.PackageNotFoundError: out[d]=None\n"
            "print(json.dumps(out))"
        )
        out = self._run([str(self.py), "-c", code, *dists], "reading installed versions")
        data = json.loads(out.strip().splitlines()[-1])
        return {str(k): None if v is None else str(v) for k, v in data.items()}

    def _pip(self, args: Sequence[str], what: str, index: Sequence[str] = ()) -> None:
        self._run(
            [str(self.py), "-m", "pip", "install", *index, *self.o.pip_args, *args],
            what,
            cwd=self.target,
        )

    # ------------------------------------------------------------------ steps
    def check_machine(self) -> None:
        self._begin(f"checking the machine for {self.target}")
        if self.target.exists() and not self.target.is_dir():
            raise SetupError(
                f"{self.target} is a file", hint="pass a folder for the install (new or empty)"
            )
        ours = (self.target / STATE).is_file() or (self.target / MARKER).is_file()
        if self.target.is_dir() and not ours and any(self.target.iterdir()):
            raise SetupError(
                f"{self.target} is not empty and was not made by install: nothing was changed",
                hint="pass a new or empty folder; to check an existing kohya install use "
                "'python -m kohya_orchestrator doctor --sd-scripts " + str(self.target) + "'",
            )
        self.target.mkdir(parents=True, exist_ok=True)
        self._load_state()
        if shutil.which("git") is None and "sd-scripts" not in self.state:
            raise SetupError(
                "git is not installed (needed to check out sd-scripts)",
                hint="install git (Debian/Ubuntu: apt install git; Windows: git-scm.com), "
                "then run install again",
            )
        cuda = detect_cuda() if self.o.torch_build == "auto" else None
        self.torch = choose_torch(
            self.o.torch_build,
            cuda,
            platform.system(),
            packages=self.o.torch_packages,
            index=self.o.torch_index,
        )
        self._say("note", f"torch: {self.torch.reason}")
        if "torch" not in self.state:
            gpu_wheels = not self.torch.cpu_only or self.torch.index_url is None
            need = _NEED_GB_CUDA if gpu_wheels else _NEED_GB_CPU
            free = shutil.disk_usage(self.target).free / 1e9
            if free < need:
                raise SetupError(
                    f"{free:.1f} GB free at {self.target}; this install needs about {need:g} GB",
                    hint="free some space or pass another DIR",
                )
        self._say("done", f"{len(_STEPS)} steps; log: {self.target / LOG}")

    def checkout(self) -> str:
        self._begin(f"sd-scripts {self.o.ref[:12]} from {self.o.source}")
        if (self.sd_dir / "train_network.py").is_file():
            head = self._run(
                ["git", "-C", str(self.sd_dir), "rev-parse", "HEAD"], "reading the checkout"
            ).strip()
            wanted = self._rev(self.o.ref)
            if head != wanted:
                self._note(
                    f"kept the existing checkout at {head[:12]} (asked for {self.o.ref[:12]}): "
                    f"run 'git -C {self.sd_dir} checkout {self.o.ref}' to change it"
                )
            self._save_state("sd-scripts", head)
            self._say("skipped", f"already checked out at {head[:12]}")
            return head
        partial = self.target / "sd-scripts.partial"
        if partial.exists():  # an interrupted clone of ours
            shutil.rmtree(partial)
        self._run(
            ["git", "clone", "--no-checkout", "--progress", self.o.source, str(partial)],
            "cloning sd-scripts",
        )
        self._run(
            ["git", "-C", str(partial), "checkout", "-q", "--detach", self.o.ref],
            f"checking out {self.o.ref}",
        )
        missing = [
            line[3:]
            for line in self._run(
                ["git", "-C", str(partial), "status", "--porcelain"], "checking the checkout"
            ).splitlines()
            if line.startswith(" D ")
        ]
        if missing:
            self._note(
                f"{len(missing)} file(s) the source lacks were left out: {', '.join(missing[:4])}"
            )
        if not (partial / "train_network.py").is_file() or not (partial / "library").is_dir():
            raise SetupError(
                f"{self.o.source} at {self.o.ref} has no train_network.py and library/",
                hint="point --from at kohya-ss/sd-scripts (or a fork of it)",
            )
        partial.replace(self.sd_dir)
        head = self._run(
            ["git", "-C", str(self.sd_dir), "rev-parse", "HEAD"], "reading the checkout"
        ).strip()
        self._save_state("sd-scripts", head)
        self._say("done", f"checked out {head[:12]}")
        return head

    def _rev(self, ref: str) -> str | None:
        argv = ["git", "-C", str(self.sd_dir), "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"]
        done = self._quiet(argv, 60)
        return done.stdout.strip() if done.returncode == 0 else None

    def make_venv(self) -> None:
        self._begin(f"venv at {self.venv}")
        if self.py.is_file() and self._venv_python_runs():
            self._say("skipped", "already there")
            return
        if self.venv.exists():
            if "venv" not in self.state:
                raise SetupError(
                    f"{self.venv} exists but does not run, and install did not make it",
                    hint=f"remove {self.venv} and run install again",
                )
            shutil.rmtree(self.venv)
        base = self._base_python()
        self._run([str(base), "-m", "venv", str(self.venv)], "creating the venv")
        self._save_state("venv", str(base))
        self._say("done", f"created with {base}")

    def _base_python(self) -> Path:
        if self.o.python is not None:
            return self.o.python
        if _SUPPORTED[0] <= sys.version_info[:2] <= _SUPPORTED[1]:
            return Path(sys.executable)
        for name in ("python3.10", "python3.11", "python3.12"):
            found = shutil.which(name)
            if found:
                return Path(found)
        raise SetupError(
            f"no Python 3.10-3.12 found (this one is {platform.python_version()}): sd-scripts "
            "and its pinned packages run on 3.10-3.12",
            hint="install Python 3.10 (what sd-scripts documents) and pass --python PATH",
        )

    def install_torch(self) -> None:
        assert self.torch is not None
        t = self.torch
        self._begin(f"{' '.join(t.packages)} ({t.build})")
        key = _key(t.packages, t.index_url or "", self.o.pip_args)
        if self.state.get("torch") == key and self._imports("torch"):
            self._say("skipped", "already installed")
            return
        index = [] if t.index_url is None else ["--index-url", t.index_url]
        self._pip(list(t.packages), f"installing {' '.join(t.packages)}", index)
        self._save_state("torch", key)
        self._say("done", "installed")

    def _constraints(self) -> Path:
        """Pin torch and torchvision to what the torch step installed (never swapped later)."""
        versions = self._installed(["torch", "torchvision"])
        lines = [f"{d}=={v}" for d, v in versions.items() if v]
        path = self.target / "constraints.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def install_requirements(self) -> None:
        assert self.torch is not None
        self._begin("sd-scripts' requirements.txt")
        text = (self.sd_dir / "requirements.txt").read_text(encoding="utf-8")
        keep, dropped = filter_requirements(text, cpu_only=self.torch.cpu_only)
        for note in dropped:
            self._say("note", note)
        key = _key(keep, self.state.get("torch", ""), self.o.pip_args)
        if self.state.get("requirements") == key and self._imports("accelerate", "diffusers"):
            self._say("skipped", "already installed")
            return
        req = self.target / "requirements-install.txt"
        req.write_text("\n".join(keep) + "\n", encoding="utf-8")
        self._pip(["-c", str(self._constraints()), "-r", str(req)], "installing requirements")
        self._save_state("requirements", key)
        self._say("done", f"{len(keep)} requirements")

    def install_extras(self) -> None:
        extras = list(self.o.extras)
        self._begin(", ".join(extras) or "no extra packages")
        key = _key(extras, self.state.get("requirements", ""), self.o.pip_args)
        if self.state.get("extras") == key or not extras:
            self._say("skipped", "already installed" if extras else "none asked")
            return
        self._pip(["-c", str(self._constraints()), *extras], "installing " + ", ".join(extras))
        self._save_state("extras", key)
        self._say("done", "installed")

    def verify(self) -> None:
        self._begin("importing what training needs")
        modules = ["torch", "torchvision", "accelerate", "diffusers", "transformers"]
        if any(e.startswith("lycoris") for e in self.o.extras):
            modules.append("lycoris")
        # Imported from the sd-scripts folder, as the trainer does.
        code = "import " + ", ".join(modules) + "; import library.train_util"
        self._run([str(self.py), "-c", code], "importing " + ", ".join(modules), cwd=self.sd_dir)
        done = self._quiet([str(self.py), "-m", "pip", "check"])
        if done.returncode != 0:
            first = done.stdout.strip().splitlines()[:3]
            self._note("pip check: " + "; ".join(first))
        self.versions = self._installed(
            ["torch", "torchvision", "accelerate", "diffusers", "transformers", "lycoris-lora"]
        )
        shown = ", ".join(f"{k} {v}" for k, v in self.versions.items() if v)
        self._say("done", shown)

    def _imports(self, *modules: str) -> bool:
        return self._quiet([str(self.py), "-c", "import " + ", ".join(modules)]).returncode == 0

    def finish(self, commit: str, config_file: Path | None) -> Path | None:
        assert self.torch is not None
        self._begin("recording the install")
        marker = {
            "made_by": f"kohya_orchestrator {__version__} install",
            "source": self.o.source,
            "ref": self.o.ref,
            "commit": commit,
            "torch_build": self.torch.build,
            "torch_packages": list(self.torch.packages),
            "torch_index": self.torch.index_url,
            "versions": self.versions,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_atomic(self.target / MARKER, json.dumps(marker, indent=2) + "\n")
        registered = self._register(config_file) if self.o.register else None
        self._say("done", f"marker {self.target / MARKER}")
        return registered

    def _register(self, config_file: Path | None) -> Path | None:
        if config_file is None:
            self._note("no HOME or XDG_CONFIG_HOME: the install was not registered")
            return None
        line = f"sd_scripts = {json.dumps(str(self.target))}\n"
        if not config_file.exists():
            config_file.parent.mkdir(parents=True, exist_ok=True)
            config_file.write_text(
                "# Written by 'python -m kohya_orchestrator install'.\n" + line, encoding="utf-8"
            )
            return config_file
        text = config_file.read_text(encoding="utf-8")
        if any(x.strip().startswith("sd_scripts") for x in text.splitlines()):
            if str(self.target) not in text:
                self._note(
                    f"{config_file} already names an install (sd_scripts = ...): left as it "
                    f"is; to use this one, set {line.strip()} there or pass --sd-scripts "
                    f"{self.target}"
                )
            return None
        # Top-level keys must come before any [table]; the file is ours to read, so prepend.
        write_atomic(config_file, line + text)
        return config_file


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def run_install(
    options: InstallOptions,
    report: Reporter | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> InstallResult:
    """Build (or finish, or check) an install; see the module docstring.

    Args:
        options: What to install where.
        report: Called with every progress line (default: nothing).
        env: Environment for the child processes (default: ``os.environ``).
        config_file: The user config to register the install in (default: none).

    Returns:
        What was installed.

    Raises:
        SetupError: Something could not be done; the message says what, why and how to fix it,
            and the steps already finished are kept for the next run.
    """
    started = time.monotonic()
    job = _Installer(options, report or (lambda _r: None), os.environ if env is None else env)
    job.check_machine()
    commit = job.checkout()
    job.make_venv()
    job.install_torch()
    job.install_requirements()
    job.install_extras()
    job.verify()
    registered = job.finish(commit, config_file)
    assert job.torch is not None
    return InstallResult(
        target=job.target,
        sd_scripts_dir=job.sd_dir,
        python=job.py,
        commit=commit,
        torch=job.torch,
        versions=job.versions,
        notes=job.notes,
        registered=registered,
        seconds=time.monotonic() - started,
    )
