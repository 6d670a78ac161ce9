"""USDZ (AR Quick Look) from a :class:`~glimpse3d.splat.mesh_asset.MeshAsset` with usd-core.

Layout: ``/Model`` (Xform, default prim) > ``Mesh`` (triangles, vertex normals, ``st`` UVs) bound
to ``/Model/Materials/Baked``: a ``UsdPreviewSurface`` (metallic 0, roughness 1) whose
``diffuseColor`` is a ``UsdUVTexture`` of the baked PNG (sRGB) read at ``st`` -- or, for
vertex-coloured assets, the ``displayColor`` primvar. Stage: ``upAxis = Y``,
``metersPerUnit = 1``; metadata (generator, project id...) in the root layer's
``customLayerData``. Packaged with ``UsdUtils.CreateNewARKitUsdzPackage``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from glimpse3d.errors import UserError
from glimpse3d.splat.mesh_asset import MeshAsset


def _pxr():  # noqa: ANN202 - modules
    try:
        from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt
    except ImportError as exc:  # pragma: no cover - usd-core is a declared dependency
        raise UserError(".usdz needs the 'usd-core' package (pip install usd-core)") from exc
    return Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt


def write_usdz(asset: MeshAsset, path: str | os.PathLike[str], metadata: dict[str, Any]) -> int:
    """Write ``asset`` as an AR Quick Look ``.usdz`` at ``path`` (must end in .usdz); returns
    bytes written."""
    from PIL import Image

    gf, sdf, usd, usd_geom, usd_shade, usd_utils, vt = _pxr()
    out = Path(path)
    with tempfile.TemporaryDirectory(prefix="glimpse3d-usdz-") as tmp:
        layer_path = Path(tmp) / "model.usdc"
        stage = usd.Stage.CreateNew(str(layer_path))
        usd_geom.SetStageUpAxis(stage, usd_geom.Tokens.y)
        usd_geom.SetStageMetersPerUnit(stage, 1.0)
        root = usd_geom.Xform.Define(stage, "/Model")
        stage.SetDefaultPrim(root.GetPrim())
        stage.GetRootLayer().customLayerData = {k: str(v) for k, v in metadata.items()}

        mesh = usd_geom.Mesh.Define(stage, "/Model/Mesh")
        points = np.ascontiguousarray(asset.vertices, np.float32)
        mesh.CreatePointsAttr(vt.Vec3fArray.FromNumpy(points))
        mesh.CreateFaceVertexCountsAttr(vt.IntArray.FromNumpy(np.full(len(asset.faces), 3, np.int32)))
        mesh.CreateFaceVertexIndicesAttr(vt.IntArray.FromNumpy(asset.faces.astype(np.int32).ravel()))
        mesh.CreateNormalsAttr(vt.Vec3fArray.FromNumpy(np.ascontiguousarray(asset.normals, np.float32)))
        mesh.SetNormalsInterpolation(usd_geom.Tokens.vertex)
        mesh.CreateSubdivisionSchemeAttr(usd_geom.Tokens.none)
        mesh.CreateOrientationAttr(usd_geom.Tokens.rightHanded)
        mesh.CreateExtentAttr(vt.Vec3fArray([gf.Vec3f(*map(float, points.min(0))),
                                             gf.Vec3f(*map(float, points.max(0)))]))
        primvars = usd_geom.PrimvarsAPI(mesh)

        material = usd_shade.Material.Define(stage, "/Model/Materials/Baked")
        surface = usd_shade.Shader.Define(stage, "/Model/Materials/Baked/PreviewSurface")
        surface.CreateIdAttr("UsdPreviewSurface")
        surface.CreateInput("metallic", sdf.ValueTypeNames.Float).Set(0.0)
        surface.CreateInput("roughness", sdf.ValueTypeNames.Float).Set(1.0)
        diffuse = surface.CreateInput("diffuseColor", sdf.ValueTypeNames.Color3f)
        material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")

        if asset.texture is not None and asset.uvs is not None:
            st = primvars.CreatePrimvar("st", sdf.ValueTypeNames.TexCoord2fArray,
                                        usd_geom.Tokens.vertex)
            st.Set(vt.Vec2fArray.FromNumpy(np.ascontiguousarray(asset.uvs, np.float32)))
            Image.fromarray(asset.texture, "RGB").save(Path(tmp) / "texture.png")
            reader = usd_shade.Shader.Define(stage, "/Model/Materials/Baked/stReader")
            reader.CreateIdAttr("UsdPrimvarReader_float2")
            reader.CreateInput("varname", sdf.ValueTypeNames.Token).Set("st")
            texture = usd_shade.Shader.Define(stage, "/Model/Materials/Baked/BaseColor")
            texture.CreateIdAttr("UsdUVTexture")
            texture.CreateInput("file", sdf.ValueTypeNames.Asset).Set("texture.png")
            texture.CreateInput("sourceColorSpace", sdf.ValueTypeNames.Token).Set("sRGB")
            texture.CreateInput("wrapS", sdf.ValueTypeNames.Token).Set("clamp")
            texture.CreateInput("wrapT", sdf.ValueTypeNames.Token).Set("clamp")
            texture.CreateInput("st", sdf.ValueTypeNames.Float2).ConnectToSource(
                reader.ConnectableAPI(), "result")
            texture.CreateOutput("rgb", sdf.ValueTypeNames.Float3)
            diffuse.ConnectToSource(texture.ConnectableAPI(), "rgb")
        else:
            colors = np.asarray(asset.vertex_colors, np.float32)[:, :3] / 255.0
            display = primvars.CreatePrimvar("displayColor", sdf.ValueTypeNames.Color3fArray,
                                             usd_geom.Tokens.vertex)
            display.Set(vt.Vec3fArray.FromNumpy(np.ascontiguousarray(colors)))
            reader = usd_shade.Shader.Define(stage, "/Model/Materials/Baked/colorReader")
            reader.CreateIdAttr("UsdPrimvarReader_float3")
            reader.CreateInput("varname", sdf.ValueTypeNames.Token).Set("displayColor")
            reader.CreateOutput("result", sdf.ValueTypeNames.Float3)
            diffuse.ConnectToSource(reader.ConnectableAPI(), "result")

        usd_shade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)
        stage.GetRootLayer().Save()
        del stage
        if not usd_utils.CreateNewARKitUsdzPackage(sdf.AssetPath(str(layer_path)), str(out)):
            raise UserError(f"could not package {out.name} as .usdz")
    return out.stat().st_size
