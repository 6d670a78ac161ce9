"""Pydantic response models of the HTTP API (they are the OpenAPI schema).

URLs are ready to fetch: ``/files/...`` paths for local storage (prefixed with
``settings.public_base_url``), presigned URLs for S3. Percentages are 0-100; datetimes are
ISO 8601 in UTC; angles are degrees.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from glimpse3d.domain import EXPORT_FORMATS, PROJECT_STATUSES

Status = Literal[PROJECT_STATUSES]  # type: ignore[valid-type]
ExportFormat = Literal[EXPORT_FORMATS]  # type: ignore[valid-type]

_ID = "Project id (UUID)."
_STATUS = " | ".join(PROJECT_STATUSES)


class ProjectFields(BaseModel):
    """What both the project list and the project status say about a project."""

    id: str = Field(..., description=_ID)
    name: str = Field(..., description="Project name.")
    status: str = Field(..., description=_STATUS)
    current_step: str | None = Field(None, description="The step running or last run.")
    progress_percentage: float = Field(..., ge=0, le=100, description="0-100; never goes "
                                       "backwards within a run.")
    error_message: str | None = Field(None, description="Why the last job failed.")
    created_at: datetime | None = Field(None, description="UTC.")
    updated_at: datetime | None = Field(None, description="UTC; changes with every step.")
    job_active: bool = Field(False, description="True while a job is queued or running.")


class ProjectOut(ProjectFields):
    completed_at: datetime | None = Field(None, description="UTC, when the last job completed.")
    original_url: str | None = Field(None, description="The uploaded photo.")
    processed_url: str | None = Field(None, description="The preprocessed RGBA image (PNG).")
    job: dict | None = Field(None, description="The queued or running job, e.g. {kind: refine}.")


class ViewOut(BaseModel):
    view_index: int = Field(..., ge=0, le=15, description="0..15; view 0 is the photo's viewpoint.")
    elevation: float = Field(..., description="Degrees (30 for the 16 SyncDreamer views).")
    azimuth: float = Field(..., description="Degrees (22.5 x index for the SyncDreamer views), "
                           "counter-clockwise from +X seen from above.")
    url: str = Field(..., description="The generated view (RGBA PNG).")
    distance: float | None = Field(None, description="Camera distance from the origin, scene "
                                   "units (None: recorded before cameras were stored, 1.5).")
    fx: float | None = Field(None, description="Focal length x, pixels.")
    fy: float | None = Field(None, description="Focal length y, pixels.")
    cx: float | None = Field(None, description="Principal point x, pixels.")
    cy: float | None = Field(None, description="Principal point y, pixels.")
    width: int | None = Field(None, description="View width, pixels.")
    height: int | None = Field(None, description="View height, pixels.")


class DepthMapOut(BaseModel):
    view_index: int = Field(..., ge=0, le=15, description="The view this depth belongs to.")
    depth_url: str = Field(..., description="float32 .npy, camera z in scene units (0 = empty).")
    heatmap_url: str = Field(..., description="Colourised depth PNG.")
    min_depth: float | None = Field(None, description="Scene units, over object pixels.")
    max_depth: float | None = Field(None, description="Scene units, over object pixels.")
    mean_depth: float | None = Field(None, description="Scene units, over object pixels.")
    confidence_score: float | None = Field(None, description="0-1, from the depth backend.")


class ModelOut(BaseModel):
    version: int = Field(..., description="0 = reconstruction, 1..N = refinement iterations.")
    parent_version: int | None = Field(None, description="The version this one was refined from.")
    url: str = Field(..., description="The 3DGS .ply of this version.")
    num_gaussians: int = Field(..., description="Number of gaussians.")
    file_size_bytes: int = Field(..., description="Size of the .ply.")
    splat_url: str | None = Field(
        None,
        description="A .splat of this version for web viewers: the stored export when one "
        "exists, else the export endpoint (which creates it).",
    )


class IterationOut(BaseModel):
    iteration_number: int = Field(..., description="1-based refinement iteration.")
    overall_quality: float | None = Field(None, description="Combined score, 0-1 (higher is better).")
    psnr: float | None = Field(None, description="dB, renderings vs enhanced views.")
    ssim: float | None = Field(None, description="0-1.")
    lpips: float | None = Field(None, description="Null when no LPIPS model is available.")
    depth_consistency: float | None = Field(None, description="0-1.")
    feature_consistency: float | None = Field(None, description="0-1.")
    converged: bool = Field(False, description="True when quality stopped improving.")
    processing_time: float | None = Field(None, description="Seconds.")
    accepted_views: int = Field(0, description="Enhanced views accepted in this iteration.")


class ExportOut(BaseModel):
    model_version: int = Field(..., description="The exported model version.")
    format: str = Field(..., description="ply | splat | spz | glb | obj | mp4")
    url: str = Field(..., description="The exported file.")
    file_size_bytes: int | None = Field(None, description="Bytes.")
    created_at: datetime | None = Field(None, description="UTC.")


class StatusResponse(BaseModel):
    project: ProjectOut = Field(..., description="The project row.")
    progress_percentage: float = Field(..., ge=0, le=100, description="Same as project's.")
    views: list[ViewOut] = Field(..., description="The 16 generated views (by index).")
    depth_maps: list[DepthMapOut] = Field(..., description="One per view.")
    models: list[ModelOut] = Field(..., description="Model versions, oldest first.")
    iterations: list[IterationOut] = Field(..., description="Refinement iterations with metrics.")
    exports: list[ExportOut] = Field(..., description="Exported files (export_history).")


class UploadResponse(BaseModel):
    project_id: str = Field(..., description=_ID)
    name: str = Field(..., description="Project name.")
    status: str = Field(..., description=_STATUS)
    progress_percentage: float = Field(..., description="10 once preprocessed.")
    original_url: str | None = Field(None, description="The uploaded photo.")
    processed_url: str | None = Field(None, description="The preprocessed RGBA image.")
    status_url: str = Field(..., description="GET for the full status.")
    events_url: str = Field(..., description="GET for server-sent progress events.")
    generate_url: str = Field(..., description="POST to start the reconstruction.")


class JobAccepted(BaseModel):
    project_id: str = Field(..., description=_ID)
    job: dict = Field(..., description="The queued job, e.g. {kind: refine, iterations: 3, "
                      "strength: 0.5}.")
    status: str = Field(..., description="The project's status when the job was queued.")
    status_url: str = Field(..., description="GET for the full status.")
    events_url: str = Field(..., description="GET for server-sent progress events.")


class ProjectListItem(ProjectFields):
    thumbnail_url: str | None = Field(None, description="The processed image.")


class ProjectList(BaseModel):
    items: list[ProjectListItem] = Field(..., description="Newest first.")
    total: int = Field(..., description="Projects matching the filter.")
    limit: int = Field(..., description="Page size used.")
    offset: int = Field(..., description="Rows skipped.")


class CancelResponse(BaseModel):
    project_id: str = Field(..., description=_ID)
    status: str = Field(..., description="'cancelled' when it never started, else the current "
                        "status; the job stops at its next step.")
    cancelling: bool = Field(..., description="True while a running job is still stopping.")


class HealthResponse(BaseModel):
    status: Literal["ok", "unhealthy"] = Field(..., description="ok when every check passed.")
    checks: dict[str, str] = Field(..., description="database, storage, queue: 'ok' or the error.")
    detail: str | None = Field(None, description="On 503: the failing part(s).")
