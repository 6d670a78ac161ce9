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
    from glimpse3d.splat.cameras import Camera


REGISTRY: dict[str, dict[str, str]] = {
    "segment": {
        "classic": "glimpse3d.pipeline.preprocess:ClassicSegmenter",
        "transformers": "glimpse3d.learned.segmentation:TransformersSegmenter",
        "rembg": "glimpse3d.learned.segmentation:RembgSegmenter",
    },
    "multiview": {
        "classic": "glimpse3d.pipeline.multiview:ClassicMultiview",
        "diffusers": "glimpse3d.learned.multiview:Zero123Multiview",
        "zero123plus": "glimpse3d.learned.zero123plus:Zero123PlusMultiview",
        "syncdreamer": "glimpse3d.learned.syncdreamer:SyncDreamerMultiview",
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


def backend_class(stage: str, settings: Settings, overrides: dict[str, Any] | None = None) -> type:
    """The class chosen for ``stage`` (imports its module, loads no weights)."""
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
    return getattr(module, cls_name)


def multiview_cameras(settings: Settings, overrides: dict[str, Any] | None = None) -> list[Camera]:
    """The cameras the chosen multiview backend makes views for, at ``settings.view_size``:
    its ``fixed_cameras`` when it has them, else the 16 SyncDreamer cameras."""
    from glimpse3d.splat.cameras import syncdreamer_cameras

    fixed = getattr(backend_class("multiview", settings, overrides), "fixed_cameras", None)
    size = int(settings.view_size)
    return list(fixed(settings, size)) if fixed is not None else syncdreamer_cameras(size)


def load_backend(stage: str, settings: Settings, overrides: dict[str, Any] | None = None) -> Any:
    """Instantiate the backend chosen for ``stage`` (``segment``/``multiview``/``depth``/
    ``enhance``/``feature``) via ``cls.from_settings(settings)``.

    ``overrides`` (e.g. a project's own settings) may name ``{stage}_backend`` and
    ``{stage}_model``.
    """
    overrides = overrides or {}
    cls = backend_class(stage, settings, overrides)
    if overrides.get(f"{stage}_model"):
        settings = settings.model_copy(update={f"{stage}_model": overrides[f"{stage}_model"]})
    return cls.from_settings(settings)
