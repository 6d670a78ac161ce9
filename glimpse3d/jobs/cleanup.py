"""Deleting old projects, rows and files (``glimpse3d cleanup`` and the periodic run in ``serve``)."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING

from glimpse3d.errors import UserError

if TYPE_CHECKING:
    from glimpse3d.db.repository import Repository
    from glimpse3d.jobs.base import JobQueue
    from glimpse3d.storage.base import Storage

log = logging.getLogger(__name__)

_UNITS_DAYS = {"d": 1.0, "h": 1.0 / 24, "m": 1.0 / 1440, "s": 1.0 / 86400, "w": 7.0}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhmsw]?)\s*$", re.IGNORECASE)


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' (or a bare number of days) -> days (float)."""
    m = _AGE.match(text or "")
    if not m:
        raise UserError(f"cannot read the age {text!r}; use e.g. 30d, 12h or 90m")
    return float(m.group(1)) * _UNITS_DAYS[(m.group(2) or "d").lower()]


def cleanup_projects(
    repo: Repository,
    storage: Storage,
    older_than_days: float,
    dry_run: bool = False,
    queue: JobQueue | None = None,
) -> list[str]:
    """Delete every project created more than ``older_than_days`` days ago: its files in all
    buckets, then its rows. Projects with an active job (per ``queue``) are skipped.
    Returns the ids deleted (or, with ``dry_run``, that would be deleted)."""
    from glimpse3d.db.repository import ProjectNotFound

    if older_than_days < 0:
        raise UserError("the age must not be negative")
    deleted: list[str] = []
    for pid in repo.projects_older_than(older_than_days):
        if queue is not None and queue.is_active(pid):
            log.info("cleanup: skipping project %s, a job is running", pid)
            continue
        if not dry_run:
            storage.delete_project(pid)
            with contextlib.suppress(ProjectNotFound):
                repo.delete_project(pid)
        deleted.append(pid)
    if deleted:
        log.info("cleanup: %s %d project(s) older than %.3g days",
                 "would delete" if dry_run else "deleted", len(deleted), older_than_days)
    return deleted
