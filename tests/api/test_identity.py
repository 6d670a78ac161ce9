"""Identity and ownership over REAL servers (uvicorn on loopback, two source addresses):
in ``api_key`` and ``supabase`` mode client B sees, downloads and changes none of client A's
projects (404, like a missing one), bad credentials answer 401, file links are signed; in
``none`` mode (one local identity) the server binds loopback only."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.utils.api import live_server
from tests.utils.common import disc_photo
from tests.utils.servers import (
    REPO_ROOT,
    client,
    jwk_of,
    jwks_server,
    rsa_private_key,
    supabase_token,
)
from tests.utils.settings import FAST


def gps_jpeg() -> bytes:
    """A JPEG photo whose EXIF carries a camera make, GPS coordinates and orientation 1."""
    img = Image.open(io.BytesIO(disc_photo(512, "JPEG")))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 1.0)})
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), quality=92)
    return buf.getvalue()


def _others_routes(pid: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/v1/status/{pid}"),
        ("GET", f"/api/v1/projects/{pid}/events"),
        ("GET", f"/api/v1/export/{pid}?format=ply"),
        ("POST", f"/api/v1/generate/{pid}"),
        ("POST", f"/api/v1/refine/{pid}"),
        ("POST", f"/api/v1/run/{pid}"),
        ("POST", f"/api/v1/projects/{pid}/cancel"),
        ("DELETE", f"/api/v1/projects/{pid}"),
    ]


def two_identity_session(base: str, token_a: str, token_b: str, ctx: Any) -> str:
    """A uploads; B (another source address, another identity) can do nothing with it."""
    photo = gps_jpeg()
    with client(base, "127.0.0.1", token_a) as a, client(base, "127.0.0.2", token_b) as b:
        r = a.post("/api/v1/upload", files={"file": ("holiday.jpg", photo, "image/jpeg")})
        assert r.status_code == 201, r.text
        pid = r.json()["project_id"]
        assert [p["id"] for p in a.get("/api/v1/projects").json()["items"]] == [pid]
        status = a.get(f"/api/v1/status/{pid}").json()
        original_url = status["project"]["original_url"]
        # the stored original keeps its format; its link is signed and needs no header
        assert original_url.split("?")[0].endswith("/original.jpg")
        raw = httpx.get(base + original_url)
        assert raw.status_code == 200 and raw.headers["content-type"] == "image/jpeg"
        assert raw.headers["x-content-type-options"] == "nosniff"
        stored = Image.open(io.BytesIO(raw.content))
        assert stored.getexif().get_ifd(0x8825) == {} and 0x010F not in stored.getexif()
        assert raw.content != photo and len(raw.content) < len(photo)
        tampered = original_url[:-4] + ("0000" if not original_url.endswith("0000") else "1111")
        assert httpx.get(base + tampered).status_code == 403
        assert httpx.get(base + original_url.split("?")[0]).status_code == 403
        # B: an empty list, and 404 on every route of A's project
        listing = b.get("/api/v1/projects").json()
        assert listing["items"] == [] and listing["total"] == 0
        for method, path in _others_routes(pid):
            r = b.request(method, path)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["detail"] == f"project {pid} not found", r.text
        # no credentials at all: 401 with a Bearer challenge, on every project route
        with client(base, "127.0.0.2") as anonymous:
            for method, path in [("GET", "/api/v1/projects"), ("POST", "/api/v1/upload"),
                                 *_others_routes(pid)]:
                r = anonymous.request(method, path)
                assert r.status_code == 401, (method, path, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
        # A's project is untouched and A can use it
        row = ctx.repo.get_project(pid)
        assert row["deleted_at"] is None and row["job"] is None
        with a.stream("GET", f"/api/v1/projects/{pid}/events") as stream:
            assert stream.status_code == 200
        # EventSource cannot send headers: the token may come as ?access_token=
        with httpx.Client(base_url=base, timeout=30) as plain, plain.stream(
                "GET", f"/api/v1/projects/{pid}/events", params={"access_token": token_a}) as s:
            assert s.status_code == 200
        assert plain_status(base, f"/api/v1/projects/{pid}/events?access_token={token_b}") == 404
        assert a.post(f"/api/v1/generate/{pid}").status_code == 202
        assert ctx.repo.get_project(pid)["job_requester"] is not None
        assert a.post(f"/api/v1/projects/{pid}/cancel").status_code == 202
        assert a.delete(f"/api/v1/projects/{pid}").status_code == 204
        assert a.get(f"/api/v1/status/{pid}").status_code == 404
    return pid


def plain_status(base: str, path: str) -> int:
    return httpx.get(base + path, timeout=30).status_code


@pytest.fixture
def ident_settings(make_settings):
    def make(**overrides: Any) -> Any:
        return make_settings(**{**FAST, **overrides})

    return make


def test_api_key_mode_two_identities(ident_settings, tmp_path) -> None:
    from glimpse3d.api.app import create_app
    from glimpse3d.auth.keys import create_key

    settings = ident_settings(auth="api_key")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GLIMPSE3D_DATA_DIR": str(tmp_path)}
    # a real `glimpse3d keys create`: the key alone on the last line
    out = subprocess.run([sys.executable, "-m", "glimpse3d.cli", "keys", "create", "alice",
                          "--name", "laptop"], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    key_a = out.strip().splitlines()[-1]
    assert key_a.startswith("g3d_") and len(key_a) > 40 and " " not in key_a
    app = create_app(settings, start_worker=False)
    ctx = app.state.ctx
    row_b, key_b = create_key(ctx.repo, "bob")
    listing = subprocess.run([sys.executable, "-m", "glimpse3d.cli", "keys", "list"], env=env,
                             capture_output=True, text=True, timeout=120, check=True).stdout
    assert "owner=alice" in listing and "owner=bob" in listing and key_a not in listing
    try:
        with live_server(app) as base:
            pid = two_identity_session(base, key_a, key_b, ctx)
            assert ctx.repo.table_counts(pid)["projects"] == 0
            with client(base, token=key_a) as a:
                a.post("/api/v1/upload", files={"file": ("x.png", disc_photo(), "image/png")})
                mine = a.get("/api/v1/projects").json()["items"]
                assert [ctx.repo.get_project(p["id"])["owner_id"] for p in mine] == ["alice"]
            for bad in ("g3d_" + "x" * 43, "not-a-key", key_a + "x"):
                assert plain_status_with(base, bad) == 401
            # revoke B's key (by its prefix, as `keys list` shows it): 401 from then on
            subprocess.run([sys.executable, "-m", "glimpse3d.cli", "keys", "revoke",
                            row_b["prefix"]], env=env, check=True, capture_output=True,
                           timeout=120)
            with client(base, "127.0.0.2", key_b) as b:
                r = b.get("/api/v1/projects")
                assert r.status_code == 401 and "revoked" in r.json()["detail"]
            again = subprocess.run([sys.executable, "-m", "glimpse3d.cli", "keys", "revoke",
                                    row_b["prefix"]], env=env, capture_output=True, text=True,
                                   timeout=120)
            assert again.returncode == 2 and "no active API key" in again.stderr
    finally:
        ctx.repo.close()


def plain_status_with(base: str, token: str) -> int:
    with client(base, token=token) as c:
        return c.get("/api/v1/projects").status_code


def test_supabase_mode_two_identities_and_bad_tokens(ident_settings) -> None:
    from glimpse3d.api.app import create_app

    signing, impostor = rsa_private_key(), rsa_private_key()
    secret = "super-secret-jwt-key-of-at-least-32-characters"
    user_a, user_b = str(uuid.uuid4()), str(uuid.uuid4())
    with jwks_server([jwk_of(signing, "k1")]) as supabase_url:
        issuer = f"{supabase_url}/auth/v1"
        settings = ident_settings(auth="supabase", supabase_url=supabase_url,
                                  supabase_jwt_secret=secret)
        app = create_app(settings, start_worker=False)
        ctx = app.state.ctx
        token_a = supabase_token(user_a, signing, issuer=issuer)  # RS256 via the JWKS
        token_b = supabase_token(user_b, secret, alg="HS256", kid=None, issuer=issuer)
        try:
            with live_server(app) as base:
                two_identity_session(base, token_a, token_b, ctx)
                bad = {
                    "expired": supabase_token(user_a, signing, issuer=issuer, expires_in=-120),
                    "wrongly signed": supabase_token(user_a, impostor, issuer=issuer),
                    "wrong audience": supabase_token(user_a, signing, issuer=issuer,
                                                     audience="anon"),
                    "wrong HS256 secret": supabase_token(user_a, "x" * 40, alg="HS256",
                                                         kid=None, issuer=issuer),
                    "unknown kid": supabase_token(user_a, signing, kid="k9", issuer=issuer),
                    "wrong issuer": supabase_token(user_a, signing, issuer="https://evil/auth/v1"),
                    "unsigned": jwt_none(user_a, issuer),
                    "garbage": "abc.def.ghi",
                }
                details = {}
                for what, token in bad.items():
                    with client(base, token=token) as c:
                        r = c.get("/api/v1/projects")
                    assert r.status_code == 401, (what, r.text)
                    details[what] = r.json()["detail"]
                assert "expired" in details["expired"]
                assert "audience" in details["wrong audience"]
                assert "signature" in details["wrongly signed"]
                with client(base, token=token_a) as a:
                    r = a.post("/api/v1/upload",
                               files={"file": ("x.png", disc_photo(), "image/png")})
                    assert ctx.repo.get_project(r.json()["project_id"])["owner_id"] == user_a
        finally:
            ctx.repo.close()


def jwt_none(sub: str, issuer: str) -> str:
    import jwt

    return jwt.encode({"sub": sub, "aud": "authenticated", "iss": issuer, "exp": 2**31},
                      None, algorithm="none")


def test_none_mode_serves_loopback_only(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GLIMPSE3D_DATA_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "glimpse3d.cli", "serve", "--host", "0.0.0.0",
                        "--port", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "without authentication" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "glimpse3d.db").exists()  # refused before opening anything


def test_none_mode_projects_belong_to_the_local_owner(ident_settings) -> None:
    from glimpse3d.api.app import create_app
    from glimpse3d.domain import LOCAL_OWNER

    app = create_app(ident_settings(), start_worker=False)
    ctx = app.state.ctx
    try:
        with live_server(app) as base, client(base, "127.0.0.1") as a, \
                client(base, "127.0.0.2") as b:
            pid = a.post("/api/v1/upload",
                         files={"file": ("x.png", disc_photo(), "image/png")}).json()["project_id"]
            assert ctx.repo.get_project(pid)["owner_id"] == LOCAL_OWNER
            # one identity in this mode: every local client works on the same projects
            assert [p["id"] for p in b.get("/api/v1/projects").json()["items"]] == [pid]
    finally:
        ctx.repo.close()
