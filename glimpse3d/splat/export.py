"""Export a Gaussian-splat model to any of the user-facing formats (DESIGN §3).

``ply``/``splat``/``spz`` are splat files (:mod:`glimpse3d.splat.formats`); ``glb``/``obj`` are
a vertex-coloured triangle mesh extracted from the splats (:mod:`glimpse3d.splat.mesh`),
converted from our Z-up world to the Y-up convention of glTF (and of OBJ importers such as
Blender's defaults): ``(x, y, z) -> (x, z, -y)``, see :data:`Z_UP_TO_Y_UP`; ``mp4`` is a
turntable video (:mod:`glimpse3d.splat.video`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from glimpse3d.domain import EXPORT_FORMATS
from glimpse3d.errors import UserError
from glimpse3d.splat.gaussians import GaussianModel

MEDIA_TYPES = {
    "ply": "application/octet-stream",
    "splat": "application/octet-stream",
    "spz": "application/octet-stream",
    "glb": "model/gltf-binary",
    "obj": "model/obj",
    "mp4": "video/mp4",
}

# Rotation of -90 degrees about +X: world +Z (our up) becomes +Y (glTF up).
Z_UP_TO_Y_UP = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


def normalize_format(fmt: str) -> str:
    """``'.GLB'`` -> ``'glb'``; UserError for a format we cannot write."""
    f = str(fmt).lower().strip().lstrip(".")
    if f not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return f


def export_model(
    model: GaussianModel,
    fmt: str,
    out_path: str | os.PathLike[str],
    *,
    mesh_resolution: int = 96,
    video_frames: int = 48,
    video_size: int = 256,
) -> Path:
    """Write ``model`` to ``out_path`` in format ``fmt`` (ply|splat|spz|glb|obj|mp4).

    The file is written under a temporary name and renamed, so a failed export never
    leaves a half-written file at ``out_path``. Returns the output path.
    """
    f = normalize_format(fmt)
    out = Path(out_path)
    if out.is_dir():
        raise UserError(f"output path is a directory: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.{f}")
    try:
        if f in ("ply", "splat", "spz"):
            from glimpse3d.splat import formats

            {"ply": formats.save_ply, "splat": formats.save_splat, "spz": formats.save_spz}[f](
                model, tmp
            )
        elif f in ("glb", "obj"):
            from glimpse3d.splat.mesh import extract_mesh

            mesh = extract_mesh(model, resolution=mesh_resolution)
            mesh.apply_transform(Z_UP_TO_Y_UP)
            if f == "obj":
                # Colours go in the ``v x y z r g b`` lines (no .mtl), which trimesh,
                # MeshLab and Blender read back as vertex colours.
                data = mesh.export(
                    file_type="obj", include_color=True, include_normals=True, include_texture=False
                )
                tmp.write_text(data if isinstance(data, str) else data.decode())
            else:
                tmp.write_bytes(mesh.export(file_type="glb"))
        else:
            from glimpse3d.splat.video import render_turntable

            render_turntable(model, tmp, frames=video_frames, size=video_size)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
