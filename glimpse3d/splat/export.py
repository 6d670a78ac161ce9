"""Export a Gaussian-splat model to any of the user-facing formats (docs/architecture.md, "Gaussian model and files").

- ``ply``/``splat``/``spz``: splat files (:mod:`glimpse3d.splat.formats`).
- ``glb``/``obj``/``usdz``: the decimated, UV-textured mesh of :mod:`glimpse3d.splat.mesh_asset`
  (glTF conventions: Y up, front towards +Z, resting on y = 0, metres).
  ``.glb``: binary glTF 2.0 with the texture embedded as the baseColorTexture of a
  metallic-roughness material (metallic 0, roughness 1), generator and metadata in ``asset``.
  ``.obj``: Wavefront OBJ + MTL (``map_Kd``) + PNG; written as a ``.zip`` of the three when the
  output name ends in ``.zip`` (as the API serves it), else as three files side by side.
  ``.usdz``: an AR Quick Look package (:mod:`glimpse3d.splat.usdz`).
  With ``texture_size=0`` the meshes carry per-vertex colours instead of a texture.
- ``mp4``: a turntable video (:mod:`glimpse3d.splat.video`).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

from glimpse3d.domain import EXPORT_FILE_EXTENSIONS, EXPORT_FORMATS, MESH_FORMATS
from glimpse3d.errors import UserError
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.mesh_asset import GENERATOR, AssetCache, MeshAsset, MeshOptions

MEDIA_TYPES = {
    "ply": "application/octet-stream",
    "splat": "application/octet-stream",
    "spz": "application/octet-stream",
    "glb": "model/gltf-binary",
    "obj": "application/zip",  # .obj + .mtl + .png, zipped
    "usdz": "model/vnd.usdz+zip",
    "mp4": "video/mp4",
}
FILE_EXTENSIONS = EXPORT_FILE_EXTENSIONS

_ASSETS = AssetCache()


def normalize_format(fmt: str) -> str:
    """``'.GLB'`` -> ``'glb'``; UserError for a format we cannot write."""
    f = str(fmt).lower().strip().lstrip(".")
    if f not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return f


def mesh_asset(model: GaussianModel, options: MeshOptions | None = None) -> MeshAsset:
    """The (cached) mesh asset of ``model``: .glb, .obj and .usdz of one model share it."""
    return _ASSETS.get(model, options or MeshOptions())


def _file_metadata(asset: MeshAsset, metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {
        **asset.metadata,
        "up": "+Y",
        "front": "+Z",
        "units": "metres",
        "faces": len(asset.faces),
        **(metadata or {}),
    }


def _trimesh(asset: MeshAsset, name: str):  # noqa: ANN202 - trimesh.Trimesh
    import trimesh
    from PIL import Image

    if asset.texture is not None:
        material = trimesh.visual.material.PBRMaterial(
            name=name,
            baseColorTexture=Image.fromarray(asset.texture, "RGB"),
            metallicFactor=0.0,
            roughnessFactor=1.0,
        )
        visual = trimesh.visual.TextureVisuals(uv=asset.uvs, material=material)
    else:
        visual = trimesh.visual.ColorVisuals(vertex_colors=asset.vertex_colors)
    return trimesh.Trimesh(
        vertices=asset.vertices, faces=asset.faces, vertex_normals=asset.normals,
        visual=visual, process=False,
    )


def glb_bytes(asset: MeshAsset, metadata: dict[str, Any] | None = None) -> bytes:
    """The asset as a binary glTF 2.0 (texture embedded)."""
    from trimesh.exchange.gltf import export_glb

    info = _file_metadata(asset, metadata)

    def stamp(tree: dict[str, Any]) -> None:
        tree["asset"]["generator"] = GENERATOR
        tree["asset"]["extras"] = info

    return export_glb(_trimesh(asset, "baked").scene(), include_normals=True, tree_postprocessor=stamp)


def obj_files(asset: MeshAsset, stem: str, metadata: dict[str, Any] | None = None) -> dict[str, bytes]:
    """``{stem}.obj`` (+ ``{stem}.mtl`` and the texture PNG when textured) as name -> bytes."""
    from trimesh.exchange.obj import export_obj

    info = _file_metadata(asset, metadata)
    header = " ".join(f"{k}={v}" for k, v in info.items() if k != "world_to_asset")
    mesh = _trimesh(asset, stem)
    if asset.texture is None:
        text = export_obj(mesh, include_normals=True, include_color=True, include_texture=False,
                          header=header)
        return {f"{stem}.obj": text.encode()}
    text, files = export_obj(mesh, include_normals=True, include_texture=True, return_texture=True,
                             mtl_name=f"{stem}.mtl", header=header)
    images = {name: data for name, data in files.items() if not name.endswith(".mtl")}
    if list(images) != [f"{stem}.png"]:  # pragma: no cover - trimesh names it after the material
        raise RuntimeError(f"unexpected OBJ texture files {sorted(images)}")
    # our own MTL: white Kd (trimesh writes 0.4, which many readers multiply into the map),
    # no specular, illum 1 (diffuse only)
    mtl = (f"# {header}\nnewmtl {stem}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nNs 1\nd 1\nillum 1\n"
           f"map_Kd {stem}.png\n")
    return {f"{stem}.obj": text.encode(), f"{stem}.mtl": mtl.encode(), **images}


def _write_obj(asset: MeshAsset, out: Path, tmp: Path, metadata: dict[str, Any] | None) -> None:
    if out.name.lower().endswith(".zip"):
        stem = out.name[: -len(".zip")].removesuffix(".obj") or "model"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in obj_files(asset, stem, metadata).items():
                # PNG is already compressed
                kind = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
                zf.writestr(name, data, compress_type=kind)
        tmp.write_bytes(buf.getvalue())
        return
    files = obj_files(asset, out.stem, metadata)
    main = files.pop(f"{out.stem}.obj")
    for name, data in files.items():  # sidecars first: the .obj appears last, complete
        side = out.with_name(name)
        part = side.with_name(f".{side.name}.part")
        part.write_bytes(data)
        part.replace(side)
    tmp.write_bytes(main)


def export_model(
    model: GaussianModel,
    fmt: str,
    out_path: str | os.PathLike[str],
    *,
    mesh_options: MeshOptions | None = None,
    metadata: dict[str, Any] | None = None,
    mesh_resolution: int | None = None,
    video_frames: int = 48,
    video_size: int = 256,
) -> Path:
    """Write ``model`` to ``out_path`` in format ``fmt`` (ply|splat|spz|glb|obj|usdz|mp4).

    ``mesh_options`` (faces, texture size, scale) apply to the mesh formats; ``metadata``
    (e.g. ``{"project_id": ...}``) is stored in their asset metadata. The file is written under
    a temporary name and renamed, so a failed export never leaves a half-written file at
    ``out_path``. Returns the output path.
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
        elif f in MESH_FORMATS:
            options = mesh_options or MeshOptions()
            if mesh_resolution is not None:
                from dataclasses import replace

                options = replace(options, resolution=int(mesh_resolution))
            asset = mesh_asset(model, options)
            if f == "glb":
                tmp.write_bytes(glb_bytes(asset, metadata))
            elif f == "obj":
                _write_obj(asset, out, tmp, metadata)
            else:
                from glimpse3d.splat.usdz import write_usdz

                write_usdz(asset, tmp, _file_metadata(asset, metadata))
        else:
            from glimpse3d.splat._threads import one_torch_thread
            from glimpse3d.splat.video import render_turntable

            with one_torch_thread():  # 2x faster on the CPU (see splat/_threads.py)
                render_turntable(model, tmp, frames=video_frames, size=video_size)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


__all__ = [
    "EXPORT_FORMATS",
    "FILE_EXTENSIONS",
    "MEDIA_TYPES",
    "MESH_FORMATS",
    "export_model",
    "glb_bytes",
    "mesh_asset",
    "normalize_format",
    "obj_files",
]
