"""Response headers for every answer: ``X-Content-Type-Options: nosniff``, no framing, no
referrer (signed links stay out of other sites' logs), and a Content-Security-Policy on the
workspace's HTML pages (not on ``/docs``, whose Swagger UI loads from a CDN).

The CSP allows only this origin, plus the object store's origin (S3 presigned images and
models) and the Supabase project (sign-in) when configured; the page's inline import map is
allowed by its hash; ``'wasm-unsafe-eval'`` and ``blob:`` workers are what the splat viewer
needs.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from glimpse3d.config import Settings

BASE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
NO_CSP_PREFIXES = ("/docs", "/redoc")


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _inline_script_hashes() -> list[str]:
    try:
        from glimpse3d.web import STATIC_DIR
    except ImportError:
        return []
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    out = []
    for body in re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, re.S):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        out.append(f"'sha256-{digest}'")
    return out


def content_security_policy(settings: Settings) -> str:
    """The workspace's CSP for ``settings`` (object store and Supabase origins added)."""
    extra = []
    storage = settings.resolved_storage_url
    if storage.startswith("s3://"):
        extra.append(_origin(settings.s3_endpoint_url) or "https://*.amazonaws.com")
    supabase = _origin(settings.supabase_url)
    if supabase:
        extra.append(supabase)
    others = " ".join(e for e in extra if e)
    scripts = " ".join(["'self'", "'wasm-unsafe-eval'", *_inline_script_hashes()])
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        "style-src 'self' 'unsafe-inline'",
        f"img-src 'self' data: blob: {others}".strip(),
        f"media-src 'self' blob: {others}".strip(),
        f"connect-src 'self' {others}".strip(),
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ])


class SecurityHeadersMiddleware:
    """Pure ASGI middleware (works with streaming responses)."""

    def __init__(self, app: Any, csp: str) -> None:
        self.app = app
        self.csp = csp.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in BASE_HEADERS if k not in names]
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html") and not path.startswith(NO_CSP_PREFIXES):
                    headers.append((b"content-security-policy", self.csp))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
