"""``glimpse3d serve``: uvicorn running :func:`glimpse3d.api.app.create_app`.

Shutdown never hangs on open event streams: the server sets ``ctx.shutting_down`` before it
waits for connections (the streams end within one poll), and ``timeout_graceful_shutdown``
bounds the wait for anything else.

``X-Forwarded-For`` is trusted only from the proxies in ``settings.forwarded_allow_ips``
(default: none, unlike uvicorn's default of trusting loopback). With ``auth=none`` the
server binds loopback only unless ``allow_remote_without_auth`` says otherwise.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from glimpse3d.config import Settings
from glimpse3d.errors import UserError

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

    if settings is None:
        from glimpse3d.config import get_settings

        settings = app.state.settings if app is not None else get_settings()
    check_bind(host, settings)  # before anything is opened
    app = app or create_app(settings)
    trusted = list(settings.forwarded_allow_ips)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=",".join(trusted) if trusted else "",
        server_header=False,
    )
    return Server(config, app)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to expose an unauthenticated server (``auth=none``) beyond loopback unless
    ``allow_remote_without_auth`` is set."""
    if settings.auth == "none" and not is_loopback(host) and not settings.allow_remote_without_auth:
        raise UserError(
            f"refusing to serve on {host} without authentication: set GLIMPSE3D_AUTH=api_key "
            "or supabase, or GLIMPSE3D_ALLOW_REMOTE_WITHOUT_AUTH=true (--allow-remote) if "
            "everyone who can reach this host may use it"
        )


def serve(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Run the API, the web workspace, the job worker and the periodic cleanup (blocks)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    make_server(host, port, settings).run()
