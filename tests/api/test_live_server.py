"""Over a REAL uvicorn server on a loopback port: the whole flow, restart/resume, SSE,
early 413 from Content-Length, and a shutdown that does not hang on open streams."""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import trimesh
from PIL import Image

from tests.utils.api import live_server, sample_photo, wait_done
from tests.utils.common import wait_for

pytestmark = pytest.mark.slow


def _sse_collector(base: str, pid: str, out: list[dict], stop: threading.Event) -> None:
    """Read the event stream until it ends (or ``stop``), appending parsed events."""
    current: dict = {}
    with httpx.Client(timeout=httpx.Timeout(5.0, read=None)) as c, c.stream(
            "GET", f"{base}/api/v1/projects/{pid}/events") as r:
        for line in r.iter_lines():
            if stop.is_set():
                return
            if line == "" and "data" in current:
                out.append(current)
                current = {}
            elif line and not line.startswith(":"):
                k, _, v = line.partition(": ")
                current[k] = json.loads(v) if k == "data" else v


def test_end_to_end_with_a_restart_in_the_middle(api_settings) -> None:
    from glimpse3d.api.app import create_app

    settings = api_settings()
    app1 = create_app(settings)
    ctx1 = app1.state.ctx
    with live_server(app1) as base, httpx.Client(base_url=base, timeout=60) as c:
        assert c.get("/health").json()["status"] == "ok"
        r = c.post("/api/v1/upload", files={"file": ("sample.png", sample_photo(), "image/png")})
        assert r.status_code == 201, r.text
        pid = r.json()["project_id"]
        assert c.post(f"/api/v1/generate/{pid}").status_code == 202
        # stop the server while the job is in the middle (views done, reconstruction pending)
        wait_for(lambda: ctx1.repo.get_project(pid)["progress_percentage"] >= 40, 150,
                 "the multiview stage", interval=0.05)
        views_before = {v["view_index"]: v["created_at"] for v in ctx1.repo.list_views(pid)}
    row = ctx1.repo.get_project(pid)
    assert row["job"] is not None and row["status"] not in ("completed", "cancelled"), row
    assert len(views_before) == 16

    app2 = create_app(settings)  # a new process on the same data directory
    with live_server(app2) as base, httpx.Client(base_url=base, timeout=120) as c:
        events: list[dict] = []
        stop = threading.Event()
        reader = threading.Thread(target=_sse_collector, args=(base, pid, events, stop),
                                  daemon=True)
        reader.start()
        st = wait_done(lambda: c.get(f"/api/v1/status/{pid}").json(), 150)
        assert st["project"]["status"] == "completed", st["project"]
        reader.join(10)
        # the resumed job did not redo the views
        assert {v["view_index"]: v["created_at"] for v in app2.state.ctx.repo.list_views(pid)} \
            == views_before
        assert len(st["views"]) == 16 and len(st["depth_maps"]) == 16
        assert [m["version"] for m in st["models"]] == [0]
        assert st["models"][0]["num_gaussians"] > 0
        assert st["progress_percentage"] == 100.0
        view = c.get(st["views"][3]["url"])
        assert view.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(view.content)).size == (64, 64)
        assert np.load(io.BytesIO(c.get(st["depth_maps"][0]["depth_url"]).content)).shape == (64, 64)
        # SSE over the real server: increasing ids, ends with 'end' at 'completed'
        ids = [int(e["id"]) for e in events]
        assert events and ids == sorted(ids) and len(set(ids)) == len(ids)
        assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "completed"
        pcts = [e["data"]["progress_percentage"] for e in events]
        assert pcts == sorted(pcts)

        assert c.post(f"/api/v1/refine/{pid}?iterations=1").status_code == 202
        st = wait_done(lambda: c.get(f"/api/v1/status/{pid}").json(), 150)
        assert st["project"]["status"] == "completed", st["project"]
        assert [m["version"] for m in st["models"]] == [0, 1]
        assert st["models"][1]["parent_version"] == 0
        (it,) = st["iterations"]
        assert it["iteration_number"] == 1 and 0.0 <= it["ssim"] <= 1.0 and it["psnr"] > 0

        r = c.get(f"/api/v1/export/{pid}", params={"format": "glb"})
        assert r.status_code == 200 and r.headers["content-type"] == "model/gltf-binary"
        scene = trimesh.load(io.BytesIO(r.content), file_type="glb")
        assert sum(len(g.faces) for g in scene.geometry.values()) > 0
        exports = c.get(f"/api/v1/status/{pid}").json()["exports"]
        assert ("glb", 1) in {(e["format"], e["model_version"]) for e in exports}


def _read_http_reply(sock: socket.socket) -> str:
    """Read one HTTP response (headers + Content-Length body), however it is segmented."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode()
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def test_content_length_over_limit_gets_413_before_the_body(api_settings) -> None:
    from glimpse3d.api.app import create_app

    with live_server(create_app(api_settings(), start_worker=False)) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(
                b"POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 52428800\r\n\r\n"
            )
            reply = _read_http_reply(s)  # answered without sending one body byte
        assert reply.startswith("HTTP/1.1 413"), reply
        assert "too large" in reply


def test_shutdown_does_not_hang_on_open_event_streams(api_settings) -> None:
    from glimpse3d.api.app import create_app

    app = create_app(api_settings(), start_worker=False)
    pid = app.state.ctx.repo.create_project("idle")["id"]  # no job: its stream never ends
    events: list[dict] = []
    stop = threading.Event()
    with live_server(app) as base:
        readers = [threading.Thread(target=_sse_collector, args=(base, pid, events, stop),
                                    daemon=True) for _ in range(3)]
        for t in readers:
            t.start()
        wait_for(lambda: len(events) >= 3, 10, interval=0.05, what="the streams to open")
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 5  # live_server joined uvicorn within 5 s
    for t in readers:
        t.join(5)
        assert not t.is_alive()
