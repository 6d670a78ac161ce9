"""``GET /health``: database, storage and queue checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from glimpse3d.api.deps import ApiContext, get_ctx
from glimpse3d.api.schemas import HealthResponse

router = APIRouter(tags=["health"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Database, storage and queue checks",
    responses={503: {"model": HealthResponse, "description": "A check failed; `detail` names it."}},
)
def health(ctx: Ctx) -> HealthResponse | JSONResponse:
    checks: dict[str, str] = {}
    for name, check in (
        ("database", ctx.repo.check),
        ("storage", ctx.storage.check),
        ("queue", ctx.queue.check),
    ):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none raised
            checks[name] = (str(exc) or type(exc).__name__).splitlines()[0][:300]
    failing = [k for k, v in checks.items() if v != "ok"]
    if failing:
        body = HealthResponse(
            status="unhealthy",
            checks=checks,
            detail="unhealthy: " + "; ".join(f"{k}: {checks[k]}" for k in failing),
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthResponse(status="ok", checks=checks)
