"""Perceptual feature similarity with DINOv2 or CLIP vision features (``transformers``),
plus an optional LPIPS distance when the ``lpips`` package and its weights are local.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from glimpse3d.learned.common import (
    Placement,
    cached,
    check_image,
    ensure_resident,
    load_transformers_model,
    resolve_weights,
)

if TYPE_CHECKING:
    from glimpse3d.config import Settings

EXAMPLE_MODEL = "facebook/dinov2-small"

#: grey level the masked-out area is filled with before feature extraction
MASK_FILL = 0.5


class TransformersFeatures:
    """Cosine similarity of global image embeddings, mapped to [0,1] as ``(cos + 1) / 2``.

    The embedding is the CLS token concatenated with the mean patch token (DINOv2 and
    other ViT backbones loaded by ``AutoModel``) or ``get_image_features`` for CLIP-style
    checkpoints. ``mask`` (H,W) in [0,1] keeps the object: pixels outside it are filled
    with grey in both images before the features are computed.

    Settings: ``feature_model`` (hub id or local directory), ``device``.
    """

    name = "transformers"

    def __init__(self, model: Any, processor: Any, placement: Placement) -> None:
        self.model = model
        self.processor = processor
        self.placement = placement

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersFeatures:
        ref = resolve_weights(settings.feature_model, "feature_model", EXAMPLE_MODEL)
        placement = Placement.from_settings(settings.device)
        return cached(cls, ref, placement.device, lambda: cls.load(ref, placement))

    @classmethod
    def load(cls, ref: str, placement: Placement) -> TransformersFeatures:
        processor, model = load_transformers_model(
            "AutoModel", ref, placement, "feature_model", EXAMPLE_MODEL,
            "the transformers feature backend",
        )
        return cls(model, processor, placement)

    def modules(self) -> list[torch.nn.Module]:
        return [self.model]

    @torch.inference_mode()
    def embed(self, images: list[np.ndarray]) -> torch.Tensor:
        """L2-normalised embeddings (N,D) float32 of RGB images (H,W,3) in [0,1]."""
        ensure_resident(self)
        u8 = [(np.clip(im, 0, 1) * 255.0 + 0.5).astype(np.uint8) for im in images]
        pv = self.processor(images=u8, return_tensors="pt")["pixel_values"]
        pv = pv.to(self.placement.device, self.placement.dtype)
        if hasattr(self.model, "get_image_features"):
            res = self.model.get_image_features(pixel_values=pv)
            if isinstance(res, torch.Tensor):
                feats = res
            else:  # transformers 5 may return an output object
                feats = getattr(res, "image_embeds", None)
                if feats is None:
                    feats = res.pooler_output
        else:
            out = self.model(pixel_values=pv)
            hidden = out.last_hidden_state
            feats = torch.cat([hidden[:, 0], hidden[:, 1:].mean(dim=1)], dim=-1) if hidden.ndim == 3 \
                else hidden.flatten(1)
        feats = feats.float()
        return torch.nn.functional.normalize(feats, dim=-1).cpu()

    def similarity(self, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
        """Feature similarity of two RGB(A) images in [0,1] (1 = identical features)."""
        ia = check_image(a, (3, 4), "image a")[..., :3]
        ib = check_image(b, (3, 4), "image b")[..., :3]
        if ia.shape != ib.shape:
            from glimpse3d.learned.common import resize

            ib = resize(ib, ia.shape[1], ia.shape[0])
        if mask is not None:
            m = np.asarray(mask, dtype=np.float32)
            if m.shape != ia.shape[:2]:
                raise ValueError(f"mask shape {m.shape} != image shape {ia.shape[:2]}")
            m = np.clip(m, 0, 1)[..., None]
            ia = ia * m + MASK_FILL * (1 - m)
            ib = ib * m + MASK_FILL * (1 - m)
        emb = self.embed([ia, ib])
        cos = float((emb[0] * emb[1]).sum())
        return float(np.clip((cos + 1.0) / 2.0, 0.0, 1.0))


# ------------------------------------------------------------------ LPIPS

_LPIPS: dict[str, Any] = {}


def _lpips_backbone_available(net: str) -> bool:
    """True when torchvision's pretrained backbone for ``net`` is already in the torch hub cache."""
    names = {
        "alex": "alexnet-owt-",
        "vgg": "vgg16-",
        "squeeze": "squeezenet1_1-",
    }
    ckpt_dir = Path(torch.hub.get_dir()) / "checkpoints"
    prefix = names.get(net, "")
    return ckpt_dir.is_dir() and any(p.name.startswith(prefix) for p in ckpt_dir.iterdir())


def lpips_distance(a: np.ndarray, b: np.ndarray, net: str = "alex") -> float | None:
    """LPIPS distance (0 = identical, ~0.7+ = unrelated) of two RGB images (H,W,3) in [0,1].

    Returns ``None`` when the ``lpips`` package is not installed or the pretrained
    backbone weights are not in the local torch hub cache (no download is attempted).
    """
    try:
        import lpips  # type: ignore[import-not-found]
    except ImportError:
        return None
    if not _lpips_backbone_available(net):
        return None
    if net not in _LPIPS:
        try:
            _LPIPS[net] = lpips.LPIPS(net=net, verbose=False).eval()
        except Exception:  # noqa: BLE001 - any load failure means "not available"
            return None
    ia = check_image(a, (3, 4), "image a")[..., :3]
    ib = check_image(b, (3, 4), "image b")[..., :3]
    if ia.shape != ib.shape:
        raise ValueError(f"images differ in shape: {ia.shape} vs {ib.shape}")

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(2, 0, 1)[None] * 2.0 - 1.0

    with torch.inference_mode():
        return float(_LPIPS[net](t(ia), t(ib)).item())


def lpips_available(net: str = "alex") -> bool:
    """Whether :func:`lpips_distance` can return a number here."""
    try:
        import lpips  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return _lpips_backbone_available(net)

