"""The vocabulary of Glimpse3D, in one place: statuses, stages, views, buckets and formats.

Every layer (CLI, API, jobs, pipeline, db, storage, splat, the web page through
``GET /api/meta``) reads these names from here; nothing else spells them out. This module
imports nothing from the package, so any layer may depend on it.
See ``docs/architecture.md`` ("Statuses and progress", "Buckets").
"""

from __future__ import annotations

from dataclasses import dataclass

# ------------------------------------------------------------------ project statuses
#: Every value of ``projects.status``, in pipeline order.
PROJECT_STATUSES: tuple[str, ...] = (
    "uploading",
    "preprocessing",
    "multiview_generating",
    "depth_estimating",
    "reconstructing",
    "refining",
    "exporting",
    "completed",
    "failed",
    "cancelled",
)
#: Statuses of a project whose pipeline is under way.
ACTIVE_STATUSES: tuple[str, ...] = PROJECT_STATUSES[:7]
#: Statuses a run ends in.
TERMINAL_STATUSES: tuple[str, ...] = PROJECT_STATUSES[7:]

# ------------------------------------------------------------------ stages and progress
#: stage -> (status shown while it runs, start %, end %). Progress never decreases in a run.
STAGES: dict[str, tuple[str, float, float]] = {
    "preprocess": ("preprocessing", 0.0, 10.0),
    "multiview": ("multiview_generating", 10.0, 40.0),
    "depth": ("depth_estimating", 40.0, 60.0),
    "reconstruct": ("reconstructing", 60.0, 70.0),
    "refine": ("refining", 70.0, 95.0),
    "export": ("exporting", 95.0, 100.0),
}

# ------------------------------------------------------------------ jobs
#: ``generate``: multiview -> depth -> reconstruct (v0) -> exports; ``refine``: iterations
#: after the latest version; ``run``: both, one job (what the CLI and the web page ask for).
JOB_KINDS: tuple[str, ...] = ("generate", "refine", "run")
#: The stage whose status and start percentage a project shows once a job of that kind is
#: accepted (before a worker picks it up).
JOB_FIRST_STAGE: dict[str, str] = {"generate": "multiview", "refine": "refine", "run": "preprocess"}

# ------------------------------------------------------------------ views
#: Generated views per project (the SyncDreamer ring: elevation 30 deg, azimuth 22.5 deg steps).
NUM_VIEWS = 16

# ------------------------------------------------------------------ storage buckets
UPLOADS = "project-uploads"
PROCESSED = "processed-images"
MULTIVIEW = "multiview-images"
DEPTH = "depth-maps"
ENHANCED = "enhanced-views"
MODELS = "3d-models"
BUCKETS: tuple[str, ...] = (UPLOADS, PROCESSED, MULTIVIEW, DEPTH, ENHANCED, MODELS)

# ------------------------------------------------------------------ identity
#: Values of ``GLIMPSE3D_AUTH`` (see ``glimpse3d.auth``).
AUTH_MODES: tuple[str, ...] = ("none", "api_key", "supabase")
#: The owner of projects made without an authenticated identity: the CLI, and the API in
#: ``none`` mode (``glimpse3d keys create local`` hands them to a key).
LOCAL_OWNER = "local"

# ------------------------------------------------------------------ file formats
#: Gaussian-splat model files (read and written).
MODEL_FORMATS: tuple[str, ...] = ("ply", "splat", "spz")
#: The UV-textured mesh formats (glTF binary, OBJ + MTL + PNG zipped, USDZ for AR Quick Look).
MESH_FORMATS: tuple[str, ...] = ("glb", "obj", "usdz")
#: Everything ``export`` makes: the model formats, the meshes, a turntable video.
EXPORT_FORMATS: tuple[str, ...] = (*MODEL_FORMATS, *MESH_FORMATS, "mp4")
#: File name ending of each export as stored and downloaded (OBJ comes zipped with its MTL + PNG).
EXPORT_FILE_EXTENSIONS: dict[str, str] = {f: f for f in EXPORT_FORMATS} | {"obj": "obj.zip"}

#: Refinement iterations a run makes when none are asked for (CLI `run`, API refine/run).
DEFAULT_ITERATIONS = 3

# ------------------------------------------------------------------ mesh exports
#: Face budget of the exported meshes: default and accepted range.
DEFAULT_MESH_FACES = 20_000
MIN_MESH_FACES, MAX_MESH_FACES = 100, 1_000_000
#: Side in pixels of the baked texture: default and accepted range (0 = per-vertex colours).
DEFAULT_TEXTURE_SIZE = 1024
MIN_TEXTURE_SIZE, MAX_TEXTURE_SIZE = 64, 4096


@dataclass(frozen=True)
class ImageFormat:
    """A photo format accepted on upload: Pillow's format names, MIME types, file extensions."""

    pillow: tuple[str, ...]
    mime: tuple[str, ...]
    extensions: tuple[str, ...]


#: Photo formats accepted by the upload sniffing, preprocessing and the web page. GIF is not
#: one of them: a 256-colour palette (often animated) is no photo to reconstruct from.
IMAGE_FORMATS: dict[str, ImageFormat] = {
    "png": ImageFormat(("PNG",), ("image/png",), ("png",)),
    "jpeg": ImageFormat(("JPEG", "MPO"), ("image/jpeg",), ("jpg", "jpeg")),
    "webp": ImageFormat(("WEBP",), ("image/webp",), ("webp",)),
    "bmp": ImageFormat(("BMP",), ("image/bmp", "image/x-ms-bmp"), ("bmp",)),
    "tiff": ImageFormat(("TIFF",), ("image/tiff",), ("tif", "tiff")),
}
#: Pillow format names of :data:`IMAGE_FORMATS`.
PILLOW_IMAGE_FORMATS: frozenset[str] = frozenset(
    name for f in IMAGE_FORMATS.values() for name in f.pillow
)
