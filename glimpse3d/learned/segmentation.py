"""Background removal with learned models.

* :class:`TransformersSegmenter` - any ``transformers`` semantic-segmentation checkpoint
  (SegFormer, DPT, BEiT, UperNet, MobileViT...) through ``AutoModelForSemanticSegmentation``;
  the foreground probability is ``1 - P(background classes)``. Dichotomous / matting
  models published with their own code (``briaai/RMBG-1.4``, ``briaai/RMBG-2.0``,
  ``ZhengPeng7/BiRefNet``: a ``config.json`` whose ``auto_map`` names an
  ``AutoModelForImageSegmentation`` class) run that code when allowed (setting
  ``trust_remote_code`` or env ``GLIMPSE3D_TRUST_REMOTE_CODE=1``), called as their model
  cards do: ``model(x)`` positionally on their own preprocessing (:data:`MATTING_FAMILIES`).
* :class:`RembgSegmenter` - the ``rembg`` package (ONNX U^2-Net / IS-Net) with a local
  model file; never downloads at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from glimpse3d.learned.common import (
    MissingWeightsError,
    Placement,
    cached,
    check_image,
    ensure_resident,
    load_failure,
    require,
    resolve_weights,
    transformers_kwargs,
)
from glimpse3d.pipeline.ports import BackendUnavailable

if TYPE_CHECKING:
    from glimpse3d.config import Settings

EXAMPLE_MODEL = "briaai/RMBG-1.4"

#: Class names treated as background by semantic-segmentation checkpoints (lower case).
BACKGROUND_LABELS = frozenset({
    "background", "bg", "__background__", "_background_", "unlabeled", "void", "other",
    "wall", "floor", "ceiling", "sky", "ground", "road", "grass", "table",
})

#: ImageNet normalisation (BiRefNet / RMBG-2.0 model cards).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: extra that installs what the matting checkpoints' remote code imports
MATTING_EXTRA = "glimpse3d[matting]"


@dataclass(frozen=True)
class MattingFamily:
    """How a remote-code matting checkpoint is fed and read, from its model card.

    ``size`` (px, square) and ``mean``/``std`` act on RGB in [0,1]; ``output``:
    ``"first_sigmoid"`` = ``model(x)[0][0]`` is already a probability and is min-max
    normalised (RMBG-1.4's ``postprocess_image``); ``"last_logits"`` =
    ``model(x)[-1].sigmoid()`` (BiRefNet / RMBG-2.0).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output: str


#: keyed by the ``auto_map["AutoModelForImageSegmentation"]`` entry of config.json
MATTING_FAMILIES: dict[str, MattingFamily] = {
    # briaai/RMBG-1.4: (x / 255 - 0.5) / 1.0 at 1024x1024
    "briarmbg.BriaRMBG": MattingFamily(1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), "first_sigmoid"),
    # ZhengPeng7/BiRefNet, briaai/RMBG-2.0: ImageNet normalisation at 1024x1024
    "birefnet.BiRefNet": MattingFamily(1024, IMAGENET_MEAN, IMAGENET_STD, "last_logits"),
}
DEFAULT_MATTING = MattingFamily(1024, IMAGENET_MEAN, IMAGENET_STD, "last_logits")


def trust_remote_code(settings: Settings) -> bool:
    """Whether checkpoints may run their own Python code (off by default)."""
    value = getattr(settings, "trust_remote_code", None)
    if value is None:
        value = os.environ.get("GLIMPSE3D_TRUST_REMOTE_CODE", "")
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


