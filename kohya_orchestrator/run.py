"""The orchestrator: render -> write the run directory -> spawn -> parse -> fan out events.

``start()`` returns a :class:`Run` at once; ``Run.wait()`` blocks until the trainer ends and
returns a :class:`RunResult`. Everything a run did is in its run directory (launch/rundir.py),
including for runs that crashed. sd-scripts exits 0 when it finds no data ("No data found"), so
success is judged by the events and the final checkpoint file, not by the exit code alone.

Faults: a failed write into the run directory (``OSError``, a full disk) stops the trainer and
ends the run as failed ("no space left on <run dir>"), its last records written into the space the
run directory reserved. Its lock, held for the run's life, tells readers when we were killed.
"""

from __future__ import annotations

import codecs
import contextlib
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from io import FileIO
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._version import __version__
from .datasets.plan_event import predicted_plan
from .environment.discovery import Install, require_install
from .environment.lycoris import check_before_launch
from .environment.manifest import arguments_of
from .environment.preflight import preflight
from .environment.probe import Environment, probe_environment
from .errors import ConfigError, LaunchError, Problem
from .events import (
    ChildError,
    ChildWarning,
    Event,
    EventAdapter,
    LogParser,
    RunFinished,
    RunStarted,
    RunStatus,
    StepProgress,
    SummaryFold,
    TrainingPlan,
)
from .events import ResourceSample as ResourceSampleEvent
from .events import read_events as read_events  # its old home: callers import it from here
from .jobs.arguments import check_job_arguments
from .jobs.checks import check_outputs, check_paths
from .jobs.layers import resolve_relative_paths
from .jobs.loading import validate_job
from .launch.monitor import ResourceMonitor
from .launch.process import ProcessHandle, spawn
from .launch.rundir import RunDir, redact_env, write_error_reason
from .models import TrainingJob
from .outputs.lora_header import check_run_outputs
from .outputs.pagesink import RunPageSink
from .outputs.watch import RunWatch
from .render.command import LaunchOptions, build_launch_spec
from .render.files import CONFIG_NAME, DATASET_NAME, PROMPTS_NAME, render_into, shipped_preset_file
from .sinks import EventSink, SinkError

__all__ = ["Run", "RunResult", "Watchdogs", "absolute_job", "start"]


class Watchdogs(BaseModel):
    """Automatic stops. Each one ends the run as failed, with the reason in the run directory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stop_on_nan: bool = Field(default=True, description="Stop when avr_loss becomes NaN.")
    stall_minutes: float | None = Field(
        default=30.0, gt=0, description="Stop when no output arrives for this long (None: never)."
    )
    stop_on_zero_images: bool = Field(
        default=True, description="Stop when the plan shows 0 training images."
    )
    cancel_grace_s: float = Field(default=10.0, gt=0, description="Seconds between signals.")


class RunResult(BaseModel):
    """How a run ended."""

    model_config = ConfigDict(frozen=True)

    status: RunStatus
    returncode: int | None
    run_dir: Path
    duration_s: float
    reason: str | None = None
    outputs: list[Path] = Field(default_factory=list, description="Checkpoint files written.")
    errors: list[ChildError] = Field(default_factory=list)
    remedies: list[str] = Field(
        default_factory=list, description="Job-specific fixes, e.g. memory switches after an OOM."
    )
    write_error: str | None = Field(
        default=None, description="Set when a write into the run directory failed (disk full)."
    )

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return bool(self.status == RunStatus.SUCCEEDED)


def absolute_job(job: TrainingJob, base: Path) -> TrainingJob:
    """The same job with relative paths made absolute against ``base`` (sd-scripts runs elsewhere)."""
    data = job.model_dump(mode="json", exclude_none=True)
    return validate_job(resolve_relative_paths(data, base))


@dataclass
class _State:
    """What the runner keeps besides the events' summary (``Run._fold``)."""

    stop_reason: str | None = None
    user_canceled: bool = False
    sink_errors: list[str] = field(default_factory=list)
    write_error: str | None = None
    events_lost: int = 0  # events not written to events.jsonl (disk full)
    events_torn: bool = False  # a line was written in part
    finishing: bool = False  # the final records: written whatever failed before
    log_cut: bool = False  # writing console.log failed


