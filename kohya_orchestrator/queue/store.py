"""The persistent queue: a folder with an SQLite database and a frozen copy of every queued job.

::

    <queue>/
      queue.db                  jobs, attempts and runners (sqlite3 from the standard library)
      jobs/0001-<name>.toml     the job as queued: validated, paths absolute. Editing the original
                                file later changes nothing; this copy is what runs.
      runners/<runner>.lock     held (flock) by a live ``queue run`` for its whole life
      runs/                     run directories (the default of ``queue run``)

Nothing runs twice by accident:

- a job is claimed in one ``BEGIN IMMEDIATE`` transaction (queued -> running, with the runner's
  id, pid, host and GPU), so two runners, or two workers of one runner, never get the same job;
- a runner holds an exclusive ``flock`` on its lock file; the kernel drops it when the process
  ends, however it ends (SIGKILL, power loss), so "is the runner of this running job alive?" has
  an exact answer on the same machine (other hosts: a heartbeat older than two minutes);
- a running job whose runner is gone becomes ``interrupted`` (its leftover trainer is stopped and
  its run directory closed) and is never re-run by itself: ``retry`` reruns it, ``retry --resume``
  resumes it from sd-scripts' latest saved state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Problem
from ..jobs.loading import dump_job_toml, read_toml
from ..launch.rundir import RunDir, slugify
from .locks import RunnerLock, runner_alive
from .records import FINISHED, Attempt, JobStatus, NewJob, QueueJob, default_queue_dir
from .recovery import close_interrupted_run, latest_state, stop_leftover_trainer

__all__ = ["SCHEMA_VERSION", "JobQueue"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    job_file TEXT NOT NULL,
    source TEXT,
    overrides TEXT NOT NULL DEFAULT '[]',
    sweep TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    reason TEXT,
    added_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    resume_from TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    runner_id TEXT,
    runner_pid INTEGER,
    runner_host TEXT,
    gpu TEXT,
    run_dir TEXT,
    trainer_pid INTEGER,
    heartbeat_at REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    n INTEGER NOT NULL,
    kind TEXT NOT NULL,
    overrides TEXT NOT NULL DEFAULT '{}',
    remedies TEXT NOT NULL DEFAULT '[]',
    resumed_from TEXT,
    run_dir TEXT,
    gpu TEXT,
    runner_id TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    returncode INTEGER,
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (job_id, n)
);
CREATE TABLE IF NOT EXISTS runners (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    gpus TEXT NOT NULL DEFAULT '[]',
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    stopped_at REAL
);
"""


def _now() -> float:
    return time.time()


def _job_from_row(row: sqlite3.Row, root: Path) -> QueueJob:
    data = dict(row)
    data["job_file"] = root / data["job_file"]
    data["overrides"] = json.loads(data["overrides"] or "[]")
    data["labels"] = json.loads(data["labels"] or "{}")
    data["cancel_requested"] = bool(data["cancel_requested"])
    return QueueJob.model_validate(data)


def _attempt_from_row(row: sqlite3.Row) -> Attempt:
    data = dict(row)
    data["overrides"] = json.loads(data["overrides"] or "{}")
    data["remedies"] = json.loads(data["remedies"] or "[]")
    return Attempt.model_validate(data)


