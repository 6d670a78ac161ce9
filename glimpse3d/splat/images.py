"""Small image I/O helpers (Pillow). Images are float32 arrays in [0,1], (H,W,C)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_uint8(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return (np.clip(to_numpy(x), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def rgba_png_bytes(rgb: np.ndarray | torch.Tensor, alpha: np.ndarray | torch.Tensor | None) -> bytes:
    """Encode RGB (H,W,3) [+ alpha (H,W)] in [0,1] as PNG bytes (RGBA when alpha is given).

    ``rgb`` is un-premultiplied where alpha > 0 so the PNG composites correctly.
    """
    rgb_np = to_numpy(rgb).astype(np.float32)
    if alpha is None:
        return _png(Image.fromarray(to_uint8(rgb_np), "RGB"))
    a = to_numpy(alpha).astype(np.float32)[..., None]
    straight = np.where(a > 1e-4, rgb_np / np.maximum(a, 1e-4), 0.0)
    rgba = np.concatenate([np.clip(straight, 0, 1), a], axis=-1)
    return _png(Image.fromarray(to_uint8(rgba), "RGBA"))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_rgba_png(path: str | Path, rgb_premultiplied: np.ndarray | torch.Tensor,
                  alpha: np.ndarray | torch.Tensor) -> None:
    """Write a render (rgb composited over black, i.e. premultiplied, plus alpha) as RGBA PNG."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(rgba_png_bytes(rgb_premultiplied, alpha))


def load_rgba(data: bytes | str | Path) -> np.ndarray:
    """Decode an image to float32 RGBA (H,W,4) in [0,1]."""
    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with Image.open(src) as img:
        return np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