class Run:
    """A running (or finished) training. Create with :func:`start`."""

    def __init__(
        self,
        job: TrainingJob,
        run_dir: RunDir,
        sinks: Sequence[EventSink],
        watchdogs: Watchdogs,
        iterable: bool = True,
    ) -> None:
        """Use :func:`start`."""
        self._iterable = iterable
        self.job = job
        self.run_dir = run_dir
        self.watchdogs = watchdogs
        self._sinks = [*sinks, RunPageSink(run_dir.path)]  # index.html in every run directory
        self._watch = RunWatch(job)  # new samples and their sanity, the plan vs the banner
        self._lock = threading.RLock()
        self._seq = 0
        self._t0 = time.monotonic()
        self._last_output = self._t0
        self._parser = LogParser()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._state = _State()
        self._fold = SummaryFold()
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._done = threading.Event()
        self._result: RunResult | None = None
        self._handle: ProcessHandle | None = None
        self._stopper: threading.Thread | None = None
        self._monitor: ResourceMonitor | None = None
        self._events_file: FileIO | None = None  # unbuffered: a failed write keeps nothing back
        try:
            self._events_file = run_dir.events_jsonl.open("ab", buffering=0)
        except OSError as exc:
            self._write_failed(exc)

    # ------------------------------------------------------------------ event fan-out
    def _emit(self, events: Sequence[Event]) -> None:
        with self._lock:
            for event in events:
                event = event.model_copy(update={"seq": self._seq, "t": round(self._now(), 3)})
                self._seq += 1
                self._append(EventAdapter.dump_json(event) + b"\n")
                self._observe(event)
                for sink in self._sinks:
                    try:
                        sink.handle(event)
                    except Exception as exc:  # a consumer must never kill the training
                        self._state.sink_errors.append(repr(SinkError(f"{sink!r}: {exc!r}")))
                if self._iterable:
                    self._queue.put(event)

    def _append(self, line: bytes) -> None:
        s = self._state
        if self._events_file is None or (s.write_error is not None and not s.finishing):
            s.events_lost += 1
            return
        view = memoryview(line)
        try:
            while view:
                view = view[self._events_file.write(view) :]
        except OSError as exc:
            s.events_lost += 1
            s.events_torn = s.events_torn or len(view) < len(line)
            if s.finishing:
                s.sink_errors.append(f"writing events.jsonl: {exc}")
            else:
                self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        """A write into the run directory failed: stop the trainer, end the run as failed."""
        reason = write_error_reason(exc, self.run_dir.path)
        with self._lock:
            if self._state.write_error is None:
                self._state.write_error = reason
        self._stop(reason)

    def _on_log_error(self, exc: OSError) -> None:
        self._state.log_cut = True
        self._write_failed(exc)

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _observe(self, event: Event) -> None:
        self._fold.add(event)
        if isinstance(event, TrainingPlan):
            if self.watchdogs.stop_on_zero_images and event.train_images_with_repeats == 0:
                self._stop("the plan shows 0 training images (No data found)")
        elif isinstance(event, StepProgress):
            if (
                self.watchdogs.stop_on_nan
                and event.avr_loss is not None
                and math.isnan(event.avr_loss)
            ):
                self._stop(f"loss became NaN at step {event.step}")

    def _on_output(self, chunk: bytes) -> None:
        self._last_output = time.monotonic()
        text = self._decoder.decode(chunk)
        if text:
            events = self._parser.feed(text, t=self._now())
            self._emit(self._watch.merge(events))

    def _on_sample(self, sample: dict[str, Any]) -> None:
        self._emit(
            [
                ResourceSampleEvent(
                    seq=0,
                    cpu_percent=float(sample.get("cpu_percent", 0.0)),
                    rss_bytes=int(sample.get("rss_bytes", 0)),
                    num_processes=int(sample.get("num_processes", 0)),
                    gpu_memory_used_mb=sample.get("gpu_memory_used_mib"),
                )
            ]
        )
        stall = self.watchdogs.stall_minutes
        if stall is not None and time.monotonic() - self._last_output > stall * 60:
            self._stop(f"no output for {stall:g} minutes (stalled)")

    # ------------------------------------------------------------------ control
    def _stop(self, reason: str) -> None:
        # Called while an event is handled (reader or monitor thread): the stop runs on its own
        # thread. Not a daemon, and joined before the run is final (_wait_child): its escalation
        # (SIGINT, SIGTERM, SIGKILL) always completes, even when the launcher dies at the SIGINT.
        with self._lock:
            if self._state.stop_reason is not None:
                return
            self._state.stop_reason = reason
            self._stopper = threading.Thread(target=self._cancel_child, name="watchdog-stop")
            self._stopper.start()

    def _cancel_child(self) -> None:
        if self._handle is not None:
            self._handle.cancel(grace_s=self.watchdogs.cancel_grace_s)

    def cancel(self) -> None:
        """Stop the training: SIGINT to its process group, then SIGTERM, then SIGKILL the tree."""
        self._state.user_canceled = True
        self._cancel_child()

    def _wait_child(self) -> None:
        assert self._handle is not None
        rc: int | None = None
        try:
            rc = self._handle.wait()
            if self._monitor is not None:
                self._monitor.stop()
            tail = self._decoder.decode(b"", final=True)
            events = self._parser.feed(tail, t=self._now()) if tail else []
            events += self._parser.close()
            self._emit(self._watch.merge(events, final=True))
            with self._lock:
                stopper = self._stopper
            if stopper is not None:
                stopper.join()
            leftovers = self._handle.leftovers
            if leftovers:
                self._emit([_leftover_warning(leftovers)])
        finally:
            self._finish(rc)

    def _finish(self, rc: int | None, reason: str | None = None) -> None:
        # Whatever fails here, the run ends: a waiter never hangs, the lock is always released.
        try:
            self._result = self._final_records(rc, reason)
        finally:
            if self._result is None:  # pragma: no cover - a bug while finishing
                with contextlib.suppress(OSError):
                    self.run_dir.set_status(RunStatus.FAILED.value, rc)
                self._result = RunResult(
                    status=RunStatus.FAILED,
                    returncode=rc,
                    run_dir=self.run_dir.path,
                    duration_s=self._now(),
                    reason=reason or self._state.write_error or "the run could not be finished",
                )
            with contextlib.suppress(OSError):
                if self._events_file is not None:
                    self._events_file.close()
            self.run_dir.release()
            self._queue.put(None)
            self._done.set()

    def _final_records(self, rc: int | None, reason: str | None) -> RunResult:
        s = self._state
        seen = self._fold.summary()
        checkpoints = [Path(e.path) for e in seen.checkpoint_events]
        final = Path(self.job.training.output_dir) / (
            f"{self.job.training.output_name}.{self.job.training.save_model_as}"
        )
        if s.user_canceled:
            status, reason = RunStatus.CANCELED, reason or "canceled"
        elif s.write_error is not None:
            status, reason = RunStatus.FAILED, s.write_error
        elif s.stop_reason is not None:
            status, reason = RunStatus.FAILED, s.stop_reason
        elif rc != 0:
            # the classified cause (an OOM, a bad image), not accelerate's CalledProcessError
            failure = seen.failure
            status = RunStatus.FAILED
            reason = reason or (failure.message if failure else f"exit code {rc}")
        elif any(e.category == "no_data" for e in seen.errors):
            status, reason = RunStatus.FAILED, "sd-scripts found no data (it exits 0 then)"
        elif not final.is_file():
            status, reason = RunStatus.FAILED, f"exit code 0 but no final model file {final}"
        else:
            status = RunStatus.SUCCEEDED
            try:  # the saved files are what the job asked for (outputs/lora_header.py)
                self._emit(check_run_outputs(self.job, self.run_dir, checkpoints, seen.plan))
            except Exception as exc:  # never fail a finished training over its check
                s.sink_errors.append(f"output check: {exc!r}")
        self._reopen_after_write_error()
        remedies: list[str] = []
        if status == RunStatus.FAILED and any(e.category == "oom" for e in seen.errors):
            from .jobs.remedies import memory_remedies

            remedies = [f"{r.description}: {r.as_set_args()}" for r in memory_remedies(self.job)]
            if remedies:
                self._write_file("remedies.txt", "\n".join(remedies) + "\n")
        duration = self._now()
        self._emit(
            [RunFinished(seq=0, status=status, returncode=rc, duration_s=duration, reason=reason)]
        )
        try:
            self.run_dir.set_status(status.value, rc)
        except OSError as exc:
            s.sink_errors.append(f"writing the status: {exc}")
        for sink in self._sinks:
            try:
                sink.close()
            except Exception as exc:
                s.sink_errors.append(repr(SinkError(f"{sink!r}.close(): {exc!r}")))
        if s.sink_errors:
            self._write_file("sink_errors.txt", "\n".join(s.sink_errors) + "\n")
        ended = self._fold.summary()  # with the events emitted above
        return RunResult(
            status=status,
            returncode=rc,
            run_dir=self.run_dir.path,
            duration_s=duration,
            reason=reason,
            # by name inside output_dir: the logged path is the same file (fake trainers differ)
            outputs=[
                Path(self.job.training.output_dir) / Path(e.path).name
                for e in ended.checkpoint_events
                if (Path(self.job.training.output_dir) / Path(e.path).name).exists()
            ],
            errors=list(ended.errors),
            remedies=remedies,
            write_error=s.write_error,
        )

    def _reopen_after_write_error(self) -> None:
        """Free the reserved space for the final records; after a failed write, say what is lost."""
        self.run_dir.release_space()
        s = self._state
        with self._lock:
            s.finishing = True
            if s.write_error is None:
                return
            with contextlib.suppress(OSError):
                if self._events_file is None:
                    self._events_file = self.run_dir.events_jsonl.open("ab", buffering=0)
                if s.events_torn:
                    self._events_file.write(b"\n")  # end the cut line: readers skip it
                    s.events_torn = False
            lost = [f"{s.events_lost} events were not recorded"] if s.events_lost else []
            if s.log_cut:
                lost.append("console.log is cut short")
            done = "the trainer was stopped" if self._handle is not None else "nothing was started"
            message = "; ".join([f"{s.write_error}: {done}", *lost])
            self._emit([ChildWarning(seq=0, message=message, source="launch")])

    def _write_file(self, name: str, text: str) -> None:
        try:
            self.run_dir.write_text(name, text)
        except OSError as exc:
            self._state.sink_errors.append(f"writing {name}: {exc}")

    # ------------------------------------------------------------------ public
    @property
    def run_id(self) -> str:
        """The run directory's name."""
        return self.run_dir.run_id

    @property
    def done(self) -> bool:
        """True once the trainer has ended and the result is written."""
        return self._done.is_set()

    @property
    def pids(self) -> list[int]:
        """The trainer's process and its descendants, while running."""
        if self._handle is None:
            return []
        return [self._handle.pid, *self._handle.descendants()]

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until the run ends; returns its result (TimeoutError after ``timeout``)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"run {self.run_id} still running after {timeout} s")
        assert self._result is not None
        return self._result

    def events(self) -> Iterator[Event]:
        """Every event of the run, blocking until it ends (single consumer).

        Raises:
            RuntimeError: the run was started with ``iterable=False``.
        """
        if not self._iterable:
            raise RuntimeError("this run was started with iterable=False; read events.jsonl")
        while True:
            event = self._queue.get()
            if event is None:
                self._queue.put(None)
                return
            yield event


