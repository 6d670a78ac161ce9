"""Engines for SQLite and PostgreSQL with the connection settings both need.

SQLite: the parent directory is created, foreign keys on, WAL journal, a busy timeout,
``check_same_thread=False`` (the API uses one engine from several threads) and explicit
``BEGIN`` (``BEGIN IMMEDIATE`` for writers) so concurrent writers wait instead of failing.
PostgreSQL: ``postgres://`` / ``postgresql://`` URLs use psycopg 3, a connect timeout,
pre-ping, and no server-side prepared statements behind a transaction pooler (Supabase 6543).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from glimpse3d.errors import UserError

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE = {"g3d_write": True}


class DatabaseURLError(UserError):
    """The database URL cannot be used."""


def normalize_url(url: str) -> URL:
    """Parse ``url``; PostgreSQL URLs without a driver get ``+psycopg``."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises ArgumentError and others
        raise DatabaseURLError(f"not a database URL: {mask_url(url)!r} ({exc})") from exc
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseURLError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:///path or postgresql://"
        )
    return parsed


def mask_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
        return parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<unparseable url>"


def is_transaction_pooler(url: URL) -> bool:
    """True for PgBouncer-style transaction pooling (Supabase's port 6543)."""
    return url.port == 6543 or str(url.query.get("pgbouncer", "")).lower() == "true"


def make_engine(url: str | URL, connect_timeout: float = 10.0, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings described in the module docstring.

    ``connect_timeout`` is in seconds (PostgreSQL connect; SQLite lock wait uses its own).
    """
    parsed = url if isinstance(url, URL) else normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    query = dict(parsed.query)
    query.pop("pgbouncer", None)
    connect_args: dict[str, Any] = {"connect_timeout": max(1, int(round(connect_timeout)))}
    if is_transaction_pooler(parsed):
        connect_args["prepare_threshold"] = None
    parsed = parsed.set(query=query)
    return create_engine(
        parsed, pool_pre_ping=True, connect_args=connect_args, future=True, **kwargs
    )


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not memory:
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = url.set(database=str(path))
    args: dict[str, Any] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if memory:
        engine = create_engine(url, connect_args=args, poolclass=StaticPool, **kwargs)
    else:
        engine = create_engine(url, connect_args=args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not memory:
            _enable_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("g3d_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _enable_wal(cur: Any) -> None:
    """Put the database file in WAL mode (persistent in the file, so usually a no-op).

    Switching a fresh file to WAL needs a lock that SQLite does not wait for with the busy
    timeout: when another connection holds it (several processes or threads opening a new
    database at once) the pragma fails with "database is locked" at once. Retry until the
    busy timeout instead.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
