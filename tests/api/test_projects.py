"""Project routes and their error paths (no pipeline runs: the job worker is not started,
so queued jobs stay queued; models are written directly through the repository)."""

from __future__ import annotations

import io
import shutil

import pytest

from glimpse3d.splat.formats import model_from_bytes
from glimpse3d.storage.base import MODELS, keys
from tests.utils.api import seed_project

UNKNOWN = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"/api/v1/status/{UNKNOWN}"),
        ("post", f"/api/v1/generate/{UNKNOWN}"),
        ("post", f"/api/v1/refine/{UNKNOWN}"),
        ("get", f"/api/v1/export/{UNKNOWN}?format=ply"),
        ("delete", f"/api/v1/projects/{UNKNOWN}"),
        ("post", f"/api/v1/projects/{UNKNOWN}/cancel"),
        ("get", f"/api/v1/projects/{UNKNOWN}/events"),
    ],
)
def test_unknown_project_is_404(client, method: str, path: str) -> None:
    r = getattr(client, method)(path)
    assert r.status_code == 404
    assert r.json() == {"detail": f"project {UNKNOWN} not found"}


def test_generate_queues_then_409_while_active_then_cancel(client) -> None:
    ctx = client.app.state.ctx
    pid = seed_project(ctx)
    r = client.post(f"/api/v1/generate/{pid}")
    assert r.status_code == 202
    assert r.json()["job"] == {"kind": "generate"}
    assert ctx.repo.get_project(pid)["job"] == {"kind": "generate"}  # recorded before running
    r = client.post(f"/api/v1/generate/{pid}")
    assert r.status_code == 409 and "already queued or running" in r.json()["detail"]
    st = client.get(f"/api/v1/status/{pid}").json()
    assert st["project"]["job_active"] is True and st["project"]["job"]["kind"] == "generate"
    r = client.post(f"/api/v1/projects/{pid}/cancel")
    assert r.status_code == 202
    assert r.json() == {"project_id": pid, "status": "cancelled", "cancelling": False}
    row = ctx.repo.get_project(pid)
    assert row["job"] is None and row["status"] == "cancelled"
    r = client.post(f"/api/v1/projects/{pid}/cancel")
    assert r.status_code == 409 and "no job" in r.json()["detail"]
    # a cancelled project can be generated again
    assert client.post(f"/api/v1/generate/{pid}").status_code == 202


def test_refine_before_v0_is_409_and_generate_after_v0_is_409(client) -> None:
    ctx = client.app.state.ctx
    pid = seed_project(ctx)
    r = client.post(f"/api/v1/refine/{pid}")
    assert r.status_code == 409 and "generate it first" in r.json()["detail"]
    r = client.get(f"/api/v1/export/{pid}?format=ply")
    assert r.status_code == 409
    done = seed_project(ctx, model=True)
    r = client.post(f"/api/v1/generate/{done}")
    assert r.status_code == 409 and "already generated" in r.json()["detail"]


def test_generate_without_processed_image_is_409(client) -> None:
    pid = client.app.state.ctx.repo.create_project("bare")["id"]
    r = client.post(f"/api/v1/generate/{pid}")
    assert r.status_code == 409 and "preprocessed" in r.json()["detail"]


def test_refine_parameters(client) -> None:
    ctx = client.app.state.ctx
    a, b, c = (seed_project(ctx, model=True) for _ in range(3))
    r = client.post(f"/api/v1/refine/{a}")
    assert r.status_code == 202
    assert r.json()["job"] == {"kind": "refine", "iterations": 3, "strength": 0.5}
    r = client.post(f"/api/v1/refine/{b}?iterations=1&strength=high")
    assert r.json()["job"] == {"kind": "refine", "iterations": 1, "strength": 0.75}
    r = client.post(f"/api/v1/refine/{c}", json={"iterations": 10, "strength": "low"})
    assert r.json()["job"] == {"kind": "refine", "iterations": 10, "strength": 0.25}
    for bad in ("iterations=0", "iterations=11", "strength=max", "iterations=x"):
        r = client.post(f"/api/v1/refine/{a}?{bad}")
        assert r.status_code == 422, bad
        assert isinstance(r.json()["detail"], str) and "query" in r.json()["detail"]


def test_active_job_cap_per_client(make_client) -> None:
    client = make_client(max_active_jobs_per_client=2)
    ctx = client.app.state.ctx
    pids = [seed_project(ctx) for _ in range(3)]
    assert [client.post(f"/api/v1/generate/{p}").status_code for p in pids[:2]] == [202, 202]
    r = client.post(f"/api/v1/generate/{pids[2]}")
    assert r.status_code == 429
    assert "2 active job" in r.json()["detail"] and int(r.headers["Retry-After"]) > 0
    client.post(f"/api/v1/projects/{pids[0]}/cancel")
    assert client.post(f"/api/v1/generate/{pids[2]}").status_code == 202


