"""Background removal with learned models.

* :class:`TransformersSegmenter` - any ``transformers`` semantic-segmentation checkpoint
  (SegFormer, DPT, BEiT, UperNet, MobileViT...) through ``AutoModelForSemanticSegmentation``;
  the foreground probability is ``1 - P(background classes)``. Dichotomous / matting
  models published with their own code (``briaai/RMBG-1.4``, ``briaai/RMBG-2.0``,
  ``ZhengPeng7/BiRefNet``) load through ``AutoModelForImageSegmentation`` with
  ``trust_remote_code`` (setting ``trust_remote_code`` or env ``GLIMPSE3D_TRUST_REMOTE_CODE=1``).
* :class:`RembgSegmenter` - the ``rembg`` package (ONNX U^2-Net / IS-Net) with a local
  model file; never downloads at run time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from glimpse3d.learned.common import (
    MissingWeightsError,
    Placement,
    cached,
    check_image,
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

#: Input size and ImageNet normalisation for matting models shipped without an image processor.
MATTING_SIZE = 1024
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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

    def __init__(self, model: Any, processor: Any, placement: Placement, mode: str) -> None:
        self.model = model
        self.processor = processor
        self.placement = placement
        self.mode = mode  # "semantic" | "matting"
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
        kwargs = transformers_kwargs(placement)
        try:
            try:
                # explicit False: never prompt on a terminal for remote code here
                model = tf.AutoModelForSemanticSegmentation.from_pretrained(
                    ref, trust_remote_code=False, **kwargs
                )
                mode = "semantic"
            except ValueError:
                if not trust:
                    raise BackendUnavailable(
                        f"segment_model {ref!r} is not a transformers semantic-segmentation "
                        "model; matting models such as briaai/RMBG-1.4 or ZhengPeng7/BiRefNet run "
                        "their own code: set GLIMPSE3D_TRUST_REMOTE_CODE=1 to allow it"
                    ) from None
                model = tf.AutoModelForImageSegmentation.from_pretrained(
                    ref, trust_remote_code=True, **kwargs
                )
                mode = "matting"
            try:
                processor = tf.AutoImageProcessor.from_pretrained(ref, trust_remote_code=trust)
            except (OSError, ValueError):
                if mode == "semantic":
                    raise
                processor = None  # BiRefNet ships no processor: resize + ImageNet norm
        except OSError as exc:
            raise load_failure("segment_model", ref, EXAMPLE_MODEL, exc) from exc
        return cls(model.to(placement.device).eval(), processor, placement, mode)

    def _pixel_values(self, rgb: np.ndarray) -> torch.Tensor:
        if self.processor is not None:
            u8 = (rgb * 255.0 + 0.5).astype(np.uint8)
            pv = self.processor(images=u8, return_tensors="pt")["pixel_values"]
        else:
            t = torch.from_numpy(rgb).permute(2, 0, 1)[None]
            t = torch.nn.functional.interpolate(
                t, size=(MATTING_SIZE, MATTING_SIZE), mode="bilinear", align_corners=False
            )
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            pv = (t - mean) / std
        return pv.to(self.placement.device, self.placement.dtype)

    @torch.inference_mode()
    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """rgb (H,W,3) float [0,1] -> foreground probability (H,W) float32 in [0,1]."""
        img = check_image(rgb, (3, 4), "image")[..., :3]
        h, w = img.shape[:2]
        out = self.model(pixel_values=self._pixel_values(img))
        if self.mode == "semantic":
            probs = torch.softmax(out.logits.float(), dim=1)
            fg = 1.0 - probs[:, self.background_ids].sum(dim=1, keepdim=True)
        else:
            fg = _matting_map(out).float()
            if fg.min() < 0.0 or fg.max() > 1.0:
                fg = torch.sigmoid(fg)
        fg = torch.nn.functional.interpolate(fg, size=(h, w), mode="bilinear", align_corners=False)
        return fg[0, 0].clamp(0.0, 1.0).cpu().numpy().astype(np.float32)


def _matting_map(out: Any) -> torch.Tensor:
    """The final (1,1,h,w) prediction of a matting model's output.

    BiRefNet / RMBG-2.0 return a list whose *last* element is the final logits; RMBG-1.4
    returns ``(side_outputs, features)`` whose first element's first map is the final one.
    """
    if hasattr(out, "logits"):
        t = out.logits
    elif isinstance(out, list | tuple):
        first = out[0]
        t = first[0] if isinstance(first, list | tuple) else out[-1]
        if isinstance(t, list | tuple):
            t = t[-1]
    else:
        t = out
    if t.ndim == 3:
        t = t[:, None]
    return t[:, :1]


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
