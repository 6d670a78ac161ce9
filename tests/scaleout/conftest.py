"""Fixtures for the scale-out tests: PostgreSQL + procrastinate settings on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.utils.settings import FAST


@pytest.fixture
def pq_settings(pg_migrated_url: str, make_settings: Callable[..., Any]) -> Callable[..., Any]:
    """``pq_settings(**overrides)``: settings with queue=procrastinate on a fresh PostgreSQL DB
    at the latest migration (a copy of the session's template; procrastinate's own schema is
    not in it: the queue applies it)."""

    def make(**overrides: Any) -> Any:
        return make_settings(**{"database_url": pg_migrated_url, "queue": "procrastinate", **FAST,
                                **overrides})

    return make


@pytest.fixture
def pq(pq_settings: Callable[..., Any], tmp_path: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(settings, repo, ProcrastinateQueue) on a fresh database (local storage); started."""
    from glimpse3d.db.repository import open_repository
    from glimpse3d.jobs.distributed import ProcrastinateQueue
    from glimpse3d.jobs.factory import make_queue
    from glimpse3d.storage.local import LocalStorage

    settings = pq_settings()
    repo = open_repository(settings.resolved_database_url)
    storage = LocalStorage(tmp_path / "storage")
    storage.ensure_buckets()
    assert isinstance(make_queue(settings, repo, storage), ProcrastinateQueue)
    # no background stall watcher: the tests call recover_stalled_jobs themselves
    queue = ProcrastinateQueue(settings, repo, storage, watch_stalled=False)
    queue.start()
    try:
        yield settings, repo, queue
    finally:
        queue.stop()
        repo.close()
