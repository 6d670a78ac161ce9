"""Storage on any S3-compatible service (AWS S3, MinIO, Supabase Storage's S3 endpoint).

One S3 bucket per logical bucket, named ``{bucket_prefix}{bucket}`` (the prefix may be
empty: Supabase buckets are then exactly ``project-uploads``, ``3d-models`` ...). Uploads
stream (``upload_fileobj``/``upload_file``, multipart above 8 MiB) with a ContentType from
the key's extension; URLs are presigned GETs; listing paginates; prefix deletion batches
1000 keys per request. Timeouts are short and retries few, so a dead endpoint fails fast.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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

_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def _make_client(**kwargs: Any) -> Any:
    """An S3 client from one shared boto3 session (its loaded service models are reused,
    which makes clients ~10x cheaper to create); credentials are per client."""
    global _SESSION
    with _SESSION_LOCK:  # boto3 sessions are not thread-safe, clients are
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client("s3", **kwargs)


class _CountingReader:
    """Wraps a binary stream and counts the bytes read through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def explain_s3_error(exc: BaseException, bucket: str | None = None) -> str:
    """One line saying what went wrong and how to fix it."""
    if isinstance(exc, ClientError):
        code = _code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket", "404", "NotFound") and bucket:
            return f"bucket {bucket!r} does not exist: create it (Supabase: Storage > New bucket)"
        if (
            code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AccessDenied")
            or status == 403
        ):
            return (
                f"access denied ({code or status}): check GLIMPSE3D_S3_ACCESS_KEY_ID / "
                "GLIMPSE3D_S3_SECRET_ACCESS_KEY and the bucket policy"
            )
        return f"S3 error {code or status}: {exc}"
    if isinstance(exc, BotoCoreError):
        return f"S3 endpoint unreachable ({type(exc).__name__}): check GLIMPSE3D_S3_ENDPOINT_URL"
    return f"{type(exc).__name__}: {exc}"


