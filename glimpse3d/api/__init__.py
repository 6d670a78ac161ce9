"""The HTTP API (FastAPI): ``create_app(settings)``; ``glimpse3d.api.server.serve(host, port)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from glimpse3d.config import Settings


def create_app(settings: Settings | None = None, **kwargs: Any) -> FastAPI:
    """See :func:`glimpse3d.api.app.create_app`."""
    from glimpse3d.api.app import create_app as _create_app

    return _create_app(settings, **kwargs)


__all__ = ["create_app"]
