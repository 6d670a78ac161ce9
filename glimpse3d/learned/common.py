"""Shared plumbing for the learned backends: device/dtype choice, weight resolution,
memory-aware loading and a process-wide model cache.

Only ``torch`` is imported at module level; ``transformers``/``diffusers`` are imported
by the backend modules inside their loaders (see :func:`require`), so
``glimpse3d.learned`` costs nothing until a learned backend is selected.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from glimpse3d.errors import UserError
from glimpse3d.pipeline.ports import BackendUnavailable

T = TypeVar("T")

#: GPUs with less total memory than this (GiB) get sequential CPU offload for diffusion
#: pipelines (SDXL in fp16 needs ~7 GiB for weights alone, plus activations at 1024^2).
LOW_VRAM_GIB = 12.0

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class MissingWeightsError(UserError, BackendUnavailable):
    """Model weights for a learned backend are not configured or cannot be found offline.

    Also a :class:`BackendUnavailable`, so callers that catch that keep working.
    """

    http_status = 422


def env_name(setting: str) -> str:
    """Environment variable for a settings field, e.g. ``depth_model`` -> ``GLIMPSE3D_DEPTH_MODEL``."""
    return f"GLIMPSE3D_{setting.upper()}"


def missing_weights_message(setting: str, value: str | None, example: str, reason: str) -> str:
    """One paragraph saying what is wrong, which setting to set and how to fetch weights."""
    var = env_name(setting)
    shown = f"{value!r}" if value else "not set"
    target = value if value and is_hub_id(value) else example
    return (
        f"model weights for {setting} are {reason} ({shown}). "
        f"Set {var}=<model id or local directory>, e.g. {var}={example}; a local directory "
        f"holding the saved model (config.json / model_index.json and weights) works offline. "
        f"To fetch weights, on a machine with internet run: "
        f"hf download {target} --local-dir ./weights/{target.split('/')[-1]} "
        f"(or huggingface-cli download {target} --local-dir ...), copy the folder here and "
        f"point {var} at it."
    )


def extra_setting(settings: Any, name: str, default: Any) -> Any:
    """A setting that may not be a declared field yet: attribute, else ``GLIMPSE3D_<NAME>``."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(f"GLIMPSE3D_{name.upper()}")
    if value is None:
        return default
    if isinstance(default, bool):
        return str(value).strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int | float) and not isinstance(value, int | float):
        return type(default)(value)
    return value


def is_hub_id(value: str) -> bool:
    """True for strings shaped like a Hugging Face repo id (``org/name``)."""
    return bool(_HUB_ID.match(value)) and not value.startswith((".", "/", "~"))


def offline() -> bool:
    """True when the Hugging Face libraries must not touch the network."""
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DIFFUSERS_OFFLINE")
    return any(os.environ.get(f, "").strip().lower() in {"1", "true", "yes", "on"} for f in flags)


def resolve_weights(
    value: str | None, setting: str, example: str, marker_files: tuple[str, ...] = ("config.json",)
) -> str:
    """Turn a settings value into something ``from_pretrained`` accepts, or explain.

    * a local directory -> its absolute path (must hold one of ``marker_files``);
    * a hub id -> the id, after checking the local HF cache when offline;
    * unset / missing -> :class:`MissingWeightsError` naming ``GLIMPSE3D_<SETTING>``.
    """
    if not value or not str(value).strip():
        raise MissingWeightsError(missing_weights_message(setting, None, example, "not configured"))
    value = str(value).strip()
    path = Path(value).expanduser()
    if path.is_dir():
        if not any((path / m).exists() for m in marker_files):
            raise MissingWeightsError(
                missing_weights_message(
                    setting, value, example,
                    f"not a saved model directory (none of {', '.join(marker_files)} in it)",
                )
            )
        return str(path.resolve())
    if path.exists() and path.is_file():
        return str(path.resolve())
    if not is_hub_id(value):
        raise MissingWeightsError(missing_weights_message(setting, value, example, "not found"))
    if offline() and not _in_hf_cache(value, marker_files):
        raise MissingWeightsError(
            missing_weights_message(setting, value, example, "not in the local cache and the hub is offline")
        )
    return value


