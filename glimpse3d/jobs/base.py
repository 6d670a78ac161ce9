"""The job-queue interface the API uses, and the factory that picks an engine from settings.

A *job* is a small JSON-able dict handed to ``PipelineRunner.run_job``:
``{"kind": "generate"}`` or ``{"kind": "refine", "iterations": n, "strength": s}``
(``"run"`` = everything, used by scripts). Engines record the job in ``projects.job``
before running it (and clear it when it ends: completed, failed or cancelled by the user),
so a job interrupted by a crash or a shutdown is found again and resumed — the runner skips
the stages whose outputs are already recorded. ``projects.attempts`` counts the starts of
the current job; after ``settings.max_job_attempts`` starts the project is marked failed.

Adding an engine (e.g. procrastinate in ``glimpse3d.jobs.distributed``): implement the
:class:`JobQueue` protocol and a ``make_distributed_queue(settings, repo, storage,
on_progress=None)`` factory in that module; :func:`make_queue` imports it lazily. The helpers
:func:`mark_job_started`, :func:`mark_job_finished` and :func:`db_active_count` below hold
the bookkeeping every engine shares.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from glimpse3d.errors import UserError
from glimpse3d.pipeline.backends import resolve_strength

if TYPE_CHECKING:
    from glimpse3d.config import Settings
    from glimpse3d.db.repository import Repository
    from glimpse3d.storage.base import Storage

log = logging.getLogger(__name__)

JOB_KINDS = ("generate", "refine", "run")

#: ``on_progress(event)`` where ``event`` is a ``glimpse3d.pipeline.runner.ProgressEvent``.
ProgressCallback = Callable[[Any], None]


@runtime_checkable
class JobQueue(Protocol):
    """What the API needs from a job engine. All methods are thread-safe."""

    def start(self) -> None:
        """Start the worker(s) and re-enqueue jobs that were interrupted (``projects.job`` set)."""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker(s). A running job is interrupted between steps and stays recorded,
        so the next :meth:`start` (in this or another process) resumes it."""

    def enqueue(self, project_id: str, job: dict[str, Any], client_id: str | None = None) -> None:
        """Record ``job`` (and ``client_id``, the requester) on the project and queue it.
        Raises ``WrongState`` if the project already has a queued or running job."""

    def cancel(self, project_id: str) -> bool:
        """Ask the project's job to stop (a queued job is dropped at once). False if none."""

    def is_active(self, project_id: str) -> bool:
        """True while the project has a queued or running job."""

    def active_count(self, client_id: str) -> int:
        """Queued + running jobs started by ``client_id`` (the requester, not the uploader)."""

    def check(self) -> None:
        """Raise with a clear message when the engine cannot run jobs (health check)."""


def validate_job(job: dict[str, Any]) -> dict[str, Any]:
    """Normalise a job dict; raises ``UserError`` for an unknown kind or bad parameters."""
    kind = job.get("kind")
    if kind not in JOB_KINDS:
        raise UserError(f"unknown job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}")
    out: dict[str, Any] = {"kind": kind}
    if kind in ("refine", "run"):
        iterations = int(job.get("iterations", 3))
        if not 0 <= iterations <= 10:
            raise UserError("iterations must be between 0 and 10")
        out.update(iterations=iterations, strength=resolve_strength(job.get("strength")))
    return out


# What a project shows from the moment its job is accepted (current_step "queued"), so that a
# client polling right after a 202 never mistakes the previous run's "completed" for this one.
QUEUED_STATUS: dict[str, tuple[str, float | None]] = {
    "generate": ("multiview_generating", 10.0),
    "refine": ("refining", 70.0),
    "run": ("preprocessing", 0.0),
}


def record_queued_job(
    repo: Repository, project_id: str, spec: dict[str, Any], requester: str | None = None
) -> None:
    """Record the accepted job (and who asked for it: ``job_requester``, counted by the
    per-requester cap in every process) on the project row and mark the project as under way."""
    status, progress = QUEUED_STATUS[spec["kind"]]
    fields: dict[str, Any] = {"job": spec, "attempts": 0, "error_message": None,
                              "status": status, "current_step": "queued",
                              "job_requester": requester}
    if progress is not None:
        fields.update(progress_percentage=progress, reset_progress=True)
    repo.update_project(project_id, **fields)


def mark_job_started(
    repo: Repository, project_id: str, job: dict[str, Any], max_attempts: int
) -> bool:
    """Count one more attempt of ``job``; returns False (and fails the project) when the
    job has already been started ``max_attempts`` times, i.e. it keeps crashing."""
    project = repo.get_project(project_id)
    attempts = int(project.get("attempts") or 0) + 1
    if attempts > max_attempts:
        repo.update_project(
            project_id,
            status="failed",
            job=None,
            error_message=(
                f"gave up after {max_attempts} interrupted attempts of the "
                f"{job.get('kind', 'pipeline')} job"
            ),
        )
        return False
    repo.update_project(project_id, attempts=attempts, job=job)
    return True


def mark_job_finished(
    repo: Repository, project_id: str, outcome: str, error: str | None = None
) -> None:
    """Clear the recorded job. ``outcome``: 'completed', 'failed' (with ``error``) or 'cancelled'."""
    fields: dict[str, Any] = {"job": None, "attempts": 0}
    if outcome == "failed":
        fields.update(status="failed", error_message=error or "the job failed")
    elif outcome == "cancelled":
        fields.update(status="cancelled", error_message="cancelled by the user")
    repo.update_project(project_id, **fields)


def interrupted_jobs(repo: Repository) -> list[tuple[str, dict[str, Any], str | None]]:
    """(project_id, job, requester) of every project whose recorded job never finished,
    oldest update first."""
    from glimpse3d.db.repository import PROJECT_STATUSES

    rows = [r for r in repo.projects_with_status(PROJECT_STATUSES) if r.get("job")]
    rows.sort(key=lambda r: str(r.get("updated_at") or ""))
    return [(str(r["id"]), dict(r["job"]), r.get("job_requester") or r.get("client_id"))
            for r in rows]


def db_active_count(repo: Repository, client_id: str) -> int:
    """Recorded (queued or running) jobs that ``client_id`` started, whoever uploaded the
    projects — for engines whose jobs run in other processes."""
    return repo.count_jobs_of(client_id)


def make_queue(
    settings: Settings,
    repo: Repository,
    storage: Storage,
    on_progress: ProgressCallback | None = None,
) -> JobQueue:
    """The engine named by ``settings.queue``: 'inline' (threads in this process) or
    'procrastinate' (``glimpse3d.jobs.distributed``, imported only when selected)."""
    if settings.queue == "inline":
        from glimpse3d.jobs.inline import InlineQueue

        return InlineQueue(settings, repo, storage, on_progress=on_progress)
    if settings.queue == "procrastinate":
        from glimpse3d.jobs import distributed

        return distributed.make_distributed_queue(settings, repo, storage, on_progress=on_progress)
    raise UserError(f"unknown queue {settings.queue!r}; expected inline or procrastinate")
