"""All settings in one typed object, read from ``GLIMPSE3D_*`` environment variables and ``.env``.

Every field is listed with its default in ``.env.example``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from glimpse3d.domain import (
    DEFAULT_MESH_FACES,
    DEFAULT_TEXTURE_SIZE,
    MAX_MESH_FACES,
    MAX_TEXTURE_SIZE,
    MIN_MESH_FACES,
)

StageBackend = Literal["classic", "transformers", "diffusers", "rembg", "syncdreamer"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GLIMPSE3D_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    # --- where things live
    data_dir: Path = Field(Path("./glimpse3d-data"), description="Root for the embedded default.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///{data_dir}/glimpse3d.db."
    )
    storage_url: str | None = Field(
        None, description="Local directory or s3://prefix; default {data_dir}/storage."
    )
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, Supabase).")
    s3_region: str = Field("us-east-1", description="S3 region name.")
    s3_access_key_id: str | None = Field(None, description="S3 access key id.")
    s3_secret_access_key: str | None = Field(None, description="S3 secret access key.")
    public_base_url: str = Field("", description="Prefix for URLs handed out by the API.")

    # --- jobs
    queue: Literal["inline", "procrastinate"] = Field("inline", description="Job engine.")
    worker_concurrency: int = Field(1, ge=1, description="Pipelines run at once per worker.")
    max_job_attempts: int = Field(3, ge=1, description="Attempts before a project is failed.")
    worker_heartbeat_seconds: float = Field(10.0, gt=0, description="Worker heartbeat interval.")
    worker_stalled_seconds: float = Field(
        30.0, gt=0, description="A worker silent this long is dead; its job is re-queued."
    )
    worker_poll_seconds: float = Field(5.0, gt=0, description="Worker poll interval for new jobs.")
    worker_shutdown_seconds: float = Field(20.0, gt=0, description="Grace period on SIGTERM.")

    # --- pipeline
    segment_backend: str = Field("classic", description="classic | transformers | rembg")
    segment_model: str | None = Field(None, description="Model id or local dir for segmentation.")
    multiview_backend: str = Field(
        "classic", description="classic | diffusers (Zero123) | zero123plus | syncdreamer")
    multiview_model: str | None = Field(None, description="Model id or local dir for views.")
    multiview_pipeline: str | None = Field(
        None, description="Zero123++ custom pipeline: dir holding pipeline.py, or a hub id.")
    multiview_steps: int | None = Field(None, ge=1, description="Diffusion steps per view set.")
    input_elevation: float = Field(
        30.0, ge=-89.0, le=89.0,
        description="Elevation (degrees) the input photo was taken at, for Zero123++/SyncDreamer.")
    syncdreamer_dir: str | None = Field(None, description="SyncDreamer checkout (git clone).")
    syncdreamer_python: str | None = Field(
        None, description="Python of SyncDreamer's own environment (its venv/conda).")
    syncdreamer_checkpoint: str | None = Field(None, description="syncdreamer-pretrain.ckpt.")
    syncdreamer_timeout_seconds: float = Field(
        1800.0, gt=0, description="Longest a SyncDreamer subprocess may run.")
    proxy_shape: Literal["auto", "rotational", "prism", "inflated", "footprint"] = Field(
        "auto",
        description="Classic multiview/depth shape prior: auto | rotational | prism | inflated | footprint.")
    depth_backend: str = Field("classic", description="classic | transformers")
    depth_model: str | None = Field(None, description="Depth model id or local dir.")
    enhance_backend: str = Field("classic", description="classic | diffusers")
    enhance_model: str | None = Field(None, description="SDXL img2img model id or local dir.")
    enhance_controlnet_model: str | None = Field(None, description="Depth ControlNet id or dir.")
    feature_backend: str = Field("classic", description="classic | transformers")
    feature_model: str | None = Field(None, description="DINOv2/CLIP id or local dir.")
    trust_remote_code: bool = Field(False, description="Allow models that ship their own code.")
    depth_align: str = Field("proxy", description="Learned depth alignment: proxy | silhouette")
    enhance_lightning: bool = Field(False, description="SDXL-Lightning 4-step scheduler.")
    enhance_turbo: bool = Field(False, description="SDXL-Turbo: 2 steps, no guidance.")
    enhance_lightning_unet: str | None = Field(None, description="Lightning UNet weights file.")
    enhance_steps: int | None = Field(None, ge=1, description="Diffusion steps for enhancement.")
    enhance_prompt: str | None = Field(None, description="Text prompt for the enhancer.")
    max_cached_models: int = Field(6, ge=1, description="Learned models kept loaded at once.")
    device: str = Field("auto", description="auto | cpu | cuda | mps")
    view_size: int = Field(256, ge=64, le=1024, description="Pixels per generated view.")
    refine_iterations: int = Field(3, ge=0, le=10, description="Default refinement iterations.")
    max_gaussians: int = Field(30000, ge=100, description="Gaussian budget.")
    train_steps: int = Field(300, ge=10, le=20000, description="Optimisation steps for v0.")
    seed: int = Field(0, description="Default random seed.")
    export_formats: list[str] = Field(
        default_factory=lambda: ["ply", "splat", "glb", "obj", "usdz", "mp4"],
        description="Formats exported at the end of a run.",
    )
    mesh_faces: int = Field(DEFAULT_MESH_FACES, ge=MIN_MESH_FACES, le=MAX_MESH_FACES,
                            description="Face budget of .glb/.obj/.usdz.")
    mesh_texture_size: int = Field(
        DEFAULT_TEXTURE_SIZE, ge=0, le=MAX_TEXTURE_SIZE,
        description="Baked texture side in pixels (0 = per-vertex colours instead).")
    mesh_scale: float = Field(
        1.0, gt=0, description="Metres of the model's fit radius in .glb/.obj/.usdz.")

    # --- HTTP limits
    max_upload_bytes: int = Field(10 * 1024 * 1024, description="Upload size limit (bytes).")
    rate_limit: str = Field(
        "10/minute", description="Uploads per identity, e.g. 10/minute (limits syntax).")
    max_active_jobs_per_client: int = Field(3, ge=1, description="Concurrent jobs per identity.")
    cors_origins: list[str] = Field(default_factory=list, description="CORS allow-list.")
    retention_days: int = Field(30, ge=1, description="Projects older than this are deleted.")
    cleanup_interval_minutes: int = Field(60, ge=0, description="0 disables periodic cleanup.")
    redis_url: str | None = Field(None, description="Shared rate limits across API processes.")
    max_concurrent_decodes: int = Field(2, ge=1, description="Uploads decoded at once (server-wide).")
    max_concurrent_exports: int = Field(2, ge=1, description="Exports built at once (server-wide).")
    max_event_streams: int = Field(200, ge=1, description="Open progress event streams (server-wide).")
    keep_photo_metadata: bool = Field(
        False, description="Keep EXIF/GPS/XMP/text metadata in stored originals.")

    # --- identity and HTTP security
    auth: Literal["none", "api_key", "supabase"] = Field(
        "none", description="none (embedded, loopback only) | api_key | supabase.")
    allow_remote_without_auth: bool = Field(
        False, description="Let `serve` bind a non-loopback host with auth=none.")
    supabase_url: str | None = Field(
        None, description="Supabase project URL: JWKS, token issuer and web sign-in.")
    supabase_anon_key: str | None = Field(None, description="Supabase anon key (web sign-in).")
    supabase_jwt_secret: str | None = Field(
        None, description="Supabase JWT secret, for HS256-signed tokens.")
    supabase_jwks_url: str | None = Field(
        None, description="JWKS URL; default {supabase_url}/auth/v1/.well-known/jwks.json.")
    supabase_jwt_audience: str = Field("authenticated", description="Required JWT audience.")
    link_secret: str | None = Field(
        None, description="HMAC key of signed file links; default: a random key kept in the "
        "storage directory.")
    link_ttl_seconds: int = Field(3600, ge=60, le=7 * 86400, description="Lifetime of file links.")
    forwarded_allow_ips: list[str] = Field(
        default_factory=list, description="Proxies trusted for X-Forwarded-For (default none).")
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"],
        description="Host headers accepted (DNS-rebinding guard); * for any.")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'glimpse3d.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return str((self.data_dir / "storage").resolve())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached; call ``get_settings.cache_clear()`` in tests)."""
    return Settings()


def env_example() -> str:
    """The text of ``.env.example``: every setting with its default and one-line description.

    Regenerate with ``python -m glimpse3d.config > .env.example``.
    """
    import json

    lines = [
        "# Glimpse3D settings. Every variable is optional; the value shown is the default.",
        '# Copy to .env and edit. Lists are JSON (e.g. ["http://localhost:3000"]).',
        "",
    ]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        lines.append(f"# {field.description}")
        if default is None:
            lines.append(f"# GLIMPSE3D_{name.upper()}=")
        else:
            value = json.dumps(default) if isinstance(default, list) else str(default)
            lines.append(f"GLIMPSE3D_{name.upper()}={value}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(env_example(), end="")