def _leftover_warning(leftovers: list[str]) -> ChildWarning:
    count = f"{len(leftovers)} process" + ("es" if len(leftovers) > 1 else "")
    return ChildWarning(
        seq=0,
        message=f"stopped {count} left running after the trainer's main process exited: "
        + "; ".join(leftovers),
        source="launch",
    )


def _write_run_files(
    run_dir: RunDir, job: TrainingJob, install: Install, options: LaunchOptions
) -> Any:
    preset_file = shipped_preset_file(job)  # LyCORIS reads presets from a path: copy it here
    if preset_file is not None:
        run_dir.write_text(*preset_file)
    files = render_into(job, run_dir.path, trainer_cwd=True)  # no user path in ss_network_args
    run_dir.write_text("job.json", job.model_dump_json(indent=2) + "\n")
    run_dir.write_text(CONFIG_NAME, files.config_toml)
    run_dir.write_text(DATASET_NAME, files.dataset_toml)
    if files.sample_prompts is not None:
        run_dir.write_text(PROMPTS_NAME, files.sample_prompts)
    spec = build_launch_spec(
        job,
        python=Path.cwd() / install.python,  # absolute: the child starts in the run directory
        sd_scripts_dir=Path.cwd() / install.sd_scripts_dir,
        config_file=run_dir.path.resolve() / CONFIG_NAME,
        options=options,
        cwd=run_dir.path.resolve(),
    )
    run_dir.write_json(
        "command.json",
        {
            "argv": list(spec.argv),
            "cwd": str(spec.cwd),
            "env": redact_env(dict(spec.env)),
            "kohya_orchestrator": __version__,
        },
    )
    return spec


