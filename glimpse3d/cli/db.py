"""``glimpse3d db upgrade | supabase-schema``: the database's schema from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from glimpse3d.cli._common import console, handle_errors

app = typer.Typer(help="Database migrations and schema.", no_args_is_help=True)


@app.command("upgrade")
@handle_errors
def upgrade() -> None:
    """Apply the migrations (ours and the job engine's) to the configured database."""
    upgrade_command()


@app.command("supabase-schema")
@handle_errors
def supabase_schema(
    out: Annotated[Path, typer.Option("-o", "--out")] = Path("supabase_schema.sql"),
    public_access: Annotated[bool, typer.Option(help="The seed's open policies.")] = False,
) -> None:
    """Generate supabase_schema.sql from the models (tables, views, RLS, buckets)."""
    from glimpse3d.db.supabase import generate_supabase_schema

    out.write_text(generate_supabase_schema(public_access=public_access))
    console.print(f"wrote {out}")


def upgrade_command() -> None:
    """Migrate the configured database and print its revision; with the distributed queue on
    PostgreSQL, apply the job engine's schema too."""
    from glimpse3d.config import get_settings
    from glimpse3d.db.engine import mask_url
    from glimpse3d.db.migrate import head_revision
    from glimpse3d.db.migrate import upgrade as migrate

    settings = get_settings()
    url = settings.resolved_database_url
    migrate(url)
    print(f"database {mask_url(url)} is at revision {head_revision()} (head)")
    note = _upgrade_job_engine(settings)
    if note:
        print(note)


def _upgrade_job_engine(settings: Any) -> str | None:
    """Apply the job engine's schema when the distributed queue is configured."""
    from glimpse3d.db.engine import normalize_url

    if getattr(settings, "queue", "inline") != "procrastinate":
        return None
    if normalize_url(settings.resolved_database_url).get_backend_name() != "postgresql":
        return None
    from glimpse3d.jobs.distributed import apply_schema

    applied = apply_schema(settings)
    return "job queue schema applied" if applied else "job queue schema present"
