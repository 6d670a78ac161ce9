"""The rows and objects the API makes carry their owner, so Supabase's RLS hands each user
exactly their own: two users upload through a REAL server in ``supabase`` mode (PostgreSQL
with the generated schema, S3 on a moto server), then PostgreSQL is queried as the
``authenticated`` role with ``request.jwt.claims`` set, as PostgREST does."""

from __future__ import annotations

import json
import uuid

import httpx
import psycopg
import pytest

from glimpse3d.db.supabase import generate_supabase_schema
from glimpse3d.storage.base import BUCKETS
from tests.db.test_supabase import STUBS, _dsn
from tests.utils.api import live_server
from tests.utils.common import disc_photo
from tests.utils.servers import client, supabase_token
from tests.utils.settings import FAST

SECRET = "a-supabase-jwt-secret-with-32-chars-or-more"


def test_rows_made_through_the_api_follow_rls(pg_url, s3_server, make_settings) -> None:
    from glimpse3d.api.app import create_app
    from tests.conftest import S3_KEY, S3_SECRET

    with psycopg.connect(_dsn(pg_url), autocommit=True) as conn:
        conn.execute(STUBS)
        conn.execute(generate_supabase_schema())
    prefix = f"r{uuid.uuid4().hex[:8]}-"
    settings = make_settings(
        **FAST, auth="supabase", supabase_jwt_secret=SECRET, database_url=pg_url,
        storage_url=f"s3://{prefix}", s3_endpoint_url=s3_server, s3_access_key_id=S3_KEY,
        s3_secret_access_key=S3_SECRET,
    )
    app = create_app(settings, start_worker=False)
    ctx = app.state.ctx
    ctx.storage.ensure_buckets()
    users = [str(uuid.uuid4()), str(uuid.uuid4())]
    owned: dict[str, list[str]] = {u: [] for u in users}
    try:
        with live_server(app) as base:
            for user, n in zip(users, (2, 1), strict=True):
                token = supabase_token(user, SECRET, alg="HS256", kid=None)
                with client(base, token=token) as c:
                    for i in range(n):
                        r = c.post("/api/v1/upload",
                                   files={"file": (f"{i}.png", disc_photo(), "image/png")})
                        assert r.status_code == 201, r.text
                        owned[user].append(r.json()["project_id"])
                    # the presigned S3 link works without any header
                    thumb = c.get("/api/v1/projects").json()["items"][0]["thumbnail_url"]
                    assert "X-Amz-Signature" in thumb
                    assert httpx.get(thumb, timeout=30).status_code == 200
        # mirror the objects the API stored into storage.objects (what Supabase Storage keeps)
        objects = [(b, k) for b in BUCKETS for k in ctx.storage.list(b)]
        assert objects
        with psycopg.connect(_dsn(pg_url), autocommit=True) as conn:
            for bucket, key in objects:
                conn.execute("insert into storage.objects (bucket_id, name) values (%s, %s)",
                             (bucket, key))
            conn.execute("set role authenticated")
            for user in users:
                claims = json.dumps({"sub": user, "role": "authenticated",
                                     "aud": "authenticated"})
                conn.execute("select set_config('request.jwt.claims', %s, false)", (claims,))
                rows = conn.execute("select id, owner_id from projects order by id").fetchall()
                assert rows == sorted((pid, user) for pid in owned[user])
                names = conn.execute("select name from storage.objects").fetchall()
                expected = sorted(k for _, k in objects if k.split("/")[0] in owned[user])
                assert sorted(n for (n,) in names) == expected and expected
                summary = conn.execute("select id from project_summary").fetchall()
                assert sorted(r[0] for r in summary) == sorted(owned[user])
                checked = user
            assert checked == users[-1]
    finally:
        ctx.repo.close()
    with psycopg.connect(_dsn(pg_url), autocommit=True) as conn:
        conn.execute("set role authenticated")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from api_keys")  # key hashes: no Supabase role reads them
