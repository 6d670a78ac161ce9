"""Database helpers for migration tests: an open connection with an Alembic config bound to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic.config import Config
from sqlalchemy import Connection

from glimpse3d.db.engine import make_engine
from glimpse3d.db.migrate import alembic_config


@contextmanager
def alembic_connection(url: str) -> Iterator[tuple[Connection, Config]]:
    """(connection to ``url``, Alembic config that runs its commands on that connection);
    the engine is disposed on exit. The caller commits."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            yield conn, cfg
    finally:
        engine.dispose()
