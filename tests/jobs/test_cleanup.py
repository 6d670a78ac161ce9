"""Deleting old projects (rows and files): the function, the CLI command, the periodic run."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from glimpse3d.db.models import Project, utcnow
from glimpse3d.errors import UserError
from glimpse3d.jobs.cleanup import cleanup_projects, parse_age
from glimpse3d.storage.base import MODELS, PROCESSED, keys


@pytest.mark.parametrize(
    ("text", "days"),
    [("30d", 30.0), ("12h", 0.5), ("90m", 90 / 1440), ("45s", 45 / 86400), ("2w", 14.0),
     ("1.5d", 1.5), ("7", 7.0), (" 3H ", 0.125)],
)
def test_parse_age(text: str, days: float) -> None:
    assert parse_age(text) == pytest.approx(days)


@pytest.mark.parametrize("text", ["", "abc", "-1d", "3y", "d"])
def test_parse_age_rejects(text: str) -> None:
    with pytest.raises(UserError, match="cannot read the age"):
        parse_age(text)


def _project_with_files(repo, storage, name: str) -> str:
    pid = repo.create_project(name)["id"]
    storage.put_bytes(PROCESSED, keys.processed(pid), b"png", "image/png")
    storage.put_bytes(MODELS, keys.model(pid, 0), b"ply")
    return pid


def _age(repo, pid: str, days: float) -> None:
    with repo.engine.begin() as conn:
        conn.execute(update(Project.__table__).where(Project.__table__.c.id == pid)
                     .values(created_at=utcnow() - timedelta(days=days)))


def test_cleanup_projects_deletes_rows_and_files(tmp_path) -> None:
    from glimpse3d.db.repository import open_repository
    from glimpse3d.storage.local import LocalStorage

    repo = open_repository(f"sqlite:///{tmp_path / 'g.db'}")
    storage = LocalStorage(tmp_path / "storage")
    storage.ensure_buckets()
    old1, old2, young = (_project_with_files(repo, storage, n) for n in ("a", "b", "c"))
    _age(repo, old1, 40)
    _age(repo, old2, 31)
    _age(repo, young, 29)
    assert cleanup_projects(repo, storage, 30, dry_run=True) == [old1, old2]
    assert repo.list_projects()[1] == 3 and storage.exists(MODELS, keys.model(old1, 0))
    assert cleanup_projects(repo, storage, 30) == [old1, old2]
    assert [p["id"] for p in repo.list_projects()[0]] == [young]
    for pid in (old1, old2):
        assert not storage.exists(MODELS, keys.model(pid, 0))
        assert not storage.exists(PROCESSED, keys.processed(pid))
    assert storage.exists(MODELS, keys.model(young, 0))
    assert cleanup_projects(repo, storage, 30) == []
    repo.close()


def test_cleanup_skips_projects_with_an_active_job(tmp_path, make_settings) -> None:
    from glimpse3d.db.repository import open_repository
    from glimpse3d.jobs.inline import InlineQueue
    from glimpse3d.storage.local import LocalStorage

    repo = open_repository(f"sqlite:///{tmp_path / 'g.db'}")
    storage = LocalStorage(tmp_path / "storage")
    busy, idle = (_project_with_files(repo, storage, n) for n in ("busy", "idle"))
    _age(repo, busy, 10)
    _age(repo, idle, 10)
    queue = InlineQueue(make_settings(), repo, storage)  # not started: the job stays queued
    queue.enqueue(busy, {"kind": "generate"})
    assert cleanup_projects(repo, storage, 1, queue=queue) == [idle]
    assert repo.get_project(busy)["job"] == {"kind": "generate"}
    repo.close()


def test_cleanup_command_through_the_cli(tmp_path, monkeypatch) -> None:
    from glimpse3d.cli import app
    from glimpse3d.config import get_settings
    from glimpse3d.db.repository import open_repository
    from glimpse3d.storage.local import LocalStorage

    monkeypatch.setenv("GLIMPSE3D_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env
    get_settings.cache_clear()
    try:
        repo = open_repository(get_settings().resolved_database_url)
        storage = LocalStorage(tmp_path / "storage")
        old, new = _project_with_files(repo, storage, "old"), _project_with_files(repo, storage, "new")
        _age(repo, old, 0.6)  # 14.4 hours
        runner = CliRunner()
        res = runner.invoke(app, ["cleanup", "--older-than", "12h", "--dry-run"])
        assert res.exit_code == 0, res.output
        assert f"would delete {old}" in res.output and new not in res.output
        assert repo.list_projects()[1] == 2
        res = runner.invoke(app, ["cleanup", "--older-than", "12h"])
        assert res.exit_code == 0 and f"deleted {old}" in res.output
        assert "deleted 1 project(s) (older than 12h, interrupted deletes, orphan files)" in res.output
        assert [p["id"] for p in repo.list_projects()[0]] == [new]
        res = runner.invoke(app, ["cleanup", "--older-than", "soon"])
        assert res.exit_code == 2 and "cannot read the age" in res.output
        repo.close()
    finally:
        get_settings.cache_clear()


def test_periodic_cleanup_runs_inside_the_app(make_settings) -> None:
    from fastapi.testclient import TestClient

    from glimpse3d.api.app import create_app

    app = create_app(make_settings(retention_days=30, cleanup_interval_minutes=60))
    ctx = app.state.ctx
    old, new = (_project_with_files(ctx.repo, ctx.storage, n) for n in ("old", "new"))
    _age(ctx.repo, old, 31)
    with TestClient(app):  # the lifespan runs a cleanup at start, then every 60 min
        deadline = time.monotonic() + 10
        # a delete hides the row at once, then removes the files: wait for both
        while (ctx.repo.list_projects()[1] != 1 or ctx.storage.exists(MODELS, keys.model(old, 0))
               ) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [p["id"] for p in ctx.repo.list_projects()[0]] == [new]
    assert not ctx.storage.exists(MODELS, keys.model(old, 0))
    ctx.repo.close()


def test_cleanup_skips_recorded_jobs_and_sweeps_orphans_and_interrupted_deletes(
        repo_and_storage) -> None:
    """Without a queue (``glimpse3d cleanup`` in another process) a job recorded on the row
    still protects its project; files whose project has no row go; deletes that began are
    finished; the storage health probe's prefix is left alone."""
    from glimpse3d.jobs.cleanup import cleanup_projects, orphan_project_ids
    from glimpse3d.jobs.outcomes import record_queued_job

    repo, storage = repo_and_storage
    running, old, kept, half_deleted = (_project_with_files(repo, storage, n)
                                        for n in ("running", "old", "kept", "half"))
    for pid in (running, old):
        _age(repo, pid, 40)
    record_queued_job(repo, running, {"kind": "generate"}, requester="addr:1.2.3.4")
    repo.mark_deleted(half_deleted)
    orphan = "0b7e4c1e-8f2a-4c55-9a11-3f6d2e8b9c70"
    storage.put_bytes(PROCESSED, keys.processed(orphan), b"left over by a crash")
    storage.put_bytes(MODELS, "_health/probe-x", b"ok")
    assert orphan_project_ids(repo, storage) == [orphan]
    assert sorted(cleanup_projects(repo, storage, 30, dry_run=True)) == sorted(
        [old, half_deleted, orphan])
    assert storage.exists(PROCESSED, keys.processed(orphan))  # dry run: nothing removed
    deleted = cleanup_projects(repo, storage, 30)
    assert sorted(deleted) == sorted([old, half_deleted, orphan])
    assert repo.project_ids() == {running, kept}
    assert storage.exists(MODELS, keys.model(running, 0))
    assert storage.exists(MODELS, keys.model(kept, 0))
    assert not storage.exists(PROCESSED, keys.processed(orphan))
    assert not storage.exists(MODELS, keys.model(half_deleted, 0))
    assert storage.exists(MODELS, "_health/probe-x")
    assert repo.count_jobs_of("addr:1.2.3.4") == 1