def test_export_streams_file_and_records_history(client) -> None:
    ctx = client.app.state.ctx
    pid = seed_project(ctx, name="Tea pot!", model=True)
    r = client.get(f"/api/v1/export/{pid}?format=splat")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert 'filename="Tea_pot_v0.splat"' in r.headers["content-disposition"]
    assert len(r.content) == 300 * 32  # 32 bytes per gaussian
    r = client.get(f"/api/v1/export/{pid}?format=ply&version=0")
    g = model_from_bytes(r.content, "ply")
    assert g.num_gaussians == 300
    exports = client.get(f"/api/v1/status/{pid}").json()["exports"]
    assert sorted((e["format"], e["model_version"]) for e in exports) == [("ply", 0), ("splat", 0)]
    assert all(client.get(e["url"]).status_code == 200 for e in exports)
    models = client.get(f"/api/v1/status/{pid}").json()["models"]
    assert models[0]["splat_url"].startswith("/files/3d-models/")
    r = client.get(f"/api/v1/export/{pid}?format=ply&version=7")
    assert r.status_code == 404 and "version 7" in r.json()["detail"]
    assert client.get(f"/api/v1/export/{pid}?format=stl").status_code == 422
    assert client.get(f"/api/v1/export/{pid}").status_code == 422


def test_export_glb_loads_in_trimesh(client) -> None:
    import trimesh

    ctx = client.app.state.ctx
    pid = seed_project(ctx, model=True)
    r = client.get(f"/api/v1/export/{pid}?format=glb")
    assert r.status_code == 200 and r.headers["content-type"] == "model/gltf-binary"
    scene = trimesh.load(io.BytesIO(r.content), file_type="glb")
    assert sum(len(g.vertices) for g in scene.geometry.values()) > 0


def test_mesh_exports_with_faces_and_texture(client) -> None:
    import zipfile

    import trimesh

    ctx = client.app.state.ctx
    pid = seed_project(ctx, model=True)
    r = client.get(f"/api/v1/export/{pid}?format=glb&faces=800&texture=128")
    assert r.status_code == 200
    mesh = trimesh.load(io.BytesIO(r.content), file_type="glb", force="mesh")
    assert mesh.visual.kind == "texture" and len(mesh.faces) <= 800
    assert mesh.visual.material.baseColorTexture.size == (128, 128)
    assert f'"project_id":"{pid}"'.encode() in r.content[:4000]
    [row] = ctx.repo.list_exports(pid)
    assert row["format"] == "glb" and row["file_key"].endswith("/v0.f800-t128.glb")
    assert row["file_size_bytes"] == len(r.content)

    r = client.get(f"/api/v1/export/{pid}?format=obj&faces=800&texture=128")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert 'filename="seeded_v0.obj.zip"' in r.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert sorted(n.rsplit(".", 1)[1] for n in names) == ["mtl", "obj", "png"]

    r = client.get(f"/api/v1/export/{pid}?format=usdz&faces=800&texture=0")
    assert r.status_code == 200 and r.headers["content-type"] == "model/vnd.usdz+zip"
    assert r.content[:2] == b"PK"
    rows = {e["format"]: e for e in ctx.repo.list_exports(pid)}
    assert set(rows) == {"glb", "obj", "usdz"} and rows["usdz"]["file_key"].endswith(".f800-vc.usdz")

    # other options replace the row (one per version and format) with a new file
    r = client.get(f"/api/v1/export/{pid}?format=glb&faces=600&texture=128")
    assert len(trimesh.load(io.BytesIO(r.content), file_type="glb", force="mesh").faces) <= 600
    rows = [e for e in ctx.repo.list_exports(pid) if e["format"] == "glb"]
    assert len(rows) == 1 and rows[0]["file_key"].endswith("/v0.f600-t128.glb")

    for bad in ("faces=5", "texture=5000", "texture=10", "scale=-1"):
        r = client.get(f"/api/v1/export/{pid}?format=glb&{bad}")
        assert r.status_code == 422, bad
        assert r.json()["detail"]


def test_list_projects_pagination(client) -> None:
    ctx = client.app.state.ctx
    pids = [seed_project(ctx, name=f"p{i}") for i in range(5)]
    r = client.get("/api/v1/projects?limit=2&offset=0").json()
    assert r["total"] == 5 and r["limit"] == 2 and r["offset"] == 0
    assert [i["name"] for i in r["items"]] == ["p4", "p3"]  # newest first
    r2 = client.get("/api/v1/projects?limit=2&offset=4").json()
    assert [i["id"] for i in r2["items"]] == [pids[0]]
    item = r["items"][0]
    assert item["thumbnail_url"].split("?")[0] == f"/files/processed-images/{pids[4]}/processed.png"
    assert client.get(item["thumbnail_url"]).status_code == 200
    assert item["job_active"] is False  # uploaded, nothing queued yet
    assert client.get("/api/v1/projects?status=completed").json()["total"] == 0
    assert client.get("/api/v1/projects?limit=0").status_code == 422
    assert client.get("/api/v1/projects?limit=101").status_code == 422
    assert client.get("/api/v1/projects?offset=-1").status_code == 422


