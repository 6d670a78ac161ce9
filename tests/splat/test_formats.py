"""Round trips and known-answer reads for the splat file formats."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from glimpse3d.errors import ModelFormatError, UserError
from glimpse3d.splat import formats
from glimpse3d.splat.gaussians import SH_C0, GaussianModel


@pytest.fixture(scope="module")
def model() -> GaussianModel:
    m = GaussianModel.random(500, seed=3, sh_degree=2)
    m.quats = m.quats * 1.7  # not normalised on purpose
    return m


def _aligned_unit(q: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    q = q / q.norm(dim=1, keepdim=True)
    return q * torch.sign((q * ref).sum(dim=1, keepdim=True))


# ---------------------------------------------------------------------- PLY
def test_ply_round_trip_is_exact(model: GaussianModel, tmp_path) -> None:
    path = tmp_path / "m.ply"
    size = formats.save_ply(model, path)
    assert size == path.stat().st_size > 0
    back = formats.load_ply(path)
    for name, tensor in model.tensors().items():
        assert torch.equal(getattr(back, name), tensor), name


def test_ply_layout_matches_reference(model: GaussianModel, tmp_path) -> None:
    from plyfile import PlyData

    path = tmp_path / "m.ply"
    formats.save_ply(model, path)
    ply = PlyData.read(str(path))
    assert ply.text is False and ply.byte_order == "<"
    names = [p.name for p in ply["vertex"].properties]
    rest = [f"f_rest_{i}" for i in range(3 * 8)]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *rest]
    expected += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert names == expected
    assert all(p.val_dtype in ("f4", "float32") for p in ply["vertex"].properties)
    # channel-major f_rest: f_rest[c * 8 + k] is coefficient k+1 of channel c
    v = ply["vertex"].data[7]
    assert v["f_rest_9"] == pytest.approx(float(model.sh[7, 2, 1]))
    assert v["f_rest_16"] == pytest.approx(float(model.sh[7, 1, 2]))
    assert size_ok(path, len(expected), model.num_gaussians)


def size_ok(path, props: int, n: int) -> bool:
    header = path.read_bytes().split(b"end_header\n", 1)[0]
    return path.stat().st_size == len(header) + len(b"end_header\n") + 4 * props * n


_REFERENCE_HEADER = (
    "ply\nformat {fmt} 1.0\nelement vertex 2\n"
    + "".join(
        f"property float {p}\n"
        for p in ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(9)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )
    + "end_header\n"
)
_ROWS = [
    [0.1, -0.2, 0.3, 0, 0, 0, 1.0, 0.5, -0.5, *[10 + i for i in range(9)], 2.0,
     math.log(0.01), math.log(0.02), math.log(0.03), 1.0, 0.0, 0.0, 0.0],
    [-0.4, 0.0, 0.25, 0, 0, 0, 0.0, 0.0, 0.0, *[-(i + 1) for i in range(9)], -1.0,
     -3.0, -4.0, -5.0, 0.5, 0.5, 0.5, 0.5],
]  # fmt: skip


def _check_reference_values(m: GaussianModel) -> None:
    assert m.num_gaussians == 2 and m.sh_degree == 1
    assert torch.allclose(m.means[0], torch.tensor([0.1, -0.2, 0.3]))
    assert torch.allclose(m.sh[0, 0], torch.tensor([1.0, 0.5, -0.5]))
    # reference order: f_rest index = channel * 3 + (coefficient - 1)
    assert torch.allclose(m.sh[0, 1:, 0], torch.tensor([10.0, 11.0, 12.0]))
    assert torch.allclose(m.sh[0, 1:, 1], torch.tensor([13.0, 14.0, 15.0]))
    assert torch.allclose(m.sh[0, 1:, 2], torch.tensor([16.0, 17.0, 18.0]))
    assert torch.allclose(m.sh[1, 2], torch.tensor([-2.0, -5.0, -8.0]))
    assert m.opacities[0].item() == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-6)
    assert torch.allclose(m.scales[0], torch.tensor([0.01, 0.02, 0.03]), rtol=1e-5)
    assert torch.allclose(m.quats[1], torch.tensor([0.5, 0.5, 0.5, 0.5]))


def test_reads_hand_written_binary_reference_ply(tmp_path) -> None:
    path = tmp_path / "point_cloud.ply"
    body = b"".join(struct.pack("<26f", *row) for row in _ROWS)
    path.write_bytes(_REFERENCE_HEADER.format(fmt="binary_little_endian").encode() + body)
    _check_reference_values(formats.load_ply(path))


def test_reads_hand_written_ascii_ply(tmp_path) -> None:
    path = tmp_path / "ascii.ply"
    body = "".join(" ".join(repr(float(v)) for v in row) + "\n" for row in _ROWS)
    path.write_text(_REFERENCE_HEADER.format(fmt="ascii") + body)
    _check_reference_values(formats.load_model(path))


def test_truncated_and_garbage_ply_raise_model_format_error(model: GaussianModel, tmp_path) -> None:
    good = formats.model_to_bytes(model, "ply")
    cases = {
        "truncated.ply": good[: len(good) - 100],
        "header_only.ply": good[: good.index(b"end_header")],
        "garbage.ply": b"\x00\x01not a ply at all" * 10,
        "empty.ply": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ModelFormatError):
            formats.load_ply(path)


def test_point_cloud_ply_is_rejected_with_clear_message(tmp_path) -> None:
    path = tmp_path / "points.ply"
    header = "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    path.write_text(header + "0 0 0\n")
    with pytest.raises(ModelFormatError, match="missing properties"):
        formats.load_ply(path)


def test_reads_playcanvas_compressed_ply(model: GaussianModel, tmp_path) -> None:
    import gsply

    q = model.normalized_quats.numpy()
    sh = model.sh.numpy()
    gsply.plywrite(
        tmp_path / "m.ply", model.means.numpy(), model.log_scales.numpy(), q,
        model.opacity_logits.numpy(), sh[:, 0], sh[:, 1:], compressed=True,
    )  # fmt: skip
    path = tmp_path / "m.compressed.ply"
    back = formats.load_model(path)
    assert back.sh_degree == model.sh_degree and back.num_gaussians == model.num_gaussians
    assert (back.means - model.means).abs().max() < 2e-3  # 11-bit chunk-relative positions
    assert (back.base_colors - model.base_colors).abs().max() < 0.02
    assert formats.model_from_bytes(path.read_bytes(), "ply").num_gaussians == model.num_gaussians


# -------------------------------------------------------------------- SPLAT
def test_splat_round_trip_within_quantisation(model: GaussianModel, tmp_path) -> None:
    path = tmp_path / "m.splat"
    assert formats.save_splat(model, path) == 32 * model.num_gaussians
    back = formats.load_splat(path)
    assert back.sh_degree == 0 and back.num_gaussians == model.num_gaussians

    importance = torch.exp(model.log_scales.double().sum(1)) * torch.sigmoid(model.opacity_logits.double())
    order = torch.argsort(-importance, stable=True)
    ref = model.select(order)
    assert torch.equal(back.means, ref.means)
    assert torch.equal(back.scales, ref.scales.float())  # scales stored as linear float32
    assert torch.allclose(back.log_scales, ref.log_scales, atol=1e-6)
    assert (back.base_colors - ref.base_colors).abs().max() <= 1 / 255 + 1e-6
    assert (back.opacities - ref.opacities).abs().max() <= 1 / 255 + 1e-6
    q_ref = ref.normalized_quats
    assert (_aligned_unit(back.quats, q_ref) - q_ref).abs().max() <= 1.5 / 128


def test_splat_records_are_sorted_by_importance(model: GaussianModel) -> None:
    rec = np.frombuffer(formats.model_to_bytes(model, "splat"), dtype=np.uint8).reshape(-1, 32)
    scale = rec[:, 12:24].copy().view("<f4")
    volume = scale.astype(np.float64).prod(axis=1)
    alpha = rec[:, 27].astype(np.float64)
    upper = volume * (alpha + 0.5) / 255  # alpha was rounded to u8: bound the true importance
    lower = volume * (alpha - 0.5) / 255
    assert (upper[:-1] >= lower[1:]).all()  # descending
    assert upper[0] > 10 * lower[-1]


def test_truncated_splat_raises(model: GaussianModel, tmp_path) -> None:
    data = formats.model_to_bytes(model, "splat")
    path = tmp_path / "bad.splat"
    path.write_bytes(data[:-5])
    with pytest.raises(ModelFormatError, match="multiple of 32"):
        formats.load_splat(path)
    with pytest.raises(ModelFormatError):
        formats.model_from_bytes(b"", "splat")


# ---------------------------------------------------------------------- SPZ
def test_spz_round_trip_within_quantisation(model: GaussianModel, tmp_path) -> None:
    path = tmp_path / "m.spz"
    size = formats.save_spz(model, path)
    assert 0 < size < len(formats.model_to_bytes(model, "ply"))
    back = formats.load_model(path)
    assert back.sh_degree == model.sh_degree
    assert (back.means - model.means).abs().max() <= 2.0**-12
    assert (back.log_scales - model.log_scales).abs().max() <= 1 / 32 + 1e-5
    assert (back.opacities - model.opacities).abs().max() <= 1 / 255 + 1e-6
    assert (back.base_colors - model.base_colors).abs().max() <= 2 / 255
    assert (back.sh[:, 1:] - model.sh[:, 1:]).abs().max() <= 1 / 128 + 1e-6
    q_ref = model.normalized_quats
    assert (_aligned_unit(back.quats, q_ref) - q_ref).abs().max() <= 0.01


def test_corrupt_spz_raises(tmp_path) -> None:
    path = tmp_path / "bad.spz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(ModelFormatError):
        formats.load_spz(path)


# ----------------------------------------------------------------- dispatch
@pytest.mark.parametrize("fmt", ["ply", "splat", "spz"])
def test_bytes_round_trip(model: GaussianModel, fmt: str) -> None:
    back = formats.model_from_bytes(formats.model_to_bytes(model, fmt), fmt)
    assert back.num_gaussians == model.num_gaussians
    # positions survive every format (splat reorders them): match each to its nearest original
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(model.means.numpy()).query(back.means.numpy())
    assert dist.max() <= 2.0**-12
    assert sorted(idx.tolist()) == list(range(model.num_gaussians))


def test_load_model_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        formats.load_model(tmp_path / "missing.ply")
    odd = tmp_path / "model.xyz"
    odd.write_text("x")
    with pytest.raises(UserError, match="unsupported model format"):
        formats.load_model(odd)
    (tmp_path / "dir.ply").mkdir()
    with pytest.raises(UserError, match="not a model file"):
        formats.load_model(tmp_path / "dir.ply")
    with pytest.raises(UserError, match="unknown model format"):
        formats.model_to_bytes(GaussianModel.random(3), "obj")


def test_rgb_convention_in_splat(tmp_path) -> None:
    m = GaussianModel.from_points(np.zeros((1, 3)), np.array([[1.0, 0.5, 0.0]]), opacity=0.75)
    rec = np.frombuffer(formats.model_to_bytes(m, "splat"), dtype=np.uint8)
    assert rec[24:28].tolist() == [255, 128, 0, 191]
    assert rec[28:32].tolist() == [255, 128, 128, 128]  # identity quaternion wxyz
    back = formats.model_from_bytes(rec.tobytes(), "splat")
    assert torch.allclose(back.sh[0, 0] * SH_C0 + 0.5, torch.tensor([1.0, 128 / 255, 0.0]), atol=1e-6)
    assert back.opacities.item() == pytest.approx(191 / 255, abs=1e-6)
