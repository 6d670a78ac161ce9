"""Turning repository rows into response models (URLs made on the way out)."""

from __future__ import annotations

import time
from typing import Any

from glimpse3d.api.deps import ApiContext
from glimpse3d.api.schemas import (
    DepthMapOut,
    ExportOut,
    IterationOut,
    ModelOut,
    ProjectListItem,
    ProjectOut,
    StatusResponse,
    ViewOut,
)
from glimpse3d.storage.base import DEPTH, MODELS, MULTIVIEW, PROCESSED, UPLOADS


def _project_fields(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    """The fields shared by :class:`ProjectOut` and :class:`ProjectListItem`."""
    return {
        "id": str(p["id"]),
        "name": p.get("name") or "",
        "status": p["status"],
        "current_step": p.get("current_step"),
        "progress_percentage": float(p.get("progress_percentage") or 0.0),
        "error_message": p.get("error_message"),
        "created_at": p.get("created_at"),
        "updated_at": p.get("updated_at"),
        "job_active": ctx.job_active(p),
    }


def project_out(ctx: ApiContext, p: dict[str, Any]) -> ProjectOut:
    return ProjectOut(
        **_project_fields(ctx, p),
        completed_at=p.get("completed_at"),
        original_url=ctx.file_url(UPLOADS, p.get("original_image_key")),
        processed_url=ctx.file_url(PROCESSED, p.get("processed_image_key")),
        job=p.get("job") or None,
    )


def list_item(ctx: ApiContext, p: dict[str, Any]) -> ProjectListItem:
    return ProjectListItem(
        **_project_fields(ctx, p),
        thumbnail_url=ctx.file_url(PROCESSED, p.get("processed_image_key")),
    )


def event_snapshot(ctx: ApiContext, p: dict[str, Any]) -> dict[str, Any]:
    """The data of one SSE ``status`` event."""
    pid = str(p["id"])
    return {
        "project_id": pid,
        "status": p["status"],
        "current_step": p.get("current_step"),
        "progress_percentage": float(p.get("progress_percentage") or 0.0),
        "error_message": p.get("error_message"),
        "message": ctx.broadcaster.last_message(pid),
        "updated_at": p.get("updated_at"),
    }


def status_json(ctx: ApiContext, project_id: str) -> bytes:
    """The status response as JSON bytes, cached per project while its row is unchanged
    (every pipeline write bumps ``updated_at``) and for at most
    ``ctx.status_cache_seconds`` (rows written without touching the project, e.g. an
    on-demand export in another process). Raises ``ProjectNotFound``."""
    p = ctx.repo.get_project(project_id)
    key = (p.get("updated_at"), p.get("status"), p.get("progress_percentage"), p.get("job"),
           ctx.queue.is_active(project_id))
    now = time.monotonic()
    hit = ctx.status_cache.get(project_id)
    if hit is not None and hit[0] == key and now - hit[1] < ctx.status_cache_seconds:
        return hit[2]
    body = build_status(ctx, project_id, p).model_dump_json().encode()
    if len(ctx.status_cache) > 1024:
        ctx.status_cache.clear()
    ctx.status_cache[project_id] = (key, now, body)
    return body


def forget_status(ctx: ApiContext, project_id: str) -> None:
    """Drop a cached status (after the API itself changed rows of the project)."""
    ctx.status_cache.pop(project_id, None)


def build_status(
    ctx: ApiContext, project_id: str, project: dict[str, Any] | None = None
) -> StatusResponse:
    """Everything about one project (raises ``ProjectNotFound``)."""
    repo = ctx.repo
    p = project if project is not None else repo.get_project(project_id)
    exports = repo.list_exports(project_id)
    splat_files = {
        int(e["model_version"]): e["file_key"] for e in exports if e.get("format") == "splat"
    }
    accepted: dict[str, int] = {}
    for ev in repo.list_enhanced_views(project_id):
        if ev.get("accepted"):
            key = str(ev.get("iteration_id"))
            accepted[key] = accepted.get(key, 0) + 1
    models = []
    for m in repo.list_models(project_id):
        v = int(m["version"])
        splat = ctx.file_url(MODELS, splat_files.get(v)) or ctx.api_url(
            f"/export/{project_id}?format=splat&version={v}"
        )
        models.append(
            ModelOut(
                version=v,
                parent_version=m.get("parent_version"),
                url=ctx.file_url(MODELS, m["model_key"]) or "",
                num_gaussians=int(m.get("num_gaussians") or 0),
                file_size_bytes=int(m.get("file_size_bytes") or 0),
                splat_url=splat,
            )
        )
    return StatusResponse(
        project=project_out(ctx, p),
        progress_percentage=float(p.get("progress_percentage") or 0.0),
        views=[
            ViewOut(
                view_index=int(v["view_index"]),
                elevation=float(v["elevation"]),
                azimuth=float(v["azimuth"]),
                url=ctx.file_url(MULTIVIEW, v["image_key"]) or "",
                **{k: v.get(k) for k in ("distance", "fx", "fy", "cx", "cy", "width", "height")},
            )
            for v in repo.list_views(project_id)
        ],
        depth_maps=[
            DepthMapOut(
                view_index=int(d["view_index"]),
                depth_url=ctx.file_url(DEPTH, d["depth_key"]) or "",
                heatmap_url=ctx.file_url(DEPTH, d["heatmap_key"]) or "",
                min_depth=d.get("min_depth"),
                max_depth=d.get("max_depth"),
                mean_depth=d.get("mean_depth"),
                confidence_score=d.get("confidence_score"),
            )
            for d in repo.list_depth_maps(project_id)
        ],
        models=models,
        iterations=[
            IterationOut(
                iteration_number=int(it["iteration_number"]),
                overall_quality=it.get("overall_quality"),
                psnr=it.get("psnr"),
                ssim=it.get("ssim"),
                lpips=it.get("lpips"),
                depth_consistency=it.get("depth_consistency"),
                feature_consistency=it.get("feature_consistency"),
                converged=bool(it.get("converged")),
                processing_time=it.get("processing_time"),
                accepted_views=accepted.get(str(it.get("id")), 0),
            )
            for it in repo.list_iterations(project_id)
        ],
        exports=[
            ExportOut(
                model_version=int(e["model_version"]),
                format=e["format"],
                url=ctx.file_url(MODELS, e["file_key"]) or "",
                file_size_bytes=e.get("file_size_bytes"),
                created_at=e.get("created_at"),
            )
            for e in exports
        ],
    )