class S3Storage:
    """The 6 buckets as S3 buckets ``{bucket_prefix}{bucket}``."""

    def __init__(
        self,
        bucket_prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        addressing_style: str | None = None,
        link_ttl_seconds: int = 3600,
    ) -> None:
        self.bucket_prefix = bucket_prefix
        self.link_ttl = int(link_ttl_seconds)
        self.endpoint_url = endpoint_url or None
        self.region = region or "us-east-1"
        for b in BUCKETS:
            name = self.bucket_name(b)
            if not 3 <= len(name) <= 63 or name != name.lower():
                raise InvalidKey(
                    f"S3 bucket name {name!r} is invalid: use a short lowercase prefix"
                )
        style = addressing_style or ("path" if self.endpoint_url else "auto")
        self.client: Any = _make_client(
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
                s3={"addressing_style": style},
                signature_version="s3v4",
            ),
        )
        self.page_size = 1000  # keys per list page and per batch delete (S3's maximum)
        self._transfer = TransferConfig(multipart_threshold=8 * 1024 * 1024, max_concurrency=4)

    def __repr__(self) -> str:
        return f"S3Storage(prefix={self.bucket_prefix!r}, endpoint={self.endpoint_url!r})"

    def bucket_name(self, bucket: str) -> str:
        """The S3 bucket that holds logical ``bucket``."""
        return f"{self.bucket_prefix}{validate_bucket(bucket)}"

    def _target(self, bucket: str, key: str) -> tuple[str, str]:
        return self.bucket_name(bucket), validate_key(key)

    # ---- writes
    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> int:
        b, k = self._target(bucket, key)
        self.client.put_object(
            Bucket=b, Key=k, Body=data, ContentType=content_type or guess_content_type(k)
        )
        return len(data)

    def put_file(
        self, bucket: str, key: str, path: str | Path, content_type: str | None = None
    ) -> int:
        b, k = self._target(bucket, key)
        p = Path(path)
        size = p.stat().st_size
        self.client.upload_file(
            str(p),
            b,
            k,
            ExtraArgs={"ContentType": content_type or guess_content_type(k)},
            Config=self._transfer,
        )
        return size

    def put_stream(
        self, bucket: str, key: str, stream: BinaryIO, content_type: str | None = None
    ) -> int:
        b, k = self._target(bucket, key)
        reader = _CountingReader(stream)
        self.client.upload_fileobj(
            reader,
            b,
            k,
            ExtraArgs={"ContentType": content_type or guess_content_type(k)},
            Config=self._transfer,
        )
        return reader.count

    # ---- reads
    def _missing(self, exc: ClientError, bucket: str, key: str) -> FileNotFoundError | None:
        if _code(exc) in _NOT_FOUND:
            return no_such_object(bucket, key)
        return None

    def get_bytes(self, bucket: str, key: str) -> bytes:
        b, k = self._target(bucket, key)
        try:
            return self.client.get_object(Bucket=b, Key=k)["Body"].read()
        except ClientError as exc:
            raise (self._missing(exc, bucket, key) or exc) from None

    def open(self, bucket: str, key: str) -> BinaryIO:
        """A streaming body (``read(n)``, ``iter_chunks()``, ``close()``)."""
        b, k = self._target(bucket, key)
        try:
            return self.client.get_object(Bucket=b, Key=k)["Body"]
        except ClientError as exc:
            raise (self._missing(exc, bucket, key) or exc) from None

    def download_to(self, bucket: str, key: str, path: str | Path) -> Path:
        b, k = self._target(bucket, key)
        dst = Path(path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(b, k, str(dst), Config=self._transfer)
        except ClientError as exc:
            raise (self._missing(exc, bucket, key) or exc) from None
        return dst

    def _head(self, bucket: str, key: str) -> dict[str, Any] | None:
        b, k = self._target(bucket, key)
        try:
            return self.client.head_object(Bucket=b, Key=k)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise

    def exists(self, bucket: str, key: str) -> bool:
        return self._head(bucket, key) is not None

    def _existing_head(self, bucket: str, key: str) -> dict[str, Any]:
        """The object's HEAD response; :func:`no_such_object` if there is none."""
        head = self._head(bucket, key)
        if head is None:
            raise no_such_object(bucket, key)
        return head

    def size(self, bucket: str, key: str) -> int:
        return int(self._existing_head(bucket, key)["ContentLength"])

    def content_type(self, bucket: str, key: str) -> str:
        """The object's stored ContentType."""
        head = self._existing_head(bucket, key)
        return str(head.get("ContentType") or guess_content_type(key))

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, sorted (all pages)."""
        b = self.bucket_name(bucket)
        validate_prefix(prefix)
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=b, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        ):
            out.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(out)

    # ---- deletes
    def delete(self, bucket: str, key: str) -> None:
        b, k = self._target(bucket, key)
        self.client.delete_object(Bucket=b, Key=k)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every key under ``prefix`` in batches of 1000; returns how many."""
        b = self.bucket_name(bucket)
        validate_prefix(prefix)
        n = 0
        step = max(1, min(1000, self.page_size))
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=b, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            for i in range(0, len(objs), step):
                batch = objs[i : i + step]
                resp = self.client.delete_objects(
                    Bucket=b, Delete={"Objects": batch, "Quiet": True}
                )
                errors = resp.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"could not delete {len(errors)} object(s) in {b}: "
                        f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                    )
                n += len(batch)
        return n

    def delete_project(self, project_id: str) -> int:
        """Delete ``{pid}/...`` in every bucket (missing buckets are skipped)."""
        pid = validate_project_id(project_id)
        n = 0
        for bucket in BUCKETS:
            try:
                n += self.delete_prefix(bucket, f"{pid}/")
            except ClientError as exc:
                if _code(exc) != "NoSuchBucket":
                    raise
        return n

    # ---- urls and health
    def url(self, bucket: str, key: str, expires_seconds: int | None = None) -> str:
        """A presigned GET URL valid for ``expires_seconds`` (default ``link_ttl``)."""
        b, k = self._target(bucket, key)
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": b, "Key": k},
                ExpiresIn=int(expires_seconds or self.link_ttl),
            )
        )

    def local_path(self, bucket: str, key: str) -> Path | None:
        return None

    def missing_buckets(self) -> list[str]:
        """Logical buckets whose S3 bucket does not exist (other errors raise)."""
        missing = []
        for bucket in BUCKETS:
            try:
                self.client.head_bucket(Bucket=self.bucket_name(bucket))
            except ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    missing.append(bucket)
                else:
                    raise
        return missing

    def ensure_buckets(self) -> None:
        """Create the missing buckets (private)."""
        for bucket in self.missing_buckets():
            kwargs: dict[str, Any] = {"Bucket": self.bucket_name(bucket)}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                self.client.create_bucket(**kwargs)
            except ClientError as exc:
                if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def check(self) -> None:
        """Raise :class:`StorageError` naming the problem (endpoint, keys, missing buckets)."""
        try:
            missing = self.missing_buckets()
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(explain_s3_error(exc)) from exc
        if missing:
            names = ", ".join(self.bucket_name(b) for b in missing)
            raise StorageError(
                f"missing S3 bucket(s): {names}: create them (Supabase: Storage > New bucket, "
                "or apply supabase_schema.sql; MinIO/AWS: `aws s3 mb s3://NAME`)"
            )