def _in_hf_cache(repo_id: str, marker_files: tuple[str, ...]) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return False
    for name in marker_files:
        hit = try_to_load_from_cache(repo_id, name)
        if isinstance(hit, str) and os.path.exists(hit):
            return True
    return False


def require(module: str, what: str = "learned backends") -> Any:
    """Import an optional dependency or raise :class:`BackendUnavailable` with the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailable(
            f"{what} need the '{module}' package: pip install 'glimpse3d[models]' ({exc})"
        ) from exc


# ------------------------------------------------------------------ device & dtype

def select_device(preference: str | None = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit ``cuda``/``cuda:1``/``mps``/``cpu``
    is honoured when available, otherwise a :class:`BackendUnavailable` says so."""
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(
            f"GLIMPSE3D_DEVICE={preference} but no CUDA GPU is visible; use auto or cpu"
        )
    if pref == "mps" and not _mps_available():
        raise BackendUnavailable("GLIMPSE3D_DEVICE=mps but MPS is not available; use auto or cpu")
    try:
        return torch.device(pref)
    except RuntimeError as exc:
        raise BackendUnavailable(f"unknown GLIMPSE3D_DEVICE={preference!r}: {exc}") from exc


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_dtype(device: torch.device) -> torch.dtype:
    """fp16 on GPUs (cuda, mps), fp32 on the CPU."""
    return torch.float16 if device.type in {"cuda", "mps"} else torch.float32


def gpu_memory_gib(device: torch.device) -> float | None:
    """Total memory of a CUDA device in GiB (None for other devices)."""
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_properties(index).total_memory / 2**30


@dataclass(frozen=True)
class Placement:
    """Where and how a model runs."""

    device: torch.device
    dtype: torch.dtype

    @classmethod
    def from_settings(cls, device_setting: str | None) -> Placement:
        device = select_device(device_setting)
        return cls(device=device, dtype=select_dtype(device))


