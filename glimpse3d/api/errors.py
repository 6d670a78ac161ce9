"""Every API error is JSON ``{"detail": "<one clear sentence>"}`` with the right status.

- ``UserError`` subclasses carry their status (415/413/422 image rules, 409 ``WrongState``),
- ``ProjectNotFound`` -> 404, request validation -> 422 (a readable message + ``errors``),
- ``RateLimited`` -> 429 with ``Retry-After`` (seconds),
- a database that is unreachable or read-only, a full or read-only disk, an unreachable
  object store -> 503 with a one-line reason (never a path),
- anything else -> 500 ``internal server error`` (logged; the traceback never leaves the server).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from glimpse3d.errors import UserError

log = logging.getLogger(__name__)


class ErrorResponse(BaseModel):
    """The body of every error response."""

    detail: str = Field(..., description="What went wrong and what to do, in one sentence.")


class ApiError(Exception):
    """An HTTP error raised by the API layer itself (status + message + extra headers)."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers or {}


class RateLimited(ApiError):
    """429 with ``Retry-After`` in whole seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(429, detail, {"Retry-After": str(max(1, int(retry_after)))})


_DESCRIPTIONS = {
    400: "Malformed request.",
    401: "Missing, unknown, expired or wrongly signed credentials (`Authorization: Bearer`).",
    404: "Unknown project (or file).",
    409: "The project is in the wrong state for this action (e.g. a job is already running, "
    "or no model exists yet).",
    413: "The upload is larger than the limit (`max_upload_bytes`, 10 MB by default).",
    415: "Not an image (detected from the content, not the client's content type).",
    422: "Invalid parameters or an unusable image (too small, too blurry, blank, "
    "decompression bomb); the message names the rule.",
    429: "Too many requests from this user (uploads per minute, or active jobs); "
    "see `Retry-After`.",
    500: "Internal error; details are logged on the server, never returned.",
    503: "A dependency (database, storage or queue) is unavailable, read-only or full, or "
    "the server is at a concurrency cap; see `Retry-After` when given.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting the given error statuses with :class:`ErrorResponse`
    (422 for invalid parameters and 500 are always included)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 422, 500, 503}):
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
        out[code] = entry
    return out


def _json(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",)) or "request"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def unavailable_detail(exc: BaseException) -> str | None:
    """The 503 message for a failure of the database or storage, or None for other errors."""
    import errno

    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    from glimpse3d.storage.base import StorageError

    if isinstance(exc, IntegrityError):
        return None
    if isinstance(exc, OperationalError | DBAPIError):
        text = str(getattr(exc, "orig", exc)).lower()
        if "read-only" in text or "readonly" in text or "read only" in text:
            return "the database is read-only; try again later"
        return "the database is unavailable; try again later"
    if isinstance(exc, FileNotFoundError):
        return None
    if isinstance(exc, OSError):
        reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                  errno.EROFS: "storage is read-only", errno.EACCES: "storage is not writable",
                  errno.EPERM: "storage is not writable"}.get(exc.errno or 0)
        return f"storage unavailable: {reason or 'I/O error'}; try again later"
    if isinstance(exc, StorageError):
        return "storage unavailable; try again later"
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, BotoCoreError | ClientError):
        return "the object store is unavailable; try again later"
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into ``{"detail": ...}`` responses."""
    from glimpse3d.db.repository import ProjectNotFound

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> JSONResponse:
        status = int(getattr(exc, "http_status", 400) or 400)
        return _json(status, str(exc) or type(exc).__name__)

    @app.exception_handler(ProjectNotFound)
    async def _not_found(request: Request, exc: ProjectNotFound) -> JSONResponse:
        pid = request.path_params.get("project_id")
        return _json(404, f"project {pid} not found" if pid else (str(exc) or "project not found"))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _json(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def _dependency_failed(request: Request, exc: Exception) -> JSONResponse:
        unavailable = unavailable_detail(exc)
        if unavailable is not None:
            log.warning("%s %s: %s (%s)", request.method, request.url.path, unavailable,
                        _first_line(exc))
            return _json(503, unavailable, {"Retry-After": "30"})
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _json(500, "internal server error; the details are in the server log")

    # Handled here (not by the catch-all below, which Starlette re-raises after answering)
    from sqlalchemy.exc import SQLAlchemyError

    from glimpse3d.storage.base import StorageError

    dependency_errors: list[type[Exception]] = [OSError, SQLAlchemyError, StorageError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        dependency_errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover
        pass
    for cls in dependency_errors:
        app.add_exception_handler(cls, _dependency_failed)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return await _dependency_failed(request, exc)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
