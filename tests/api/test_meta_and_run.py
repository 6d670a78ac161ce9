"""``GET /api/meta`` (the page's vocabulary) and ``POST /api/v1/run/{id}`` (one generate+refine job)."""

from __future__ import annotations

from glimpse3d.domain import EXPORT_FORMATS, NUM_VIEWS, PROJECT_STATUSES
from tests.utils.api import seed_project


def test_meta_lists_the_domain_vocabulary(client) -> None:
    r = client.get("/api/meta")
    assert r.status_code == 200
    body = r.json()
    assert body["statuses"] == list(PROJECT_STATUSES)
    assert body["terminal_statuses"] == ["completed", "failed", "cancelled"]
    assert set(body["active_statuses"]) | set(body["terminal_statuses"]) == set(PROJECT_STATUSES)
    assert body["export_formats"] == list(EXPORT_FORMATS)
    assert "image/gif" not in body["image_mime_types"] and "image/png" in body["image_mime_types"]
    assert body["num_views"] == NUM_VIEWS == 16


def test_run_queues_one_job_then_409_while_active(client) -> None:
    ctx = client.app.state.ctx
    pid = seed_project(ctx)
    r = client.post(f"/api/v1/run/{pid}?iterations=2")
    assert r.status_code == 202, r.text
    assert r.json()["job"] == {"kind": "run", "iterations": 2, "strength": 0.5}
    project = ctx.repo.get_project(pid)
    assert project["job"]["kind"] == "run" and project["current_step"] == "queued"
    assert project["status"] == "preprocessing" and project["progress_percentage"] == 0.0
    assert client.post(f"/api/v1/run/{pid}").status_code == 409
    assert client.post(f"/api/v1/run/{pid}?iterations=11").status_code == 422


def test_run_before_preprocessing_is_409(client) -> None:
    pid = client.app.state.ctx.repo.create_project("raw")["id"]
    r = client.post(f"/api/v1/run/{pid}")
    assert r.status_code == 409 and "preprocessed" in r.json()["detail"]