def test_delete_removes_rows_and_files(client) -> None:
    ctx = client.app.state.ctx
    pid = seed_project(ctx, model=True)
    assert client.get(f"/api/v1/export/{pid}?format=ply").status_code == 200
    root = ctx.storage.local_path(MODELS, keys.model(pid, 0)).parents[3]
    files = [p for p in root.rglob("*") if p.is_file() and pid in str(p)]
    assert len(files) >= 4
    r = client.delete(f"/api/v1/projects/{pid}")
    assert r.status_code == 204 and r.content == b""
    assert [p for p in root.rglob("*") if pid in str(p)] == []
    assert client.get(f"/api/v1/status/{pid}").status_code == 404
    assert client.get(f"/api/v1/projects/{pid}/events").status_code == 404


def test_delete_cancels_a_queued_job_first(client) -> None:
    ctx = client.app.state.ctx
    pid = seed_project(ctx)
    assert client.post(f"/api/v1/generate/{pid}").status_code == 202
    assert client.delete(f"/api/v1/projects/{pid}").status_code == 204
    assert not ctx.queue.is_active(pid)
    assert client.get(f"/api/v1/status/{pid}").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/files/project-uploads/../glimpse3d.db",
        "/files/project-uploads/%2e%2e/%2e%2e/glimpse3d.db",
        "/files/..%2fglimpse3d.db/x",
        "/files/not-a-bucket/x.png",
        "/files/project-uploads/a//b.png",
        "/files/project-uploads/a\\..\\b.png",
        "/files/project-uploads/missing.png",
        "/files/project-uploads/%00.png",
    ],
)
def test_files_route_never_leaves_the_storage_root(client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert "SQLite" not in r.text


def test_health_ok_and_503_naming_the_failing_part(make_client) -> None:
    client = make_client(start_worker=True)
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": "ok", "storage": "ok", "queue": "ok"}
    ctx = client.app.state.ctx
    shutil.rmtree(ctx.storage.local_path(MODELS, "x").parent)
    r = client.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy" and body["detail"].startswith("unhealthy: storage")
    assert body["checks"]["database"] == "ok" and body["checks"]["storage"] == "storage unavailable"
    assert "/" not in r.text  # no paths


def test_health_reports_a_stopped_queue(make_client) -> None:
    # this app's worker is not started
    r = make_client(start_worker=False).get("/health")
    assert r.status_code == 503 and "queue" in r.json()["detail"]


def test_internal_errors_never_leak_a_traceback(client, monkeypatch) -> None:
    ctx = client.app.state.ctx
    pid = seed_project(ctx)

    def boom(project_id: str) -> list:
        raise RuntimeError("secret internals at /srv/app.py line 3")

    monkeypatch.setattr(ctx.repo, "list_views", boom)
    r = client.get(f"/api/v1/status/{pid}")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error; the details are in the server log"}
    assert "secret" not in r.text and "Traceback" not in r.text


def test_cors_allow_list(make_client) -> None:
    c = make_client(cors_origins=["https://app.example.com"])
    ok = c.get("/api/v1/projects", headers={"Origin": "https://app.example.com"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    bad = c.get("/api/v1/projects", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in bad.headers
    pre = c.options("/api/v1/upload", headers={"Origin": "https://app.example.com",
                                               "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200
    plain = make_client()  # empty allow-list: no CORS headers at all
    r = plain.get("/api/v1/projects", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in r.headers


def test_openapi_documents_errors(client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method, codes in [
        ("/api/v1/upload", "post", {"201", "413", "415", "422", "429", "500"}),
        ("/api/v1/generate/{project_id}", "post", {"202", "404", "409", "429"}),
        ("/api/v1/refine/{project_id}", "post", {"202", "404", "409", "422"}),
        ("/api/v1/export/{project_id}", "get", {"200", "307", "404", "409", "422"}),
        ("/api/v1/status/{project_id}", "get", {"200", "404"}),
        ("/api/v1/projects/{project_id}", "delete", {"204", "404", "409"}),
        ("/api/v1/projects/{project_id}/events", "get", {"200", "204", "404"}),
        ("/health", "get", {"200", "503"}),
    ]:
        assert codes <= set(paths[path][method]["responses"]), (path, method)
    upload = paths["/api/v1/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert set(upload["schema"]["properties"]) == {"file", "remove_bg", "name"}
    assert "Retry-After" in paths["/api/v1/upload"]["post"]["responses"]["429"]["headers"]


def test_web_workspace_is_mounted_when_installed(client) -> None:
    pytest.importorskip("glimpse3d.web")
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert str(client.app.state.settings.max_upload_bytes) in r.text
