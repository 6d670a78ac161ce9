"""Shared fixtures: real PostgreSQL databases, a real (moto) S3 server, settings, repo+storage.

PostgreSQL must be running on 127.0.0.1:5432 with trust auth for user ``postgres``; when it
is not, the tests that use it fail loudly (they are never skipped).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.utils.services import PG_ADMIN_DSN, PG_URL_TEMPLATE, S3_KEY, S3_REGION, S3_SECRET


def _pg_admin(sql: str) -> None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_DSN} is required for this test: {exc}")


@contextmanager
def _pg_database(prefix: str = "g3d_test", template: str | None = None) -> Iterator[str]:
    """A new database ``<prefix>_<random>`` (a copy of ``template`` if given), dropped on exit;
    yields its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield name
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database ``g3d_test_<random>``; dropped afterwards."""
    with _pg_database() as name:
        yield PG_URL_TEMPLATE.format(name=name)


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    """A database migrated to head once per session, copied by ``pg_migrated_url``."""
    from glimpse3d.db.migrate import upgrade

    with _pg_database("g3d_tpl") as name:
        upgrade(PG_URL_TEMPLATE.format(name=name))  # disposes its engine: no open connection
        yield name


@pytest.fixture
def pg_migrated_url(_pg_template: str) -> Iterator[str]:
    """Like ``pg_url`` but already at the latest migration (a cheap copy of a template)."""
    with _pg_database(template=_pg_template) as name:
        yield PG_URL_TEMPLATE.format(name=name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL under ``tmp_path`` (the file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'db' / 'glimpse3d.db'}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 protocol server on a free loopback port; yields its endpoint URL.

    Credentials ``testing``/``testing``, region us-east-1. Its state is shared by the session:
    use a unique bucket prefix per test (see ``s3_storage_factory``)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_storage_factory(s3_server: str) -> Callable[..., Any]:
    """``make(create_buckets=True) -> S3Storage`` with a unique bucket prefix on the moto server."""
    from glimpse3d.storage.s3 import S3Storage

    def make(create_buckets: bool = True, prefix: str | None = None) -> S3Storage:
        storage = S3Storage(
            bucket_prefix=prefix if prefix is not None else f"t{uuid.uuid4().hex[:10]}-",
            endpoint_url=s3_server,
            region=S3_REGION,
            access_key=S3_KEY,
            secret_key=S3_SECRET,
            connect_timeout=2,
            read_timeout=10,
            max_attempts=2,
        )
        if create_buckets:
            storage.ensure_buckets()
        return storage

    return make


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Any]:
    """``make_settings(**overrides) -> Settings`` with ``data_dir=tmp_path`` and no .env file."""
    from glimpse3d.config import Settings

    def make(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", tmp_path)
        # TestClient sends "Host: testserver"; the loopback names cover real servers
        overrides.setdefault("allowed_hosts", ["localhost", "127.0.0.1", "[::1]", "testserver"])
        return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]

    return make


@pytest.fixture(params=["sqlite+local", "postgres+s3"])
def repo_and_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(Repository at head, Storage with its 6 buckets) on both deployments."""
    from glimpse3d.db.repository import open_repository
    from glimpse3d.storage.local import LocalStorage

    if request.param == "sqlite+local":
        repo = open_repository(request.getfixturevalue("sqlite_url"))
        storage: Any = LocalStorage(tmp_path / "storage")
        storage.ensure_buckets()
    else:
        repo = open_repository(request.getfixturevalue("pg_migrated_url"))
        storage = request.getfixturevalue("s3_storage_factory")()
    try:
        yield repo, storage
    finally:
        repo.close()
