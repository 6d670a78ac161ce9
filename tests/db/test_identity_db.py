"""Identity in the database: migration 0002 gives owner-less projects to the local owner,
API keys are stored hashed and revocable, a project is only found by its owner and not
after its delete began, and the job cap counts the requester."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from glimpse3d.auth import AuthError
from glimpse3d.auth.keys import create_key, hash_key, identify
from glimpse3d.db.migrate import upgrade
from glimpse3d.db.repository import ProjectNotFound, open_repository
from glimpse3d.domain import LOCAL_OWNER
from tests.utils.db import alembic_connection


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request):
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def test_0002_gives_ownerless_projects_to_the_local_owner(db_url) -> None:
    with alembic_connection(db_url) as (conn, cfg):
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO projects (id, name) VALUES ('p1', 'old')"))
        conn.execute(text("INSERT INTO projects (id, name, owner_id) VALUES ('p2', 'x', 'u2')"))
        conn.commit()
    upgrade(db_url)
    repo = open_repository(db_url)
    try:
        assert repo.get_project("p1")["owner_id"] == LOCAL_OWNER
        assert repo.get_project("p2")["owner_id"] == "u2"
        assert repo.get_project("p1")["job_requester"] is None
    finally:
        repo.close()


def test_api_keys_hashed_revocable(db_url) -> None:
    repo = open_repository(db_url)
    try:
        row, key = create_key(repo, "alice", "laptop")
        assert key.startswith("g3d_") and row["prefix"] == key[:12]
        stored = repo.list_api_keys()
        assert [r["key_hash"] for r in stored] == [hash_key(key)]
        assert key not in repr(stored)
        assert identify(repo, key).owner_id == "alice"
        assert identify(repo, key).limit_key == "owner:alice"
        with pytest.raises(AuthError):
            identify(repo, key[:-1] + ("A" if key[-1] != "A" else "B"))
        assert [r["id"] for r in repo.revoke_api_key(row["prefix"])] == [row["id"]]
        assert repo.revoke_api_key(row["prefix"]) == []
        with pytest.raises(AuthError, match="revoked"):
            identify(repo, key)
        with pytest.raises(Exception, match="without spaces"):
            create_key(repo, "two words")
    finally:
        repo.close()


def test_owned_projects_and_requester_count(db_url) -> None:
    from glimpse3d.jobs.outcomes import db_active_count, record_queued_job

    repo = open_repository(db_url)
    try:
        mine = repo.create_project("mine", owner_id="a", client_id="10.0.0.1")["id"]
        theirs = repo.create_project("theirs", owner_id="b")["id"]
        assert repo.create_project("cli")["owner_id"] == LOCAL_OWNER
        assert repo.get_owned_project(mine, "a")["name"] == "mine"
        with pytest.raises(ProjectNotFound):
            repo.get_owned_project(theirs, "a")
        # b starts a job on a's project? no: the requester is whoever started it
        record_queued_job(repo, mine, {"kind": "generate"}, requester="owner:b")
        assert db_active_count(repo, "owner:b") == 1
        assert db_active_count(repo, "10.0.0.1") == 0  # the uploader's address is not it
        repo.mark_deleted(mine)
        with pytest.raises(ProjectNotFound):
            repo.get_owned_project(mine, "a")
        assert [p["id"] for p in repo.list_projects(owner_id="a")[0]] == []
        assert repo.deleted_project_ids() == [mine]
        assert repo.project_ids() >= {mine, theirs}
    finally:
        repo.close()


def test_health_write_probe_sees_a_read_only_postgres(pg_migrated_url) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    repo = open_repository(pg_migrated_url)
    try:
        repo.check_writable()
        name = make_url(pg_migrated_url).database
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                             autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        repo.engine.dispose()
        with pytest.raises(Exception, match="read-only"):
            repo.check_writable()
    finally:
        repo.close()
