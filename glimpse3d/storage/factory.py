"""Pick the storage backend from settings: a path -> LocalStorage, ``s3://prefix`` -> S3Storage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from glimpse3d.errors import UserError
from glimpse3d.storage.base import Storage

if TYPE_CHECKING:
    from glimpse3d.config import Settings


def open_storage_url(
    url: str,
    settings: Settings | None = None,
    *,
    create_buckets: bool = False,
    s3_options: dict[str, Any] | None = None,
) -> Storage:
    """Storage for ``url``: ``s3://PREFIX`` (S3 buckets ``PREFIX{bucket}`` with the
    ``s3_*`` settings), ``file:///dir`` or a plain directory path.

    Local bucket directories are always created; S3 buckets only with ``create_buckets``.
    ``s3_options`` go to :class:`S3Storage` (``connect_timeout``, ``read_timeout``, ...).
    """
    if not url:
        raise UserError(
            "empty storage URL: set GLIMPSE3D_STORAGE_URL to a directory or s3://prefix"
        )
    if url.startswith("s3://"):
        from glimpse3d.storage.s3 import S3Storage

        if settings is None:
            from glimpse3d.config import get_settings

            settings = get_settings()
        prefix = url[len("s3://") :].strip("/")
        storage = S3Storage(
            bucket_prefix=prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key_id,
            secret_key=settings.s3_secret_access_key,
            link_ttl_seconds=settings.link_ttl_seconds,
            **(s3_options or {}),
        )
        if create_buckets:
            storage.ensure_buckets()
        return storage
    if "://" in url and not url.startswith("file://"):
        raise UserError(f"unsupported storage URL {url!r}: use a directory path or s3://prefix")
    from glimpse3d.storage.local import LocalStorage

    secret = settings.link_secret.encode() if settings and settings.link_secret else None
    ttl = settings.link_ttl_seconds if settings else 3600
    local = LocalStorage(Path(url.removeprefix("file://")), link_secret=secret,
                         link_ttl_seconds=ttl)
    local.ensure_buckets()
    return local


def open_storage(
    settings: Settings | None = None,
    *,
    create_buckets: bool = False,
    s3_options: dict[str, Any] | None = None,
) -> Storage:
    """Storage for ``settings.resolved_storage_url`` (process settings when None)."""
    if settings is None:
        from glimpse3d.config import get_settings

        settings = get_settings()
    return open_storage_url(
        settings.resolved_storage_url,
        settings,
        create_buckets=create_buckets,
        s3_options=s3_options,
    )
