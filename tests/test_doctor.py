"""``glimpse3d doctor`` on both deployments, and clear FAIL lines for the usual mistakes."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console

from glimpse3d.db.migrate import upgrade
from glimpse3d.doctor import run_checks, run_doctor


def _run(settings) -> tuple[bool, str]:
    buf = io.StringIO()
    ok = run_doctor(settings, Console(file=buf, width=300, no_color=True, force_terminal=False))
    return ok, buf.getvalue()


def _status(out: str, name: str) -> str:
    m = re.search(rf"^(PASS|FAIL|SKIP) {re.escape(name)}:", out, re.M)
    assert m, out
    return m.group(1)


NAMES = ["settings", "database connection", "tables", "views", "migrations at head", "buckets",
         "database round trip", "storage round trip", "job queue"]


def test_pass_on_sqlite_and_local(make_settings, sqlite_url):
    settings = make_settings(database_url=sqlite_url)
    upgrade(sqlite_url)
    ok, out = _run(settings)
    assert ok, out
    assert [_status(out, n) for n in NAMES] == ["PASS"] * len(NAMES)
    assert "all checks passed" in out


def test_pass_on_postgres_and_s3(make_settings, pg_url, s3_server, s3_storage_factory):
    storage = s3_storage_factory()  # buckets exist
    settings = make_settings(
        database_url=pg_url, storage_url=f"s3://{storage.bucket_prefix}", s3_endpoint_url=s3_server,
        s3_access_key_id="testing", s3_secret_access_key="testing",
    )
    upgrade(pg_url)
    ok, out = _run(settings)
    assert ok, out
    assert "PostgreSQL" in out
    # the round trips left nothing behind
    from glimpse3d.storage.base import BUCKETS

    assert all(storage.list(b) == [] for b in BUCKETS)


def test_fresh_database_says_upgrade(make_settings, sqlite_url):
    ok, out = _run(make_settings(database_url=sqlite_url))
    assert not ok
    assert _status(out, "tables") == "FAIL" and _status(out, "migrations at head") == "FAIL"
    assert "glimpse3d db upgrade" in out
    assert _status(out, "database round trip") == "SKIP"


def test_unknown_postgres_role(make_settings):
    url = "postgresql+psycopg://no_such_role_g3d:wrong@127.0.0.1:5432/postgres"
    ok, out = _run(make_settings(database_url=url))
    assert not ok
    assert _status(out, "database connection") == "FAIL"
    assert 'role "no_such_role_g3d" does not exist' in out
    assert "hint: unknown user" in out
    assert "wrong@" not in out  # the password is never printed
    assert _status(out, "tables") == "SKIP"


def test_wrong_password_hint():
    # The local server trusts 127.0.0.1, so a real password failure cannot be provoked here;
    # the server's message is mapped to the hint.
    from glimpse3d.doctor import explain_db_error

    what, hint = explain_db_error(
        Exception('connection failed: FATAL:  password authentication failed for user "postgres"')
    )
    assert "password authentication failed" in what
    assert hint.startswith("wrong password")


def test_role_without_login(make_settings, pg_url):
    import uuid

    import psycopg

    role = f"g3d_nologin_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"create role {role} nologin")
    try:
        url = pg_url.replace("postgres@", f"{role}:secret@", 1)
        ok, out = _run(make_settings(database_url=url))
        assert not ok and _status(out, "database connection") == "FAIL"
        assert "not permitted to log in" in out and "hint: the user may not log in" in out
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"drop role {role}")


def test_unreachable_host_fails_fast(make_settings):
    t0 = time.monotonic()
    ok, out = _run(make_settings(database_url="postgresql://postgres@127.0.0.1:1/postgres"))
    assert time.monotonic() - t0 < 15
    assert not ok
    assert _status(out, "database connection") == "FAIL"
    assert "hint: unreachable host" in out


def test_missing_s3_bucket(make_settings, sqlite_url, s3_server, s3_storage_factory):
    storage = s3_storage_factory(create_buckets=False)
    storage.client.create_bucket(Bucket=storage.bucket_name("3d-models"))
    upgrade(sqlite_url)
    settings = make_settings(
        database_url=sqlite_url, storage_url=f"s3://{storage.bucket_prefix}", s3_endpoint_url=s3_server,
        s3_access_key_id="testing", s3_secret_access_key="testing",
    )
    ok, out = _run(settings)
    assert not ok
    assert _status(out, "buckets") == "FAIL"
    assert f"{storage.bucket_prefix}project-uploads" in out
    assert f"{storage.bucket_prefix}3d-models" not in out.split("buckets:")[1].split("\n")[0]
    assert "hint: create the missing buckets" in out
    assert _status(out, "storage round trip") == "SKIP"
    assert _status(out, "database round trip") == "PASS"


def test_unreachable_s3_endpoint(make_settings, sqlite_url):
    upgrade(sqlite_url)
    settings = make_settings(
        database_url=sqlite_url, storage_url="s3://", s3_endpoint_url="http://127.0.0.1:1",
        s3_access_key_id="x", s3_secret_access_key="y",
    )
    t0 = time.monotonic()
    results = {r.name: r for r in run_checks(settings)}
    assert time.monotonic() - t0 < 20
    assert results["buckets"].status == "FAIL"
    assert "unreachable" in results["buckets"].detail
    assert results["buckets"].hint.startswith("unreachable host")


def test_cli_doctor_exit_code(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from glimpse3d.cli import app
    from glimpse3d.config import get_settings

    monkeypatch.setenv("GLIMPSE3D_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GLIMPSE3D_DATABASE_URL", raising=False)
    monkeypatch.delenv("GLIMPSE3D_STORAGE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["doctor"]).exit_code == 1  # not migrated yet
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        result = runner.invoke(app, ["doctor"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output


def test_procrastinate_queue_without_a_live_worker_fails(make_settings, pg_url):
    from glimpse3d.jobs.distributed import apply_schema

    settings = make_settings(database_url=pg_url, queue="procrastinate")
    upgrade(pg_url)
    apply_schema(settings)  # idempotent
    ok, out = _run(settings)
    assert not ok and _status(out, "job queue") == "FAIL"
    assert "no live worker" in out and "glimpse3d worker" in out
