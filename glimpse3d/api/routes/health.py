"""``GET /health``: can the database and storage be written, and is the queue running?

No credentials needed; the answer names the failing check in a few words, never a path or
URL (the full reason goes to the server log)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from glimpse3d.api.deps import ApiContext, get_ctx
from glimpse3d.api.schemas import HealthResponse

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Database and storage writable, queue running",
    responses={503: {"model": HealthResponse, "description": "A check failed; `detail` names it."}},
)
def health(ctx: Ctx) -> HealthResponse | JSONResponse:
    from glimpse3d.api.errors import unavailable_detail
    from glimpse3d.storage.base import check_writable

    def database() -> None:
        ctx.repo.check()
        ctx.repo.check_writable()

    def storage() -> None:
        ctx.storage.check()
        check_writable(ctx.storage)

    checks: dict[str, str] = {}
    for name, check in (("database", database), ("storage", storage), ("queue", ctx.queue.check)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none raised
            log.warning("health check %s failed: %s", name, exc)
            reason = unavailable_detail(exc) or f"{name} check failed"
            checks[name] = reason.removesuffix("; try again later")
    failing = [k for k, v in checks.items() if v != "ok"]
    if failing:
        body = HealthResponse(
            status="unhealthy",
            checks=checks,
            detail="unhealthy: " + "; ".join(f"{k}: {checks[k]}" for k in failing),
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthResponse(status="ok", checks=checks)
