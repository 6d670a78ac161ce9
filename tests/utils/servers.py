"""Real servers for the identity tests: ``glimpse3d serve`` in a subprocess, a JWKS endpoint
(a tiny stdlib HTTP server), RSA keys and Supabase-shaped tokens, loopback clients with a
chosen source address."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from glimpse3d.testing.processes import stop_process
from tests.utils.common import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = "authenticated"


def client(base: str, source: str = "127.0.0.1", token: str | None = None,
           **kwargs: Any) -> httpx.Client:
    """An HTTP client whose connections come from loopback address ``source``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=base, transport=transport, headers=headers, timeout=60,
                        **kwargs)


@contextmanager
def serve_process(env: dict[str, str], host: str = "127.0.0.1") -> Iterator[tuple[str, int]]:
    """``glimpse3d serve`` as a child process (its own interpreter); yields (base URL, pid)."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "glimpse3d.cli", "serve", "--host", host, "--port", str(port)],
        env=full_env, cwd=env.get("GLIMPSE3D_DATA_DIR", str(REPO_ROOT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"glimpse3d serve exited: {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("glimpse3d serve did not start in 90 s")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        stop_process(proc, 30)


def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


@contextmanager
def jwks_server(keys: list[dict[str, Any]], users: dict[str, tuple[str, str]] | None = None,
                sign: Callable[[str], str] | None = None, anon_key: str = "anon") -> Iterator[str]:
    """A stand-in for Supabase Auth on loopback: ``{"keys": keys}`` at
    ``/auth/v1/.well-known/jwks.json`` and, with ``users`` (email -> (password, user id)) and
    ``sign`` (user id -> access token), the password grant of ``POST /auth/v1/token``
    (requires the ``apikey`` header; CORS open, as Supabase's is). Yields the base URL
    (what ``GLIMPSE3D_SUPABASE_URL`` would be)."""
    body = json.dumps({"keys": keys}).encode()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/auth/v1/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self) -> None:  # noqa: N802 - CORS preflight
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "POST")
            self.send_header("Access-Control-Allow-Headers", "content-type, apikey, authorization")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.startswith("/auth/v1/token?grant_type=password") or not users \
                    or sign is None:
                self._reply(404, {"msg": "not found"})
            elif self.headers.get("apikey") != anon_key:
                self._reply(401, {"message": "Invalid API key"})
            elif users.get(form.get("email", ""), ("", ""))[0] != form.get("password") \
                    or not form.get("password"):
                self._reply(400, {"error": "invalid_grant",
                                  "error_description": "Invalid login credentials"})
            else:
                sub = users[form["email"]][1]
                self._reply(200, {"access_token": sign(sub), "token_type": "bearer",
                                  "expires_in": 3600, "refresh_token": "r-" + sub[:8],
                                  "user": {"id": sub, "email": form["email"]}})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def supabase_token(sub: str, key: Any, *, alg: str = "RS256", kid: str | None = "k1",
                   issuer: str | None = None, audience: str = AUDIENCE,
                   expires_in: float = 3600) -> str:
    """An access token shaped like Supabase Auth's (role authenticated, email, session)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub, "aud": audience, "role": "authenticated", "email": f"{sub[:8]}@example.com",
        "iat": now, "exp": int(now + expires_in), "session_id": "s-" + sub[:8],
    }
    if issuer:
        claims["iss"] = issuer
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)
