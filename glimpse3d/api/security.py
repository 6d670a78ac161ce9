"""The one FastAPI security dependency: who is calling (``GLIMPSE3D_AUTH``).

Every project route takes ``Caller`` (an :class:`glimpse3d.auth.Identity`); its ``owner_id``
is written on uploads and filters every read and change, so another owner's project answers
404 like a missing one. Credentials come as ``Authorization: Bearer ...`` (an API key or a
Supabase access token); the event stream also accepts ``?access_token=`` because browsers'
``EventSource`` cannot send headers. Missing or invalid credentials answer 401 with
``WWW-Authenticate: Bearer``; a database that cannot be read answers 503.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from glimpse3d.api.errors import ApiError
from glimpse3d.auth import AuthError, Identity, local_identity

if TYPE_CHECKING:
    from glimpse3d.api.deps import ApiContext

bearer = HTTPBearer(auto_error=False, description="An API key or a Supabase access token.")


def client_address(request: Request) -> str:
    """The peer address (uvicorn rewrites it from X-Forwarded-For only for the proxies in
    ``forwarded_allow_ips``)."""
    return request.client.host if request.client else "unknown"


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, {"WWW-Authenticate": 'Bearer realm="glimpse3d"'})


class Authenticator:
    """Resolves credentials to an :class:`Identity` for the configured mode."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.mode = ctx.settings.auth
        self.verifier = None
        if self.mode == "supabase":
            from glimpse3d.auth.tokens import SupabaseVerifier

            self.verifier = SupabaseVerifier(ctx.settings)

    def identify(self, token: str | None, address: str) -> Identity:
        """Blocking (may read the database or fetch the JWKS): call from a worker thread."""
        if self.mode == "none":
            return local_identity(address)
        if not token:
            raise unauthorized(
                "authentication required: send Authorization: Bearer <API key>"
                if self.mode == "api_key"
                else "authentication required: send Authorization: Bearer <Supabase access token>"
            )
        try:
            if self.mode == "api_key":
                from glimpse3d.auth.keys import identify

                return identify(self.ctx.repo, token)
            assert self.verifier is not None
            return self.verifier.verify(token)
        except AuthError as exc:
            raise unauthorized(str(exc)) from None


async def _identify(request: Request, token: str | None) -> Identity:
    ctx = request.app.state.ctx
    auth: Authenticator = ctx.authenticator
    if auth.mode == "none":
        return local_identity(client_address(request))
    identity = await run_in_threadpool(auth.identify, token, client_address(request))
    request.state.identity = identity
    return identity


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    """The caller, from ``Authorization: Bearer``."""
    return await _identify(request, credentials.credentials if credentials else None)


async def authenticate_stream(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Identity:
    """The caller of an event stream: the header, or ``?access_token=`` (EventSource)."""
    token = credentials.credentials if credentials else request.query_params.get("access_token")
    return await _identify(request, token)


Caller = Annotated[Identity, Depends(authenticate)]
StreamCaller = Annotated[Identity, Depends(authenticate_stream)]
