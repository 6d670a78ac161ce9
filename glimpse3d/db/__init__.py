"""Persistence: SQLAlchemy models for the 8 tables + 2 views, Alembic migrations, repository.

``open_repository(url)`` migrates to head and returns a :class:`Repository`; ``upgrade(url)``
only migrates. Both work for ``sqlite:///path`` and ``postgresql://`` URLs.
"""

from glimpse3d.db.migrate import upgrade
from glimpse3d.db.repository import (
    DatabaseCheckError,
    ProjectNotFound,
    Repository,
    open_repository,
)
from glimpse3d.domain import ACTIVE_STATUSES, PROJECT_STATUSES

__all__ = [
    "ACTIVE_STATUSES",
    "PROJECT_STATUSES",
    "DatabaseCheckError",
    "ProjectNotFound",
    "Repository",
    "open_repository",
    "upgrade",
]
