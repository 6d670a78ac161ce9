"""The distributed job engine: procrastinate 3.x workers on the app's PostgreSQL.

Processes and roles
-------------------
* API processes make a :class:`ProcrastinateQueue` (``settings.queue == "procrastinate"``).
  ``enqueue`` records the job on the project row (``projects.job``) and defers the task
  ``glimpse3d.run_pipeline_job(project_id, job)`` on the ``pipeline`` or ``gpu`` queue
  (:func:`queue_for`). It never runs pipelines itself.
* ``glimpse3d worker`` (:func:`run_worker`) runs procrastinate workers that execute those
  tasks with a :class:`~glimpse3d.pipeline.runner.PipelineRunner`.

At-least-once, without duplicates
---------------------------------
* Every procrastinate job of a project carries ``lock = queueing_lock = project id``: at most
  one queued and one running job per project, and never two running at once.
* Workers heartbeat (procrastinate 3.x ``procrastinate_workers``). A worker killed with
  SIGKILL stops heartbeating; :func:`recover_stalled_jobs` (run every few seconds by every
  worker and every API process, serialised by a transaction-scoped advisory lock) puts the
  ``doing`` jobs of workers silent for more than ``stalled_seconds`` back to ``todo``
  (procrastinate's ``get_stalled_jobs`` + ``retry_job`` queries, in one transaction).
* While a task runs it holds a session advisory lock on the project (on its own connection):
  a second run of the same project (e.g. after a false stall) waits until the first one's
  process or connection is gone. The runner skips stages whose outputs are recorded and all
  writes are upserts on natural keys, so a resumed job never duplicates rows or files.
* ``is_active`` is ``projects.job`` (recorded before the deferral, cleared by the worker once
  the run recorded its outcome), so every API process answers the same without a cache.
* Each start of a job increments ``projects.attempts``; after ``settings.max_job_attempts``
  starts the project is marked failed with a reason (a job that keeps killing workers stops).
  A graceful worker shutdown (SIGTERM) interrupts the job between steps and re-queues it
  without counting the attempt; a lost database connection re-queues it and counts it.

Timings (seconds) come from settings when they have the fields, else from the environment:
``GLIMPSE3D_WORKER_HEARTBEAT_SECONDS`` (10), ``GLIMPSE3D_WORKER_STALLED_SECONDS`` (30),
``GLIMPSE3D_WORKER_POLL_SECONDS`` (5), ``GLIMPSE3D_WORKER_SHUTDOWN_SECONDS`` (20; keep it
below the stalled timeout: heartbeats stop while a worker shuts down).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from glimpse3d.errors import Cancelled, UserError, WrongState
from glimpse3d.jobs.base import (
    ProgressCallback,
    db_active_count,
    interrupted_jobs,
    mark_job_finished,
    mark_job_started,
    record_queued_job,
    validate_job,
)

if TYPE_CHECKING:
    import procrastinate

    from glimpse3d.config import Settings
    from glimpse3d.db.repository import Repository
    from glimpse3d.storage.base import Storage

log = logging.getLogger(__name__)

TASK_NAME = "glimpse3d.run_pipeline_job"
DEFAULT_QUEUE = "pipeline"
GPU_QUEUE = "gpu"
QUEUES = (DEFAULT_QUEUE, GPU_QUEUE)
#: advisory-lock keys (bigint for recovery/schema; (int4, int4) namespace for projects)
RECOVERY_LOCK_KEY = 0x6733_645F_7374_6C  # "g3d_stl"
SCHEMA_LOCK_KEY = 0x6733_645F_7363_68  # "g3d_sch"
PROJECT_LOCK_NAMESPACE = 0x6733_6431  # "g3d1"
_LEARNED_STAGES = {
    "generate": ("multiview", "depth"),
    "refine": ("enhance", "feature"),
    "run": ("segment", "multiview", "depth", "enhance", "feature"),
}


class RetryLater(Exception):  # noqa: N818 - a signal to procrastinate, not an error
    """Raised by the task to put its job back in the queue (shutdown, lost connection,
    project busy elsewhere); the task's retry strategy retries exactly this exception."""