def start(
    job: TrainingJob,
    *,
    install: Install | None = None,
    sd_scripts: Path | None = None,
    runs: Path = Path("runs"),
    launch: LaunchOptions | None = None,
    sinks: Sequence[EventSink] = (),
    watchdogs: Watchdogs | None = None,
    environment: Environment | None = None,
    probe: bool = True,
    extra_env: dict[str, str] | None = None,
    monitor_interval_s: float = 5.0,
    iterable: bool = True,
) -> Run:
    """Check, render, write the run directory and start the trainer; returns at once.

    Raises:
        ConfigError: a path is missing or the output would overwrite an earlier run's files.
        SetupError: no sd-scripts install was found.
        LaunchError: the trainer could not be started.

    ``iterable=False`` keeps no events in memory for :meth:`Run.events` (long unattended runs:
    sinks and events.jsonl still get every event).
    """
    install = install or require_install(sd_scripts)
    job = absolute_job(job, Path.cwd())
    problems: list[Problem] = check_paths(job) + check_outputs(job)
    problems += check_before_launch(job, install, environment, probe=probe)  # LyCORIS traps
    if not problems:  # the arguments the job renders, against the install's own parsers
        problems += check_job_arguments(job, arguments_of(install, probe=probe)[0])
    if not problems and probe:  # the packages and the GPU this job needs
        if environment is None:
            environment = probe_environment(install)
        problems += [p for p in preflight(job, install, environment) if p.severity == "error"]
    if problems:
        raise ConfigError(problems, source=f"job {job.display_name}")
    try:
        run_dir = RunDir.begin(Path(runs), job.display_name)
    except OSError as exc:
        reason = write_error_reason(exc, Path(runs))
        raise LaunchError(f"{reason}: the trainer was not started") from exc
    run = Run(job, run_dir, sinks, watchdogs or Watchdogs(), iterable=iterable)
    try:
        run_dir.set_status(RunStatus.PENDING.value)
        spec = _write_run_files(run_dir, job, install, launch or LaunchOptions())
        if extra_env:
            spec = spec.model_copy(update={"env": {**spec.env, **extra_env}})
        if environment is None and probe:
            environment = probe_environment(install)
        if environment is not None:
            run_dir.write_text("environment.json", environment.model_dump_json(indent=2) + "\n")
        run_dir.set_status(RunStatus.STARTING.value)
        run._emit([RunStarted(seq=0, run_id=run.run_id, argv=list(spec.argv), cwd=str(spec.cwd))])
        opts = launch or LaunchOptions()  # the banner counts batches per process, all machines
        n = opts.num_processes * opts.num_machines
        run._emit(run._watch.expect(predicted_plan(job, num_processes=n)))
    except OSError as exc:
        run._write_failed(exc)
    except Exception as exc:  # a bug: the run still ends, it never stays pending
        run._finish(None, reason=f"the run could not be prepared: {exc!r}")
        raise
    if run._state.write_error is None:
        try:
            run._handle = spawn(
                spec,
                console_log=run_dir.console_log,
                on_output=run._on_output,
                on_log_error=run._on_log_error,
                leftover_grace_s=min(run.watchdogs.cancel_grace_s, 5.0),
            )
        except OSError as exc:  # console.log could not be created
            run._write_failed(exc)
        except Exception:
            run._finish(None, reason="the trainer could not be started")
            raise
    if run._handle is None:  # nothing runs unrecorded
        run._finish(None)
        raise LaunchError(f"{run._state.write_error}: the trainer was not started")
    try:
        run_dir.set_status(RunStatus.RUNNING.value)
        run_dir.note_trainer(run._handle.pid)
    except OSError as exc:  # stops the trainer; the run ends as failed
        run._write_failed(exc)
    run._monitor = ResourceMonitor(run._handle.pid, monitor_interval_s, run._on_sample)
    run._monitor.start()
    threading.Thread(target=run._wait_child, name=f"run-{run_dir.run_id}", daemon=True).start()
    return run