def place_pipeline(pipe: Any, placement: Placement, low_vram_gib: float = LOW_VRAM_GIB) -> Any:
    """Move a diffusers pipeline onto its device, memory-aware.

    On CUDA GPUs with less than ``low_vram_gib`` GiB, ``enable_model_cpu_offload`` keeps
    only the running sub-model on the GPU (needs ``accelerate``); VAE slicing/tiling is
    switched on where offered. Elsewhere the whole pipeline moves to the device.
    """
    mem = gpu_memory_gib(placement.device)
    if mem is not None and mem < low_vram_gib and hasattr(pipe, "enable_model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=placement.device)
    elif placement.device.type != "cpu":
        pipe.to(placement.device)
    vae = getattr(pipe, "vae", None)
    if mem is not None and vae is not None:
        for fn in ("enable_slicing", "enable_tiling"):
            if hasattr(vae, fn):
                getattr(vae, fn)()
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe


def transformers_kwargs(placement: Placement) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for transformers (v4 and v5 spellings)."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    key = "dtype" if major >= 5 else "torch_dtype"
    kwargs: dict[str, Any] = {key: placement.dtype}
    if major < 5:
        kwargs["low_cpu_mem_usage"] = True
    return kwargs


def diffusers_kwargs(placement: Placement) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for diffusers models and pipelines
    (``dtype`` from diffusers 0.36 on, ``torch_dtype`` before)."""
    try:
        from diffusers.utils import deprecation_utils

        new_style = hasattr(deprecation_utils, "_resolve_dtype")
    except ImportError:  # pragma: no cover - older diffusers
        new_style = False
    return {"dtype" if new_style else "torch_dtype": placement.dtype, "low_cpu_mem_usage": True}


def local_variant(ref: str, subfolder: str = "") -> str | None:
    """``"fp16"`` when a local diffusers directory holds only the fp16 weight variant
    (``*.fp16.safetensors``, as ``hf download --include "*fp16.safetensors"`` leaves it)."""
    folder = Path(ref) / subfolder
    if not folder.is_dir():
        return None
    plain = list(folder.glob("diffusion_pytorch_model*.safetensors")) + list(
        folder.glob("diffusion_pytorch_model*.bin")
    )
    plain = [p for p in plain if ".fp16." not in p.name]
    has_fp16 = any(folder.glob("*.fp16.safetensors")) or any(folder.glob("*.fp16.bin"))
    return "fp16" if has_fp16 and not plain else None


def kwargs_dtype(kwargs: dict[str, Any]) -> torch.dtype:
    """The dtype in a :func:`diffusers_kwargs` / :func:`transformers_kwargs` dict."""
    return kwargs.get("dtype") or kwargs.get("torch_dtype") or torch.float32


def load_failure(setting: str, value: str, example: str, exc: BaseException) -> MissingWeightsError:
    """Wrap an ``OSError``/``EnvironmentError`` raised by ``from_pretrained``."""
    reason = f"not loadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return MissingWeightsError(missing_weights_message(setting, value, example, reason))


# ------------------------------------------------------------------ cache

#: at most this many loaded models are kept; the least recently used is dropped first
MAX_CACHED_MODELS = int(os.environ.get("GLIMPSE3D_MAX_CACHED_MODELS", "6"))

_CACHE: OrderedDict[tuple[str, str, str, tuple[Any, ...]], Any] = OrderedDict()
_LOCK = threading.RLock()


def cached(cls: type, model: str, device: torch.device | str, loader: Callable[[], T],
           extra: tuple[Any, ...] = ()) -> T:
    """One loaded instance per (class, model, device[, extra]) for the whole process.

    Loading is serialised by a lock so two threads never load the same weights twice; the
    cache is LRU-bounded by :data:`MAX_CACHED_MODELS` (env ``GLIMPSE3D_MAX_CACHED_MODELS``).
    """
    key = (f"{cls.__module__}.{cls.__qualname__}", str(model), str(device), tuple(extra))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        value = loader()
        _CACHE[key] = value
        evicted = False
        while len(_CACHE) > max(1, MAX_CACHED_MODELS):
            _CACHE.popitem(last=False)
            evicted = True
        if evicted and torch.cuda.is_available():
            torch.cuda.empty_cache()
        return value


def clear_cache() -> None:
    """Drop every cached model (and free GPU memory when there is one)."""
    with _LOCK:
        _CACHE.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cache_size() -> int:
    with _LOCK:
        return len(_CACHE)


# ------------------------------------------------------------------ image helpers

def check_image(img: np.ndarray, channels: tuple[int, ...], what: str) -> np.ndarray:
    """Validate a float image (H,W,C) in [0,1]; returns a float32 copy clipped to [0,1]."""
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] not in channels or min(arr.shape[:2]) < 2:
        raise UserError(
            f"{what} must be an (H,W,{'|'.join(map(str, channels))}) image, got shape {arr.shape}"
        )
    arr = arr.astype(np.float32)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise UserError(f"{what} contains NaN or infinite values")
    if np.asarray(img).dtype == np.uint8:
        arr = arr / 255.0
    return np.clip(arr, 0.0, 1.0)


def composite(rgba: np.ndarray, background: float = 1.0) -> np.ndarray:
    """Straight (un-premultiplied) RGBA (H,W,4) over a flat grey level -> RGB (H,W,3)."""
    if rgba.shape[2] == 3:
        return rgba
    a = rgba[..., 3:4]
    return rgba[..., :3] * a + background * (1.0 - a)


def resize(img: np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    """Resize a float (H,W[,C]) image with area/bicubic filtering (OpenCV); keeps range."""
    import cv2

    height = width if height is None else height
    if img.shape[1] == width and img.shape[0] == height:
        return img.astype(np.float32, copy=True)
    shrinking = width < img.shape[1]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (width, height), interpolation=interp)
    if img.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    lo, hi = float(np.min(img)), float(np.max(img))
    return np.clip(out, lo, hi).astype(np.float32)


def to_pil(rgb: np.ndarray):
    """Float RGB (H,W,3) in [0,1] -> PIL image."""
    from PIL import Image

    return Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device`` (CPU generator for mps, which lacks device RNG)."""
    dev = "cpu" if device.type == "mps" else device
    return torch.Generator(device=dev).manual_seed(int(seed))
