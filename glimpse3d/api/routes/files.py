"""``GET /files/{bucket}/{key}``: objects of the local storage backend (never outside it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from glimpse3d.api.deps import ApiContext, get_ctx
from glimpse3d.api.errors import ApiError, error_responses
from glimpse3d.errors import UserError
from glimpse3d.storage.base import BUCKETS, guess_content_type

router = APIRouter(tags=["files"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]



def resolve_local_file(ctx: ApiContext, bucket: str, key: str) -> Path:
    """The file for ``bucket/key`` inside the storage root; 404 for anything else
    (unknown bucket, ``..``/absolute/backslash segments, links out of the root, missing)."""
    missing = ApiError(404, "file not found")
    if bucket not in BUCKETS or not key or len(key) > 1024:
        raise missing
    parts = key.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\x00" in p or ":" in p for p in parts):
        raise missing
    try:
        path = ctx.storage.local_path(bucket, key)
    except UserError:  # InvalidKey
        raise missing from None
    if path is None:
        raise ApiError(404, "files are served by the object store; use the signed URL")
    root = Path(ctx.settings.resolved_storage_url).resolve()
    real = Path(path).resolve()
    if not real.is_relative_to(root / bucket) or not real.is_file():
        raise missing
    return real


@router.get(
    "/files/{bucket}/{key:path}",
    summary="A stored file (local storage backend only)",
    response_class=FileResponse,
    responses={
        200: {"description": "The file, with its content type.",
              "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                   "format": "binary"}}}},
        **error_responses(404),
    },
)
def get_file(bucket: str, key: str, ctx: Ctx) -> FileResponse:
    path = resolve_local_file(ctx, bucket, key)
    ctype = guess_content_type(path.name)
    return FileResponse(path, media_type=ctype, headers={"Cache-Control": "no-cache"})
