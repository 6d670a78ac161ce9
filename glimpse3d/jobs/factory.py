"""``make_queue(settings, repo, storage)``: the job engine named by ``settings.queue``.

It lives apart from the interface (``jobs/base.py``) so that the engines, which import the
interface, are never imported back by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glimpse3d.errors import UserError

if TYPE_CHECKING:
    from glimpse3d.config import Settings
    from glimpse3d.db.repository import Repository
    from glimpse3d.jobs.base import JobQueue, ProgressCallback
    from glimpse3d.storage.base import Storage


def make_queue(
    settings: Settings,
    repo: Repository,
    storage: Storage,
    on_progress: ProgressCallback | None = None,
) -> JobQueue:
    """The engine named by ``settings.queue``: 'inline' (threads in this process) or
    'procrastinate' (``glimpse3d.jobs.distributed``, imported only when selected)."""
    if settings.queue == "inline":
        from glimpse3d.jobs.inline import InlineQueue

        return InlineQueue(settings, repo, storage, on_progress=on_progress)
    if settings.queue == "procrastinate":
        from glimpse3d.jobs.distributed.queue import ProcrastinateQueue

        return ProcrastinateQueue(settings, repo, storage, on_progress=on_progress)
    raise UserError(f"unknown queue {settings.queue!r}; expected inline or procrastinate")
