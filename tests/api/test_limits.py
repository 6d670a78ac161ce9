"""Limits keyed on a trusted identity, over REAL servers: forged ``X-Forwarded-For`` headers
and fresh connections do not reset the upload rate or the job cap; the 8000x8000 16-bit
PNG bomb is refused from its header (time and server memory measured on a real
``glimpse3d serve``); decodes, exports and event streams have server-wide caps."""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from typing import Any

import httpx
import pytest

from tests.utils.api import live_server
from tests.utils.common import disc_photo
from tests.utils.servers import client, serve_process
from tests.utils.settings import FAST


def png_bomb(width: int = 8000, height: int = 8000) -> bytes:
    """A valid 16-bit greyscale PNG of ``width`` x ``height`` black pixels (~124 KB
    compressed, 128 MB of raw rows; decoding and converting it took 7.3 s and 1.7 GB)."""
    row = b"\x00" + bytes(width * 2)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _rss_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _not_an_image() -> dict:
    return {"file": ("x.png", b"definitely not an image", "image/png")}


def test_forged_forwarded_for_and_new_connections_hit_the_limit(tmp_path) -> None:
    env = {"GLIMPSE3D_DATA_DIR": str(tmp_path), "GLIMPSE3D_RATE_LIMIT": "3/minute",
           "GLIMPSE3D_CLEANUP_INTERVAL_MINUTES": "0"}
    with serve_process(env) as (base, _pid):
        codes = []
        for i in range(6):  # a forged X-Forwarded-For each time, a new connection each time
            with client(base, "127.0.0.1") as c:
                r = c.post("/api/v1/upload", files=_not_an_image(),
                           headers={"X-Forwarded-For": f"10.0.{i}.{i + 1}"})
                codes.append(r.status_code)
        assert codes == [415, 415, 415, 429, 429, 429], codes
        assert int(r.headers["retry-after"]) >= 1
        # another real address has its own budget in none mode
        with client(base, "127.0.0.2") as other:
            assert other.post("/api/v1/upload", files=_not_an_image()).status_code == 415


def test_bomb_png_refused_from_the_header_fast_and_without_memory(tmp_path) -> None:
    bomb = png_bomb()
    assert len(bomb) < 200_000
    env = {"GLIMPSE3D_DATA_DIR": str(tmp_path), "GLIMPSE3D_CLEANUP_INTERVAL_MINUTES": "0"}
    with serve_process(env) as (base, pid), client(base) as c:
        c.get("/api/v1/projects")  # warm the route
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak-RSS counter (VmHWM)
        before = _rss_kib(pid, "VmRSS")
        timings = []
        for _ in range(3):
            t0 = time.perf_counter()
            r = c.post("/api/v1/upload", files={"file": ("bomb.png", bomb, "image/png")})
            timings.append(time.perf_counter() - t0)
            assert r.status_code == 422, r.text
            assert "4096" in r.json()["detail"]
        growth_mb = (_rss_kib(pid, "VmHWM") - before) / 1024
        print(f"bomb refusal: {[round(t * 1000, 1) for t in timings]} ms, "
              f"peak RSS growth {growth_mb:.1f} MB")
        assert max(timings) < 0.100, timings
        assert growth_mb < 50, growth_mb
        assert c.get("/api/v1/projects").json()["total"] == 0


@pytest.fixture
def lim_settings(make_settings):
    def make(**overrides: Any) -> Any:
        return make_settings(**{**FAST, **overrides})

    return make


def test_job_cap_counts_the_requester_across_addresses_and_keys(lim_settings) -> None:
    from glimpse3d.api.app import create_app
    from glimpse3d.auth.keys import create_key

    app = create_app(lim_settings(auth="api_key", max_active_jobs_per_client=1,
                                  rate_limit="100/minute"), start_worker=False)
    ctx = app.state.ctx
    _, key = create_key(ctx.repo, "carol")
    try:
        with live_server(app) as base:
            with client(base, "127.0.0.1", key) as a:
                pids = [a.post("/api/v1/upload", files={"file": (f"{i}.png", disc_photo(),
                                                                 "image/png")}).json()["project_id"]
                        for i in range(2)]
                assert a.post(f"/api/v1/generate/{pids[0]}").status_code == 202
            # the same identity from another address, a new connection, a forged header
            with client(base, "127.0.0.2", key) as a2:
                r = a2.post(f"/api/v1/generate/{pids[1]}",
                            headers={"X-Forwarded-For": "203.0.113.9"})
                assert r.status_code == 429 and "1 active job" in r.json()["detail"]
            assert ctx.repo.get_project(pids[0])["job_requester"] == "owner:carol"
            assert ctx.repo.count_jobs_of("owner:carol") == 1
    finally:
        ctx.repo.close()


