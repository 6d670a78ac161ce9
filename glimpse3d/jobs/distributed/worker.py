"""The worker process: ``glimpse3d worker`` runs procrastinate workers whose task hands each
job to a :class:`JobRunner` (one per process); outcomes go through ``glimpse3d.jobs.outcomes``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

from glimpse3d.errors import UserError
from glimpse3d.jobs.base import ProgressCallback
from glimpse3d.jobs.distributed.app import (
    PROJECT_LOCK_NAMESPACE,
    QUEUES,
    RetryLater,
    WorkerTuning,
    _connect,
    _first_line,
    _is_pooler,
    apply_schema,
    conninfo_from_url,
    make_app,
    tuning,
)
from glimpse3d.jobs.distributed.recovery import StalledJobWatcher
from glimpse3d.jobs.outcomes import CANCELLED, INTERRUPTED, mark_job_started, run_and_record

if TYPE_CHECKING:
    from collections.abc import Callable

    from glimpse3d.config import Settings
    from glimpse3d.db.repository import Repository
    from glimpse3d.services import Services
    from glimpse3d.storage.base import Storage

log = logging.getLogger(__name__)


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

        from glimpse3d.pipeline.runner import PipelineRunner

        project = self.repo.get_project(pid)
        recorded = project.get("job")
        if not recorded:
            return "no recorded job (finished or cancelled meanwhile)"
        # the recorded job carries the runner's additions (e.g. refine's until_iteration)
        spec = dict(recorded) if recorded.get("kind") == job.get("kind") else dict(job)
        if not mark_job_started(self.repo, pid, spec, self.settings.max_job_attempts):
            return "gave up: too many attempts"

        def reason() -> Any:
            return context.abort_reason() if context is not None else None

        runner = PipelineRunner(self.repo, self.storage, self.settings,
                                on_progress=self.on_progress,
                                should_cancel=lambda: reason() is not None)
        outcome, _ = run_and_record(
            runner, pid, spec, transient=_is_transient,
            shutting_down=lambda: reason() == AbortReason.SHUTDOWN,
        )
        if outcome == INTERRUPTED:
            raise RetryLater("worker shutting down")
        if outcome == CANCELLED:
            raise JobAborted()
        return outcome


# ------------------------------------------------------------------ the worker process
def run_worker(
    open_services: Callable[..., Services],
    queues: list[str] | None = None,
    concurrency: int | None = None,
    settings: Settings | None = None,
) -> None:
    """``glimpse3d worker``: run pipeline jobs from ``queues`` (all when empty), ``concurrency``
    at once (default ``settings.worker_concurrency``), until SIGINT/SIGTERM. Restarts the
    procrastinate worker if it stops on its own (e.g. its database went away) and re-queues
    jobs of stalled workers. ``open_services`` is ``glimpse3d.services.open_services``
    (passed in by the CLI: the services layer sits above the job engines)."""
    from glimpse3d.config import get_settings

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
    with open_services(settings, queue=False) as services:
        apply_schema(settings)
        runner = JobRunner(settings, services.repo, services.storage)
        watcher = StalledJobWatcher(conninfo, t.stalled, t.recovery_interval)
        watcher.start()
        try:
            asyncio.run(_supervise(settings, runner, queues or None, concurrency, t))
        finally:
            watcher.stop()


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

