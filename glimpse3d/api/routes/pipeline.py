"""Queueing the pipeline (generate, refine, or both as one ``run`` job) and downloading exports."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from glimpse3d.api.deps import ApiContext, get_ctx
from glimpse3d.api.errors import ApiError, error_responses
from glimpse3d.api.schemas import ExportFormat, JobAccepted
from glimpse3d.api.security import Caller
from glimpse3d.api.views import forget_status
from glimpse3d.auth import Identity
from glimpse3d.domain import DEFAULT_ITERATIONS
from glimpse3d.pipeline.ports import resolve_strength
from glimpse3d.splat.export import FILE_EXTENSIONS, MEDIA_TYPES
from glimpse3d.splat.mesh_asset import MAX_FACES, MAX_TEXTURE, MIN_FACES, MIN_TEXTURE

router = APIRouter(tags=["pipeline"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
Strength = Literal["low", "medium", "high"]

CAP_RETRY_AFTER = 15  # seconds suggested when the per-identity job cap is reached


class RefineRequest(BaseModel):
    """Optional JSON body of ``POST /refine/{id}`` (the same fields as the query)."""

    iterations: int | None = Field(None, ge=1, le=10, description="Refinement iterations.")
    strength: Strength | None = Field(
        None, description="Enhancement strength: low 0.25, medium 0.5 (default), high 0.75."
    )


def _check_can_start(ctx: ApiContext, project: dict[str, Any], caller: Identity) -> None:
    pid = str(project["id"])
    if ctx.job_active(project):
        kind = (project.get("job") or {}).get("kind", "pipeline")
        raise ApiError(
            409, f"a {kind} job is already queued or running for this project; wait for it "
            f"or cancel it (POST /api/v1/projects/{pid}/cancel)"
        )
    cap = ctx.settings.max_active_jobs_per_client
    if ctx.queue.active_count(caller.limit_key) >= cap:
        raise ApiError(
            429, f"you already have {cap} active job(s), the most allowed per user; wait for "
            "one to finish", {"Retry-After": str(CAP_RETRY_AFTER)},
        )


def _require_processed(project: dict[str, Any]) -> None:
    if not project.get("processed_image_key"):
        raise ApiError(409, "the upload has not been preprocessed; upload the photo again")


def _enqueue(ctx: ApiContext, caller: Identity, pid: str, job: dict[str, Any]) -> JobAccepted:
    """Queue ``job`` for ``pid`` on behalf of ``caller`` and describe it (202 body)."""
    ctx.queue.enqueue(pid, job, client_id=caller.limit_key)
    return _accepted(ctx, pid, job)


def _accepted(ctx: ApiContext, pid: str, job: dict[str, Any]) -> JobAccepted:
    project = ctx.repo.get_project(pid)
    return JobAccepted(
        project_id=pid,
        job=job,
        status=project["status"],
        status_url=ctx.api_url(f"/status/{pid}"),
        events_url=ctx.api_url(f"/projects/{pid}/events"),
    )


@router.post(
    "/generate/{project_id}",
    status_code=202,
    response_model=JobAccepted,
    summary="Queue multiview -> depth -> reconstruction (model v0)",
    description="409 while a job is queued or running, before the upload was processed, or "
    "when v0 already exists and the project is completed (refine or export it instead). A "
    "failed or cancelled run resumes where it stopped.",
    responses=error_responses(401, 404, 409, 429),
)
def generate(project_id: str, ctx: Ctx, caller: Caller) -> JobAccepted:
    project = ctx.project_of(caller, project_id)
    _require_processed(project)
    _check_can_start(ctx, project, caller)
    if project["status"] == "completed" and ctx.repo.list_models(project_id):
        raise ApiError(
            409, "the model is already generated (v0 exists); refine or export it instead"
        )
    return _enqueue(ctx, caller, project_id, {"kind": "generate"})


@router.post(
    "/refine/{project_id}",
    status_code=202,
    response_model=JobAccepted,
    summary="Queue refinement iterations (v(n+1) ... v(n+iterations))",
    description="Parameters come from the query or an optional JSON body (the body wins). "
    "409 before model v0 exists or while a job is queued or running.",
    responses=error_responses(400, 401, 404, 409, 422, 429),
)
def refine(
    project_id: str,
    ctx: Ctx,
    caller: Caller,
    iterations: Annotated[
        int | None, Query(ge=1, le=10, description="Refinement iterations (default 3).")
    ] = None,
    strength: Annotated[
        Strength | None, Query(description="low 0.25, medium 0.5 (default), high 0.75.")
    ] = None,
    body: Annotated[RefineRequest | None, Body()] = None,
) -> JobAccepted:
    project = ctx.project_of(caller, project_id)
    if body is not None:
        iterations = body.iterations or iterations
        strength = body.strength or strength
    _check_can_start(ctx, project, caller)
    if not ctx.repo.list_models(project_id):
        raise ApiError(
            409, f"no model yet: generate it first (POST /api/v1/generate/{project_id})"
        )
    job = {
        "kind": "refine",
        "iterations": iterations or DEFAULT_ITERATIONS,
        "strength": resolve_strength(strength),
    }
    return _enqueue(ctx, caller, project_id, job)


@router.post(
    "/run/{project_id}",
    status_code=202,
    response_model=JobAccepted,
    summary="Queue generate then refine as one job (the web workspace's Generate button)",
    description="One job that makes model v0 (or resumes it) and then runs the refinement "
    "iterations, so nothing depends on the client staying connected in between. 409 while a "
    "job is queued or running or before the upload was processed.",
    responses=error_responses(400, 401, 404, 409, 422, 429),
)
def run(
    project_id: str,
    ctx: Ctx,
    caller: Caller,
    iterations: Annotated[
        int | None, Query(ge=0, le=10, description="Refinement iterations after v0 (default 3).")
    ] = None,
    strength: Annotated[
        Strength | None, Query(description="low 0.25, medium 0.5 (default), high 0.75.")
    ] = None,
) -> JobAccepted:
    project = ctx.project_of(caller, project_id)
    _require_processed(project)
    _check_can_start(ctx, project, caller)
    job = {
        "kind": "run",
        "iterations": DEFAULT_ITERATIONS if iterations is None else iterations,
        "strength": resolve_strength(strength),
    }
    return _enqueue(ctx, caller, project_id, job)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


@router.get(
    "/export/{project_id}",
    summary="Download a model version in a format",
    description="Creates the export when missing (recorded in export_history) and streams the "
    "file (local storage) or redirects (307) to a signed URL (S3). `version` defaults to the "
    "latest.",
    response_class=Response,
    responses={
        200: {
            "description": "The file.",
            "content": {t: {"schema": {"type": "string", "format": "binary"}}
                        for t in sorted(set(MEDIA_TYPES.values()))},
        },
        307: {"description": "Redirect to a signed URL (S3 storage)."},
        **error_responses(401, 404, 409, 422),
    },
)
async def export(
    project_id: str,
    ctx: Ctx,
    caller: Caller,
    format: Annotated[
        ExportFormat,
        Query(description="ply, splat, spz, glb, obj (a .zip of .obj + .mtl + .png), usdz or mp4."),
    ],
    version: Annotated[
        int | None, Query(ge=0, le=1000, description="Model version (default: latest).")
    ] = None,
    faces: Annotated[
        int | None,
        Query(ge=MIN_FACES, le=MAX_FACES, description="Face budget of glb/obj/usdz (default 20000)."),
    ] = None,
    texture: Annotated[
        int | None,
        Query(ge=0, le=MAX_TEXTURE, description="Texture size in pixels of glb/obj/usdz "
              f"(default 1024; 0 = per-vertex colours; else at least {MIN_TEXTURE})."),
    ] = None,
    scale: Annotated[
        float | None, Query(gt=0, le=10000, description="Metres for the model's fit radius (default 1).")
    ] = None,
) -> Response:
    project = await run_in_threadpool(ctx.project_of, caller, project_id)
    versions = [int(m["version"]) for m in await run_in_threadpool(ctx.repo.list_models, project_id)]
    if not versions:
        raise ApiError(409, f"no model yet: generate it first (POST /api/v1/generate/{project_id})")
    if version is not None and version not in versions:
        raise ApiError(
            404, f"project {project_id} has no model version {version} "
            f"(versions: {', '.join(map(str, versions))})"
        )
    resolved = max(versions) if version is None else version
    async with ctx.exports.hold():  # at most max_concurrent_exports builds at once
        bucket, key = await run_in_threadpool(
            ctx.runner().export, project_id, format, version=resolved, faces=faces,
            texture_size=texture, scale=scale,
        )
    forget_status(ctx, project_id)  # export_history may have a new row
    path = ctx.storage.local_path(bucket, key)
    if path is not None and path.is_file():
        filename = f"{_slug(project.get('name') or 'model')}_v{resolved}.{FILE_EXTENSIONS[format]}"
        return FileResponse(path, media_type=MEDIA_TYPES[format], filename=filename)
    return RedirectResponse(ctx.storage.url(bucket, key), status_code=307)
