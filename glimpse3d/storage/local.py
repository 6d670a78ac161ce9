"""Storage in a local directory: ``{root}/{bucket}/{key}``.

Writes are atomic (a temp file in the target directory, then ``os.replace``), so a reader
never sees half a file and a killed writer leaves no partial object. Keys that would escape
their bucket are refused. ``url()`` returns the API path ``/files/{bucket}/{key}`` with an
expiring HMAC signature (:mod:`glimpse3d.storage.signing`), checked by :meth:`link_valid`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from glimpse3d.storage.base import (
    BUCKETS,
    InvalidKey,
    StorageError,
    guess_content_type,
    no_such_object,
    validate_bucket,
    validate_key,
    validate_prefix,
    validate_project_id,
)
from glimpse3d.storage.signing import LinkSigner, load_or_create_secret

_TMP_PREFIX = ".tmp-"
_CHUNK = 1024 * 1024


class LocalStorage:
    """The 6 buckets as directories under ``root`` (created on demand)."""

    def __init__(
        self,
        root: str | Path,
        base_url: str = "",
        link_secret: bytes | None = None,
        link_ttl_seconds: int = 3600,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.base_url = base_url.rstrip("/")
        self._link_secret = link_secret
        self._link_ttl = link_ttl_seconds
        self._signer: LinkSigner | None = None

    @property
    def signer(self) -> LinkSigner:
        """The link signer (its secret is read or created on first use)."""
        if self._signer is None:
            secret = self._link_secret or load_or_create_secret(self.root)
            self._signer = LinkSigner(secret, self._link_ttl)
        return self._signer

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    # ---- paths
    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / validate_bucket(bucket)

    def _path(self, bucket: str, key: str) -> Path:
        base = self._bucket_dir(bucket)
        path = (base / validate_key(key)).resolve()
        if not path.is_relative_to(base.resolve()):
            raise InvalidKey(f"object key {key!r} escapes bucket {bucket!r}")
        return path

    def local_path(self, bucket: str, key: str) -> Path | None:
        """The file's path on disk (it may not exist yet)."""
        return self._path(bucket, key)

    # ---- writes
    @contextlib.contextmanager
    def _atomic(self, path: Path) -> Iterator[BinaryIO]:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> int:
        """Store ``data``; returns its size in bytes (content type follows the extension)."""
        with self._atomic(self._path(bucket, key)) as fh:
            fh.write(data)
        return len(data)

    def put_file(
        self, bucket: str, key: str, path: str | Path, content_type: str | None = None
    ) -> int:
        """Copy a local file in (a no-op when it already is the object's file)."""
        src = Path(path)
        dst = self._path(bucket, key)
        if dst.exists() and src.exists() and os.path.samefile(src, dst):
            return dst.stat().st_size
        with open(src, "rb") as fin, self._atomic(dst) as fout:
            shutil.copyfileobj(fin, fout, _CHUNK)
        return dst.stat().st_size

    def put_stream(
        self, bucket: str, key: str, stream: BinaryIO, content_type: str | None = None
    ) -> int:
        """Stream a file-like object in, chunk by chunk; returns the bytes written."""
        n = 0
        with self._atomic(self._path(bucket, key)) as fout:
            while chunk := stream.read(_CHUNK):
                fout.write(chunk)
                n += len(chunk)
        return n

    # ---- reads
    def get_bytes(self, bucket: str, key: str) -> bytes:
        path = self._path(bucket, key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise no_such_object(bucket, key) from None

    def _existing(self, bucket: str, key: str) -> Path:
        """The object's file; :func:`no_such_object` if there is none."""
        path = self._path(bucket, key)
        if not path.is_file():
            raise no_such_object(bucket, key)
        return path

    def open(self, bucket: str, key: str) -> BinaryIO:
        """A binary file object for streaming reads (close it)."""
        return open(self._existing(bucket, key), "rb")  # noqa: SIM115 - returned to the caller

    def download_to(self, bucket: str, key: str, path: str | Path) -> Path:
        src = self._existing(bucket, key)
        dst = Path(path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() and os.path.samefile(src, dst):
            return dst
        shutil.copyfile(src, dst)
        return dst

    def exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def size(self, bucket: str, key: str) -> int:
        return self._existing(bucket, key).stat().st_size

    def content_type(self, bucket: str, key: str) -> str:
        """The object's content type (from its extension)."""
        validate_bucket(bucket)
        return guess_content_type(validate_key(key))

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (plain string prefix, as in S3), sorted."""
        base = self._bucket_dir(bucket)
        validate_prefix(prefix)
        # Walk only the deepest directory the prefix names.
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base
        if not start.is_dir():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                rel = Path(dirpath, name).relative_to(base).as_posix()
                if rel.startswith(prefix):
                    out.append(rel)
        return sorted(out)

    # ---- deletes
    def delete(self, bucket: str, key: str) -> None:
        """Remove one object (absent is fine) and its directories left empty."""
        path = self._path(bucket, key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._prune(path.parent, self._bucket_dir(bucket))

    def _prune(self, directory: Path, stop: Path) -> None:
        while directory != stop and directory.is_relative_to(stop):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        keys = self.list(bucket, prefix)
        for key in keys:
            self.delete(bucket, key)
        return len(keys)

    def delete_project(self, project_id: str) -> int:
        """Delete ``{pid}/...`` in every bucket; returns how many files were deleted."""
        pid = validate_project_id(project_id)
        n = 0
        for bucket in BUCKETS:
            n += self.delete_prefix(bucket, f"{pid}/")
            shutil.rmtree(self._bucket_dir(bucket) / pid, ignore_errors=True)
        return n

    # ---- urls and health
    def url(self, bucket: str, key: str, expires_seconds: int | None = None) -> str:
        """``/files/{bucket}/{key}?exp=..&sig=..`` (served by the API), valid for at least
        ``expires_seconds`` (default: the link lifetime)."""
        validate_bucket(bucket)
        exp, sig = self.signer.sign(bucket, validate_key(key), expires_seconds)
        return f"{self.base_url}/files/{bucket}/{quote(key)}?exp={exp}&sig={sig}"

    def link_valid(self, bucket: str, key: str, exp: str | None, sig: str | None) -> bool:
        """True when ``exp``/``sig`` are an unexpired signature of ``bucket/key``."""
        return self.signer.valid(bucket, key, exp, sig)

    def ensure_buckets(self) -> None:
        for bucket in BUCKETS:
            (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def missing_buckets(self) -> list[str]:
        """The buckets whose directory does not exist."""
        return [b for b in BUCKETS if not (self.root / b).is_dir()]

    def check(self) -> None:
        """Raise :class:`StorageError` unless the root and the 6 bucket dirs are writable."""
        if not self.root.is_dir():
            raise StorageError(
                f"storage directory {self.root} does not exist: create it or set GLIMPSE3D_STORAGE_URL"
            )
        missing = self.missing_buckets()
        if missing:
            raise StorageError(
                f"missing bucket directories under {self.root}: {', '.join(missing)} "
                "(run `glimpse3d doctor` after starting the app once, or mkdir them)"
            )
        for bucket in BUCKETS:
            if not os.access(self.root / bucket, os.W_OK | os.X_OK):
                raise StorageError(f"storage directory {self.root / bucket} is not writable")
