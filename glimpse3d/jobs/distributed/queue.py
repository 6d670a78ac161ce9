"""The API side of the distributed engine: :class:`ProcrastinateQueue` defers jobs to the
workers and answers the :class:`~glimpse3d.jobs.base.JobQueue` questions from the database."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from glimpse3d.errors import WrongState
from glimpse3d.jobs.base import ProgressCallback, validate_job
from glimpse3d.jobs.distributed.app import (
    TASK_NAME,
    _first_line,
    apply_schema,
    conninfo_from_url,
    make_app,
    queue_for,
    tuning,
)
from glimpse3d.jobs.distributed.recovery import StalledJobWatcher, recover_stalled_jobs
from glimpse3d.jobs.outcomes import (
    cancel_orphaned_job,
    db_active_count,
    interrupted_jobs,
    mark_job_finished,
    record_queued_job,
)

if TYPE_CHECKING:
    from glimpse3d.config import Settings
    from glimpse3d.db.repository import Repository
    from glimpse3d.storage.base import Storage

log = logging.getLogger(__name__)

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
        if not done and recorded:  # recorded, but no procrastinate job could be stopped
            done = cancel_orphaned_job(self.repo, project_id)
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

    def describe(self) -> str:
        """``procrastinate, N live worker(s)``; raises when the schema is missing or no
        worker heartbeats."""
        self.check()
        workers = self.live_workers()
        if workers == 0:
            raise RuntimeError("procrastinate schema present but no live worker")
        return f"procrastinate, {workers} live worker(s)"

    # ---- extras (doctor, tests, benchmarks)
    def live_workers(self) -> int:
        """Workers that heartbeated within the stalled timeout."""
        row = self._query_one(
            "SELECT count(*) AS n FROM procrastinate_workers WHERE last_heartbeat > "
            "NOW() - make_interval(secs => %(secs)s)", secs=self.tuning.stalled)
        return int(row["n"])

    def recover_stalled(self) -> list[int]:
        return recover_stalled_jobs(self.conninfo, self.tuning.stalled)
