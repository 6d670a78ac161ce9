"""The FastAPI application: ``create_app(settings)``.

Layers: routes (``api/routes``) -> repository + storage + job queue (``ApiContext`` in
``app.state.ctx``). The lifespan starts the job queue (which resumes interrupted jobs) and
the periodic cleanup, and stops both on shutdown. The web workspace (``glimpse3d.web``) is
mounted at ``/`` when it is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from glimpse3d.api.deps import API_PREFIX, ApiContext
from glimpse3d.api.errors import install_error_handlers
from glimpse3d.api.events import ProgressBroadcaster
from glimpse3d.api.headers import SecurityHeadersMiddleware, content_security_policy
from glimpse3d.api.ratelimit import UploadLimiter
from glimpse3d.config import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """One photo in, a refined 3D Gaussian-splat model out.

Typical flow: `POST /api/v1/upload` -> `POST /api/v1/generate/{id}` -> watch
`GET /api/v1/projects/{id}/events` (or poll `GET /api/v1/status/{id}`) -> `POST
/api/v1/refine/{id}` -> `GET /api/v1/export/{id}?format=glb`.

Every error is JSON `{"detail": "..."}`.
"""


async def _periodic_cleanup(ctx: ApiContext) -> None:
    """Delete projects older than ``retention_days`` every ``cleanup_interval_minutes``."""
    from glimpse3d.jobs.cleanup import cleanup_projects

    interval = ctx.settings.cleanup_interval_minutes * 60.0
    while True:
        try:
            await run_in_threadpool(
                cleanup_projects, ctx.repo, ctx.storage, float(ctx.settings.retention_days),
                False, ctx.queue,
            )
        except Exception:  # noqa: BLE001 - keep the loop alive, log the failure
            log.exception("periodic cleanup failed")
        await asyncio.sleep(interval)


def build_context(settings: Settings) -> ApiContext:
    """Open the repository, storage and queue named by ``settings`` (``open_services``)."""
    from glimpse3d.services import open_services

    broadcaster = ProgressBroadcaster()
    services = open_services(settings, on_progress=broadcaster.publish)
    assert services.queue is not None
    limiter = UploadLimiter(settings.rate_limit, settings.redis_url)
    return ApiContext(settings, services.repo, services.storage, services.queue, broadcaster,
                      limiter)


def allowed_hosts(settings: Settings) -> list[str]:
    """``settings.allowed_hosts`` plus the host of ``public_base_url`` (a Host header naming
    anything else is refused with 400: the guard against DNS rebinding)."""
    from urllib.parse import urlsplit

    hosts = list(settings.allowed_hosts)
    public = urlsplit(settings.public_base_url).hostname if settings.public_base_url else None
    if public and public not in hosts:
        hosts.append(public)
    return hosts


def create_app(settings: Settings | None = None, *, start_worker: bool = True) -> FastAPI:
    """The API (and web workspace) over the configured database, storage and queue.

    ``start_worker=False`` leaves the job queue stopped (jobs stay queued) — for tests and
    for API-only processes in front of distributed workers.
    """
    settings = settings or get_settings()
    ctx = build_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.shutting_down.clear()
        if start_worker:
            await run_in_threadpool(ctx.queue.start)
        cleanup_task = None
        if settings.cleanup_interval_minutes > 0:
            cleanup_task = asyncio.create_task(_periodic_cleanup(ctx))
        try:
            yield
        finally:
            ctx.shutting_down.set()
            if cleanup_task is not None:
                cleanup_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cleanup_task
            if start_worker:
                await run_in_threadpool(ctx.queue.stop)

    app = FastAPI(
        title="Glimpse3D",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.settings = settings
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Last-Event-ID", "Authorization"],
            expose_headers=["Retry-After", "Content-Disposition"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware, csp=content_security_policy(settings))
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings))

    from glimpse3d.api.routes import auth, files, health, meta, pipeline, projects

    app.include_router(projects.router, prefix=API_PREFIX)
    app.include_router(pipeline.router, prefix=API_PREFIX)
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(meta.router)
    if ctx.storage.local_path("project-uploads", "probe") is not None:
        app.include_router(files.router)
    try:
        from glimpse3d.web import mount_web
    except ImportError:
        log.info("web workspace not installed; serving the API only")
    else:
        mount_web(app)
    return app