# ------------------------------------------------------------------ settings helpers
@dataclass(frozen=True)
class WorkerTuning:
    """Worker timings in seconds."""

    heartbeat: float = 10.0
    stalled: float = 30.0
    poll: float = 5.0
    shutdown: float = 20.0

    @property
    def recovery_interval(self) -> float:
        """How often stalled jobs are looked for."""
        return max(0.5, min(self.stalled / 3.0, 10.0))


def tuning(settings: Any) -> WorkerTuning:
    """Timings from ``settings.worker_*_seconds`` when present, else ``GLIMPSE3D_WORKER_*``."""
    out: dict[str, float] = {}
    for name in ("heartbeat", "stalled", "poll", "shutdown"):
        value = getattr(settings, f"worker_{name}_seconds", None)
        if value is None:
            value = os.environ.get(f"GLIMPSE3D_WORKER_{name.upper()}_SECONDS") or None
        if value is not None:
            try:
                out[name] = float(value)
            except ValueError:
                raise UserError(
                    f"GLIMPSE3D_WORKER_{name.upper()}_SECONDS must be a number of seconds, "
                    f"got {value!r}"
                ) from None
            if out[name] <= 0:
                raise UserError(f"GLIMPSE3D_WORKER_{name.upper()}_SECONDS must be positive")
    t = WorkerTuning(**out)
    if t.stalled <= 2 * t.heartbeat:
        raise UserError(
            f"the stalled-worker timeout ({t.stalled:g} s) must exceed twice the heartbeat "
            f"interval ({t.heartbeat:g} s)"
        )
    return t


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def conninfo_from_url(url: str) -> str:
    """A libpq connection URI (``postgresql://user:pw@host:port/db?sslmode=...``) for psycopg
    from the app's SQLAlchemy URL; SQLite raises ``UserError``."""
    from glimpse3d.db.engine import normalize_url

    parsed = normalize_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise UserError(
            "GLIMPSE3D_QUEUE=procrastinate needs PostgreSQL: set GLIMPSE3D_DATABASE_URL to a "
            "postgresql:// URL (or use GLIMPSE3D_QUEUE=inline)"
        )
    query = {k: v for k, v in parsed.query.items() if k != "pgbouncer"}
    return parsed.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


def _is_pooler(url: str) -> bool:
    from glimpse3d.db.engine import is_transaction_pooler, normalize_url

    return is_transaction_pooler(normalize_url(url))


def _connect(conninfo: str, autocommit: bool = True, timeout: int = 10) -> Any:
    import psycopg

    return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=timeout,
                           prepare_threshold=None)


def queue_for(settings: Settings, job: dict[str, Any],
              project_settings: dict[str, Any] | None = None) -> str:
    """``gpu`` when the job's stages use a learned backend or the device is CUDA, else
    ``pipeline``. GPU machines run ``glimpse3d worker --queues gpu`` (or both)."""
    if str(getattr(settings, "device", "auto")).startswith("cuda"):
        return GPU_QUEUE
    overrides = project_settings or {}
    for stage in _LEARNED_STAGES.get(str(job.get("kind")), ()):
        backend = overrides.get(f"{stage}_backend") or getattr(settings, f"{stage}_backend",
                                                               "classic")
        if backend != "classic":
            return GPU_QUEUE
    return DEFAULT_QUEUE


# ------------------------------------------------------------------ schema
def schema_present(conninfo: str) -> bool:
    """True when procrastinate's tables exist in the database."""
    with _connect(conninfo) as conn:
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        return bool(row and row[0])


