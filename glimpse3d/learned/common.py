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

    @property
    def load_device(self) -> torch.device:
        """Where loaders leave the weights: the CPU for CUDA (:func:`ensure_resident` moves
        them when they run, offloading others if needed), the device itself otherwise."""
        return torch.device("cpu") if self.device.type == "cuda" else self.device


def place_pipeline(pipe: Any, placement: Placement, low_vram_gib: float = LOW_VRAM_GIB) -> bool:
    """Prepare a diffusers pipeline for its device, memory-aware; True when accelerate
    manages its placement.

    On CUDA GPUs with less than ``low_vram_gib`` GiB, ``enable_model_cpu_offload`` keeps
    only the running sub-model on the GPU (needs ``accelerate``) and True is returned.
    Otherwise the pipeline stays where it was loaded (the CPU) and
    :func:`ensure_resident` moves it to the GPU when it runs. VAE slicing/tiling is
    switched on for GPUs.
    """
    mem = gpu_memory_gib(placement.device)
    managed = False
    if mem is not None and mem < low_vram_gib and hasattr(pipe, "enable_model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=placement.device)
        managed = True
    elif placement.device.type not in ("cpu", "cuda"):
        pipe.to(placement.device)  # mps: no residency bookkeeping
    vae = getattr(pipe, "vae", None)
    if mem is not None and vae is not None:
        for fn in ("enable_slicing", "enable_tiling"):
            if hasattr(vae, fn):
                getattr(vae, fn)()
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return managed


def pipeline_modules(pipe: Any) -> list[torch.nn.Module]:
    """The torch sub-models of a diffusers pipeline (unet, vae, text encoders, ...)."""
    comps = getattr(pipe, "components", {}) or {}
    return [m for m in comps.values() if isinstance(m, torch.nn.Module)]


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


def _repo_files(ref: str) -> list[str] | None:
    """Relative file names of a local directory or a hub repository (None if unknown)."""
    path = Path(ref)
    if path.is_dir():
        return [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
    if not is_hub_id(ref):
        return None
    try:
        if offline():
            from huggingface_hub import snapshot_download

            root = Path(snapshot_download(ref, local_files_only=True))
            return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        from huggingface_hub import HfApi

        return list(HfApi().list_repo_files(ref))
    except Exception:  # noqa: BLE001 - unknown -> no variant
        return None


def weight_variant(ref: str, subfolder: str = "", dtype: torch.dtype = torch.float32) -> str | None:
    """``"fp16"`` when ``ref`` (local directory or hub id) holds fp16 weight files
    (``*.fp16.safetensors``) in ``subfolder`` and either the model runs in fp16 (a GPU) or
    they are the only weights there (``hf download --include "*fp16.safetensors"``)."""
    files = _repo_files(ref)
    if not files:
        return None
    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    here = [f[len(prefix):] for f in files if f.startswith(prefix) and "/" not in f[len(prefix):]]
    weights = [f for f in here if f.endswith((".safetensors", ".bin"))]
    fp16 = [f for f in weights if ".fp16." in f]
    plain = [f for f in weights if ".fp16." not in f]
    if fp16 and (dtype == torch.float16 or not plain):
        return "fp16"
    return None


def local_variant(ref: str, subfolder: str = "") -> str | None:
    """``"fp16"`` when a local directory holds only the fp16 weight variant (fp32 runs)."""
    return weight_variant(ref, subfolder, torch.float32) if Path(ref).is_dir() else None


def kwargs_dtype(kwargs: dict[str, Any]) -> torch.dtype:
    """The dtype in a :func:`diffusers_kwargs` / :func:`transformers_kwargs` dict."""
    return kwargs.get("dtype") or kwargs.get("torch_dtype") or torch.float32


def load_failure(setting: str, value: str, example: str, exc: BaseException) -> MissingWeightsError:
    """Wrap an ``OSError``/``EnvironmentError`` raised by ``from_pretrained``."""
    reason = f"not loadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return MissingWeightsError(missing_weights_message(setting, value, example, reason))


def load_transformers_model(
    auto_class: str, ref: str, placement: Placement, setting: str, example: str, what: str
) -> tuple[Any, Any]:
    """``(image processor, model)`` of a transformers checkpoint: ``AutoImageProcessor`` plus
    ``transformers.<auto_class>`` loaded from ``ref``, the model in eval mode on
    ``placement.load_device``. A checkpoint that cannot be loaded raises
    :class:`MissingWeightsError` naming ``setting``; ``what`` names the backend when
    ``transformers`` is not installed."""
    tf = require("transformers", what)
    try:
        processor = tf.AutoImageProcessor.from_pretrained(ref)
        model = getattr(tf, auto_class).from_pretrained(ref, **transformers_kwargs(placement))
    except (OSError, ValueError) as exc:
        raise load_failure(setting, ref, example, exc) from exc
    return processor, model.to(placement.load_device).eval()


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
    Loaders leave the weights on the CPU; the returned backend is made GPU-resident by
    :func:`ensure_resident` (here and again before each inference call).
    """
    key = (f"{cls.__module__}.{cls.__qualname__}", str(model), str(device), tuple(extra))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            value = _CACHE[key]
        else:
            value = loader()
            _CACHE[key] = value
            while len(_CACHE) > max(1, MAX_CACHED_MODELS):
                _, dropped = _CACHE.popitem(last=False)
                _forget_resident(dropped)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        ensure_resident(value)
        return value


def clear_cache() -> None:
    """Drop every cached model (and free GPU memory when there is one)."""
    with _LOCK:
        _CACHE.clear()
        _RESIDENT.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def cache_size() -> int:
    with _LOCK:
        return len(_CACHE)


# ------------------------------------------------------------------ GPU residency

#: GPU memory (GiB) kept free beyond a model's weights for its activations
ACTIVATION_MARGIN_GIB = float(os.environ.get("GLIMPSE3D_GPU_MARGIN_GIB", "4"))

#: backends whose weights are on a GPU, least recently used first (see :func:`_key`)
_RESIDENT: OrderedDict[tuple[int, ...], Any] = OrderedDict()


def backend_modules(backend: Any) -> list[torch.nn.Module]:
    """The torch modules of a learned backend (its ``modules()``), [] for others."""
    fn = getattr(backend, "modules", None)
    return list(fn()) if callable(fn) else []


def module_bytes(modules: list[torch.nn.Module]) -> int:
    """Bytes of the parameters and buffers of ``modules``."""
    return sum(t.numel() * t.element_size() for m in modules
               for t in (*m.parameters(), *m.buffers()))


def free_gpu_bytes(device: torch.device) -> int:
    """Free memory of a CUDA device in bytes (what the driver reports)."""
    return int(torch.cuda.mem_get_info(device)[0])


def move_modules(modules: list[torch.nn.Module], device: torch.device | str) -> None:
    for m in modules:
        m.to(device)


def _key(backend: Any) -> tuple[int, ...]:
    """Backends sharing weights share a key: their diffusers pipeline, else their modules
    (a pipeline may wrap its sub-models later, e.g. Zero123++'s UNet on its first call)."""
    pipe = getattr(backend, "pipe", None)
    if pipe is not None:
        return (id(pipe),)
    return tuple(id(m) for m in backend_modules(backend))


def _on_device(modules: list[torch.nn.Module], device: torch.device) -> bool:
    for m in modules:
        for p in m.parameters():
            return p.device.type == device.type and (
                device.index is None or p.device.index == device.index)
    return True


def _forget_resident(backend: Any) -> None:
    _RESIDENT.pop(_key(backend), None)


def ensure_resident(backend: Any) -> None:
    """Put a backend's weights on its CUDA device, offloading others only when needed.

    Models stay together on the GPU while it has room for them: before moving a backend
    there, the least recently used resident ones are moved to the CPU until
    ``free >= its weights + ACTIVATION_MARGIN_GIB`` (env ``GLIMPSE3D_GPU_MARGIN_GIB``).
    So on a 24 GiB card SDXL and Zero123 take turns (one model resident at a time),
    while on an 80 GiB card all stay loaded. CPU/MPS backends and pipelines that
    accelerate offloads (``managed_offload``) are left alone.
    """
    placement = getattr(backend, "placement", None)
    if placement is None or placement.device.type != "cuda" or getattr(backend, "managed_offload", False):
        return
    modules = backend_modules(backend)
    if not modules:
        return
    key = _key(backend)
    with _LOCK:
        if key in _RESIDENT and _on_device(modules, placement.device):
            _RESIDENT.move_to_end(key)
            return
        _RESIDENT.pop(key, None)
        need = module_bytes(modules) + int(ACTIVATION_MARGIN_GIB * 2**30)
        for other_key in list(_RESIDENT):
            if free_gpu_bytes(placement.device) >= need:
                break
            other = _RESIDENT.pop(other_key)
            move_modules(backend_modules(other), "cpu")
            torch.cuda.empty_cache()
        move_modules(modules, placement.device)
        _RESIDENT[key] = backend


def resident_count() -> int:
    """How many backends have their weights on a GPU now."""
    with _LOCK:
        return len(_RESIDENT)


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