class JobQueue:
    """A queue folder. Every method opens its own short connection, so any thread may call it."""

    def __init__(self, path: Path | None = None) -> None:
        """Open (creating it when missing) the queue folder ``path`` (default: the user's queue)."""
        self.path = Path(path or default_queue_dir()).expanduser().resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "jobs").mkdir(exist_ok=True)
        self.db = self.path / "queue.db"
        with self._connect() as con:
            con.executescript(_SCHEMA)
            con.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def __repr__(self) -> str:
        """``JobQueue('<path>')``."""
        return f"JobQueue({str(self.path)!r})"

    # ------------------------------------------------------------------ connections
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.db, timeout=30.0, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock first, so reads inside it are
        consistent with the writes (no two claims of one job)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # ------------------------------------------------------------------ reading
    def jobs(
        self, *, sweep: str | None = None, ids: Collection[int] | None = None
    ) -> list[QueueJob]:
        """Every job, in queue order (optionally of one sweep, or with the given ids)."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        out = [_job_from_row(r, self.path) for r in rows]
        if sweep is not None:
            out = [j for j in out if j.sweep == sweep]
        if ids is not None:
            out = [j for j in out if j.id in ids]
        return out

    def get(self, job_id: int) -> QueueJob:
        """One job.

        Raises:
            ConfigError: there is no job with this id.
        """
        with self._connect() as con:
            row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise ConfigError(
                [Problem(f"job {job_id}", "no such job in the queue", "see 'queue list'")],
                source=str(self.path),
            )
        return _job_from_row(row, self.path)

    def attempts(self, job_id: int) -> list[Attempt]:
        """The attempts of a job, oldest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM attempts WHERE job_id = ? ORDER BY n", (job_id,)
            ).fetchall()
        return [_attempt_from_row(r) for r in rows]

    def read_job(self, job: QueueJob) -> dict[str, Any]:
        """The queued copy of the job, as plain data."""
        return read_toml(job.job_file, what="queued job file")

    def sweeps(self) -> list[str]:
        """Names of the sweeps in the queue, oldest first."""
        seen: dict[str, None] = {}
        for job in self.jobs():
            if job.sweep:
                seen.setdefault(job.sweep)
        return list(seen)

    # ------------------------------------------------------------------ adding
    def add(self, items: Sequence[NewJob], *, sweep: str | None = None) -> list[QueueJob]:
        """Queue validated jobs at the end, all or none; each gets a frozen copy in ``jobs/``.

        Raises:
            ConfigError: two jobs (new, or waiting in the queue) would write the same output file.
        """
        from ..run import absolute_job

        # the frozen copy must not depend on the folder a runner starts in
        items = [dataclasses.replace(i, job=absolute_job(i.job, Path.cwd())) for i in items]
        self._check_output_clash(items)
        ids: list[int] = []
        written: list[Path] = []
        try:
            with self._tx() as con:
                for item in items:
                    job = item.job
                    cur = con.execute(
                        "INSERT INTO jobs (name, job_file, source, overrides, sweep, labels, "
                        "status, added_at) VALUES (?, '', ?, ?, ?, ?, 'queued', ?)",
                        (
                            job.display_name,
                            item.source,
                            json.dumps(list(item.overrides)),
                            sweep,
                            json.dumps(item.labels),
                            _now(),
                        ),
                    )
                    job_id = int(cur.lastrowid or 0)
                    rel = f"jobs/{job_id:04d}-{slugify(job.display_name)}.toml"
                    header = [f"queued job {job_id} of {self.path}"]
                    if item.source:
                        header.append(f"from {item.source}")
                    if item.overrides:
                        header.append("with " + " ".join(item.overrides))
                    target = self.path / rel
                    RunDir(target.parent).write_text(target.name, dump_job_toml(job, header=header))
                    written.append(target)
                    con.execute("UPDATE jobs SET job_file = ? WHERE id = ?", (rel, job_id))
                    ids.append(job_id)
        except BaseException:
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        return [self.get(i) for i in ids]

    def _check_output_clash(self, items: Sequence[NewJob]) -> None:
        taken: dict[tuple[str, str], str] = {}
        for job in self.jobs():
            if job.status in FINISHED:
                continue
            with contextlib.suppress(ConfigError):
                training = self.read_job(job).get("training", {})
                key = (str(training.get("output_dir")), str(training.get("output_name", "lora")))
                taken[key] = f"queued job {job.id} ({job.name}, {job.status.value})"
        problems: list[Problem] = []
        for item in items:
            t = item.job.training
            key = (str(Path(t.output_dir)), t.output_name)
            if key in taken:
                problems.append(
                    Problem(
                        "training.output_name",
                        f"{item.job.display_name}: '{t.output_name}' in {t.output_dir} is also "
                        f"the output of {taken[key]}",
                        "choose another output_name (--set training.output_name=...)",
                    )
                )
            taken[key] = f"job {item.job.display_name} being added"
        if problems:
            raise ConfigError(problems, source=f"queue {self.path}: nothing was added")

    # ------------------------------------------------------------------ user actions
    def cancel(self, job_id: int) -> QueueJob:
        """Cancel a waiting job, or ask the runner of a running one to stop it.

        Raises:
            ConfigError: the job already finished.
        """
        self.recover()
        with self._tx() as con:
            job = self._get_in(con, job_id)
            if job.status == JobStatus.RUNNING:
                con.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            elif job.status in (JobStatus.QUEUED, JobStatus.INTERRUPTED, JobStatus.EXPORTED):
                con.execute(
                    "UPDATE jobs SET status = 'canceled', reason = 'canceled by the user', "
                    "finished_at = ? WHERE id = ?",
                    (_now(), job_id),
                )
            else:
                raise ConfigError(
                    [
                        Problem(
                            f"job {job_id}",
                            f"already {job.status.value}; nothing to cancel",
                            None,
                        )
                    ],
                    source=str(self.path),
                )
        return self.get(job_id)

    def retry(self, job_id: int, *, resume: bool = False) -> QueueJob:
        """Queue a failed, canceled, interrupted or exported job again, in its old place.

        Args:
            job_id: The job.
            resume: Resume from the latest sd-scripts state folder (``training.save_state``)
                instead of starting over.

        Raises:
            ConfigError: the job is waiting or running, or there is no state to resume from.
        """
        self.recover()
        job = self.get(job_id)
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED):
            hint = (
                "queue the job again with 'queue add' to train it once more"
                if job.status == JobStatus.SUCCEEDED
                else None
            )
            raise ConfigError(
                [Problem(f"job {job_id}", f"is {job.status.value}; nothing to retry", hint)],
                source=str(self.path),
            )
        state: str | None = None
        if resume:
            found = latest_state(self.read_job(job), self.attempts(job_id))
            if found is None:
                raise ConfigError(
                    [
                        Problem(
                            f"job {job_id}",
                            "no saved state to resume from (sd-scripts writes "
                            "<output_name>-<epoch>-state folders only with training.save_state)",
                            f"rerun it from the start: queue retry {job_id}",
                        )
                    ],
                    source=str(self.path),
                )
            state = str(found)
        with self._tx() as con:
            con.execute(
                "UPDATE jobs SET status = 'queued', reason = NULL, resume_from = ?, "
                "cancel_requested = 0, finished_at = NULL WHERE id = ? AND status = ?",
                (state, job_id, job.status.value),
            )
        return self.get(job_id)

    def mark_exported(self, job_ids: Collection[int], note: str) -> None:
        """Mark queued jobs as handed to a SLURM script (a local runner skips them)."""
        with self._tx() as con:
            for job_id in job_ids:
                con.execute(
                    "UPDATE jobs SET status = 'exported', reason = ? WHERE id = ? AND "
                    "status = 'queued'",
                    (note, job_id),
                )

    # ------------------------------------------------------------------ runner side
    def register_runner(self, lock: RunnerLock, gpus: Sequence[str | None]) -> None:
        """Record a starting runner."""
        now = _now()
        with self._tx() as con:
            con.execute(
                "INSERT INTO runners (id, pid, host, gpus, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (lock.id, lock.pid, lock.host, json.dumps(list(gpus)), now, now),
            )

    def live_runners(self) -> list[dict[str, Any]]:
        """Runners of this queue that have not stopped and are alive (their lock is held):
        ``id``, ``pid``, ``host``, ``gpus`` (``None`` in it: the default device)."""
        with self._tx() as con:
            rows = con.execute(
                "SELECT id, pid, host, gpus, heartbeat_at FROM runners WHERE stopped_at IS NULL"
            ).fetchall()
        out: list[dict[str, Any]] = []
        for row in rows:
            if runner_alive(self.path, row["id"], row["host"], row["heartbeat_at"]):
                out.append(
                    {
                        "id": row["id"],
                        "pid": row["pid"],
                        "host": row["host"],
                        "gpus": json.loads(row["gpus"] or "[null]"),
                    }
                )
        return out

    def unregister_runner(self, lock: RunnerLock) -> None:
        """Record a runner that stopped normally."""
        with self._tx() as con:
            con.execute("UPDATE runners SET stopped_at = ? WHERE id = ?", (_now(), lock.id))

    def heartbeat(self, runner_id: str) -> None:
        """The runner and its running jobs are alive."""
        now = _now()
        with self._tx() as con:
            con.execute("UPDATE runners SET heartbeat_at = ? WHERE id = ?", (now, runner_id))
            con.execute(
                "UPDATE jobs SET heartbeat_at = ? WHERE runner_id = ? AND status = 'running'",
                (now, runner_id),
            )

    def claim(
        self,
        lock: RunnerLock,
        gpu: str | None,
        *,
        ids: Collection[int] | None = None,
        sweep: str | None = None,
        exported: bool = False,
    ) -> QueueJob | None:
        """Atomically take the first queued (``exported``: or exported) job, or None."""
        statuses = "('queued', 'exported')" if exported else "('queued')"
        query = f"SELECT id FROM jobs WHERE status IN {statuses}"
        params: list[Any] = []
        if sweep is not None:
            query += " AND sweep = ?"
            params.append(sweep)
        if ids is not None:
            wanted = sorted(int(i) for i in ids)
            if not wanted:
                return None
            query += f" AND id IN ({','.join('?' * len(wanted))})"
            params += wanted
        now = _now()
        with self._tx() as con:
            row = con.execute(query + " ORDER BY id LIMIT 1", params).fetchone()
            if row is None:
                return None
            con.execute(
                "UPDATE jobs SET status = 'running', runner_id = ?, runner_pid = ?, "
                "runner_host = ?, gpu = ?, started_at = ?, heartbeat_at = ?, finished_at = NULL, "
                "reason = NULL, run_dir = NULL, trainer_pid = NULL, cancel_requested = 0 "
                "WHERE id = ?",
                (lock.id, lock.pid, lock.host, gpu, now, now, row["id"]),
            )
            job_id = int(row["id"])
        return self.get(job_id)

    def begin_attempt(
        self,
        job: QueueJob,
        *,
        kind: str,
        overrides: dict[str, Any],
        remedies: Sequence[str],
        resumed_from: str | None,
    ) -> int:
        """Record a new attempt of a running job; returns its number."""
        with self._tx() as con:
            n = int(self._get_in(con, job.id).attempts) + 1
            con.execute(
                "INSERT INTO attempts (job_id, n, kind, overrides, remedies, resumed_from, gpu, "
                "runner_id, status, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'starting', ?)",
                (
                    job.id,
                    n,
                    kind,
                    json.dumps(overrides, default=str),
                    json.dumps(list(remedies)),
                    resumed_from,
                    job.gpu,
                    job.runner_id,
                    _now(),
                ),
            )
            con.execute(
                "UPDATE jobs SET attempts = ?, run_dir = NULL, trainer_pid = NULL WHERE id = ?",
                (n, job.id),
            )
        return n

    def attempt_started(self, job_id: int, n: int, run_dir: Path, trainer_pid: int | None) -> None:
        """The attempt's trainer runs: record its run directory and pid."""
        with self._tx() as con:
            con.execute(
                "UPDATE attempts SET run_dir = ?, status = 'running' WHERE job_id = ? AND n = ?",
                (str(run_dir), job_id, n),
            )
            con.execute(
                "UPDATE jobs SET run_dir = ?, trainer_pid = ? WHERE id = ?",
                (str(run_dir), trainer_pid, job_id),
            )

    def finish_attempt(
        self, job_id: int, n: int, status: str, reason: str | None, returncode: int | None
    ) -> None:
        """Record how an attempt ended."""
        with self._tx() as con:
            con.execute(
                "UPDATE attempts SET status = ?, reason = ?, returncode = ?, finished_at = ? "
                "WHERE job_id = ? AND n = ? AND status IN ('starting', 'running')",
                (status, reason, returncode, _now(), job_id, n),
            )

    def finish(self, job: QueueJob, status: JobStatus, reason: str | None) -> bool:
        """Record how a claimed job ended; False when it is no longer this runner's."""
        with self._tx() as con:
            cur = con.execute(
                "UPDATE jobs SET status = ?, reason = ?, finished_at = ?, trainer_pid = NULL, "
                "resume_from = NULL, cancel_requested = 0 WHERE id = ? AND runner_id = ? "
                "AND status = 'running'",
                (status.value, reason, _now(), job.id, job.runner_id),
            )
            return cur.rowcount == 1

    def cancel_requested(self, job_id: int) -> bool:
        """Whether ``queue cancel`` asked to stop this running job."""
        with self._connect() as con:
            row = con.execute(
                "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return bool(row and row["cancel_requested"])

    # ------------------------------------------------------------------ crash recovery
    def runner_alive(self, job: QueueJob) -> bool:
        """Whether the runner that claimed ``job`` is still alive."""
        if job.runner_id is None:
            return False
        return runner_alive(self.path, job.runner_id, job.runner_host, job.heartbeat_at)

    def recover(self) -> list[QueueJob]:
        """Mark running jobs whose runner is gone as interrupted; stop their leftover trainers.

        Returns:
            The jobs marked now.
        """

        marked: list[QueueJob] = []
        for job in self.jobs():
            if job.status != JobStatus.RUNNING or self.runner_alive(job):
                continue
            stopped = stop_leftover_trainer(job)
            reason = f"interrupted: its queue runner (pid {job.runner_pid}) is gone"
            if stopped:
                reason += f"; the leftover trainer (pid {job.trainer_pid}) was stopped"
            with self._tx() as con:
                cur = con.execute(
                    "UPDATE jobs SET status = 'interrupted', reason = ?, finished_at = ?, "
                    "trainer_pid = NULL WHERE id = ? AND status = 'running' AND runner_id = ?",
                    (reason, _now(), job.id, job.runner_id),
                )
                if cur.rowcount != 1:
                    continue
                con.execute(
                    "UPDATE attempts SET status = 'interrupted', reason = ?, finished_at = ? "
                    "WHERE job_id = ? AND status IN ('starting', 'running')",
                    (reason, _now(), job.id),
                )
            if job.run_dir is not None:
                close_interrupted_run(job.run_dir, reason)
            marked.append(self.get(job.id))
        # Lock files left by dead runners of this host (another host's are its own business:
        # a flock is not visible across machines).
        with self._connect() as con:
            hosts = {r["id"]: r["host"] for r in con.execute("SELECT id, host FROM runners")}
        here = socket.gethostname()
        for lock_file in (self.path / "runners").glob("*.lock"):
            runner_id = lock_file.stem
            if hosts.get(runner_id) == here and not runner_alive(self.path, runner_id, here, None):
                with contextlib.suppress(OSError):
                    lock_file.unlink()
        return marked

    # ------------------------------------------------------------------ internals
    def _get_in(self, con: sqlite3.Connection, job_id: int) -> QueueJob:
        row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise ConfigError(
                [Problem(f"job {job_id}", "no such job in the queue", "see 'queue list'")],
                source=str(self.path),
            )
        return _job_from_row(row, self.path)
