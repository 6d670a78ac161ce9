"""Verifying Supabase Auth access tokens (JWTs) with PyJWT.

Asymmetric tokens (RS256/ES256, header ``kid``) are checked against the project's JWKS
(``{supabase_url}/auth/v1/.well-known/jwks.json`` unless ``supabase_jwks_url`` says
otherwise; keys cached for 10 minutes, refetched for an unknown ``kid``); HS256 tokens against
``supabase_jwt_secret``. Always required: a valid signature, ``exp`` in the future,
``aud`` = ``supabase_jwt_audience`` (``authenticated``), a ``sub``; ``iss`` =
``{supabase_url}/auth/v1`` when ``supabase_url`` is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt

from glimpse3d.auth import AuthError, Identity
from glimpse3d.errors import UserError

if TYPE_CHECKING:
    from glimpse3d.config import Settings

ASYMMETRIC = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 10


class SupabaseVerifier:
    """``verify(token) -> Identity``; raises :class:`AuthError` with the reason."""

    def __init__(self, settings: Settings) -> None:
        base = (settings.supabase_url or "").rstrip("/")
        self.issuer = f"{base}/auth/v1" if base else None
        jwks_url = settings.supabase_jwks_url or (
            f"{base}/auth/v1/.well-known/jwks.json" if base else None
        )
        self.secret = settings.supabase_jwt_secret
        if not jwks_url and not self.secret:
            raise UserError(
                "GLIMPSE3D_AUTH=supabase needs GLIMPSE3D_SUPABASE_URL (JWKS) or "
                "GLIMPSE3D_SUPABASE_JWT_SECRET (HS256)"
            )
        self.audience = settings.supabase_jwt_audience
        self.jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=600, timeout=5)
            if jwks_url else None
        )

    def _key(self, token: str, header: dict[str, Any]) -> tuple[Any, list[str]]:
        alg = header.get("alg")
        if alg == "HS256":
            if not self.secret:
                raise AuthError("HS256 tokens are not accepted (no JWT secret configured)")
            return self.secret, ["HS256"]
        if alg in ASYMMETRIC:
            if self.jwks is None:
                raise AuthError(f"{alg} tokens are not accepted (no JWKS configured)")
            try:
                return self.jwks.get_signing_key_from_jwt(token).key, [alg]
            except jwt.PyJWKClientConnectionError as exc:
                raise AuthError("the token's signing keys could not be fetched") from exc
            except jwt.PyJWKClientError as exc:
                raise AuthError("the token is signed with an unknown key") from exc
        raise AuthError(f"unsupported token algorithm {alg!r}")

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthError("malformed token") from exc
        key, algorithms = self._key(token, header)
        try:
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=self.audience, issuer=self.issuer,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("the token has expired; sign in again") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("the token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("the token is from another issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("the token's signature is invalid") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        sub = str(claims.get("sub") or "")
        if not sub or len(sub) > 64:
            raise AuthError("the token has no usable subject")
        return Identity(sub, f"owner:{sub}", "supabase")
