"""Shared objects of one app (``app.state.ctx``) and the FastAPI dependencies that hand them out."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from glimpse3d.api.events import ProgressBroadcaster
from glimpse3d.api.ratelimit import UploadLimiter

if TYPE_CHECKING:
    from glimpse3d.config import Settings
    from glimpse3d.db.repository import Repository
    from glimpse3d.jobs.base import JobQueue
    from glimpse3d.pipeline.runner import PipelineRunner
    from glimpse3d.storage.base import Storage

API_PREFIX = "/api/v1"


@dataclass
class ApiContext:
    """Everything a request needs; built once by ``create_app``."""

    settings: Settings
    repo: Repository
    storage: Storage
    queue: JobQueue
    broadcaster: ProgressBroadcaster
    limiter: UploadLimiter
    shutting_down: threading.Event = field(default_factory=threading.Event)
    sse_poll_interval: float = 0.5
    sse_keepalive: float = 15.0
    delete_wait_seconds: float = 10.0
    #: serialized status responses: project id -> (row fingerprint, monotonic time, JSON)
    status_cache: dict[str, tuple[tuple, float, bytes]] = field(default_factory=dict)
    status_cache_seconds: float = 2.0

    def runner(self) -> PipelineRunner:
        """A pipeline runner for work done inside a request (ingest, export)."""
        from glimpse3d.pipeline.runner import PipelineRunner

        return PipelineRunner(
            self.repo, self.storage, self.settings, on_progress=self.broadcaster.publish
        )

    def public(self, path: str) -> str:
        """An absolute-path URL (``/api/...``, ``/files/...``) with ``public_base_url`` in front."""
        if path.startswith("/"):
            return self.settings.public_base_url.rstrip("/") + path
        return path

    def file_url(self, bucket: str, key: str | None) -> str | None:
        """The URL of a stored object (``None`` when ``key`` is empty)."""
        if not key:
            return None
        return self.public(self.storage.url(bucket, key))

    def api_url(self, path: str) -> str:
        return self.public(API_PREFIX + path)

    def job_active(self, project: dict[str, Any]) -> bool:
        return bool(project.get("job")) or self.queue.is_active(str(project["id"]))


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx


def client_id(request: Request) -> str:
    """Who is calling, for rate limits and the active-job cap: the peer address."""
    return request.client.host if request.client else "unknown"
