"""Object storage over the 6 buckets of DESIGN §5 (local directory or S3-compatible)."""

from glimpse3d.storage.base import BUCKETS, Storage, keys

__all__ = ["BUCKETS", "Storage", "keys"]
