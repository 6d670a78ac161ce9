"""Pydantic response models of the HTTP API (they are the OpenAPI schema).

URLs are ready to fetch: ``/files/...`` paths for local storage (prefixed with
``settings.public_base_url``), presigned URLs for S3. Percentages are 0-100.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Status = Literal[
    "uploading", "preprocessing", "multiview_generating", "depth_estimating",
    "reconstructing", "refining", "exporting", "completed", "failed", "cancelled",
]
ExportFormat = Literal["ply", "splat", "spz", "glb", "obj", "mp4"]


class ProjectOut(BaseModel):
    id: str
    name: str
    status: str = Field(..., description="One of the project statuses (DESIGN §4).")
    current_step: str | None = Field(None, description="The step running or last run.")
    progress_percentage: float = Field(..., ge=0, le=100)
    error_message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    original_url: str | None = Field(None, description="The uploaded photo.")
    processed_url: str | None = Field(None, description="The preprocessed RGBA image (PNG).")
    job: dict | None = Field(None, description="The queued or running job, e.g. {kind: refine}.")
    job_active: bool = Field(False, description="True while a job is queued or running.")


class ViewOut(BaseModel):
    view_index: int = Field(..., ge=0, le=15)
    elevation: float = Field(..., description="Degrees.")
    azimuth: float = Field(..., description="Degrees, counter-clockwise from +X seen from above.")
    url: str


class DepthMapOut(BaseModel):
    view_index: int
    depth_url: str = Field(..., description="float32 .npy, camera z in scene units (0 = empty).")
    heatmap_url: str = Field(..., description="Colourised depth PNG.")
    min_depth: float | None = None
    max_depth: float | None = None
    mean_depth: float | None = None
    confidence_score: float | None = None


class ModelOut(BaseModel):
    version: int = Field(..., description="0 = reconstruction, 1..N = refinement iterations.")
    parent_version: int | None = None
    url: str = Field(..., description="The 3DGS .ply of this version.")
    num_gaussians: int
    file_size_bytes: int
    splat_url: str | None = Field(
        None,
        description="A .splat of this version for web viewers: the stored export when one "
        "exists, else the export endpoint (which creates it).",
    )


class IterationOut(BaseModel):
    iteration_number: int
    overall_quality: float | None = None
    psnr: float | None = Field(None, description="dB.")
    ssim: float | None = None
    lpips: float | None = Field(None, description="Null when no LPIPS model is available.")
    depth_consistency: float | None = None
    feature_consistency: float | None = None
    converged: bool = False
    processing_time: float | None = Field(None, description="Seconds.")
    accepted_views: int = Field(0, description="Enhanced views accepted in this iteration.")


class ExportOut(BaseModel):
    model_version: int
    format: str
    url: str
    file_size_bytes: int | None = None
    created_at: datetime | None = None


class StatusResponse(BaseModel):
    project: ProjectOut
    progress_percentage: float = Field(..., ge=0, le=100)
    views: list[ViewOut]
    depth_maps: list[DepthMapOut]
    models: list[ModelOut]
    iterations: list[IterationOut]
    exports: list[ExportOut]


class UploadResponse(BaseModel):
    project_id: str
    name: str
    status: str
    progress_percentage: float
    original_url: str | None = None
    processed_url: str | None = None
    status_url: str
    events_url: str
    generate_url: str


class JobAccepted(BaseModel):
    project_id: str
    job: dict = Field(..., description="The queued job, e.g. {kind: refine, iterations: 3}.")
    status: str = Field(..., description="The project's status when the job was queued.")
    status_url: str
    events_url: str


class ProjectListItem(BaseModel):
    id: str
    name: str
    status: str
    current_step: str | None = None
    progress_percentage: float
    error_message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    thumbnail_url: str | None = Field(None, description="The processed image.")


class ProjectList(BaseModel):
    items: list[ProjectListItem]
    total: int
    limit: int
    offset: int


class CancelResponse(BaseModel):
    project_id: str
    status: str = Field(..., description="'cancelled' when it never started, else the current "
                        "status; the job stops at its next step.")
    cancelling: bool


class HealthResponse(BaseModel):
    status: Literal["ok", "unhealthy"]
    checks: dict[str, str] = Field(..., description="database, storage, queue: 'ok' or the error.")
    detail: str | None = Field(None, description="On 503: the failing part(s).")
