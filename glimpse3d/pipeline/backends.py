"""The registry that picks each stage's backend from settings.

The interfaces (protocols, ``DepthResult``, ``BackendUnavailable``, strengths) are in
``glimpse3d.pipeline.ports`` and re-exported here. Classic backends live in
``glimpse3d.pipeline``; learned ones in ``glimpse3d.learned`` and are imported only when
selected.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from glimpse3d.pipeline.ports import (  # noqa: F401 - re-exported: the stages' interfaces
    STRENGTH_PRESETS,
    BackendUnavailable,
    DepthEstimator,
    DepthResult,
    Enhancer,
    FeatureExtractor,
    MultiviewGenerator,
    Segmenter,
    resolve_strength,
)

if TYPE_CHECKING:
    from glimpse3d.config import Settings


REGISTRY: dict[str, dict[str, str]] = {
    "segment": {
        "classic": "glimpse3d.pipeline.preprocess:ClassicSegmenter",
        "transformers": "glimpse3d.learned.segmentation:TransformersSegmenter",
        "rembg": "glimpse3d.learned.segmentation:RembgSegmenter",
    },
    "multiview": {
        "classic": "glimpse3d.pipeline.multiview:ClassicMultiview",
        "diffusers": "glimpse3d.learned.multiview:Zero123Multiview",
        "syncdreamer": "glimpse3d.learned.multiview:SyncDreamerAdapter",
    },
    "depth": {
        "classic": "glimpse3d.pipeline.depth:ClassicDepth",
        "transformers": "glimpse3d.learned.depth:TransformersDepth",
    },
    "enhance": {
        "classic": "glimpse3d.pipeline.refine:ClassicEnhancer",
        "diffusers": "glimpse3d.learned.enhance:SDXLEnhancer",
    },
    "feature": {
        "classic": "glimpse3d.pipeline.metrics:ClassicFeatures",
        "transformers": "glimpse3d.learned.features:TransformersFeatures",
    },
}


def load_backend(stage: str, settings: Settings, overrides: dict[str, Any] | None = None) -> Any:
    """Instantiate the backend chosen for ``stage`` (``segment``/``multiview``/``depth``/
    ``enhance``/``feature``) via ``cls.from_settings(settings)``.

    ``overrides`` (e.g. a project's own settings) may name ``{stage}_backend`` and
    ``{stage}_model``.
    """
    overrides = overrides or {}
    choice = overrides.get(f"{stage}_backend") or getattr(settings, f"{stage}_backend")
    options = REGISTRY[stage]
    if choice not in options:
        raise BackendUnavailable(
            f"unknown {stage} backend {choice!r}; choose one of {', '.join(sorted(options))}"
        )
    module_name, _, cls_name = options[choice].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the {choice!r} {stage} backend needs the learned extras: "
            f"pip install 'glimpse3d[models]' ({exc})"
        ) from exc
    cls = getattr(module, cls_name)
    if overrides.get(f"{stage}_model"):
        settings = settings.model_copy(update={f"{stage}_model": overrides[f"{stage}_model"]})
    return cls.from_settings(settings)
