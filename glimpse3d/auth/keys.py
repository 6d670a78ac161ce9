"""API keys: ``g3d_`` + 43 URL-safe characters (256 random bits). Only the key's SHA-256 is
stored (a fast hash is enough for keys this long); its first 12 characters are kept as a
``prefix`` that identifies it in ``glimpse3d keys list`` and ``revoke``."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from glimpse3d.auth import AuthError, Identity
from glimpse3d.errors import UserError

if TYPE_CHECKING:
    from glimpse3d.db.repository import Repository

KEY_PREFIX = "g3d_"
PREFIX_CHARS = 12
MAX_OWNER = 64


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(repo: Repository, owner_id: str, name: str | None = None) -> tuple[dict[str, Any], str]:
    """Make a key for ``owner_id``; returns (its row, the key). The key is shown once."""
    owner = (owner_id or "").strip()
    if not owner or len(owner) > MAX_OWNER or any(c.isspace() for c in owner):
        raise UserError(f"the owner must be 1-{MAX_OWNER} characters without spaces")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = repo.add_api_key(owner, hash_key(key), key[:PREFIX_CHARS], name)
    return row, key


def identify(repo: Repository, key: str) -> Identity:
    """The identity a key stands for; :class:`AuthError` when it is unknown or revoked."""
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        raise AuthError("invalid API key")
    row = repo.find_api_key(hash_key(key))
    if row is None:
        raise AuthError("unknown or revoked API key")
    return Identity(str(row["owner_id"]), f"owner:{row['owner_id']}", "api_key")
