"""The ``render`` and ``export`` commands through Typer's CliRunner."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from glimpse3d.cli import app
from glimpse3d.splat.formats import load_model, save_ply
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.images import load_rgba

runner = CliRunner()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "model.ply"
    save_ply(GaussianModel.random(1500, seed=1, radius=0.25, scale=0.02), path)
    return path


def _one_line_error(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_render_png_has_transparent_background(model_path, tmp_path) -> None:
    out = tmp_path / "out.png"
    args = ["render", str(model_path), "--elevation", "30", "--azimuth", "0", "--size", "96", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rgba = load_rgba(out)
    assert rgba.shape == (96, 96, 4)
    alpha = rgba[..., 3]
    assert alpha[:5, :5].max() == 0.0 and alpha[-5:, -5:].max() == 0.0  # transparent corners
    assert alpha[48, 48] > 0.9  # the object covers the centre
    assert 0.05 < (alpha > 0.5).mean() < 0.6
    assert rgba[alpha > 0.9][:, :3].std() > 0.01  # coloured, not blank


def test_export_glb_with_mesh_flags(model_path, tmp_path) -> None:
    out = tmp_path / "model.glb"
    args = ["export", str(model_path), "--format", "glb", "--resolution", "40", "--faces", "1500",
            "--texture", "128", "--scale", "0.1", "--project-id", "p-9", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    mesh = trimesh.load(out, force="mesh")
    assert mesh.visual.kind == "texture" and 100 < len(mesh.faces) <= 1500
    assert mesh.visual.material.baseColorTexture.size == (128, 128)
    centre = mesh.bounds.mean(axis=0)
    assert np.linalg.norm(mesh.vertices - centre, axis=1).max() == pytest.approx(0.1, rel=1e-4)
    assert mesh.bounds[0, 1] == pytest.approx(0.0, abs=1e-6)
    assert b'"project_id":"p-9"' in out.read_bytes()[:4000]


def test_export_vertex_colours_and_usdz(model_path, tmp_path) -> None:
    out = tmp_path / "vc.glb"
    args = ["export", str(model_path), "-f", "glb", "--resolution", "40", "--faces", "1500",
            "--vertex-colors", "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    assert trimesh.load(out, force="mesh").visual.kind == "vertex"
    usdz = tmp_path / "model.usdz"
    args = ["export", str(model_path), "-f", "usdz", "--resolution", "40", "--faces", "1500",
            "--texture", "128", "-o", str(usdz)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    from pxr import Usd

    assert Usd.Stage.Open(str(usdz)).GetPrimAtPath("/Model/Mesh").IsValid()


def test_bad_mesh_flags_exit_2(model_path, tmp_path) -> None:
    out = tmp_path / "x.glb"
    for flags, reason in ((["--faces", "10"], "faces must be"), (["--texture", "20"], "texture size"),
                          (["--texture", "256", "--vertex-colors"], "exclude each other")):
        result = runner.invoke(app, ["export", str(model_path), "-f", "glb", *flags, "-o", str(out)])
        assert result.exit_code == 2
        assert reason in _one_line_error(result)
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["splat", "spz", "ply"])
def test_export_splat_formats_reload(model_path, tmp_path, fmt: str) -> None:
    out = tmp_path / f"model.{fmt}"
    result = runner.invoke(app, ["export", str(model_path), "-f", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert load_model(out).num_gaussians == 1500


def test_bad_format_exits_2(model_path, tmp_path) -> None:
    result = runner.invoke(app, ["export", str(model_path), "--format", "fbx", "-o", str(tmp_path / "x.fbx")])
    assert result.exit_code == 2
    assert "unknown format 'fbx'" in _one_line_error(result)
    assert not (tmp_path / "x.fbx").exists()


def test_missing_file_exits_2(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # short paths: the error line must not wrap
    result = runner.invoke(app, ["render", "nope.ply", "-o", "x.png"])
    assert result.exit_code == 2
    assert "not found" in _one_line_error(result)
    result = runner.invoke(app, ["export", "nope.ply", "-f", "glb", "-o", "x.glb"])
    assert result.exit_code == 2
    assert "not found" in _one_line_error(result)


def test_corrupt_model_exits_2(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.splat").write_bytes(b"\x00" * 33)
    result = runner.invoke(app, ["render", "bad.splat", "-o", "x.png"])
    assert result.exit_code == 2
    assert "bad.splat" in result.stderr and not (tmp_path / "x.png").exists()
