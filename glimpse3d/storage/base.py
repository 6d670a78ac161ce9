"""The storage interface and the key layout of the six buckets (names in ``glimpse3d.domain``).

Rows in the database store ``(bucket, key)`` pairs, never absolute URLs; URLs are made on
the way out by :meth:`Storage.url`.
"""

from __future__ import annotations

import errno
import mimetypes
import re
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

# the bucket names belong to the domain vocabulary; re-exported for storage users
from glimpse3d.domain import (  # noqa: F401
    BUCKETS,
    DEPTH,
    ENHANCED,
    MODELS,
    MULTIVIEW,
    PROCESSED,
    UPLOADS,
)
from glimpse3d.errors import UserError

# Content types of the artifacts that ``mimetypes`` does not know everywhere.
for _ext, _type in {
    ".npy": "application/octet-stream",
    ".ply": "application/octet-stream",
    ".splat": "application/octet-stream",
    ".spz": "application/octet-stream",
    ".glb": "model/gltf-binary",
    ".obj": "model/obj",
    ".usdz": "model/vnd.usdz+zip",
    ".mp4": "video/mp4",
    ".webp": "image/webp",
    ".json": "application/json",
}.items():
    mimetypes.add_type(_type, _ext)


class InvalidKey(UserError):
    """A bucket or object key that is unknown, empty or escapes its bucket (``..``, ``/abs``)."""

    http_status = 400


class StorageError(RuntimeError):
    """Storage is unreachable or misconfigured; the message says what to do."""


_SEGMENT_OK = re.compile(r"^[^\x00-\x1f\\]+$")


def validate_bucket(bucket: str) -> str:
    """``bucket`` if it is one of the 6 logical buckets, else :class:`InvalidKey`."""
    if bucket not in BUCKETS:
        raise InvalidKey(f"unknown bucket {bucket!r}; one of {', '.join(BUCKETS)}")
    return bucket


def validate_key(key: str) -> str:
    """``key`` if it is a relative ``a/b/c`` path without ``.``/``..``/empty segments or
    backslashes/control characters, else :class:`InvalidKey`."""
    if not isinstance(key, str) or not key or key.startswith("/") or len(key) > 1024:
        raise InvalidKey(f"invalid object key {key!r}")
    for part in key.split("/"):
        if part in ("", ".", "..") or not _SEGMENT_OK.match(part):
            raise InvalidKey(f"invalid object key {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing/deletion prefix: empty, or a key (optionally ending in ``/``)."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def validate_project_id(project_id: str) -> str:
    """``project_id`` if it can be the ``{pid}/`` prefix of a project's keys (a key without
    ``/``), else :class:`InvalidKey`."""
    pid = validate_key(project_id)
    if "/" in pid:
        raise InvalidKey(f"invalid project id {project_id!r}")
    return pid


def no_such_object(bucket: str, key: str) -> FileNotFoundError:
    """The error every backend raises for a missing object (``ENOENT``, ``bucket/key``)."""
    return FileNotFoundError(errno.ENOENT, "no such object", f"{bucket}/{key}")


def guess_content_type(key: str) -> str:
    """The content type for ``key`` from its extension (``application/octet-stream`` if unknown)."""
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class keys:  # noqa: N801 - a namespace of key builders
    """Object keys inside each bucket (docs/architecture.md, "Buckets")."""

    @staticmethod
    def original(pid: str, ext: str) -> str:
        return f"{pid}/original.{ext.lstrip('.')}"

    @staticmethod
    def processed(pid: str) -> str:
        return f"{pid}/processed.png"

    @staticmethod
    def mask(pid: str) -> str:
        return f"{pid}/mask.png"

    @staticmethod
    def view(pid: str, index: int) -> str:
        return f"{pid}/views/view_{index:02d}.png"

    @staticmethod
    def depth(pid: str, index: int) -> str:
        return f"{pid}/depth_{index:02d}.npy"

    @staticmethod
    def heatmap(pid: str, index: int) -> str:
        return f"{pid}/heatmap_{index:02d}.png"

    @staticmethod
    def rendered(pid: str, iteration: int, index: int) -> str:
        return f"{pid}/iter_{iteration}/rendered_{index:02d}.png"

    @staticmethod
    def enhanced(pid: str, iteration: int, index: int) -> str:
        return f"{pid}/iter_{iteration}/view_{index:02d}.png"

    @staticmethod
    def model(pid: str, version: int) -> str:
        return f"{pid}/models/v{version}.ply"

    @staticmethod
    def export(pid: str, version: int, fmt: str) -> str:
        return f"{pid}/exports/v{version}.{fmt}"


@runtime_checkable
class Storage(Protocol):
    """One interface over the buckets; implemented by local-directory and S3 backends."""

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> int:
        """Store ``data``; returns its size in bytes. Overwrites (idempotent)."""

    def put_file(
        self, bucket: str, key: str, path: str | Path, content_type: str | None = None
    ) -> int:
        """Stream a local file into storage; returns its size in bytes."""

    def put_stream(
        self, bucket: str, key: str, stream: BinaryIO, content_type: str | None = None
    ) -> int:
        """Stream a file-like object into storage; returns its size in bytes."""

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """Read an object; raises ``FileNotFoundError`` when absent."""

    def download_to(self, bucket: str, key: str, path: str | Path) -> Path:
        """Copy an object to a local file (streaming)."""

    def open(self, bucket: str, key: str) -> BinaryIO:
        """A binary stream of the object (``read(n)``; close it); ``FileNotFoundError`` when absent."""

    def content_type(self, bucket: str, key: str) -> str:
        """The object's content type (stored for S3, from the extension for local files)."""

    def exists(self, bucket: str, key: str) -> bool: ...

    def size(self, bucket: str, key: str) -> int: ...

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, sorted."""

    def delete(self, bucket: str, key: str) -> None: ...

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every key under ``prefix``; returns how many were deleted."""

    def delete_project(self, project_id: str) -> int:
        """Delete a project's files in every bucket; returns how many were deleted."""

    def url(self, bucket: str, key: str, expires_seconds: int | None = None) -> str:
        """A short-lived URL for the object: presigned for S3, an HMAC-signed API path for
        local storage (default lifetime: ``link_ttl_seconds``)."""

    def local_path(self, bucket: str, key: str) -> Path | None:
        """The file's path on disk for the local backend, else None."""

    def ensure_buckets(self) -> None:
        """Create the 6 buckets where missing."""

    def check(self) -> None:
        """Raise with a clear message if storage is unreachable or a bucket is missing."""


HEALTH_PREFIX = "_health"


def check_writable(storage: Storage) -> None:
    """Write and delete a small probe object (``project-uploads/_health/...``); raises what
    the write raises (``OSError`` for a full or read-only disk, S3 errors)."""
    import uuid

    key = f"{HEALTH_PREFIX}/probe-{uuid.uuid4().hex}"
    storage.put_bytes(UPLOADS, key, b"ok", "text/plain")
    storage.delete(UPLOADS, key)
