"""Turntable video: decodes to the right number of frames and size, with the right content."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest

from glimpse3d.errors import UserError
from glimpse3d.splat.export import export_model
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.video import render_turntable, turntable_frames


@pytest.fixture(scope="module")
def model() -> GaussianModel:
    # a red ball on the +X side and a blue ball on the -X side
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(600, 3)) * 0.05
    pts[:300, 0] += 0.25
    pts[300:, 0] -= 0.25
    colors = np.zeros((600, 3))
    colors[:300, 0] = 1.0
    colors[300:, 2] = 1.0
    return GaussianModel.from_points(pts, colors, scale=0.03, opacity=0.9)


def _read(path) -> tuple[list[np.ndarray], dict]:
    reader = imageio.get_reader(path)
    try:
        return list(reader.iter_data()), reader.get_meta_data()
    finally:
        reader.close()


def test_turntable_decodes_to_expected_frames(model: GaussianModel, tmp_path) -> None:
    path = tmp_path / "turn.mp4"
    size = render_turntable(model, path, frames=8, size=64, fps=8, background=(1, 1, 1))
    assert size == path.stat().st_size > 0
    frames, meta = _read(path)
    assert len(frames) == 8
    assert frames[0].shape == (64, 64, 3)
    assert meta["codec"] == "h264" and meta["fps"] == pytest.approx(8)
    first = frames[0].astype(int)
    assert (first[:4, :4] > 235).all()  # white background in the corner
    assert first.min() < 120  # something is drawn


def test_turntable_orbits_counter_clockwise(model: GaussianModel) -> None:
    # azimuth 90 deg (frame 1 of 4): camera on +Y looking at -Y; +X is to the camera's left.
    frames = list(turntable_frames(model, frames=4, size=64, elevation=0.0, background=(0, 0, 0)))
    assert len(frames) == 4
    f = frames[1].astype(int)
    left, right = f[:, :32], f[:, 32:]
    assert left[..., 0].sum() > 3 * left[..., 2].sum()  # red (+X) on the left
    assert right[..., 2].sum() > 3 * right[..., 0].sum()  # blue (-X) on the right
    # frame 0 looks along -X: red ball in front, both centred
    assert frames[0][..., 0].sum() > frames[0][..., 2].sum()


def test_bad_parameters(model: GaussianModel, tmp_path) -> None:
    with pytest.raises(UserError, match="even"):
        render_turntable(model, tmp_path / "x.mp4", frames=2, size=65)
    with pytest.raises(UserError, match="frames"):
        render_turntable(model, tmp_path / "x.mp4", frames=0)
    assert not list(tmp_path.iterdir())


def test_export_mp4(model: GaussianModel, tmp_path) -> None:
    path = export_model(model, "mp4", tmp_path / "out" / "t.mp4", video_frames=4, video_size=32)
    frames, _ = _read(path)
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
