"""``GET /api/v1/auth/config``: how a browser signs in (no credentials needed; nothing
secret: the Supabase anon key is public by design)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from glimpse3d.api.deps import ApiContext, get_ctx

router = APIRouter(tags=["auth"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


class AuthConfig(BaseModel):
    """What the web workspace needs to sign in."""

    mode: Literal["none", "api_key", "supabase"] = Field(
        ..., description="none: no sign-in; api_key: paste a key; supabase: email sign-in.")
    supabase_url: str | None = Field(None, description="The Supabase project (supabase mode).")
    supabase_anon_key: str | None = Field(None, description="Its public anon key.")


@router.get("/auth/config", response_model=AuthConfig, summary="How to sign in")
def auth_config(ctx: Ctx) -> AuthConfig:
    s = ctx.settings
    if s.auth != "supabase":
        return AuthConfig(mode=s.auth)
    return AuthConfig(mode="supabase", supabase_url=(s.supabase_url or "").rstrip("/") or None,
                      supabase_anon_key=s.supabase_anon_key)
