"""``GET /api/meta``: the vocabulary the web page needs, from ``glimpse3d.domain`` (no copies)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from glimpse3d.domain import (
    ACTIVE_STATUSES,
    EXPORT_FILE_EXTENSIONS,
    EXPORT_FORMATS,
    IMAGE_FORMATS,
    NUM_VIEWS,
    PROJECT_STATUSES,
    TERMINAL_STATUSES,
)

router = APIRouter(tags=["meta"])


class MetaResponse(BaseModel):
    statuses: list[str] = Field(..., description="Every project status, in pipeline order.")
    active_statuses: list[str] = Field(..., description="Statuses of a run under way.")
    terminal_statuses: list[str] = Field(..., description="Statuses a run ends in.")
    export_formats: list[str] = Field(..., description="Formats of GET /api/v1/export.")
    export_file_extensions: dict[str, str] = Field(
        ..., description="File name ending of each export format (obj: obj.zip).")
    image_mime_types: list[str] = Field(..., description="Photo types accepted on upload.")
    image_extensions: list[str] = Field(..., description="Photo file extensions accepted.")
    num_views: int = Field(..., description="Generated views per project.")


@router.get("/api/meta", response_model=MetaResponse, summary="Statuses, formats, view count")
def meta() -> MetaResponse:
    return MetaResponse(
        statuses=list(PROJECT_STATUSES),
        active_statuses=list(ACTIVE_STATUSES),
        terminal_statuses=list(TERMINAL_STATUSES),
        export_formats=list(EXPORT_FORMATS),
        export_file_extensions=dict(EXPORT_FILE_EXTENSIONS),
        image_mime_types=[m for f in IMAGE_FORMATS.values() for m in f.mime],
        image_extensions=[e for f in IMAGE_FORMATS.values() for e in f.extensions],
        num_views=NUM_VIEWS,
    )
