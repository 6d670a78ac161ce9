"""A project shows its new job as under way from the moment the job is accepted."""

from __future__ import annotations

from glimpse3d.db.repository import open_repository
from glimpse3d.jobs.outcomes import record_queued_job


def test_refine_after_completion_is_not_reported_completed(sqlite_url):
    repo = open_repository(sqlite_url)
    pid = repo.create_project("p")["id"]
    repo.update_project(pid, status="completed", current_step="done", progress_percentage=100.0,
                        job=None)
    record_queued_job(repo, pid, {"kind": "refine", "iterations": 2, "strength": 0.5})
    row = repo.get_project(pid)
    assert (row["status"], row["current_step"], row["progress_percentage"]) == (
        "refining", "queued", 70.0)
    assert row["job"] == {"kind": "refine", "iterations": 2, "strength": 0.5}
    assert row["attempts"] == 0 and row["completed_at"] is None


def test_generate_keeps_upload_progress(sqlite_url):
    repo = open_repository(sqlite_url)
    pid = repo.create_project("p")["id"]
    repo.update_project(pid, status="preprocessing", progress_percentage=10.0)
    record_queued_job(repo, pid, {"kind": "generate"})
    row = repo.get_project(pid)
    assert (row["status"], row["current_step"], row["progress_percentage"]) == (
        "multiview_generating", "queued", 10.0)