def test_rate_limit_is_per_identity_not_per_connection(lim_settings) -> None:
    from glimpse3d.api.app import create_app
    from glimpse3d.auth.keys import create_key

    app = create_app(lim_settings(auth="api_key", rate_limit="2/minute"), start_worker=False)
    ctx = app.state.ctx
    _, key_a = create_key(ctx.repo, "a")
    _, key_b = create_key(ctx.repo, "b")
    try:
        with live_server(app) as base:
            codes = []
            for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"):
                with client(base, source, key_a) as c:
                    codes.append(c.post("/api/v1/upload", files=_not_an_image()).status_code)
            assert codes == [415, 415, 429, 429]
            with client(base, "127.0.0.1", key_b) as b:  # another identity, same address
                assert b.post("/api/v1/upload", files=_not_an_image()).status_code == 415
    finally:
        ctx.repo.close()


def test_decodes_are_bounded_by_a_semaphore(lim_settings, monkeypatch) -> None:
    from glimpse3d.api.app import create_app
    from glimpse3d.pipeline.runner import PipelineRunner

    app = create_app(lim_settings(max_concurrent_decodes=1, rate_limit="100/minute"),
                     start_worker=False)
    ctx = app.state.ctx
    lock, active, peak = threading.Lock(), [0], [0]
    real_ingest = PipelineRunner.ingest

    def counting_ingest(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return real_ingest(self, *args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(PipelineRunner, "ingest", counting_ingest)
    photo = disc_photo()
    try:
        with live_server(app) as base:
            results: list[int] = []

            def upload() -> None:
                with client(base) as c:
                    results.append(c.post("/api/v1/upload", files={
                        "file": ("p.png", photo, "image/png")}).status_code)

            threads = [threading.Thread(target=upload) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert sorted(results) == [201, 201, 201]
            assert peak[0] == 1
    finally:
        ctx.repo.close()


def test_event_streams_have_a_server_wide_cap(lim_settings) -> None:
    from glimpse3d.api.app import create_app

    app = create_app(lim_settings(max_event_streams=1), start_worker=False)
    ctx = app.state.ctx
    try:
        with live_server(app) as base, client(base) as c:
            pid = c.post("/api/v1/upload", files={"file": ("p.png", disc_photo(), "image/png")}
                         ).json()["project_id"]
            with httpx.Client(base_url=base, timeout=30) as c1, \
                    c1.stream("GET", f"/api/v1/projects/{pid}/events") as first:
                assert first.status_code == 200
                second = c.get(f"/api/v1/projects/{pid}/events")
                assert second.status_code == 503 and second.headers["retry-after"]
            deadline = time.monotonic() + 10
            while ctx.streams.held and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ctx.streams.held == 0  # the slot came back when the client went away
            with c.stream("GET", f"/api/v1/projects/{pid}/events") as again:
                assert again.status_code == 200
    finally:
        ctx.repo.close()


def test_forwarded_for_is_trusted_only_from_configured_proxies(lim_settings) -> None:
    from glimpse3d.api.app import create_app
    from glimpse3d.api.server import make_server

    settings = lim_settings(forwarded_allow_ips=["127.0.0.1"])
    server = make_server("127.0.0.1", 0, app=create_app(settings, start_worker=False))
    assert server.config.proxy_headers and server.config.forwarded_allow_ips == "127.0.0.1"
    default = make_server("127.0.0.1", 0, app=create_app(lim_settings(), start_worker=False))
    assert default.config.proxy_headers is False
    assert os.environ.get("FORWARDED_ALLOW_IPS") is None or not default.config.proxy_headers
