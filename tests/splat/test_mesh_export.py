"""The downloadable meshes: .glb / .obj (zip) / .usdz, read back by independent readers
(Khronos glTF validator, trimesh, pxr) and compared with the splat model's own renders."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh

from glimpse3d.splat.export import export_model, mesh_asset
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.mesh_asset import (
    WORLD_TO_ASSET_ROTATION,
    MeshOptions,
    MeshOptionsError,
    asset_world_vertices,
    fidelity,
)
from glimpse3d.testing.synthetic import fit_view0, make_cylinder

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tests" / "splat" / "validate_gltf.cjs"
RADIUS = 0.3
SMALL = MeshOptions(faces=4000, texture_size=256, resolution=64)


def _sphere_shell(n: int = 6000, seed: int = 0) -> GaussianModel:
    """Gaussians on a sphere of radius 0.3 coloured by direction (RGB = 0.5 + 0.45 d)."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return GaussianModel.from_points(RADIUS * d, np.clip(0.5 + 0.45 * d, 0, 1), scale=0.012, opacity=0.9)


def _surface_model(obj, n: int = 30000, seed: int = 0) -> GaussianModel:  # noqa: ANN001
    """Opaque gaussians on the surface of a synthetic object, with its shaded colour: a stand-in
    for a fitted model whose renders look like the object."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(-0.6, 0.6, size=(n * 6, 3))
    for _ in range(4):  # project onto the zero level set
        p = p - obj.world_sdf(p)[:, None] * obj.normals(p)
    p = p[np.abs(obj.world_sdf(p)) < 1e-3][:n]
    return GaussianModel.from_points(p, obj.colour(p), scale=0.009, opacity=0.95)


@pytest.fixture(scope="module")
def shell() -> GaussianModel:
    return _sphere_shell()


@pytest.fixture(scope="module")
def mug() -> GaussianModel:
    return _surface_model(fit_view0(make_cylinder(handle=True)))


@pytest.fixture(scope="module")
def exported(shell, tmp_path_factory) -> dict[str, Path]:
    """The default export (20k faces, 1024² texture) of the shell in every mesh format."""
    out = tmp_path_factory.mktemp("export")
    meta = {"project_id": "p-123", "model_version": 2}
    return {f: export_model(shell, f, out / name, metadata=meta)
            for f, name in (("glb", "model.glb"), ("obj", "model.obj.zip"), ("usdz", "model.usdz"))}


def validate_gltf(*paths: Path) -> list[dict]:
    """Khronos glTF validator reports (node + the npm package installed by `make install`)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Khronos glTF validator cannot run")
    if not (ROOT / "node_modules" / "gltf-validator").is_dir():
        pytest.fail("gltf-validator is missing: run `make install` (npm ci) first")
    run = subprocess.run(["node", str(VALIDATOR), *map(str, paths)], capture_output=True,
                         text=True, timeout=120, check=True)
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_glb_passes_the_khronos_validator_and_has_its_metadata(exported) -> None:
    [report] = validate_gltf(exported["glb"])
    assert report["errors"] == 0, report["messages"]
    assert report["warnings"] == 0, report["messages"]
    data = exported["glb"].read_bytes()
    length = int.from_bytes(data[12:16], "little")
    header = json.loads(data[20:20 + length])
    assert header["asset"]["generator"].startswith("Glimpse3D")
    extras = header["asset"]["extras"]
    assert extras["project_id"] == "p-123" and extras["model_version"] == 2
    material = header["materials"][0]["pbrMetallicRoughness"]
    assert "baseColorTexture" in material and material["metallicFactor"] == 0.0
    assert header["images"][0]["mimeType"] == "image/png" and "uri" not in header["images"][0]


def test_default_export_meets_the_budgets(exported) -> None:
    mesh = trimesh.load(exported["glb"], force="mesh")
    assert len(mesh.faces) <= 20_000
    for path in exported.values():
        assert path.stat().st_size <= 3_000_000, path


def test_glb_reloads_with_its_texture_in_the_asset_frame(exported) -> None:
    mesh = trimesh.load(exported["glb"], force="mesh")
    assert mesh.visual.kind == "texture"
    image = mesh.visual.material.baseColorTexture
    assert image.size == (1024, 1024)
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    lo, hi = mesh.bounds
    assert lo[1] == pytest.approx(0.0, abs=1e-6)  # resting on y = 0
    assert abs(lo[0] + hi[0]) < 1e-5 and abs(lo[2] + hi[2]) < 1e-5  # centred on x = z = 0
    centre = 0.5 * (lo + hi)
    assert np.linalg.norm(mesh.vertices - centre, axis=1).max() == pytest.approx(1.0, rel=1e-5)
    # colour = 0.5 + 0.45 d in our world; the front (+Z here) is world +X (red), up is world +Z
    # (blue), right (+X here) is world +Y (green)
    colours = mesh.visual.to_color().vertex_colors[:, :3].astype(float)
    for axis, channel in ((2, 0), (1, 2), (0, 1)):
        tip = (mesh.vertices[:, axis] - centre[axis]).argmax()
        assert colours[tip, channel] > 200 and colours[tip].argmax() == channel


def test_obj_zip_has_obj_mtl_png_and_reloads_textured(exported, tmp_path) -> None:
    with zipfile.ZipFile(exported["obj"]) as zf:
        assert sorted(zf.namelist()) == ["model.mtl", "model.obj", "model.png"]
        zf.extractall(tmp_path)
    mtl = (tmp_path / "model.mtl").read_text()
    assert "map_Kd model.png" in mtl and "Kd 1 1 1" in mtl
    assert "project_id=p-123" in (tmp_path / "model.obj").read_text().splitlines()[0]
    mesh = trimesh.load(tmp_path / "model.obj", force="mesh")
    assert mesh.visual.kind == "texture" and mesh.visual.material.image.size == (1024, 1024)
    glb = trimesh.load(exported["glb"], force="mesh")
    assert len(mesh.faces) == len(glb.faces)
    assert np.allclose(mesh.bounds, glb.bounds, atol=1e-6)


