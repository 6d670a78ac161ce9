"""The scale-out deployment: PostgreSQL + S3 (moto server). Exports redirect (307) to a
presigned URL, stored-file URLs are presigned, and ``/files`` is not served."""

from __future__ import annotations

import uuid

import httpx
from fastapi.testclient import TestClient

from glimpse3d.splat.formats import model_from_bytes
from tests.utils.api import seed_project
from tests.utils.common import disc_photo
from tests.utils.services import S3_KEY, S3_REGION, S3_SECRET
from tests.utils.settings import FAST


def test_postgres_and_s3(make_settings, pg_url, s3_server, s3_storage_factory) -> None:
    from glimpse3d.api.app import create_app

    prefix = f"t{uuid.uuid4().hex[:8]}-"
    s3_storage_factory(prefix=prefix)  # the buckets exist, as after `glimpse3d doctor`
    settings = make_settings(
        **FAST, database_url=pg_url, storage_url=f"s3://{prefix}", s3_endpoint_url=s3_server,
        s3_region=S3_REGION, s3_access_key_id=S3_KEY, s3_secret_access_key=S3_SECRET,
    )
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as client:
        ctx = app.state.ctx
        assert client.get("/health").json()["checks"] == {
            "database": "ok", "storage": "ok", "queue": "ok"}
        data = disc_photo(256)
        r = client.post("/api/v1/upload", files={"file": ("d.png", data, "image/png")})
        assert r.status_code == 201, r.text
        original = r.json()["original_url"]
        assert original.startswith(s3_server) and "Signature" in original
        assert httpx.get(original).content == data
        pid = seed_project(ctx, model=True)
        r = client.get(f"/api/v1/export/{pid}?format=ply")
        assert r.status_code == 307
        model = model_from_bytes(httpx.get(r.headers["location"]).content, "ply")
        assert model.num_gaussians == 300
        (export,) = client.get(f"/api/v1/status/{pid}").json()["exports"]
        assert export["format"] == "ply" and export["url"].startswith(s3_server)
        assert client.get("/files/project-uploads/x.png").status_code == 404
        assert "/files/{bucket}/{key}" not in client.get("/openapi.json").json()["paths"]
        assert client.delete(f"/api/v1/projects/{pid}").status_code == 204
        assert ctx.storage.list("3d-models", f"{pid}/") == []
    ctx.repo.close()
