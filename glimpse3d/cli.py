"""The ``glimpse3d`` command line: a thin Typer layer over the library.

Exit codes: 0 success, 2 bad input (one-line reason on stderr), 1 internal failure.
Heavy modules are imported inside each command so ``glimpse3d --help`` stays fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    name="glimpse3d",
    help="One photo in, a refined 3D Gaussian-splat model out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations and schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="API keys (GLIMPSE3D_AUTH=api_key).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

console = Console(stderr=True)
EXPORT_FORMATS = ("ply", "splat", "spz", "glb", "obj", "mp4")


def _fail(code: int, message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map exceptions to the documented exit codes with a one-line message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from glimpse3d.errors import UserError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except UserError as exc:
            _fail(2, str(exc))
        except ValidationError as exc:  # a GLIMPSE3D_* setting has a bad value
            problems = "; ".join(
                f"GLIMPSE3D_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
            )
            _fail(2, f"invalid setting: {problems}")
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            _fail(2, f"{exc.strerror or exc}: {exc.filename}")
        except KeyboardInterrupt:
            _fail(130, "interrupted")
        except Exception as exc:  # noqa: BLE001 - last-resort boundary of the CLI
            if "--debug" in sys.argv:
                raise
            _fail(1, f"internal error: {type(exc).__name__}: {exc}")

    return wrapper


@app.command()
@handle_errors
def run(
    photo: Annotated[Path, typer.Argument(help="Input photo (PNG/JPEG/WebP).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output directory.")] = Path("out"),
    iterations: Annotated[int, typer.Option(min=0, max=10, help="Refinement iterations.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    remove_bg: Annotated[bool, typer.Option(help="Remove the background.")] = True,
    name: Annotated[str | None, typer.Option(help="Project name.")] = None,
    fresh: Annotated[bool, typer.Option(help="Start over instead of resuming.")] = False,
) -> None:
    """Run the whole pipeline on PHOTO; artifacts + report.json go to OUT."""
    from glimpse3d.pipeline.cli_run import run_photo

    run_photo(
        photo, out, iterations=iterations, seed=seed, remove_bg=remove_bg, name=name, fresh=fresh
    )


@app.command()
@handle_errors
def render(
    model: Annotated[Path, typer.Argument(help="A 3DGS .ply, .splat or .spz model.")],
    elevation: Annotated[float, typer.Option(help="Camera elevation in degrees.")] = 30.0,
    azimuth: Annotated[float, typer.Option(help="Camera azimuth in degrees.")] = 0.0,
    distance: Annotated[float, typer.Option(help="Camera distance from the origin.")] = 1.5,
    size: Annotated[int, typer.Option(min=16, max=4096, help="Image size in pixels.")] = 256,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output RGBA PNG.")] = Path("render.png"),
) -> None:
    """Render MODEL from an orbit camera to an RGBA PNG (transparent background)."""
    from glimpse3d.splat.cameras import orbit_camera
    from glimpse3d.splat.formats import load_model
    from glimpse3d.splat.images import save_rgba_png
    from glimpse3d.splat.rasterizer import render as render_model

    gaussians = load_model(model)
    camera = orbit_camera(elevation, azimuth, distance, size)
    result = render_model(gaussians, camera)
    save_rgba_png(out, result.rgb, result.alpha)
    console.print(f"wrote {out}", soft_wrap=True)


@app.command()
@handle_errors
def export(
    model: Annotated[Path, typer.Argument(help="A 3DGS .ply, .splat or .spz model.")],
    format: Annotated[str, typer.Option("--format", "-f", help="|".join(EXPORT_FORMATS))],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output file.")],
    resolution: Annotated[
        int, typer.Option(min=16, max=512, help="Mesh grid resolution (glb/obj).")
    ] = 96,
    frames: Annotated[int, typer.Option(min=1, max=1440, help="Video frames (mp4).")] = 48,
    video_size: Annotated[int, typer.Option(min=16, max=2048, help="Video size, even (mp4).")] = 256,
) -> None:
    """Convert MODEL to another format (splat files, a coloured mesh or a turntable video)."""
    from glimpse3d.errors import UserError
    from glimpse3d.splat.export import export_model
    from glimpse3d.splat.formats import load_model

    fmt = format.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    path = export_model(
        load_model(model),
        fmt,
        out,
        mesh_resolution=resolution,
        video_frames=frames,
        video_size=video_size,
    )
    console.print(f"wrote {path} ({path.stat().st_size} bytes)", soft_wrap=True)


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    allow_remote: Annotated[
        bool, typer.Option(help="Allow a non-loopback host with GLIMPSE3D_AUTH=none.")
    ] = False,
) -> None:
    """Serve the HTTP API and the web workspace."""
    from glimpse3d.api.server import serve as serve_app
    from glimpse3d.config import get_settings

    settings = get_settings()
    if allow_remote:
        settings = settings.model_copy(update={"allow_remote_without_auth": True})
    serve_app(host=host, port=port, settings=settings)


@app.command()
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

    run_worker(queues=[q.strip() for q in queues.split(",") if q.strip()],
               concurrency=concurrency)


@app.command()
@handle_errors
def doctor() -> None:
    """Check settings, database, tables, views, buckets; PASS/FAIL per line."""
    from glimpse3d.doctor import run_doctor

    if not run_doctor():
        raise typer.Exit(1)


@app.command()
@handle_errors
def cleanup(
    older_than: Annotated[str, typer.Option(help="Age, e.g. 30d, 12h.")] = "30d",
    dry_run: Annotated[bool, typer.Option(help="Only list what would be deleted.")] = False,
) -> None:
    """Delete projects older than the given age, rows and files."""
    from glimpse3d.jobs.cleanup import cleanup_command

    cleanup_command(older_than=older_than, dry_run=dry_run)


@db_app.command("upgrade")
@handle_errors
def db_upgrade() -> None:
    """Apply the migrations (ours and the job engine's) to the configured database."""
    from glimpse3d.db.migrate import upgrade_command

    upgrade_command()


@db_app.command("supabase-schema")
@handle_errors
def db_supabase_schema(
    out: Annotated[Path, typer.Option("-o", "--out")] = Path("supabase_schema.sql"),
    public_access: Annotated[bool, typer.Option(help="The seed's open policies.")] = False,
) -> None:
    """Generate supabase_schema.sql from the models (tables, views, RLS, buckets)."""
    from glimpse3d.db.supabase import generate_supabase_schema

    out.write_text(generate_supabase_schema(public_access=public_access))
    console.print(f"wrote {out}")


@keys_app.command("create")
@handle_errors
def keys_create(
    owner: Annotated[str, typer.Argument(help="Owner id the key acts as (projects' owner_id).")],
    name: Annotated[str | None, typer.Option(help="A label for the listing.")] = None,
) -> None:
    """Create an API key for OWNER; the key is printed alone on the last line."""
    from glimpse3d.auth.keys_command import keys_create as create

    create(owner, name, echo=typer.echo)


@keys_app.command("list")
@handle_errors
def keys_list() -> None:
    """List keys (id, prefix, owner, state); the keys themselves are never stored."""
    from glimpse3d.auth.keys_command import keys_list as list_keys

    list_keys(echo=typer.echo)


@keys_app.command("revoke")
@handle_errors
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id or prefix (from `keys list`).")],
) -> None:
    """Revoke a key; requests with it answer 401 from then on."""
    from glimpse3d.auth.keys_command import keys_revoke as revoke

    revoke(key_id, echo=typer.echo)


if __name__ == "__main__":  # pragma: no cover
    app()
