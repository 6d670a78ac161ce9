"""Object storage over the 6 buckets of docs/architecture.md ("Buckets") (local directory or S3-compatible)."""

from glimpse3d.storage.base import BUCKETS, InvalidKey, Storage, StorageError, keys
from glimpse3d.storage.factory import open_storage, open_storage_url
from glimpse3d.storage.local import LocalStorage

__all__ = [
    "BUCKETS",
    "InvalidKey",
    "LocalStorage",
    "Storage",
    "StorageError",
    "keys",
    "open_storage",
    "open_storage_url",
]


def __getattr__(name: str) -> object:
    # S3Storage imports boto3 (slow); load it on first use.
    if name == "S3Storage":
        from glimpse3d.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(name)
