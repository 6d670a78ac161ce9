"""Crash consistency over a REAL server: with the uploads folder read-only, the disk full,
the database read-only, or storage failing during a delete, the API answers 503 with a
clear reason and leaves either everything or nothing (no half-made rows, no orphan files,
no row pointing at deleted files); ``/health`` checks that it can write."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from glimpse3d.storage.base import BUCKETS, UPLOADS
from tests.utils.api import live_server
from tests.utils.common import disc_photo
from tests.utils.servers import client
from tests.utils.settings import FAST


def _stored_files(ctx: Any) -> list[str]:
    return [f"{b}/{k}" for b in BUCKETS for k in ctx.storage.list(b)]


@contextlib.contextmanager
def read_only_dir(path: Path, monkeypatch: pytest.MonkeyPatch, storage: Any) -> Iterator[str]:
    """Make ``path`` read-only for real: chmod for an ordinary user, a read-only bind mount
    for root (chmod does not stop root). Where neither is possible (root without mount
    rights) the storage's writes raise EROFS instead. Yields how it was done."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield "chmod"
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)],
                             capture_output=True).returncode == 0
    if mounted:
        try:
            yield "read-only bind mount"
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    real_put = storage.put_bytes

    def refuse(bucket: str, key: str, *args: Any, **kwargs: Any) -> int:
        if bucket == UPLOADS:
            raise OSError(errno.EROFS, "Read-only file system", str(path / key))
        return real_put(bucket, key, *args, **kwargs)

    monkeypatch.setattr(storage, "put_bytes", refuse)
    yield "EROFS from put_bytes"


@pytest.fixture
def fault_app(make_settings):
    from glimpse3d.api.app import create_app

    apps: list[Any] = []

    def make(**overrides: Any) -> Any:
        app = create_app(make_settings(**{**FAST, **overrides}), start_worker=False)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.ctx.repo.close()


def _upload(c: Any) -> Any:
    return c.post("/api/v1/upload", files={"file": ("p.png", disc_photo(), "image/png")})


def test_read_only_uploads_folder(fault_app, monkeypatch) -> None:
    app = fault_app()
    ctx = app.state.ctx
    uploads = Path(ctx.storage.local_path(UPLOADS, "x")).parent
    with live_server(app) as base, client(base) as c:
        with read_only_dir(uploads, monkeypatch, ctx.storage) as how:
            r = _upload(c)
            assert r.status_code == 503, (how, r.text)
            assert r.json()["detail"] == "storage unavailable: storage is read-only; try again later" \
                or r.json()["detail"].startswith("storage unavailable: storage is not writable")
            assert str(uploads) not in r.text
            health = c.get("/health")
            assert health.status_code == 503 and health.json()["checks"]["storage"] != "ok"
            assert str(uploads) not in health.text and "/tmp" not in health.text
        assert ctx.repo.list_projects()[1] == 0 and ctx.repo.project_ids() == set()
        assert _stored_files(ctx) == []
        assert _upload(c).status_code == 201  # writable again: works again
        assert c.get("/health").status_code in (200, 503)  # queue not started here


def test_disk_full_during_the_preprocessed_write(fault_app, monkeypatch) -> None:
    app = fault_app()
    ctx = app.state.ctx
    real_put = ctx.storage.put_bytes

    def full_after_the_original(bucket: str, key: str, *args: Any, **kwargs: Any) -> int:
        if bucket != UPLOADS:  # the original is written, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_put(bucket, key, *args, **kwargs)

    monkeypatch.setattr(ctx.storage, "put_bytes", full_after_the_original)
    monkeypatch.setattr(ctx.storage, "put_file", lambda *a, **k: full_after_the_original(
        "x", "y"))
    with live_server(app) as base, client(base) as c:
        r = _upload(c)
        assert r.status_code == 503, r.text
        assert r.json()["detail"] == "storage unavailable: the disk is full; try again later"
        assert r.headers["retry-after"] == "30"
    assert ctx.repo.list_projects()[1] == 0 and ctx.repo.project_ids() == set()
    assert _stored_files(ctx) == []  # the original written before the fault was undone


def _pg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _set_read_only(url: str, on: bool) -> None:
    name = make_url(url).database
    with psycopg.connect(_pg_dsn(url).rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = '
                     f'{"on" if on else "off"}')
        # existing sessions keep their setting: end them (the pool reconnects, pre-ping)
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))


def test_read_only_database(fault_app, pg_migrated_url) -> None:
    app = fault_app(database_url=pg_migrated_url)
    ctx = app.state.ctx
    with live_server(app) as base, client(base) as c:
        kept = _upload(c).json()["project_id"]
        files_before = _stored_files(ctx)
        _set_read_only(pg_migrated_url, True)
        try:
            r = _upload(c)
            assert r.status_code == 503, r.text
            assert r.json()["detail"] == "the database is read-only; try again later"
            health = c.get("/health")
            assert health.status_code == 503
            assert health.json()["checks"]["database"] == "the database is read-only"
            r = c.delete(f"/api/v1/projects/{kept}")
            assert r.status_code == 503, r.text
            assert _stored_files(ctx) == files_before  # nothing deleted, nothing added
            assert c.get(f"/api/v1/status/{kept}").status_code == 200  # reads still work
        finally:
            _set_read_only(pg_migrated_url, False)
        assert ctx.repo.project_ids() == {kept}
        assert c.delete(f"/api/v1/projects/{kept}").status_code == 204
        assert ctx.repo.project_ids() == set() and _stored_files(ctx) == []


def test_delete_interrupted_by_storage_is_hidden_then_finished_by_cleanup(
        fault_app, monkeypatch) -> None:
    from glimpse3d.jobs.cleanup import cleanup_projects

    app = fault_app()
    ctx = app.state.ctx
    with live_server(app) as base, client(base) as c:
        pid = _upload(c).json()["project_id"]
        real_delete = ctx.storage.delete

        def fail_halfway(bucket: str, key: str) -> None:
            if bucket != UPLOADS:
                raise OSError(errno.EIO, "Input/output error")
            real_delete(bucket, key)

        monkeypatch.setattr(ctx.storage, "delete", fail_halfway)
        r = c.delete(f"/api/v1/projects/{pid}")
        assert r.status_code == 503 and "storage unavailable" in r.json()["detail"]
        # the row survives but is hidden: no link to a half-deleted project is handed out
        assert ctx.repo.get_project(pid)["deleted_at"] is not None
        assert c.get(f"/api/v1/status/{pid}").status_code == 404
        assert c.get("/api/v1/projects").json()["total"] == 0
        assert _stored_files(ctx) != []
        monkeypatch.setattr(ctx.storage, "delete", real_delete)
        assert cleanup_projects(ctx.repo, ctx.storage, 30.0) == [pid]
        assert ctx.repo.project_ids() == set() and _stored_files(ctx) == []


def test_health_shows_no_paths_and_checks_writes(fault_app, monkeypatch) -> None:
    app = fault_app()
    ctx = app.state.ctx
    with live_server(app) as base, client(base) as c:
        body = c.get("/health").json()
        assert body["checks"]["database"] == "ok" and body["checks"]["storage"] == "ok"
        assert str(ctx.storage.root) not in c.get("/health").text
        monkeypatch.setattr(ctx.storage, "put_bytes", lambda *a, **k: (_ for _ in ()).throw(
            OSError(errno.ENOSPC, "No space left on device")))
        body = c.get("/health").json()
        assert body["checks"]["storage"] == "storage unavailable: the disk is full"
        assert ctx.storage.list(UPLOADS) == []  # the probe leaves nothing