class TransformersSegmenter:
    """Foreground mask (H,W) float32 in [0,1] from a transformers segmentation model.

    Settings: ``segment_model`` (hub id or local directory), ``device``.
    """

    name = "transformers"

    def __init__(self, model: Any, processor: Any, placement: Placement, mode: str,
                 family: MattingFamily | None = None) -> None:
        self.model = model
        self.processor = processor
        self.placement = placement
        self.mode = mode  # "semantic" | "matting"
        self.family = family or DEFAULT_MATTING
        if mode == "semantic":
            labels = {int(k): str(v).lower() for k, v in model.config.id2label.items()}
            bg = [k for k, v in labels.items() if v in BACKGROUND_LABELS]
            self.background_ids = bg or [0]

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersSegmenter:
        ref = resolve_weights(settings.segment_model, "segment_model", EXAMPLE_MODEL)
        placement = Placement.from_settings(settings.device)
        trust = trust_remote_code(settings)
        return cached(cls, ref, placement.device, lambda: cls.load(ref, placement, trust), (trust,))

    @classmethod
    def load(cls, ref: str, placement: Placement, trust: bool = False) -> TransformersSegmenter:
        tf = require("transformers", "the transformers segmentation backend")
        try:
            entry = remote_matting_class(ref)
            if entry is not None:
                if not trust:
                    raise BackendUnavailable(
                        f"segment_model {ref!r} runs its own code ({entry}); matting models such "
                        "as briaai/RMBG-1.4, briaai/RMBG-2.0 or ZhengPeng7/BiRefNet need "
                        "GLIMPSE3D_TRUST_REMOTE_CODE=1 to allow it"
                    )
                model = load_remote_matting(ref, entry)
                family = MATTING_FAMILIES.get(entry, DEFAULT_MATTING)
                return cls(model.to(placement.load_device, placement.dtype).eval(), None,
                           placement, "matting", family)
            kwargs = transformers_kwargs(placement)
            try:
                # explicit False: never prompt on a terminal for remote code here
                model = tf.AutoModelForSemanticSegmentation.from_pretrained(
                    ref, trust_remote_code=False, **kwargs
                )
            except ValueError:
                raise BackendUnavailable(
                    f"segment_model {ref!r} is not a transformers semantic-segmentation model "
                    "nor a matting model with its own code (briaai/RMBG-1.4, briaai/RMBG-2.0, "
                    "ZhengPeng7/BiRefNet)"
                ) from None
            processor = tf.AutoImageProcessor.from_pretrained(ref, trust_remote_code=False)
        except OSError as exc:
            raise load_failure("segment_model", ref, EXAMPLE_MODEL, exc) from exc
        return cls(model.to(placement.load_device).eval(), processor, placement, "semantic")

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def _pixel_values(self, rgb: np.ndarray) -> torch.Tensor:
        """The model's input (1,3,h,w) for an RGB image (H,W,3) in [0,1]."""
        if self.processor is not None:
            u8 = (rgb * 255.0 + 0.5).astype(np.uint8)
            pv = self.processor(images=u8, return_tensors="pt")["pixel_values"]
        else:
            fam = self.family
            t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
            t = torch.nn.functional.interpolate(t, size=(fam.size, fam.size), mode="bilinear",
                                                align_corners=False)
            pv = (t - torch.tensor(fam.mean).view(1, 3, 1, 1)) / torch.tensor(fam.std).view(1, 3, 1, 1)
        return pv.to(self.placement.device, self.placement.dtype)

    @torch.inference_mode()
    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """rgb (H,W,3) float [0,1] -> foreground probability (H,W) float32 in [0,1]."""
        img = check_image(rgb, (3, 4), "image")[..., :3]
        h, w = img.shape[:2]
        ensure_resident(self)
        if self.mode == "semantic":
            out = self.model(pixel_values=self._pixel_values(img))
            probs = torch.softmax(out.logits.float(), dim=1)
            fg = 1.0 - probs[:, self.background_ids].sum(dim=1, keepdim=True)
        else:
            # positional, as the model cards call them: forward(self, x)
            out = self.model(self._pixel_values(img))
            fg = matting_probability(out, self.family.output, (h, w))
            return fg[0, 0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
        fg = torch.nn.functional.interpolate(fg, size=(h, w), mode="bilinear", align_corners=False)
        return fg[0, 0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)


def remote_matting_class(ref: str) -> str | None:
    """The ``auto_map["AutoModelForImageSegmentation"]`` entry of a checkpoint's
    config.json (e.g. ``"briarmbg.BriaRMBG"``), or None for an ordinary transformers model."""
    import json

    from transformers.utils import cached_file

    path = cached_file(ref, "config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    auto_map = config.get("auto_map") or {}
    entry = auto_map.get("AutoModelForImageSegmentation")
    if isinstance(entry, list | tuple):
        entry = entry[0]
    return str(entry) if entry else None


def load_remote_matting(ref: str, entry: str) -> Any:
    """Instantiate a checkpoint's own model class and load its weights strictly.

    The class and its config class come from the checkpoint's files (transformers'
    dynamic-module loader, the code ``trust_remote_code`` would run); the model is built
    as ``cls(config=config)`` and ``model.safetensors`` (else ``pytorch_model.bin``) is
    loaded with ``strict=True``. This avoids ``from_pretrained``'s post-init hooks, which
    the published RMBG-2.0/BiRefNet code does not call (it replaces ``self.config`` by
    its own object), so the same files load on transformers 4 and 5.
    """
    tf = require("transformers", "the transformers segmentation backend")
    from transformers.dynamic_module_utils import get_class_from_dynamic_module
    from transformers.utils import cached_file

    try:
        config = tf.AutoConfig.from_pretrained(ref, trust_remote_code=True)
        model_class = get_class_from_dynamic_module(entry, ref)
    except ImportError as exc:
        missing = _missing_packages(exc)
        raise BackendUnavailable(
            f"segment_model {ref!r} ({entry}) needs {missing} that are not installed: "
            f"pip install '{MATTING_EXTRA}'"
        ) from None
    weights = None
    for name in ("model.safetensors", "pytorch_model.bin"):
        weights = cached_file(ref, name, _raise_exceptions_for_missing_entries=False)
        if weights:
            break
    if not weights:
        raise OSError(f"no model.safetensors or pytorch_model.bin in {ref}")
    if weights.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(weights, device="cpu")
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    with torch.device("cpu"):
        model = model_class(config=config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise OSError(f"weights of {ref} do not fit {entry}: {str(exc).splitlines()[0]}") from exc
    return model


def _missing_packages(exc: ImportError) -> str:
    """'timm, torchvision' from transformers' "requires the following packages that were
    not found in your environment: timm, torchvision. Run ..." (or the module name)."""
    import re

    text = str(exc)
    found = re.search(r"not found in your environment: ([^.]+)\.", text)
    if found:
        return found.group(1).strip()
    name = getattr(exc, "name", None)
    return name or text.splitlines()[0]


def matting_probability(out: Any, output: str, size: tuple[int, int]) -> torch.Tensor:
    """Foreground probability (1,1,H,W) float32 at ``size`` (H, W) from a matting model's
    raw output, post-processed as the model cards do:

    * ``first_sigmoid`` (RMBG-1.4's ``postprocess_image``): ``out[0][0]`` (already a
      sigmoid) resized bilinearly to the image, then min-max normalised;
    * ``last_logits`` (BiRefNet / RMBG-2.0): ``out[-1].sigmoid()``, resized.
    """
    if output == "first_sigmoid":  # RMBG-1.4: ([sigmoid(d1), ...], [features...])
        t = torch.nn.functional.interpolate(out[0][0].float(), size=size, mode="bilinear")
        lo, hi = t.min(), t.max()
        return (t - lo) / (hi - lo) if float(hi - lo) > 1e-8 else t
    t = out[-1] if isinstance(out, list | tuple) else out  # BiRefNet: logits, last = final
    if isinstance(t, list | tuple):
        t = t[-1]
    t = t.float()
    if t.ndim == 3:
        t = t[:, None]
    return torch.nn.functional.interpolate(torch.sigmoid(t[:, :1]), size=size, mode="bilinear")


class RembgSegmenter:
    """Background removal with ``rembg`` from a local ONNX model file.

    ``segment_model`` is either a path to an ``.onnx`` file (loaded as rembg's
    ``u2net_custom`` session) or a rembg model name (``u2net``, ``isnet-general-use``,
    ``birefnet-general``...) whose ``<name>.onnx`` must already sit in ``$U2NET_HOME``
    (default ``~/.u2net``). Nothing is downloaded at run time.
    """

    name = "rembg"

    def __init__(self, session: Any, remove: Any) -> None:
        self.session = session
        self._remove = remove

    @staticmethod
    def model_file(value: str | None) -> tuple[str, Path]:
        """(rembg session name, local .onnx path) for a ``segment_model`` value."""
        value = (value or "u2net").strip()
        path = Path(value).expanduser()
        if path.suffix.lower() == ".onnx" or path.is_file():
            return "u2net_custom", path
        home = Path(os.environ.get("U2NET_HOME", Path.home() / ".u2net")).expanduser()
        return value, home / f"{value}.onnx"

    @classmethod
    def from_settings(cls, settings: Settings) -> RembgSegmenter:
        session_name, path = cls.model_file(settings.segment_model)
        if not path.is_file():
            raise MissingWeightsError(
                f"the rembg model file {path} does not exist. Set GLIMPSE3D_SEGMENT_MODEL to a "
                "local .onnx file (e.g. GLIMPSE3D_SEGMENT_MODEL=/models/u2net.onnx) or to a rembg "
                "model name whose <name>.onnx is in $U2NET_HOME (default ~/.u2net). Fetch it on a "
                "machine with internet (rembg's GitHub releases, e.g. "
                "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx) and copy "
                "it here; rembg is never allowed to download at run time."
            )
        try:
            import rembg  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(
                "the rembg segment backend needs the 'rembg' package with an ONNX runtime: "
                "pip install 'rembg[cpu]' (or 'rembg[gpu]'), or choose "
                f"GLIMPSE3D_SEGMENT_BACKEND=transformers or classic ({exc})"
            ) from exc

        def load() -> RembgSegmenter:
            from rembg import new_session, remove

            kwargs: dict[str, Any] = {}
            if session_name == "u2net_custom":
                kwargs["model_path"] = str(path)
            else:
                os.environ.setdefault("U2NET_HOME", str(path.parent))
            return cls(new_session(session_name, **kwargs), remove)

        return cached(cls, str(path), "cpu", load)

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """rgb (H,W,3) float [0,1] -> foreground mask (H,W) float32 in [0,1]."""
        from PIL import Image

        img = check_image(rgb, (3, 4), "image")[..., :3]
        pil = Image.fromarray((img * 255.0 + 0.5).astype(np.uint8), "RGB")
        mask = self._remove(pil, session=self.session, only_mask=True)
        arr = np.asarray(mask.convert("L") if hasattr(mask, "convert") else mask, dtype=np.float32)
        if arr.ndim == 3:
            arr = arr[..., 0]
        return np.clip(arr / 255.0, 0.0, 1.0)
