"""``open_services(settings)``: the repository, storage and job queue a process works with.

The one place that assembles them from settings; used by the API (``api/app.py``), the
distributed worker (``jobs/distributed/worker.py``), the CLI (``run``, ``cleanup``) and
``doctor``. Layer: above ``jobs``, ``db`` and ``storage``; below ``api`` and ``cli``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glimpse3d.config import Settings
    from glimpse3d.db.repository import Repository
    from glimpse3d.jobs.base import JobQueue, ProgressCallback
    from glimpse3d.storage.base import Storage


@dataclass
class Services:
    """What a process works with. ``queue`` is None when opened with ``queue=False``.
    Use as a context manager (or call :meth:`close`) to release the database connections;
    starting and stopping the queue is the owner's business (the API's lifespan)."""

    settings: Settings
    repo: Repository
    storage: Storage
    queue: JobQueue | None = None

    def close(self) -> None:
        self.repo.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_services(
    settings: Settings,
    *,
    storage: Storage | None = None,
    queue: bool = True,
    on_progress: ProgressCallback | None = None,
    s3_options: dict[str, Any] | None = None,
) -> Services:
    """Open the database (migrated to head), the storage (``storage`` when given, else from
    ``settings``; ``s3_options`` go to the S3 client) and, with ``queue``, the job engine
    named by ``settings.queue`` (not started)."""
    from glimpse3d.db.repository import open_repository
    from glimpse3d.jobs.factory import make_queue
    from glimpse3d.storage.factory import open_storage

    if not settings.database_url or not settings.storage_url:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    repo = open_repository(settings.resolved_database_url)
    try:
        store = storage if storage is not None else open_storage(settings, s3_options=s3_options)
        jobs = make_queue(settings, repo, store, on_progress=on_progress) if queue else None
    except BaseException:
        repo.close()
        raise
    return Services(settings, repo, store, jobs)
