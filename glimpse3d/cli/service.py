"""``glimpse3d serve | worker | doctor | cleanup``: the long-running and maintenance commands."""

from __future__ import annotations

from typing import Annotated

import typer

from glimpse3d.cli._common import handle_errors


@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    allow_remote: Annotated[
        bool, typer.Option(help="Allow a non-loopback host with GLIMPSE3D_AUTH=none.")
    ] = False,
) -> None:
    """Serve the HTTP API and the web workspace (loopback only unless authenticated)."""
    from glimpse3d.api.server import serve as serve_app
    from glimpse3d.config import get_settings

    settings = get_settings()
    if allow_remote:
        settings = settings.model_copy(update={"allow_remote_without_auth": True})
    serve_app(host=host, port=port, settings=settings)


@handle_errors
def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues: pipeline, gpu (default: all).")
    ] = "",
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs at once (default: GLIMPSE3D_WORKER_CONCURRENCY)."),
    ] = None,
) -> None:
    """Run a distributed (procrastinate) worker until SIGINT/SIGTERM."""
    from glimpse3d.jobs.distributed import run_worker
    from glimpse3d.services import open_services

    run_worker(open_services, queues=[q.strip() for q in queues.split(",") if q.strip()],
               concurrency=concurrency)


@handle_errors
def doctor() -> None:
    """Check settings, database, tables, views, buckets; PASS/FAIL per line."""
    from glimpse3d.doctor import run_doctor

    if not run_doctor():
        raise typer.Exit(1)


@handle_errors
def cleanup(
    older_than: Annotated[str, typer.Option(help="Age, e.g. 30d, 12h.")] = "30d",
    dry_run: Annotated[bool, typer.Option(help="Only list what would be deleted.")] = False,
) -> None:
    """Delete projects older than the given age (rows and files), finish interrupted
    deletes and remove orphan files; projects with a queued or running job are kept."""
    from glimpse3d.config import get_settings
    from glimpse3d.jobs.cleanup import cleanup_projects, parse_age
    from glimpse3d.services import open_services

    days = parse_age(older_than)
    with open_services(get_settings(), queue=False) as services:
        ids = cleanup_projects(services.repo, services.storage, days, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for pid in ids:
        print(f"{verb} {pid}")
    print(f"{verb} {len(ids)} project(s) (older than {older_than}, interrupted deletes, "
          "orphan files)")
