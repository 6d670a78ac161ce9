"""Where splat training, refinement, rendering and video run.

``splat_device(preference)`` maps the ``GLIMPSE3D_DEVICE`` values to a torch device for
Gaussian-splat work:

* ``auto``: CUDA when a GPU is visible **and** gsplat imports (training and rendering then
  go through ``gsplat.rasterization``), otherwise the CPU (numba kernel). A GPU without
  gsplat stays on the CPU: the pure-PyTorch rasterizer would need one tensor row per
  (gaussian, pixel) pair in GPU memory.
* ``cuda`` / ``cuda:N``: that GPU (gsplat when installed, else the pure-PyTorch
  rasterizer); a :class:`~glimpse3d.errors.UserError` when no GPU is visible.
* ``cpu`` and ``mps`` (gsplat is CUDA-only): the CPU.

``gsplat_available()`` says whether gsplat imports; both are cheap and cached.
"""

from __future__ import annotations

import functools

import torch

from glimpse3d.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(UserError):
    """A requested device is not available here."""

    http_status = 422


@functools.cache
def gsplat_available() -> bool:
    """True when a CUDA GPU is visible, gsplat imports and its CUDA extension loads.

    gsplat ships its kernels as source: ``gsplat.cuda._backend`` loads a prebuilt
    extension or JIT-compiles one with the CUDA toolkit (minutes, once; cached), and sets
    ``_C = None`` when no toolkit is found. That is triggered here, so a machine where the
    kernels cannot be built falls back to the CPU instead of failing mid-training.
    """
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
        from gsplat.cuda._backend import _C
    except Exception:  # noqa: BLE001 - any import/compile failure means "not usable"
        return False
    return _C is not None


def splat_device(preference: str | torch.device | None = "auto") -> torch.device:
    """The torch device for splat work under ``preference`` (see the module docstring)."""
    if isinstance(preference, torch.device):
        return preference
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available() and gsplat_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if pref in ("cpu", "mps"):
        return torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {preference!r} requested but no CUDA GPU is visible; "
                              "use auto or cpu")
        try:
            return torch.device(pref)
        except RuntimeError as exc:
            raise DeviceError(f"unknown device {preference!r}: {exc}") from exc
    raise DeviceError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def describe(device: torch.device) -> str:
    """'cuda:0 (NVIDIA H200, gsplat)' / 'cpu (numba)' for logs and reports."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        return f"cuda:{index} ({name}, {'gsplat' if gsplat_available() else 'torch rasterizer'})"
    return "cpu (numba)"