def apply_schema(settings: Settings) -> bool:
    """Create procrastinate's schema in the app's database unless it is there already
    (idempotent and safe when several processes start at once). Returns True if applied."""
    from procrastinate.schema import SchemaManager

    conninfo = conninfo_from_url(settings.resolved_database_url)
    with _connect(conninfo, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        if row and row[0]:
            conn.rollback()
            return False
        conn.execute(SchemaManager.get_schema())
        conn.commit()
    log.info("applied procrastinate's schema")
    return True


# ------------------------------------------------------------------ stalled jobs
def recover_stalled_jobs(conninfo: str, stalled_seconds: float) -> list[int]:
    """Re-queue (``doing`` -> ``todo``) the jobs of workers whose last heartbeat is older
    than ``stalled_seconds`` (or that were pruned), and prune those workers. One transaction
    under an advisory lock, so concurrent callers never re-queue a job twice. Returns the
    job ids re-queued."""
    from procrastinate import sql

    with _connect(conninfo, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (RECOVERY_LOCK_KEY,))
        cur = conn.execute(
            sql.queries["select_stalled_jobs_by_heartbeat"],
            {"queue": None, "task_name": TASK_NAME, "seconds_since_heartbeat": stalled_seconds},
        )
        ids = [int(r[0]) for r in cur.fetchall()]
        now = dt.datetime.now(dt.UTC)
        for job_id in ids:
            conn.execute(
                sql.queries["retry_job"],
                {"job_id": job_id, "retry_at": now, "new_priority": None,
                 "new_queue_name": None, "new_lock": None},
            )
        conn.execute(sql.queries["prune_stalled_workers"],
                     {"seconds_since_heartbeat": stalled_seconds})
        conn.commit()
    if ids:
        log.warning("re-queued %d job(s) of stalled workers: %s", len(ids), ids)
    return ids


class StalledJobWatcher:
    """A daemon thread calling :func:`recover_stalled_jobs` every ``interval`` seconds."""

    def __init__(self, conninfo: str, stalled_seconds: float, interval: float) -> None:
        self.conninfo = conninfo
        self.stalled_seconds = stalled_seconds
        self.interval = interval
        self.recovered: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="glimpse3d-stall-watch",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.recovered += recover_stalled_jobs(self.conninfo, self.stalled_seconds)
            except Exception as exc:  # noqa: BLE001 - keep watching; the DB may come back
                log.warning("stalled-job check failed: %s", _first_line(exc))


# ------------------------------------------------------------------ the app and the task
def _pipeline_task(context: Any, project_id: str, job: dict[str, Any]) -> str:
    """The procrastinate task body: hand over to the worker process's :class:`JobRunner`."""
    runner: JobRunner | None = (context.additional_context or {}).get("glimpse3d")
    if runner is None:  # pragma: no cover - only when a foreign worker picks the job up
        raise RuntimeError("run_pipeline_job must run in `glimpse3d worker`")
    return runner.run(context, project_id, job)


def make_app(settings: Settings, *, sync: bool, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate ``App`` on the app's database with the pipeline task registered.

    ``sync=True`` (API processes) uses a ``SyncPsycopgConnector``; workers use the async
    ``PsycopgConnector``. Behind a transaction pooler prepared statements are disabled."""
    import procrastinate
    from procrastinate.retry import RetryStrategy

    url = settings.resolved_database_url
    conninfo = conninfo_from_url(url)
    kwargs: dict[str, Any] = {"connect_timeout": 10}
    if _is_pooler(url):
        kwargs["prepare_threshold"] = None
    pool = {"conninfo": conninfo, "min_size": 1, "max_size": max(2, pool_size), "timeout": 10,
            "kwargs": kwargs}
    connector: Any = (procrastinate.SyncPsycopgConnector(**pool) if sync
                      else procrastinate.PsycopgConnector(**pool))
    app = procrastinate.App(connector=connector)
    app.task(
        name=TASK_NAME,
        pass_context=True,
        retry=RetryStrategy(wait=1, retry_exceptions=[RetryLater]),
    )(_pipeline_task)
    return app


def _is_transient(exc: BaseException) -> bool:
    """A lost database connection (the job can be retried as is): psycopg's or SQLAlchemy's
    OperationalError/InterfaceError (admin shutdown, server closed the connection, ...)
    anywhere in the exception chain."""
    import psycopg
    from sqlalchemy import exc as sa_exc

    kinds = (psycopg.OperationalError, psycopg.InterfaceError, sa_exc.OperationalError,
             sa_exc.InterfaceError, sa_exc.DisconnectionError)
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if getattr(cur, "connection_invalidated", False) or isinstance(cur, kinds):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


class JobRunner:
    """Runs ``run_pipeline_job`` tasks in a worker process (one instance per process)."""

    def __init__(self, settings: Settings, repo: Repository, storage: Storage,
                 on_progress: ProgressCallback | None = None) -> None:
        self.settings = settings
        self.repo = repo
        self.storage = storage
        self.on_progress = on_progress  # runner progress events in this process (logs, tests)
        self.conninfo = conninfo_from_url(settings.resolved_database_url)
        self.started = 0  # task starts in this process (tests, metrics)

    @contextlib.contextmanager
    def _project_lock(self, project_id: str) -> Any:
        """A session advisory lock on the project, held on its own connection: a second run
        of the project waits (``RetryLater``) while the first one's connection lives."""
        conn = _connect(self.conninfo)
        try:
            got = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                (PROJECT_LOCK_NAMESPACE, project_id),
            ).fetchone()[0]
            if not got:
                raise RetryLater(f"project {project_id} is being processed by another worker")
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.close()  # closing the session releases the lock

    def run(self, context: Any, project_id: str, job: dict[str, Any]) -> str:
        """Run the project's recorded job; returns a short outcome for procrastinate's log."""
        from procrastinate.exceptions import JobAborted
        from procrastinate.job_context import AbortReason

        from glimpse3d.db.repository import ProjectNotFound

        self.started += 1
        try:
            with self._project_lock(project_id):
                return self._run_locked(context, project_id, job)
        except (RetryLater, JobAborted):
            raise
        except ProjectNotFound:
            return "project deleted"
        except Exception as exc:
            if _is_transient(exc):
                reason = context.abort_reason() if context is not None else None
                log.warning("project %s: lost the database (%s); re-queued", project_id,
                            _first_line(exc))
                if reason == AbortReason.USER_REQUEST:
                    raise JobAborted() from exc
                raise RetryLater(f"database connection lost: {exc}") from exc
            raise

    def _run_locked(self, context: Any, pid: str, job: dict[str, Any]) -> str:
        from procrastinate.exceptions import JobAborted
        from procrastinate.job_context import AbortReason

        from glimpse3d.db.repository import ACTIVE_STATUSES, ProjectNotFound
        from glimpse3d.pipeline.runner import PipelineRunner

        project = self.repo.get_project(pid)
        recorded = project.get("job")
        if not recorded:
            return "no recorded job (finished or cancelled meanwhile)"
        # the recorded job carries the runner's additions (e.g. refine's until_iteration)
        spec = dict(recorded) if recorded.get("kind") == job.get("kind") else dict(job)
        before = project.get("status")
        if not mark_job_started(self.repo, pid, spec, self.settings.max_job_attempts):
            return "gave up: too many attempts"
        snapshot: dict[str, Any] = {}

        def reason() -> Any:
            return context.abort_reason() if context is not None else None

        def should_cancel() -> bool:
            r = reason()
            if r is None:
                return False
            if r == AbortReason.SHUTDOWN and not snapshot:
                with contextlib.suppress(Exception):
                    snapshot.update(self.repo.get_project(pid))
                snapshot.setdefault("job", spec)
            return True

        runner = PipelineRunner(self.repo, self.storage, self.settings,
                                on_progress=self.on_progress, should_cancel=should_cancel)
        try:
            runner.run_job(pid, dict(spec))
        except Cancelled:
            if reason() == AbortReason.SHUTDOWN:
                self._keep_for_resume(pid, snapshot or {"job": spec})
                raise RetryLater("worker shutting down") from None
            mark_job_finished(self.repo, pid, "cancelled")
            raise JobAborted() from None
        except ProjectNotFound:
            return "project deleted"
        except UserError as exc:
            mark_job_finished(self.repo, pid, "failed", str(exc))
            return "failed"
        except Exception as exc:
            if _is_transient(exc):
                # undo the runner's 'failed' mark: back to the stage it was in
                last = getattr(runner, "_last_emit", None)
                status = last[0] if last else before
                with contextlib.suppress(Exception):
                    self.repo.update_project(
                        pid, error_message=None,
                        status=status if status in ACTIVE_STATUSES else "preprocessing",
                    )
                raise
            log.exception("job of project %s failed", pid)
            mark_job_finished(self.repo, pid, "failed",
                              f"internal error: {type(exc).__name__}: {exc}")
            return "failed"
        mark_job_finished(self.repo, pid, "completed")
        return "completed"

    def _keep_for_resume(self, pid: str, snap: dict[str, Any]) -> None:
        """Undo the runner's 'cancelled' after a graceful shutdown: restore the status and the
        recorded job, and do not count this attempt."""
        fields: dict[str, Any] = {"job": snap.get("job")}
        if snap.get("status"):
            fields.update(status=snap["status"], current_step=snap.get("current_step"),
                          error_message=None)
        if snap.get("attempts"):
            fields["attempts"] = max(0, int(snap["attempts"]) - 1)
        self.repo.update_project(pid, **fields)
        log.info("job of project %s interrupted by a shutdown; re-queued", pid)


# ------------------------------------------------------------------ the queue (API side)
_ACTIVE_SQL = (
    "SELECT id, status FROM procrastinate_jobs "
    "WHERE lock = %(lock)s AND task_name = %(task)s AND status IN ('todo', 'doing') "
    "ORDER BY id"
)


class ProcrastinateQueue:
    """:class:`glimpse3d.jobs.base.JobQueue` over procrastinate: jobs run in `glimpse3d
    worker` processes on any machine that reaches the database and the storage."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        storage: Storage,
        on_progress: ProgressCallback | None = None,
        *,
        watch_stalled: bool = True,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.storage = storage
        self.on_progress = on_progress  # progress reaches clients through the DB row
        self.tuning = tuning(settings)
        self.conninfo = conninfo_from_url(settings.resolved_database_url)
        self.app = make_app(settings, sync=True, pool_size=8)
        self._open = False
        self._lock = threading.Lock()
        self._watcher = (StalledJobWatcher(self.conninfo, self.tuning.stalled,
                                           self.tuning.recovery_interval)
                         if watch_stalled else None)

    # ---- lifecycle
    def _ensure_open(self) -> None:
        with self._lock:
            if not self._open:
                apply_schema(self.settings)
                self.app.open()
                self._open = True

    def start(self) -> None:
        """Open the connection pool, re-queue recorded jobs that have no procrastinate job
        (e.g. lost between the row update and the deferral) and watch for stalled workers."""
        self._ensure_open()
        for pid, job, _client in interrupted_jobs(self.repo):
            if self._active_jobs(pid):
                continue
            log.info("re-queueing the recorded %s job of project %s", job.get("kind"), pid)
            with contextlib.suppress(WrongState):
                self._defer(pid, job)
        if self._watcher is not None:
            self._watcher.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and close the pool; queued and running jobs are unaffected."""
        if self._watcher is not None:
            self._watcher.stop(timeout)
        with self._lock:
            if self._open:
                self.app.close()
                self._open = False

    # ---- the JobQueue interface
    def enqueue(self, project_id: str, job: dict[str, Any], client_id: str | None = None) -> None:
        spec = validate_job(job)
        self._ensure_open()
        if self.is_active(project_id):
            raise WrongState(f"project {project_id} already has a queued or running job; "
                             "wait for it or cancel it")
        record_queued_job(self.repo, project_id, spec, requester=client_id)
        try:
            self._defer(project_id, spec)
        except WrongState:
            raise  # a job is queued already (another process): keep the recorded job
        except Exception:
            with contextlib.suppress(Exception):
                self.repo.update_project(project_id, job=None)
            raise

    def _defer(self, project_id: str, spec: dict[str, Any]) -> int:
        from procrastinate.exceptions import AlreadyEnqueued

        project = self.repo.get_project(project_id)
        queue = queue_for(self.settings, spec, project.get("settings"))
        try:
            return self.app.configure_task(
                TASK_NAME, queue=queue, lock=project_id, queueing_lock=project_id,
            ).defer(project_id=project_id, job=spec)
        except AlreadyEnqueued:
            raise WrongState(f"project {project_id} already has a queued job") from None

    def _active_jobs(self, project_id: str) -> list[dict[str, Any]]:
        self._ensure_open()
        sync = self.app.connector.get_sync_connector()
        return list(sync.execute_query_all(query=_ACTIVE_SQL, lock=project_id,  # type: ignore[arg-type]
                                           task=TASK_NAME))

    def cancel(self, project_id: str) -> bool:
        """A queued job is dropped at once (project marked cancelled); a running one is asked
        to abort and stops at the runner's next step (within ``poll`` seconds). False when the
        project has no job (or its run is only finishing)."""
        from glimpse3d.db.repository import ProjectNotFound

        jobs = self._active_jobs(project_id)
        try:
            recorded = bool(self.repo.get_project(project_id).get("job"))
        except ProjectNotFound:
            recorded = False
        done = False
        for row in jobs:
            if row["status"] == "todo" and self.app.job_manager.cancel_job_by_id(
                    row["id"], abort=False):
                mark_job_finished(self.repo, project_id, "cancelled")
                done = True
                continue
            if recorded and self.app.job_manager.cancel_job_by_id(row["id"], abort=True):
                done = True
        if not jobs and recorded:  # recorded, but its procrastinate job was lost
            mark_job_finished(self.repo, project_id, "cancelled")
            done = True
        return done

    def is_active(self, project_id: str) -> bool:
        """True while the project records a job: set by :meth:`enqueue` before the deferral,
        cleared by the worker when the run has recorded its outcome (so a run that is only
        finishing never blocks the next request). One primary-key read, no cache."""
        from glimpse3d.db.repository import ProjectNotFound

        try:
            return bool(self.repo.get_project(project_id).get("job"))
        except ProjectNotFound:
            return False

    def active_count(self, client_id: str) -> int:
        return db_active_count(self.repo, client_id)

    def check(self) -> None:
        """Raise when the database is unreachable or procrastinate's schema is missing."""
        try:
            row = self._query_one("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS ok")
        except Exception as exc:  # noqa: BLE001 - one-line reason
            raise RuntimeError(
                f"job queue database unreachable: {_first_line(exc)}"
            ) from exc
        if not row["ok"]:
            raise RuntimeError("procrastinate's schema is missing: run `glimpse3d db upgrade`")

    def _query_one(self, query: str, **params: Any) -> dict[str, Any]:
        self._ensure_open()
        sync = self.app.connector.get_sync_connector()
        return sync.execute_query_one(query=query, **params)  # type: ignore[arg-type]

    # ---- extras (doctor, tests, benchmarks)
    def live_workers(self) -> int:
        """Workers that heartbeated within the stalled timeout."""
        row = self._query_one(
            "SELECT count(*) AS n FROM procrastinate_workers WHERE last_heartbeat > "
            "NOW() - make_interval(secs => %(secs)s)", secs=self.tuning.stalled)
        return int(row["n"])

    def recover_stalled(self) -> list[int]:
        return recover_stalled_jobs(self.conninfo, self.tuning.stalled)


def make_distributed_queue(
    settings: Settings,
    repo: Repository,
    storage: Storage,
    on_progress: ProgressCallback | None = None,
) -> ProcrastinateQueue:
    """The factory :func:`glimpse3d.jobs.base.make_queue` calls for ``queue=procrastinate``."""
    return ProcrastinateQueue(settings, repo, storage, on_progress=on_progress)


# ------------------------------------------------------------------ the worker process
def run_worker(
    queues: list[str] | None = None,
    concurrency: int | None = None,
    settings: Settings | None = None,
) -> None:
    """``glimpse3d worker``: run pipeline jobs from ``queues`` (all when empty), ``concurrency``
    at once (default ``settings.worker_concurrency``), until SIGINT/SIGTERM. Restarts the procrastinate worker if it stops on its own
    (e.g. its database went away) and re-queues jobs of stalled workers."""
    from glimpse3d.config import get_settings
    from glimpse3d.db.repository import open_repository
    from glimpse3d.storage.factory import open_storage

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings or get_settings()
    if concurrency is None:
        concurrency = settings.worker_concurrency
    if concurrency < 1:
        raise UserError("concurrency must be at least 1")
    unknown = [q for q in (queues or []) if q not in QUEUES]
    if unknown:
        raise UserError(f"unknown queue(s) {', '.join(unknown)}; choose from {', '.join(QUEUES)}")
    t = tuning(settings)
    conninfo = conninfo_from_url(settings.resolved_database_url)
    repo = open_repository(settings.resolved_database_url)
    try:
        apply_schema(settings)
        storage = open_storage(settings)
        runner = JobRunner(settings, repo, storage)
        watcher = StalledJobWatcher(conninfo, t.stalled, t.recovery_interval)
        watcher.start()
        try:
            asyncio.run(_supervise(settings, runner, queues or None, concurrency, t))
        finally:
            watcher.stop()
    finally:
        repo.close()


async def _supervise(settings: Settings, runner: JobRunner, queues: list[str] | None,
                     concurrency: int, t: WorkerTuning) -> None:
    from procrastinate.worker import Worker

    app = make_app(settings, sync=False, pool_size=concurrency + 3)
    stop = asyncio.Event()
    current: list[Worker] = []
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second stop signal: exiting now")
            os._exit(1)
        stop.set()
        for w in current:
            w.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    name = f"glimpse3d-{socket.gethostname()}-{os.getpid()}"
    backoff = 1.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with app.open_async():
                worker = Worker(
                    app, queues=queues, name=name, concurrency=concurrency,
                    fetch_job_polling_interval=t.poll, abort_job_polling_interval=t.poll,
                    shutdown_graceful_timeout=t.shutdown,
                    listen_notify=not _is_pooler(settings.resolved_database_url),
                    delete_jobs="successful", additional_context={"glimpse3d": runner},
                    install_signal_handlers=False, update_heartbeat_interval=t.heartbeat,
                    stalled_worker_timeout=t.stalled,
                )
                current[:] = [worker]
                if stop.is_set():
                    break
                log.info("worker %s on %s (concurrency %d)", name,
                         ", ".join(queues) if queues else "all queues", concurrency)
                await worker.run()
        except Exception as exc:  # noqa: BLE001 - restart below; the reason is logged
            log.error("worker stopped: %s", _first_line(exc))
        finally:
            current.clear()
        if stop.is_set():
            break
        backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 30.0)
        log.warning("worker stopped on its own; restarting in %.0f s", backoff)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=backoff)


__all__ = [
    "DEFAULT_QUEUE",
    "GPU_QUEUE",
    "TASK_NAME",
    "JobRunner",
    "ProcrastinateQueue",
    "RetryLater",
    "StalledJobWatcher",
    "WorkerTuning",
    "apply_schema",
    "conninfo_from_url",
    "make_app",
    "make_distributed_queue",
    "queue_for",
    "recover_stalled_jobs",
    "run_worker",
    "tuning",
]
