"""Upload, status, list, delete, cancel and the progress stream of projects."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from glimpse3d.api.deps import ApiContext, get_ctx
from glimpse3d.api.errors import ApiError, error_responses
from glimpse3d.api.events import event_id, is_terminal, project_events
from glimpse3d.api.photo import probe_photo, strip_metadata
from glimpse3d.api.schemas import (
    CancelResponse,
    ProjectList,
    StatusResponse,
    UploadResponse,
)
from glimpse3d.api.security import Caller, StreamCaller, client_address
from glimpse3d.api.uploads import read_upload, sniff_image_format
from glimpse3d.api.views import event_snapshot, forget_status, list_item, status_json
from glimpse3d.jobs.cleanup import delete_project_everywhere

router = APIRouter(tags=["projects"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
MAX_NAME = 200

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The photo (PNG, JPEG, WebP; detected from its "
                            "content). At most `max_upload_bytes` (10 MB by default).",
                        },
                        "remove_bg": {
                            "type": "boolean",
                            "default": True,
                            "description": "Remove the background before reconstruction.",
                        },
                        "name": {
                            "type": "string",
                            "maxLength": MAX_NAME,
                            "description": "Project name (default: the file name).",
                        },
                    },
                }
            }
        },
    }
}


def rate_limit_upload(request: Request, caller: Caller) -> None:
    """Count one upload for this identity (429 with Retry-After past ``settings.rate_limit``)."""
    get_ctx(request).limiter.hit(caller.limit_key)


@router.post(
    "/upload",
    status_code=201,
    response_model=UploadResponse,
    summary="Upload a photo and create a project",
    description="Validates the photo (size, type from its content, usability), removes the "
    "background unless `remove_bg=false`, centres it, and creates the project. The size limit "
    "is enforced while the body streams in and the pixel size is checked from the header "
    "before decoding. EXIF/GPS metadata is stripped from the stored original (unless "
    "`keep_photo_metadata`). Rate limited per user (`rate_limit`).",
    responses=error_responses(400, 401, 413, 415, 422, 429),
    openapi_extra=UPLOAD_BODY,
    dependencies=[Depends(rate_limit_upload)],
)
async def upload(request: Request, ctx: Ctx, caller: Caller) -> UploadResponse:
    form = await read_upload(request, ctx.settings.max_upload_bytes)
    raw_bg = form.fields.get("remove_bg", "true").strip().lower()
    if raw_bg not in _TRUE | _FALSE:
        raise ApiError(422, "remove_bg must be true or false")
    name = (form.fields.get("name") or "").strip() or None
    if name is not None and len(name) > MAX_NAME:
        raise ApiError(422, f"name is longer than {MAX_NAME} characters")
    if not form.data:
        raise ApiError(422, "the file is empty")
    fmt = sniff_image_format(form.data[:16])
    if fmt is None:
        raise ApiError(415, "not an image: send a PNG, JPEG or WebP photo")
    pil_format, _w, _h = probe_photo(form.data)  # header only: no decode yet
    data = form.data if ctx.settings.keep_photo_metadata else strip_metadata(form.data, pil_format)
    filename = form.filename or f"upload.{fmt}"
    async with ctx.decodes.hold():
        project = await run_in_threadpool(
            ctx.runner().ingest,
            data,
            filename,
            name=name,
            remove_bg=raw_bg in _TRUE,
            owner_id=caller.owner_id,
            client_id=client_address(request),
        )
    pid = str(project["id"])
    from glimpse3d.storage.base import PROCESSED, UPLOADS

    return UploadResponse(
        project_id=pid,
        name=project.get("name") or "",
        status=project["status"],
        progress_percentage=float(project.get("progress_percentage") or 0.0),
        original_url=ctx.file_url(UPLOADS, project.get("original_image_key")),
        processed_url=ctx.file_url(PROCESSED, project.get("processed_image_key")),
        status_url=ctx.api_url(f"/status/{pid}"),
        events_url=ctx.api_url(f"/projects/{pid}/events"),
        generate_url=ctx.api_url(f"/generate/{pid}"),
    )


@router.get(
    "/status/{project_id}",
    response_model=StatusResponse,
    summary="Everything about a project",
    description="The project row, its 16 views, depth maps, model versions, refinement "
    "iterations (with quality metrics) and exports, with URLs.",
    responses=error_responses(401, 404),
)
def status(project_id: str, ctx: Ctx, caller: Caller) -> Response:
    ctx.project_of(caller, project_id)
    return Response(status_json(ctx, project_id), media_type="application/json")


@router.get(
    "/projects",
    response_model=ProjectList,
    summary="List the caller's projects, newest first",
    responses=error_responses(401, 422),
)
def list_projects(
    ctx: Ctx,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip.")] = 0,
    status: Annotated[
        str | None, Query(max_length=32, description="Only projects with this status.")
    ] = None,
) -> ProjectList:
    rows, total = ctx.repo.list_projects(
        limit=limit, offset=offset, status=status, owner_id=caller.owner_id
    )
    return ProjectList(
        items=[list_item(ctx, p) for p in rows], total=total, limit=limit, offset=offset
    )


@router.delete(
    "/projects/{project_id}",
    status_code=204,
    summary="Delete a project, its rows and its files",
    description="A queued or running job is cancelled first and the call waits (up to 10 s) "
    "for it to stop; 409 if it has not stopped by then (retry). The row is hidden first, "
    "then the files go, then the row: an interrupted delete is finished by `cleanup`.",
    responses={204: {"description": "Deleted."}, **error_responses(401, 404, 409)},
)
async def delete_project(project_id: str, ctx: Ctx, caller: Caller) -> Response:
    project = await run_in_threadpool(ctx.project_of, caller, project_id)
    if ctx.job_active(project):
        ctx.queue.cancel(project_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ctx.delete_wait_seconds
        while await run_in_threadpool(ctx.queue.is_active, project_id) \
                and loop.time() < deadline:
            await asyncio.sleep(0.1)
        if await run_in_threadpool(ctx.queue.is_active, project_id):
            raise ApiError(409, "the project's job is still stopping; retry in a few seconds")
    forget_status(ctx, project_id)
    await run_in_threadpool(delete_project_everywhere, ctx.repo, ctx.storage, project_id)
    return Response(status_code=204)


@router.post(
    "/projects/{project_id}/cancel",
    status_code=202,
    response_model=CancelResponse,
    summary="Cancel the project's queued or running job",
    description="A queued job is dropped at once (status `cancelled`); a running one stops "
    "at its next step (watch the status or the event stream).",
    responses=error_responses(401, 404, 409),
)
def cancel(project_id: str, ctx: Ctx, caller: Caller) -> CancelResponse:
    ctx.project_of(caller, project_id)  # 404 first (another owner's project too)
    if not ctx.queue.cancel(project_id):
        raise ApiError(409, "no job is queued or running for this project")
    project = ctx.repo.get_project(project_id)
    return CancelResponse(
        project_id=project_id,
        status=project["status"],
        cancelling=ctx.queue.is_active(project_id),
    )


@router.get(
    "/projects/{project_id}/events",
    summary="Server-sent events of the project's status and progress",
    description="One `status` event per change (`data` is JSON: status, current_step, "
    "progress_percentage, error_message, message, job_active), each with an increasing `id`; "
    "an `end` event at a terminal state closes the stream. Comments (`: keep-alive`) every "
    "15 s. Reconnect with `Last-Event-ID` to get only newer states; 204 when the project "
    "has already ended and the client has seen it.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
              "description": "The event stream."},
        204: {"description": "Nothing newer and the project has ended."},
        **error_responses(401, 404),
    },
)
async def events(
    project_id: str,
    ctx: Ctx,
    caller: StreamCaller,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="The last `id` received.")
    ] = None,
) -> Response:
    project = await run_in_threadpool(ctx.project_of, caller, project_id)
    try:
        last = max(0, int(last_event_id or 0))
    except ValueError:
        last = 0
    if last and event_id(project) <= last and is_terminal(project, ctx.job_active(project)):
        return Response(status_code=204)

    async def load() -> dict[str, Any] | None:
        from glimpse3d.db.repository import ProjectNotFound

        try:
            return await run_in_threadpool(ctx.project_of, caller, project_id)
        except ProjectNotFound:
            return None

    await ctx.streams.acquire()  # 503 when max_event_streams are open
    body = project_events(
        project_id,
        load,
        lambda p: event_snapshot(ctx, p),
        lambda: ctx.queue.is_active(project_id),
        ctx.broadcaster,
        ctx.shutting_down,
        last_event_id=last,
        poll_interval=ctx.sse_poll_interval,
        keepalive=ctx.sse_keepalive,
    )
    return _SlotStream(
        body,
        slot=ctx.streams,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )



class _SlotStream(StreamingResponse):
    """A streaming response that gives its stream slot back when it has been sent, the
    client went away, or sending failed (whether or not the body was ever started)."""

    def __init__(self, *args: Any, slot: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot = slot

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()
