"""The one owner of a job's bookkeeping on the project row: accepted, started, and how it ended.

The pipeline runner writes progress only (the status of the stage it is in, percentages,
``completed`` at the end of a run). When a run stops early the runner *raises* and leaves
the row as it was; the code that ran the job (an engine, or ``glimpse3d run``) records the
outcome here with :func:`run_and_record`:

=============================  =================================================================
the runner raised              what is recorded
=============================  =================================================================
nothing                        ``completed``; job cleared, attempts reset
``Cancelled`` (user)           ``cancelled`` ("cancelled by the user"); job cleared
``Cancelled`` (shutdown)       nothing changes but one attempt less: the job stays recorded with
                               its status and step, and the next start resumes it
``UserError``                  ``failed`` with the one-line reason
a lost database (transient)    nothing: the engine re-queues the job as it is
any other exception            ``failed`` with ``internal error: Type: message``; logged in full
``ProjectNotFound``            nothing (deleted meanwhile)
=============================  =================================================================

``projects.job`` holds the job from :func:`record_queued_job` until the outcome is recorded,
so a crash between the two is found again by :func:`interrupted_jobs` and resumed;
``projects.attempts`` counts starts (:func:`mark_job_started`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from glimpse3d.domain import JOB_FIRST_STAGE, PROJECT_STATUSES, STAGES
from glimpse3d.errors import Cancelled, UserError

if TYPE_CHECKING:
    from glimpse3d.db.repository import Repository
    from glimpse3d.pipeline.runner import PipelineRunner

log = logging.getLogger(__name__)

# What a project shows from the moment its job is accepted (current_step "queued"), so that a
# client polling right after a 202 never mistakes the previous run's "completed" for this one.
QUEUED_STATUS: dict[str, tuple[str, float | None]] = {
    kind: STAGES[stage][:2] for kind, stage in JOB_FIRST_STAGE.items()
}

#: outcomes returned by :func:`run_and_record`
COMPLETED, FAILED, CANCELLED, INTERRUPTED, DELETED = (
    "completed", "failed", "cancelled", "interrupted", "project deleted")


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
    if outcome == FAILED:
        fields.update(status="failed", error_message=(error or "the job failed")[:2000])
    elif outcome == CANCELLED:
        fields.update(status="cancelled", current_step="cancelled",
                      error_message="cancelled by the user")
    repo.update_project(project_id, **fields)


def cancel_orphaned_job(repo: Repository, project_id: str) -> bool:
    """Mark cancelled a job that is recorded on the row but that no worker has (lost between
    the row update and the queue, or by a crash); False when the project records no job."""
    from glimpse3d.db.repository import ProjectNotFound

    try:
        if not repo.get_project(project_id).get("job"):
            return False
        mark_job_finished(repo, project_id, CANCELLED)
    except ProjectNotFound:
        return False
    return True


def mark_job_interrupted(repo: Repository, project_id: str) -> None:
    """A graceful shutdown stopped the job between steps: keep it recorded (status, step and
    the runner's additions such as ``until_iteration`` are untouched) and do not count this
    attempt, so the next start resumes it."""
    project = repo.get_project(project_id)
    repo.update_project(project_id, attempts=max(0, int(project.get("attempts") or 0) - 1))
    log.info("job of project %s interrupted by a shutdown; it resumes on restart", project_id)


def interrupted_jobs(repo: Repository) -> list[tuple[str, dict[str, Any], str | None]]:
    """(project_id, job, requester) of every project whose recorded job never finished,
    oldest update first."""
    rows = [r for r in repo.projects_with_status(PROJECT_STATUSES) if r.get("job")]
    rows.sort(key=lambda r: str(r.get("updated_at") or ""))
    return [(str(r["id"]), dict(r["job"]), r.get("job_requester") or r.get("client_id"))
            for r in rows]


def db_active_count(repo: Repository, client_id: str) -> int:
    """Recorded (queued or running) jobs that ``client_id`` started, whoever uploaded the
    projects — for engines whose jobs run in other processes."""
    return repo.count_jobs_of(client_id)


def run_and_record(
    runner: PipelineRunner,
    project_id: str,
    job: dict[str, Any],
    *,
    shutting_down: Callable[[], bool] = lambda: False,
    transient: Callable[[BaseException], bool] = lambda exc: False,
    reraise: bool = False,
) -> tuple[str, Any]:
    """Run ``job`` with ``runner`` and record how it ended (table above).

    Returns ``(outcome, result)``: ``result`` is what the runner returned (the report for a
    ``run`` job). ``shutting_down()`` tells a shutdown from a user's cancel; a ``transient``
    exception is re-raised without recording (the engine retries the job). With ``reraise``
    the runner's exception is re-raised after the outcome is recorded (``glimpse3d run``)."""
    from glimpse3d.db.repository import ProjectNotFound

    repo = runner.repo
    try:
        result = runner.run_job(project_id, dict(job))
    except Cancelled:
        if shutting_down():
            mark_job_interrupted(repo, project_id)
            outcome = INTERRUPTED
        else:
            mark_job_finished(repo, project_id, CANCELLED)
            _notify(runner, project_id)
            outcome = CANCELLED
        if reraise:
            raise
        return outcome, None
    except ProjectNotFound:
        if reraise:
            raise
        return DELETED, None
    except UserError as exc:
        mark_job_finished(repo, project_id, FAILED, str(exc))
        _notify(runner, project_id)
        if reraise:
            raise
        return FAILED, None
    except Exception as exc:
        if transient(exc):
            raise
        log.exception("job of project %s failed", project_id)
        mark_job_finished(repo, project_id, FAILED,
                          f"internal error: {type(exc).__name__}: {exc}")
        _notify(runner, project_id)
        if reraise:
            raise
        return FAILED, None
    mark_job_finished(repo, project_id, COMPLETED)
    _notify(runner, project_id)
    return COMPLETED, result


def _notify(runner: PipelineRunner, project_id: str) -> None:
    """Tell the runner's progress listener that the project row changed (terminal state)."""
    if runner.on_progress is None:
        return
    try:
        from glimpse3d.pipeline.runner import ProgressEvent

        p = runner.repo.get_project(project_id)
        runner.on_progress(
            ProgressEvent(project_id, p["status"], p.get("current_step") or "",
                          float(p.get("progress_percentage") or 0), p.get("error_message") or "")
        )
    except Exception:  # noqa: BLE001 - listeners are best effort
        log.debug("progress notification failed", exc_info=True)
