"""Alembic, configured programmatically: works from an installed package and from any cwd.

``upgrade(url)`` brings a database to the latest revision. It is a cheap no-op at head and
safe when several processes start at once: PostgreSQL takes a transaction-scoped advisory
lock (works behind a transaction pooler too) and runs every revision in that transaction;
SQLite takes an exclusive lock on ``{db}.migrate.lock`` next to the database file.
A database made from ``supabase_schema.sql`` carries the version row and is left alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import URL

from glimpse3d.db.engine import WRITE, make_engine, normalize_url

VERSION_TABLE = "glimpse3d_alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ADVISORY_LOCK_KEY = 0x6733_645F_6D69_67  # "g3d_mig": one key for every Glimpse3D process


def alembic_config() -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The latest revision id shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - packaging error
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Autogenerate filter: ignore tables that are not ours (views, procrastinate, other apps)."""
    return not (type_ == "table" and reflected and compare_to is None)


def schema_diff(conn: Connection) -> list[Any]:
    """Differences between the database and the models (empty when they agree)."""
    from alembic.autogenerate import compare_metadata

    from glimpse3d.db.models import Base

    ctx = MigrationContext.configure(
        conn,
        opts={
            "version_table": VERSION_TABLE,
            "include_object": include_object,
            "compare_type": True,
        },
    )
    return list(compare_metadata(ctx, Base.metadata))


def current_revision(conn: Connection) -> str | None:
    """The database's revision, or None when it has never been migrated."""
    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


@contextlib.contextmanager
def _sqlite_file_lock(url: URL) -> Iterator[None]:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on SQLite's own locking
        yield
        return
    lock_path = Path(database).expanduser()
    lock_path = lock_path.with_name(lock_path.name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade_engine(engine: Engine) -> str:
    """Upgrade the database behind ``engine`` to head; returns the revision it is at."""
    head = head_revision()
    with engine.connect() as conn:
        if current_revision(conn) == head:
            return head
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            _upgrade_locked(conn, head)
        return head
    with _sqlite_file_lock(engine.url), engine.connect() as conn:
        conn.execution_options(**WRITE)
        with conn.begin():
            _upgrade_locked(conn, head)
    return head


def _upgrade_locked(conn: Connection, head: str) -> None:
    current = current_revision(conn)
    if current == head:
        return
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    if current is None and _has_all_tables(conn):
        # Schema created by hand (supabase_schema.sql without its version row): adopt it.
        command.stamp(cfg, head)
        return
    command.upgrade(cfg, "head")


def _has_all_tables(conn: Connection) -> bool:
    from glimpse3d.db.models import TABLES

    names = set(inspect(conn).get_table_names())
    return all(t in names for t in TABLES)


def upgrade(url: str) -> None:
    """Migrate the database at ``url`` to the latest revision (idempotent, concurrency-safe)."""
    engine = make_engine(normalize_url(url))
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()
