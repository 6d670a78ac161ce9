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


def _has_active_job(repo: Repository, queue: JobQueue | None, pid: str) -> bool:
    """A job is queued or running: recorded on the row (any worker) or known to ``queue``."""
    from glimpse3d.db.repository import ProjectNotFound

    if queue is not None and queue.is_active(pid):
        return True
    try:
        return bool(repo.get_project(pid).get("job"))
    except ProjectNotFound:
        return False


def delete_project_everywhere(repo: Repository, storage: Storage, pid: str) -> None:
    """Hide the row, delete the files, then the row: an interruption at any point leaves a
    row marked deleted (finished by the next cleanup), never a row pointing at lost files."""
    from glimpse3d.db.repository import ProjectNotFound

    with contextlib.suppress(ProjectNotFound):
        repo.mark_deleted(pid)
    storage.delete_project(pid)
    with contextlib.suppress(ProjectNotFound):
        repo.delete_project(pid)


def _project_id_of(key: str) -> str | None:
    """The project id a storage key belongs to (its first segment when that is a UUID)."""
    import uuid

    first = key.split("/", 1)[0]
    try:
        return str(uuid.UUID(first)) if len(first) == 36 else None
    except ValueError:
        return None


def orphan_project_ids(repo: Repository, storage: Storage) -> list[str]:
    """Project ids that own files in some bucket but have no row (left by a crash between a
    row delete and a file write, or by an undo that could not finish)."""
    from glimpse3d.storage.base import BUCKETS

    in_storage: set[str] = set()
    for bucket in BUCKETS:
        for key in storage.list(bucket):
            pid = _project_id_of(key)
            if pid is not None:
                in_storage.add(pid)
    return sorted(in_storage - repo.project_ids())


def cleanup_projects(
    repo: Repository,
    storage: Storage,
    older_than_days: float,
    dry_run: bool = False,
    queue: JobQueue | None = None,
) -> list[str]:
    """Delete every project created more than ``older_than_days`` days ago (its files in all
    buckets, then its rows), finish deletes that were interrupted, and remove orphan files
    (files of project ids without a row). Projects with an active job (recorded on the row,
    or per ``queue``) are skipped. Returns the ids deleted (or, with ``dry_run``, that
    would be deleted)."""
    if older_than_days < 0:
        raise UserError("the age must not be negative")
    deleted: list[str] = []
    candidates = list(dict.fromkeys([*repo.deleted_project_ids(),
                                     *repo.projects_older_than(older_than_days)]))
    for pid in candidates:
        if _has_active_job(repo, queue, pid):
            log.info("cleanup: skipping project %s, a job is queued or running", pid)
            continue
        if not dry_run:
            delete_project_everywhere(repo, storage, pid)
        deleted.append(pid)
    for pid in orphan_project_ids(repo, storage):
        if not dry_run:
            storage.delete_project(pid)
        deleted.append(pid)
    if deleted:
        log.info("cleanup: %s %d project(s) (older than %.3g days, interrupted deletes, "
                 "orphan files)", "would delete" if dry_run else "deleted", len(deleted),
                 older_than_days)
    return deleted
