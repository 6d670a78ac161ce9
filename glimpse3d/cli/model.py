"""``glimpse3d render`` and ``glimpse3d export``: work on a model file, no database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glimpse3d.cli._common import console, handle_errors
from glimpse3d.domain import EXPORT_FORMATS


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
    from glimpse3d.config import get_settings
    from glimpse3d.splat.cameras import orbit_camera
    from glimpse3d.splat.device import splat_device
    from glimpse3d.splat.formats import load_model
    from glimpse3d.splat.images import save_rgba_png
    from glimpse3d.splat.rasterizer import render as render_model

    gaussians = load_model(model).to(splat_device(get_settings().device))  # gsplat on CUDA
    camera = orbit_camera(elevation, azimuth, distance, size)
    result = render_model(gaussians, camera)
    save_rgba_png(out, result.rgb, result.alpha)
    console.print(f"wrote {out}", soft_wrap=True)


@handle_errors
def export(
    model: Annotated[Path, typer.Argument(help="A 3DGS .ply, .splat or .spz model.")],
    format: Annotated[str, typer.Option("--format", "-f", help="|".join(EXPORT_FORMATS))],
    out: Annotated[
        Path,
        typer.Option("-o", "--out", help="Output file (obj: OUT.obj + .mtl + .png, or one OUT.zip)."),
    ],
    faces: Annotated[
        int | None, typer.Option(help="Face budget (glb/obj/usdz; default GLIMPSE3D_MESH_FACES).")
    ] = None,
    texture: Annotated[
        int | None,
        typer.Option(help="Texture size in pixels (glb/obj/usdz; default GLIMPSE3D_MESH_TEXTURE_SIZE)."),
    ] = None,
    vertex_colors: Annotated[
        bool, typer.Option("--vertex-colors", help="Per-vertex colours instead of a texture.")
    ] = False,
    scale: Annotated[
        float | None,
        typer.Option(help="Metres for the model's fit radius (default GLIMPSE3D_MESH_SCALE, 1)."),
    ] = None,
    resolution: Annotated[
        int, typer.Option(min=16, max=512, help="Surface grid resolution (glb/obj/usdz).")
    ] = 96,
    project_id: Annotated[
        str | None, typer.Option(help="Project id to record in the mesh metadata.")
    ] = None,
    frames: Annotated[int, typer.Option(min=1, max=1440, help="Video frames (mp4).")] = 48,
    video_size: Annotated[int, typer.Option(min=16, max=2048, help="Video size, even (mp4).")] = 256,
) -> None:
    """Convert MODEL to another format (splat files, a textured mesh or a turntable video)."""
    from glimpse3d.config import get_settings
    from glimpse3d.errors import UserError
    from glimpse3d.splat.export import export_model
    from glimpse3d.splat.formats import load_model
    from glimpse3d.splat.mesh_asset import MeshOptions

    fmt = format.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if vertex_colors and texture:
        raise UserError("--vertex-colors and --texture exclude each other")
    settings = get_settings()
    options = MeshOptions(
        faces=settings.mesh_faces if faces is None else faces,
        texture_size=0 if vertex_colors else (settings.mesh_texture_size if texture is None else texture),
        scale=settings.mesh_scale if scale is None else scale,
        resolution=resolution,
    )
    path = export_model(
        load_model(model),
        fmt,
        out,
        mesh_options=options,
        metadata={"project_id": project_id} if project_id else None,
        video_frames=frames,
        video_size=video_size,
    )
    console.print(f"wrote {path} ({path.stat().st_size} bytes)", soft_wrap=True)
