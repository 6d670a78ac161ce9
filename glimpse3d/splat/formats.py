"""Gaussian-splat file formats: ``.ply`` (3DGS), ``.splat`` (web) and ``.spz`` (Niantic).

Conventions follow docs/architecture.md ("Gaussian model and files") and :mod:`glimpse3d.splat.gaussians`:

- ``.ply``: the layout written by the reference 3DGS implementation (``save_ply`` in
  graphdeco-inria/gaussian-splatting): one binary little-endian ``vertex`` element with
  float32 properties ``x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3``.
  ``f_rest`` is *channel-major*: ``f_rest[c*(K-1) + k]`` is SH coefficient ``k+1`` of
  colour channel ``c``. Opacity is stored as a logit, scales as natural logs, rotations
  as wxyz quaternions (not necessarily normalised). Exact for float32.
- ``.splat``: 32 bytes per gaussian (antimatter15/splat): position f32x3, *linear* scale
  f32x3, RGBA u8x4 (RGB from the SH DC term, A = sigmoid(opacity)), rotation u8x4
  (normalised wxyz, ``q*128+128``), sorted by descending ``exp(sum log_scales) * opacity``.
  View-dependent colour (SH degree > 0) is dropped.
  PlayCanvas/SuperSplat ``.compressed.ply`` files (a ``chunk`` element plus packed vertex
  properties) are read too, through gsply.
- ``.spz``: Niantic's compressed format through the maintained ``gsply`` library
  (pure NumPy/Numba; the ``spz`` package on PyPI needs a Rust toolchain and network at
  build time, so it is not used). Quantised: positions 12 fractional bits, log-scales
  1/16, opacity and colour 8 bits, rotations smallest-three 10-bit.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from glimpse3d.domain import MODEL_FORMATS
from glimpse3d.errors import ModelFormatError, UserError
from glimpse3d.splat.gaussians import SH_C0, GaussianModel, sh_degree_from_coeffs

SPLAT_RECORD_BYTES = 32
_SPLAT_DTYPE = np.dtype(
    [("pos", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))]
)
_REQUIRED_PLY = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip


# ------------------------------------------------------------------ helpers
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32, copy=False)


def _model(
    means: np.ndarray,
    log_scales: np.ndarray,
    quats: np.ndarray,
    opacity_logits: np.ndarray,
    sh: np.ndarray,
) -> GaussianModel:
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))

    return GaussianModel(t(means), t(log_scales), t(quats), t(opacity_logits), t(sh))


def _prepare_out(path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p)).astype(np.float32)


def _name(path: str | os.PathLike[str] | BinaryIO) -> str:
    return str(path) if isinstance(path, str | os.PathLike) else "<bytes>"


# ---------------------------------------------------------------------- PLY
def _ply_element(model: GaussianModel):  # noqa: ANN202 - plyfile.PlyElement
    from plyfile import PlyElement

    n = model.num_gaussians
    rest = model.sh.shape[1] - 1
    names = (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(3 * rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )
    sh = _np(model.sh)
    f_rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * rest)  # channel-major
    columns = np.concatenate(
        [
            _np(model.means),
            np.zeros((n, 3), np.float32),
            sh[:, 0, :],
            f_rest,
            _np(model.opacity_logits)[:, None],
            _np(model.log_scales),
            _np(model.quats),
        ],
        axis=1,
    )
    data = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        data[name] = columns[:, i]
    return PlyElement.describe(data, "vertex")


def _write_ply(model: GaussianModel, fh: BinaryIO) -> None:
    from plyfile import PlyData

    PlyData([_ply_element(model)], text=False, byte_order="<").write(fh)


def save_ply(model: GaussianModel, path: str | os.PathLike[str]) -> int:
    """Write ``model`` as a binary little-endian 3DGS ``.ply``; returns bytes written."""
    out = _prepare_out(path)
    with out.open("wb") as fh:
        _write_ply(model, fh)
    return out.stat().st_size


def _read_ply(src: str | os.PathLike[str] | BinaryIO) -> GaussianModel:
    if not isinstance(src, str | os.PathLike):
        # plyfile reads the body of a stream row by row in Python (12 s for five 100k-splat
        # models in one pipeline run); from a real file it maps the binary body at once, so
        # the bytes go through an anonymous temporary file (same result, ~100x faster)
        with tempfile.TemporaryFile() as fh:
            fh.write(src.read())
            fh.seek(0)
            return _read_ply_body(fh, "<bytes>")
    return _read_ply_body(src, _name(src))


def _read_ply_body(src: str | os.PathLike[str] | BinaryIO, name: str) -> GaussianModel:
    from plyfile import PlyData

    try:
        ply = PlyData.read(src)
        if "vertex" not in ply:
            raise ModelFormatError(f"{name}: PLY file has no 'vertex' element")
        vertex = ply["vertex"]
        props = [p.name for p in vertex.properties]
        if "chunk" in ply and "packed_position" in props:
            return _read_compressed_ply(src, name)
        missing = [p for p in _REQUIRED_PLY if p not in props]
        if missing:
            raise ModelFormatError(
                f"{name}: not a 3D Gaussian-splat PLY (missing properties {', '.join(missing)})"
            )
        data = vertex.data
        n = len(data)

        def cols(names: list[str]) -> np.ndarray:
            if not names:
                return np.zeros((n, 0), np.float32)
            return np.stack([np.asarray(data[k], dtype=np.float32) for k in names], axis=1)

        rest_names = sorted(
            (p for p in props if p.startswith("f_rest_")), key=lambda p: int(p.split("_")[-1])
        )
        if len(rest_names) % 3:
            raise ModelFormatError(f"{name}: {len(rest_names)} f_rest properties is not 3*(K-1)")
        k = 1 + len(rest_names) // 3
        try:
            sh_degree_from_coeffs(k)
        except ValueError:
            raise ModelFormatError(
                f"{name}: {len(rest_names)} f_rest properties do not match an SH degree 0..3"
            ) from None
        sh = np.empty((n, k, 3), np.float32)
        sh[:, 0, :] = cols(["f_dc_0", "f_dc_1", "f_dc_2"])
        sh[:, 1:, :] = cols(rest_names).reshape(n, 3, k - 1).transpose(0, 2, 1)
        model = _model(
            cols(["x", "y", "z"]),
            cols(["scale_0", "scale_1", "scale_2"]),
            cols(["rot_0", "rot_1", "rot_2", "rot_3"]),
            cols(["opacity"])[:, 0],
            sh,
        )
    except ModelFormatError:
        raise
    except Exception as exc:  # plyfile raises many types on truncated/garbled input
        raise ModelFormatError(f"{name}: unreadable PLY file ({type(exc).__name__}: {exc})") from exc
    _check_finite(model, name)
    return model


def _gsdata_to_model(data, name: str) -> GaussianModel:  # noqa: ANN001 - gsply.GSData
    n = len(data.means)
    sh_n = None if data.shN is None else np.asarray(data.shN, np.float32).reshape(n, -1, 3)
    k = 1 + (0 if sh_n is None else sh_n.shape[1])
    sh = np.empty((n, k, 3), np.float32)
    sh[:, 0, :] = data.sh0
    if k > 1:
        sh[:, 1:, :] = sh_n
    model = _model(data.means, data.scales, data.quats, data.opacities, sh)
    _check_finite(model, name)
    return model


def _read_compressed_ply(src: str | os.PathLike[str] | BinaryIO, name: str) -> GaussianModel:
    """PlayCanvas/SuperSplat ``.compressed.ply`` (chunked, quantised), decoded by gsply."""
    gsply = _gsply()
    if isinstance(src, str | os.PathLike):
        return _gsdata_to_model(gsply.plyread(src), name)
    src.seek(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.compressed.ply"
        path.write_bytes(src.read())
        return _gsdata_to_model(gsply.plyread(path), name)


def load_ply(path: str | os.PathLike[str]) -> GaussianModel:
    """Read a 3DGS ``.ply`` (ASCII or binary, any SH degree 0..3) into a GaussianModel."""
    return _read_ply(_existing(path))


def _check_finite(model: GaussianModel, name: str) -> None:
    if model.num_gaussians == 0:
        raise ModelFormatError(f"{name}: the model contains no gaussians")
    if not torch.isfinite(model.means).all():
        raise ModelFormatError(f"{name}: the model has non-finite positions")


# -------------------------------------------------------------------- SPLAT
def _splat_records(model: GaussianModel) -> np.ndarray:
    log_scales = _np(model.log_scales)
    opacity = 1.0 / (1.0 + np.exp(-_np(model.opacity_logits).astype(np.float64)))
    importance = np.exp(log_scales.astype(np.float64).sum(axis=1)) * opacity
    order = np.argsort(-importance, kind="stable")

    rgb = _np(model.sh[:, 0, :]).astype(np.float64) * SH_C0 + 0.5
    rgba = np.concatenate([rgb, opacity[:, None]], axis=1)
    quats = _np(model.quats).astype(np.float64)
    quats = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)

    rec = np.empty(model.num_gaussians, dtype=_SPLAT_DTYPE)
    rec["pos"] = _np(model.means)
    rec["scale"] = np.exp(log_scales.astype(np.float64)).astype(np.float32)
    rec["rgba"] = np.clip(np.rint(rgba * 255.0), 0, 255).astype(np.uint8)
    rec["rot"] = np.clip(np.rint(quats * 128.0 + 128.0), 0, 255).astype(np.uint8)
    return rec[order]


def save_splat(model: GaussianModel, path: str | os.PathLike[str]) -> int:
    """Write the 32-byte-per-gaussian web ``.splat`` layout; returns bytes written."""
    out = _prepare_out(path)
    out.write_bytes(_splat_records(model).tobytes())
    return out.stat().st_size


def _splat_from_bytes(data: bytes, name: str) -> GaussianModel:
    if len(data) == 0:
        raise ModelFormatError(f"{name}: empty .splat file")
    if len(data) % SPLAT_RECORD_BYTES:
        raise ModelFormatError(
            f"{name}: .splat size {len(data)} is not a multiple of {SPLAT_RECORD_BYTES} bytes "
            "(truncated or not a .splat file)"
        )
    rec = np.frombuffer(data, dtype=_SPLAT_DTYPE)
    scales = rec["scale"].astype(np.float32)
    if not (np.isfinite(rec["pos"]).all() and np.isfinite(scales).all() and (scales > 0).all()):
        raise ModelFormatError(f"{name}: .splat has non-finite positions or non-positive scales")
    rgba = rec["rgba"].astype(np.float32) / 255.0
    alpha = np.clip(rgba[:, 3], 0.5 / 255.0, 1.0 - 0.5 / 255.0)
    quats = (rec["rot"].astype(np.float32) - 128.0) / 128.0
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    quats = np.where(norm > 1e-6, quats / np.maximum(norm, 1e-12), np.array([1, 0, 0, 0], np.float32))
    sh = ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]
    return _model(rec["pos"], np.log(scales), quats, _logit(alpha), sh)


def load_splat(path: str | os.PathLike[str]) -> GaussianModel:
    """Read a web ``.splat`` file; the result has SH degree 0 and unit quaternions."""
    p = _existing(path)
    return _splat_from_bytes(p.read_bytes(), str(p))


# ---------------------------------------------------------------------- SPZ
def _gsply():  # noqa: ANN202 - module
    try:
        import gsply
    except ImportError as exc:  # pragma: no cover - gsply is a declared dependency
        raise UserError(
            ".spz needs the 'gsply' package (pip install gsply); use .ply or .splat instead"
        ) from exc
    return gsply


def save_spz(model: GaussianModel, path: str | os.PathLike[str]) -> int:
    """Write Niantic ``.spz`` (gzip container v3) via gsply; returns bytes written."""
    gsply = _gsply()
    out = _prepare_out(path)
    quats = _np(model.quats)
    quats = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)
    sh = _np(model.sh)
    data = gsply.GSData(
        means=np.ascontiguousarray(_np(model.means)),
        scales=np.ascontiguousarray(_np(model.log_scales)),
        quats=np.ascontiguousarray(quats),
        opacities=np.ascontiguousarray(_np(model.opacity_logits)),
        sh0=np.ascontiguousarray(sh[:, 0, :]),
        shN=np.ascontiguousarray(sh[:, 1:, :]),
    )
    gsply.write_spz(out, data)
    return out.stat().st_size


def load_spz(path: str | os.PathLike[str]) -> GaussianModel:
    """Read a Niantic ``.spz`` (v1-v3 gzip, or v4 when ``zstandard`` is installed)."""
    gsply = _gsply()
    p = _existing(path)
    try:
        return _gsdata_to_model(gsply.read_spz(p), str(p))
    except UserError:
        raise
    except Exception as exc:  # gsply raises ValueError/struct/zlib errors on bad input
        raise ModelFormatError(f"{p}: unreadable .spz file ({type(exc).__name__}: {exc})") from exc


# ------------------------------------------------------------------ dispatch
def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"model file not found: {p}")
    if not p.is_file():
        raise UserError(f"not a model file: {p}")
    return p


def model_format(path: str | os.PathLike[str]) -> str:
    """The format name (``ply``/``splat``/``spz``) for a path, from its extension."""
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in MODEL_FORMATS:
        raise UserError(
            f"unsupported model format {Path(path).suffix or '(no extension)'!r} for {Path(path).name}; "
            "expected .ply, .splat or .spz"
        )
    return ext


def load_model(path: str | os.PathLike[str]) -> GaussianModel:
    """Load a model, dispatching on the extension (.ply, .splat, .spz)."""
    fmt = model_format(path)
    _existing(path)
    return {"ply": load_ply, "splat": load_splat, "spz": load_spz}[fmt](path)


def save_model(model: GaussianModel, path: str | os.PathLike[str]) -> int:
    """Save a model, dispatching on the extension; returns bytes written."""
    fmt = model_format(path)
    return {"ply": save_ply, "splat": save_splat, "spz": save_spz}[fmt](model, path)


def _check_fmt(fmt: str) -> str:
    f = fmt.lower().lstrip(".")
    if f not in MODEL_FORMATS:
        raise UserError(f"unknown model format {fmt!r}; choose one of {', '.join(MODEL_FORMATS)}")
    return f


def model_to_bytes(model: GaussianModel, fmt: str = "ply") -> bytes:
    """Serialise a model to ``ply``/``splat``/``spz`` bytes (e.g. for storage uploads)."""
    f = _check_fmt(fmt)
    if f == "ply":
        buf = io.BytesIO()
        _write_ply(model, buf)
        return buf.getvalue()
    if f == "splat":
        return _splat_records(model).tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.spz"
        save_spz(model, path)
        return path.read_bytes()


def model_from_bytes(data: bytes, fmt: str = "ply") -> GaussianModel:
    """Inverse of :func:`model_to_bytes`."""
    f = _check_fmt(fmt)
    if f == "ply":
        return _read_ply(io.BytesIO(data))
    if f == "splat":
        return _splat_from_bytes(bytes(data), "<bytes>")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.spz"
        path.write_bytes(data)
        return load_spz(path)


__all__ = [
    "MODEL_FORMATS",
    "load_model",
    "load_ply",
    "load_splat",
    "load_spz",
    "model_format",
    "model_from_bytes",
    "model_to_bytes",
    "save_model",
    "save_ply",
    "save_splat",
    "save_spz",
]
