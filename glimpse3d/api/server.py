"""``glimpse3d serve``: uvicorn running :func:`glimpse3d.api.app.create_app`.

Shutdown never hangs on open event streams: the server sets ``ctx.shutting_down`` before it
waits for connections (the streams end within one poll), and ``timeout_graceful_shutdown``
bounds the wait for anything else.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from glimpse3d.config import Settings

GRACEFUL_SHUTDOWN_SECONDS = 10


class Server(uvicorn.Server):
    """uvicorn's server that tells the app's event streams to end when shutting down."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.fastapi_app = app

    async def shutdown(self, sockets: Any = None) -> None:
        ctx = getattr(self.fastapi_app.state, "ctx", None)
        if ctx is not None:
            ctx.shutting_down.set()
        await super().shutdown(sockets=sockets)


def make_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: Settings | None = None,
    app: FastAPI | None = None,
    log_level: str = "info",
) -> Server:
    """A configured (not yet running) server; ``server.run()`` blocks, ``server.should_exit
    = True`` stops it (thread-friendly)."""
    from glimpse3d.api.app import create_app

    app = app or create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return Server(config, app)


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Run the API, the web workspace, the job worker and the periodic cleanup (blocks)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    make_server(host, port, settings).run()