def test_usdz_opens_in_pxr_with_mesh_uvs_and_texture(exported) -> None:
    from pxr import Usd, UsdGeom, UsdShade

    path = exported["usdz"]
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[0].endswith(".usdc")  # the root layer comes first
        [png] = [n for n in names if n.endswith(".png")]  # the packager may put it in a folder
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())  # USDZ rule
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetRootLayer().customLayerData["project_id"] == "p-123"
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/Model/Mesh"))
    points = np.array(mesh.GetPointsAttr().Get())
    counts = np.array(mesh.GetFaceVertexCountsAttr().Get())
    glb = trimesh.load(exported["glb"], force="mesh")
    assert len(counts) == len(glb.faces) and (counts == 3).all()
    assert np.allclose(points.min(0), glb.bounds[0], atol=1e-5)
    st = UsdGeom.PrimvarsAPI(mesh).GetPrimvar("st")
    uv = np.array(st.Get())
    assert uv.shape == (len(points), 2) and uv.min() >= 0 and uv.max() <= 1
    material, _ = UsdShade.MaterialBindingAPI(mesh.GetPrim()).ComputeBoundMaterial()
    texture = UsdShade.Shader(stage.GetPrimAtPath(f"{material.GetPath()}/BaseColor"))
    assert texture.GetIdAttr().Get() == "UsdUVTexture"
    assert texture.GetInput("file").Get().path == png  # rewritten to the packaged path


def test_textured_mesh_matches_the_splat_renders(shell) -> None:
    score = fidelity(mesh_asset(shell, SMALL), shell)
    assert np.mean(score["psnr"]) >= 26.0 and min(score["psnr"]) >= 24.0, score
    assert min(score["iou"]) >= 0.95, score


def test_mug_textured_mesh_matches_the_splat_renders(mug) -> None:
    """A mug with a handle (a hole through it, a cavity inside) at the default budgets."""
    asset = mesh_asset(mug, MeshOptions(resolution=96))
    assert len(asset.faces) <= 20_000
    closed = trimesh.Trimesh(asset.vertices, asset.faces, process=True)  # merges the UV seams
    assert closed.is_watertight and closed.is_winding_consistent and closed.volume > 0
    score = fidelity(asset, mug)
    assert np.mean(score["psnr"]) >= 26.0, score
    assert min(score["iou"]) >= 0.95, score


def test_vertex_colour_option(shell, tmp_path) -> None:
    options = MeshOptions(faces=3000, texture_size=0, resolution=64)
    path = export_model(shell, "glb", tmp_path / "vc.glb", mesh_options=options)
    [report] = validate_gltf(path)
    assert report["errors"] == 0, report["messages"]
    mesh = trimesh.load(path, force="mesh")
    assert mesh.visual.kind == "vertex" and len(mesh.faces) <= 3000
    asset = mesh_asset(shell, options)
    assert asset.texture is None and asset.vertex_colors.shape == (len(asset.vertices), 4)
    score = fidelity(asset, shell)
    assert np.mean(score["psnr"]) >= 24.0 and min(score["iou"]) >= 0.95, score
    usdz = export_model(shell, "usdz", tmp_path / "vc.usdz", mesh_options=options)
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.Open(str(usdz))
    colours = UsdGeom.PrimvarsAPI(stage.GetPrimAtPath("/Model/Mesh")).GetPrimvar("displayColor")
    assert len(colours.Get()) == len(asset.vertices)


def test_obj_without_zip_writes_three_files(shell, tmp_path) -> None:
    out = export_model(shell, "obj", tmp_path / "chair.obj", mesh_options=SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chair.mtl", "chair.obj", "chair.png"]
    mesh = trimesh.load(out, force="mesh")
    assert mesh.visual.kind == "texture" and len(mesh.faces) <= SMALL.faces


def test_scale_and_frame(shell) -> None:
    asset = mesh_asset(shell, MeshOptions(faces=4000, texture_size=256, resolution=64, scale=0.05))
    centre = 0.5 * (asset.vertices.min(0) + asset.vertices.max(0))
    assert np.linalg.norm(asset.vertices - centre, axis=1).max() == pytest.approx(0.05, rel=1e-5)
    assert asset.vertices[:, 1].min() == pytest.approx(0.0, abs=1e-7)
    # the frame is a proper rotation (no mirror: windings stay counter-clockwise outside)
    assert np.linalg.det(WORLD_TO_ASSET_ROTATION) == pytest.approx(1.0)
    world = asset_world_vertices(asset)
    r = np.linalg.norm(world, axis=1)  # the splats reach ~2 sigma (0.025) beyond their centres
    assert r.min() > RADIUS and r.max() < RADIUS + 0.04 and r.std() < 0.005
    mesh = trimesh.Trimesh(asset.vertices, asset.faces, process=True)
    assert mesh.volume > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(faces=10), "faces"), (dict(texture_size=10), "texture"), (dict(scale=0.0), "scale"),
     (dict(resolution=4), "resolution")],
)
def test_bad_mesh_options_are_user_errors(kwargs, match) -> None:
    with pytest.raises(MeshOptionsError, match=match):
        MeshOptions(**kwargs)


def test_glb_bytes_round_trip_through_trimesh_scene(exported) -> None:
    scene = trimesh.load(io.BytesIO(exported["glb"].read_bytes()), file_type="glb")
    assert len(scene.geometry) == 1
