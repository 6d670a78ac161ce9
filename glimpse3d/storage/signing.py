"""HMAC-signed, expiring links for the local storage backend (S3 presigns its own).

A link is ``/files/{bucket}/{key}?exp=UNIX_SECONDS&sig=HEX`` where ``sig`` is
HMAC-SHA256(secret, ``"{bucket}/{key}\\n{exp}"``). Expiry times are rounded up to a quarter of
the lifetime, so a page that polls keeps the same URLs (and its browser cache) for a while;
a link is valid for between 1 and 1.25 lifetimes.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import time
from pathlib import Path

SECRET_FILE = ".link-secret"


def load_or_create_secret(root: Path) -> bytes:
    """The key kept in ``{root}/.link-secret`` (mode 0600), created on first use; every
    process over the same storage directory shares it."""
    path = root / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    root.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(fresh)
    return bytes.fromhex(fresh)


class LinkSigner:
    """Signs and checks ``(bucket, key)`` links that expire after ``ttl_seconds``."""

    def __init__(self, secret: bytes, ttl_seconds: int = 3600) -> None:
        self.secret = secret
        self.ttl = int(ttl_seconds)

    def _mac(self, bucket: str, key: str, exp: int) -> str:
        msg = f"{bucket}/{key}\n{exp}".encode()
        return hmac.new(self.secret, msg, hashlib.sha256).hexdigest()

    def sign(self, bucket: str, key: str, expires_seconds: int | None = None,
             now: float | None = None) -> tuple[int, str]:
        """(exp, sig) for a link valid at least ``expires_seconds`` (default: the ttl)."""
        ttl = int(expires_seconds or self.ttl)
        step = max(1, ttl // 4)
        exp = int(math.ceil(((now or time.time()) + ttl) / step) * step)
        return exp, self._mac(bucket, key, exp)

    def valid(self, bucket: str, key: str, exp: str | int | None, sig: str | None,
              now: float | None = None) -> bool:
        """True for an unexpired link signed with this secret."""
        try:
            exp_i = int(exp)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        if not sig or exp_i < (now or time.time()):
            return False
        return hmac.compare_digest(self._mac(bucket, key, exp_i), sig)
