"""The job-queue interface the API uses (:class:`JobQueue`) and the validation of job dicts.

A *job* is a small JSON-able dict handed to ``PipelineRunner.run_job``:
``{"kind": "generate"}`` or ``{"kind": "refine", "iterations": n, "strength": s}``
(``"run"`` = everything, used by scripts). Engines record the job in ``projects.job``
before running it (and clear it when it ends: completed, failed or cancelled by the user),
so a job interrupted by a crash or a shutdown is found again and resumed — the runner skips
the stages whose outputs are already recorded. ``projects.attempts`` counts the starts of
the current job; after ``settings.max_job_attempts`` starts the project is marked failed.

Adding an engine (e.g. procrastinate in ``glimpse3d.jobs.distributed``): implement the
:class:`JobQueue` protocol and name it in :func:`glimpse3d.jobs.factory.make_queue`. Every
write of a job's bookkeeping to the project row goes through ``glimpse3d.jobs.outcomes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from glimpse3d.domain import JOB_KINDS
from glimpse3d.errors import UserError
from glimpse3d.pipeline.ports import resolve_strength

log = logging.getLogger(__name__)

__all__ = ["JOB_KINDS", "JobQueue", "ProgressCallback", "validate_job"]

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

    def describe(self) -> str:
        """One line for ``glimpse3d doctor``: the engine and its workers. Raises with a clear
        message when this deployment cannot run jobs (e.g. no live worker)."""


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
