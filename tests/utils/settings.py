"""The one settings preset that keeps a pipeline run short on 2 CPU cores.

``train_steps`` is what the runner reads for v0's optimisation (the densification schedule
scales with it), so the preset really shortens API, job and cluster runs.
"""

from __future__ import annotations

import json
from typing import Any

FAST: dict[str, Any] = dict(
    view_size=64,
    max_gaussians=1000,
    train_steps=40,
    refine_iterations=1,
    export_formats=["ply", "splat"],
    cleanup_interval_minutes=0,
)


def fast_env() -> dict[str, str]:
    """:data:`FAST` as ``GLIMPSE3D_*`` environment variables (for subprocesses)."""
    return {f"GLIMPSE3D_{k.upper()}": json.dumps(v) if isinstance(v, list) else str(v)
            for k, v in FAST.items()}
