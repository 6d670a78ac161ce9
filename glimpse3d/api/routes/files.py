"""``GET /files/{bucket}/{key}?exp=..&sig=..``: objects of the local storage backend (never
outside it), behind the expiring HMAC signature that the API's responses put on every link
(:mod:`glimpse3d.storage.signing`), so ``<img>`` tags and downloads need no header."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from glimpse3d.api.deps import ApiContext, get_ctx
from glimpse3d.api.errors import ApiError, ErrorResponse, error_responses
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
    summary="A stored file (local storage backend only; signed link)",
    response_class=FileResponse,
    responses={
        200: {"description": "The file, with its content type.",
              "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                   "format": "binary"}}}},
        403: {"description": "The link's signature is missing, wrong or expired.",
              "model": ErrorResponse},
        **error_responses(404),
    },
)
def get_file(
    bucket: str,
    key: str,
    ctx: Ctx,
    exp: Annotated[str | None, Query(max_length=20, description="Expiry (Unix seconds).")] = None,
    sig: Annotated[str | None, Query(max_length=128, description="HMAC-SHA256, hex.")] = None,
) -> FileResponse:
    path = resolve_local_file(ctx, bucket, key)
    link_valid = getattr(ctx.storage, "link_valid", None)
    if link_valid is None or not link_valid(bucket, key, exp, sig):
        raise ApiError(403, "this file link is invalid or has expired; fetch the project's "
                       "status again for fresh links")
    ctype = guess_content_type(path.name)
    return FileResponse(path, media_type=ctype, headers={"Cache-Control": "private, max-age=300"})
