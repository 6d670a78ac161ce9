"""Shared objects of one app (``app.state.ctx``) and the FastAPI dependencies that hand them out."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from glimpse3d.api.events import ProgressBroadcaster
from glimpse3d.api.ratelimit import SlotLimiter, UploadLimiter

if TYPE_CHECKING:
    from glimpse3d.api.security import Authenticator
    from glimpse3d.auth import Identity
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
    authenticator: Authenticator = field(init=False)
    #: server-wide caps on the expensive work (settings max_concurrent_* / max_event_streams)
    decodes: SlotLimiter = field(init=False)
    exports: SlotLimiter = field(init=False)
    streams: SlotLimiter = field(init=False)
    shutting_down: threading.Event = field(default_factory=threading.Event)
    sse_poll_interval: float = 0.5
    sse_keepalive: float = 15.0
    delete_wait_seconds: float = 10.0
    #: serialized status responses: project id -> (row fingerprint, monotonic time, JSON)
    status_cache: dict[str, tuple[tuple, float, bytes]] = field(default_factory=dict)
    status_cache_seconds: float = 2.0

    def __post_init__(self) -> None:
        from glimpse3d.api.security import Authenticator

        self.authenticator = Authenticator(self)
        s = self.settings
        self.decodes = SlotLimiter("photo decodes", s.max_concurrent_decodes, wait_seconds=20.0)
        self.exports = SlotLimiter("exports", s.max_concurrent_exports, wait_seconds=30.0)
        self.streams = SlotLimiter("event streams", s.max_event_streams, wait_seconds=0.0)

    def project_of(self, identity: Identity, project_id: str) -> dict[str, Any]:
        """The caller's project (ProjectNotFound -> 404 for anyone else's or a missing one)."""
        return self.repo.get_owned_project(project_id, identity.owner_id)

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

