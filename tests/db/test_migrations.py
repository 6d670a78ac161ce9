"""Alembic migrations: models and revisions agree, upgrades are idempotent and concurrency-safe."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import inspect, text

from glimpse3d.db.engine import make_engine
from glimpse3d.db.migrate import (
    current_revision,
    head_revision,
    schema_diff,
    upgrade,
)
from glimpse3d.db.models import TABLES
from glimpse3d.db.repository import VIEW_NAMES
from tests.utils.db import alembic_connection


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request):
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def test_upgrade_matches_models_and_is_idempotent(db_url):
    upgrade(db_url)
    upgrade(db_url)  # no-op at head
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            insp = inspect(conn)
            assert set(TABLES) <= set(insp.get_table_names())
            assert set(VIEW_NAMES) <= set(insp.get_view_names())
            assert schema_diff(conn) == []
    finally:
        engine.dispose()


def test_concurrent_upgrades(db_url):
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(db_url)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(sqlite_url):
    upgrade(sqlite_url)
    with alembic_connection(sqlite_url) as (conn, cfg):
        command.downgrade(cfg, "base")
        conn.commit()
        names = set(inspect(conn).get_table_names())
        assert not set(TABLES) & names
        assert current_revision(conn) is None
    upgrade(sqlite_url)


def test_sqlite_connection_settings(sqlite_url):
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        engine.dispose()


def test_url_normalisation_and_errors():
    from glimpse3d.db.engine import DatabaseURLError, mask_url, normalize_url

    assert normalize_url("postgres://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql://u:p@h:6543/db").drivername == "postgresql+psycopg"
    assert "p@" not in mask_url("postgresql://u:p@h/db") and "***" in mask_url(
        "postgresql://u:p@h/db"
    )
    with pytest.raises(DatabaseURLError):
        normalize_url("mysql://u@h/db")
    with pytest.raises(DatabaseURLError):
        normalize_url("not a url")


def test_db_upgrade_command_from_any_cwd(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from glimpse3d.cli import app
    from glimpse3d.config import get_settings

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("GLIMPSE3D_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GLIMPSE3D_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision()}" in result.output
    assert (tmp_path / "data" / "glimpse3d.db").is_file()


def test_db_upgrade_command_applies_job_schema_on_postgres(pg_url, tmp_path, monkeypatch):
    from sqlalchemy import inspect as sa_inspect
    from typer.testing import CliRunner

    from glimpse3d.cli import app
    from glimpse3d.config import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GLIMPSE3D_DATABASE_URL", pg_url)
    monkeypatch.setenv("GLIMPSE3D_QUEUE", "procrastinate")
    get_settings.cache_clear()
    try:
        first = CliRunner().invoke(app, ["db", "upgrade"])
        second = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
    assert first.exit_code == 0, first.output
    assert "job queue schema applied" in first.output
    assert second.exit_code == 0 and "job queue schema present" in second.output
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            names = set(sa_inspect(conn).get_table_names())
            assert "procrastinate_jobs" in names and set(TABLES) <= names
            assert schema_diff(conn) == []  # the job engine's tables do not count as drift
    finally:
        engine.dispose()


def test_check_message_and_adopting_a_hand_made_schema(sqlite_url):
    from glimpse3d.db.models import Base
    from glimpse3d.db.repository import DatabaseCheckError, Repository, open_repository
    from glimpse3d.db.views import VIEWS

    bare = Repository(sqlite_url)  # no migration
    try:
        with pytest.raises(DatabaseCheckError, match="glimpse3d db upgrade"):
            bare.check()
        # tables made by hand (e.g. an older supabase_schema.sql without the version row)
        with bare.engine.begin() as conn:
            Base.metadata.create_all(conn)
            for sql in VIEWS.values():
                conn.exec_driver_sql(sql)
    finally:
        bare.close()
    repo = open_repository(sqlite_url)  # adopts the schema (stamps head) instead of failing
    try:
        repo.check()
        with repo.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        assert repo.create_project("x")["status"] == "uploading"
    finally:
        repo.close()
