"""One job on a cloud GPU, from launch to its outputs in the local output folder.

:func:`run_on_sky` is what ``train --on sky`` and ``queue run --on sky`` share:

1. launch the task through the backend and record its handle in the run directory (``sky.json``);
2. follow its output into the run directory (:func:`~.sky.receive_events`), while a watcher
   asks ``cancel_requested`` every few seconds: a cancel (``queue cancel``) reaches SkyPilot
   (``sky cancel`` / ``sky jobs cancel``), and Ctrl-C does the same before it ends the command;
3. record the restarts (SkyPilot relaunching a preempted managed job: those seen in the stream,
   or SkyPilot's own count when it says more) in ``sky.json``;
4. fetch the remote output folder and move its files into the job's local ``output_dir``, never
   over a file that is there (:mod:`.sky_outputs`). Also after a failed or canceled run: its
   checkpoints so far are the user's. A fetch that fails is reported, with where the outputs are;
5. once the outputs are here, release the machine (``sky down``; a managed job's is gone
   already). When the fetch failed the cluster stays up for the user to copy by hand, until
   SkyPilot's own autodown (``launch/sky.py``: ``AUTODOWN_MINUTES`` idle).

:func:`cancel_recorded` reaches a run whose launcher is gone (``queue cancel`` after the
``queue run --on sky`` process died), from the handle in its run directory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import OrchestratorError
from ..events import EventAdapter, RunFinished, RunStatus
from ..launch.rundir import RunDir
from ..launch.sky import HANDLE_NAME, SkyBackend, SkyHandle, read_handle
from ..models import TrainingJob
from ..sinks import EventSink
from .sky import Received, SkyTask, receive_events
from .sky_outputs import Delivered, fetch_into_run

__all__ = ["CANCELED_ON_SKY", "CloudResult", "cancel_recorded", "run_on_sky"]

CANCELED_ON_SKY = "canceled by the user (SkyPilot canceled the remote run)"


@dataclass
class CloudResult:
    """How a cloud run ended, and where its outputs went."""

    finished: RunFinished
    handle: SkyHandle
    restarts: int
    delivered: Delivered | None
    fetch_error: str | None
    canceled: bool


def run_on_sky(
    job: TrainingJob,
    task: SkyTask,
    run_dir: RunDir,
    backend: SkyBackend,
    *,
    managed: bool = False,
    sinks: Sequence[EventSink] = (),
    cancel_requested: Callable[[], bool] | None = None,
    poll_s: float = 2.0,
    on_launched: Callable[[SkyHandle], None] | None = None,
) -> CloudResult:
    """Launch ``task`` (the cloud form of ``job``), follow it into ``run_dir``, fetch its outputs.

    Raises:
        Exception: whatever the backend raises at launch (no credentials, no capacity): nothing
            ran; the run directory says ``failed`` with the message.
        KeyboardInterrupt: after the remote run was canceled and the run directory closed.

    A stream that breaks (SkyPilot's API or the network fails while following) cancels the
    remote run, so nothing trains and bills unseen; the run ends failed, saying so, and its
    outputs so far are still fetched.
    """
    try:
        handle = backend.launch(dict(task), managed, task.output_source)
    except BaseException as exc:
        run_dir.write_text("launch-error.txt", f"{type(exc).__name__}: {exc}\n")
        run_dir.set_status(RunStatus.FAILED.value)
        raise
    run_dir.write_json(HANDLE_NAME, handle.to_json())
    if on_launched is not None:
        on_launched(handle)
    canceled = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while cancel_requested is not None and not done.wait(poll_s):
            if cancel_requested():
                canceled.set()
                _cancel(backend, handle, run_dir)
                return

    watcher = threading.Thread(target=watch, name="sky-cancel", daemon=True)
    watcher.start()
    try:
        received = receive_events(
            backend.follow(handle),
            run_dir,
            sinks,
            missing_final=lambda: (
                (RunStatus.CANCELED, CANCELED_ON_SKY) if canceled.is_set() else None
            ),
        )
    except KeyboardInterrupt:
        done.set()
        _cancel(backend, handle, run_dir)
        _close(run_dir, RunStatus.CANCELED, CANCELED_ON_SKY)
        run_dir.write_text(
            "outputs-error.txt",
            f"canceled before the outputs were copied: they stay at {handle.output_source}\n",
        )
        raise
    except Exception as exc:  # the stream broke (SkyPilot's API, the network): stop paying
        done.set()
        _cancel(backend, handle, run_dir)
        lost = f"lost SkyPilot's output stream ({type(exc).__name__}: {exc})".splitlines()[0]
        finished = _close(run_dir, RunStatus.FAILED, f"{lost}; the remote run was canceled")
        received = Received(finished, 0)
    finally:
        done.set()
    watcher.join(timeout=5)
    finished = received.finished
    restarts = max(received.restarts, _counted(backend, handle))
    run_dir.write_json(HANDLE_NAME, {**handle.to_json(), "restarts": restarts})
    delivered, fetch_error = None, None
    try:
        delivered = fetch_into_run(
            run_dir,
            Path(job.training.output_dir),
            lambda into: backend.fetch_outputs(handle, into),
        )
    except (OSError, OrchestratorError) as exc:
        fetch_error = f"the outputs stay at {handle.output_source}: {exc}"
        run_dir.write_text("outputs-error.txt", fetch_error + "\n")
    else:  # the outputs are here: stop paying for the machine
        try:
            backend.release(handle)
        except Exception as exc:  # SkyPilot's autodown still ends it
            run_dir.write_text("release-error.txt", f"{type(exc).__name__}: {exc}\n")
    return CloudResult(finished, handle, restarts, delivered, fetch_error, canceled.is_set())


def _counted(backend: SkyBackend, handle: SkyHandle) -> int:
    try:
        return backend.restarts(handle) or 0
    except Exception:  # SkyPilot could not be asked: the stream's count stands
        return 0


def _cancel(backend: SkyBackend, handle: SkyHandle, run_dir: RunDir) -> None:
    """Cancel through SkyPilot; its refusal is written down (``cancel-error.txt``), not raised."""
    try:
        backend.cancel(handle)
    except Exception as exc:
        run_dir.write_text("cancel-error.txt", f"{type(exc).__name__}: {exc}\n")


def _close(run_dir: RunDir, status: RunStatus, reason: str) -> RunFinished:
    """A run whose stream was cut (Ctrl-C here, the stream lost, its launcher gone) ends with a
    final event saying how, after the last one it holds."""
    from ..events import read_events

    events = read_events(run_dir.path)
    seq, t = (events[-1].seq + 1, events[-1].t) if events else (0, 0.0)
    closing = RunFinished(
        seq=seq,
        t=t,
        status=status,
        returncode=None,
        duration_s=t,
        reason=reason,
    )
    run_dir.append_event_line(EventAdapter.dump_json(closing).decode("utf-8"))
    run_dir.set_status(status.value)
    return closing


def cancel_recorded(run_dir: Path, backend: SkyBackend) -> SkyHandle | None:
    """Cancel the cloud run recorded in ``run_dir`` (its launcher is gone); its handle, or None
    when the run directory holds no cloud run."""
    handle = read_handle(run_dir)
    if handle is None:
        return None
    backend.cancel(handle)
    rd = RunDir(run_dir)
    if rd.read_status() not in ("succeeded", "failed", "canceled"):
        _close(rd, RunStatus.CANCELED, CANCELED_ON_SKY)
    else:
        rd.write_text("canceled.txt", CANCELED_ON_SKY + "\n")
    return handle
