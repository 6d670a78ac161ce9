"""The in-process job engine: worker thread(s) in the API process, one pipeline per thread.

Jobs are recorded in ``projects.job`` before they run, so after a crash or a shutdown the
next :meth:`InlineQueue.start` re-enqueues them and the runner resumes where it stopped.
Cancellation is a flag polled by the runner's ``should_cancel`` between steps; ``stop()``
uses the same mechanism but keeps the job recorded (it is resumed, not cancelled).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from glimpse3d.errors import WrongState
from glimpse3d.jobs.base import ProgressCallback, validate_job
from glimpse3d.jobs.outcomes import (
    cancel_orphaned_job,
    interrupted_jobs,
    mark_job_finished,
    mark_job_started,
    record_queued_job,
    run_and_record,
)

if TYPE_CHECKING:
    from glimpse3d.config import Settings
    from glimpse3d.db.repository import Repository
    from glimpse3d.storage.base import Storage

log = logging.getLogger(__name__)


@dataclass
class _Job:
    project_id: str
    spec: dict[str, Any]
    client_id: str | None
    state: str = "queued"  # queued | running
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class InlineQueue:
    """:class:`glimpse3d.jobs.base.JobQueue` backed by a FIFO and ``worker_concurrency`` threads."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        storage: Storage,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.storage = storage
        self.on_progress = on_progress
        self._fifo: queue.Queue[str | None] = queue.Queue()
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.completed = 0  # jobs that ended (any outcome) since start; for tests and metrics

    # ---- lifecycle
    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        for pid, job, client_id in interrupted_jobs(self.repo):  # client_id: the requester
            log.info("resuming interrupted %s job of project %s", job.get("kind"), pid)
            self._add(pid, job, client_id, record=False)
        for i in range(self.settings.worker_concurrency):
            t = threading.Thread(target=self._work, args=(self._fifo,),
                                 name=f"glimpse3d-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        fifo, self._fifo = self._fifo, queue.Queue()  # a later start() gets a fresh FIFO
        for _ in self._threads:
            fifo.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("workers still running after %.0f s: %s", timeout, alive)
        self._threads = []
        with self._lock:  # queued jobs stay recorded in the database and resume on start
            self._jobs.clear()

    # ---- the JobQueue interface
    def enqueue(self, project_id: str, job: dict[str, Any], client_id: str | None = None) -> None:
        self._add(project_id, validate_job(job), client_id, record=True)

    def _add(self, pid: str, spec: dict[str, Any], client_id: str | None, record: bool) -> None:
        with self._lock:
            if pid in self._jobs:
                raise WrongState(
                    f"project {pid} already has a {self._jobs[pid].spec['kind']} job "
                    f"{self._jobs[pid].state}; wait for it or cancel it"
                )
            if record:
                record_queued_job(self.repo, pid, spec, requester=client_id)
            self._jobs[pid] = _Job(pid, spec, client_id)
        self._fifo.put(pid)

    def cancel(self, project_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(project_id)
            if job is None:  # recorded (e.g. by another process) but not queued here
                return cancel_orphaned_job(self.repo, project_id)
            job.cancel.set()
            if job.state == "queued":  # never started: drop it now
                del self._jobs[project_id]
                job.done.set()
                with contextlib.suppress(LookupError):  # ProjectNotFound: deleted meanwhile
                    mark_job_finished(self.repo, project_id, "cancelled")
        return True

    def is_active(self, project_id: str) -> bool:
        with self._lock:
            return project_id in self._jobs

    def active_count(self, client_id: str) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.client_id == client_id)

    def check(self) -> None:
        if not self._threads:
            raise RuntimeError("the inline worker is not started")
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead:
            raise RuntimeError(f"worker thread(s) died: {', '.join(dead)}")

    def describe(self) -> str:
        return "inline (in-process worker, nothing to check)"

    def wait(self, project_id: str, timeout: float | None = None) -> bool:
        """Block until the project's job ends; True if it ended (or there was none)."""
        with self._lock:
            job = self._jobs.get(project_id)
        return True if job is None else job.done.wait(timeout)

    # ---- the worker
    def _work(self, fifo: queue.Queue[str | None]) -> None:
        while not self._stopping.is_set():
            pid = fifo.get()
            if pid is None:
                return
            with self._lock:
                job = self._jobs.get(pid)
                if job is None or job.state != "queued":
                    continue  # cancelled while queued
                job.state = "running"
            try:
                self._run(job)
            except Exception:  # noqa: BLE001 - a worker thread must never die
                log.exception("bookkeeping failed for project %s", pid)
            finally:
                with self._lock:
                    if self._jobs.get(pid) is job:
                        del self._jobs[pid]
                job.done.set()
                self.completed += 1

    def _run(self, job: _Job) -> None:
        from glimpse3d.db.repository import ProjectNotFound
        from glimpse3d.pipeline.runner import PipelineRunner

        pid = job.project_id
        if self._stopping.is_set():
            return
        try:
            if not mark_job_started(self.repo, pid, job.spec, self.settings.max_job_attempts):
                return
        except ProjectNotFound:
            return  # deleted meanwhile
        runner = PipelineRunner(
            self.repo, self.storage, self.settings,
            on_progress=self.on_progress, should_cancel=job.cancel.is_set,
        )
        run_and_record(runner, pid, job.spec, shutting_down=self._stopping.is_set)
