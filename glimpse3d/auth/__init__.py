"""Who is calling: the three auth modes (``GLIMPSE3D_AUTH``) and what they resolve to.

- ``none``: everyone is the local owner (``glimpse3d.domain.LOCAL_OWNER``); limits are
  keyed on the client address. For the embedded, loopback-only default.
- ``api_key``: ``Authorization: Bearer KEY`` with a key from ``glimpse3d keys create OWNER``
  (:mod:`glimpse3d.auth.keys`; only its SHA-256 is stored).
- ``supabase``: a Supabase Auth access token (JWT), verified by :mod:`glimpse3d.auth.tokens`
  against the project's JWKS (asymmetric keys) or JWT secret (HS256), audience and expiry;
  the owner is the token's ``sub`` (the user's UUID, what ``auth.uid()`` returns in RLS).

The HTTP side (the FastAPI dependency) is :mod:`glimpse3d.api.security`.
"""

from __future__ import annotations

from dataclasses import dataclass

from glimpse3d.domain import AUTH_MODES, LOCAL_OWNER


class AuthError(Exception):
    """The credentials are missing or invalid (HTTP 401); the message says which."""


@dataclass(frozen=True)
class Identity:
    """An authenticated caller.

    ``owner_id`` is stored as ``projects.owner_id``; ``limit_key`` keys the rate limits and
    job caps (the owner in ``api_key``/``supabase`` mode, the client address in ``none``).
    """

    owner_id: str
    limit_key: str
    mode: str


def local_identity(client_address: str) -> Identity:
    """The identity of every caller in ``none`` mode."""
    return Identity(LOCAL_OWNER, f"addr:{client_address}", "none")


__all__ = ["AUTH_MODES", "LOCAL_OWNER", "AuthError", "Identity", "local_identity"]
