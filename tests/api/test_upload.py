"""POST /api/v1/upload: success, size limit while streaming, sniffing, validation, rate limit."""

from __future__ import annotations

import asyncio
import io
import subprocess

import numpy as np
import pytest
from PIL import Image

from glimpse3d.pipeline.preprocess import MIN_SIDE
from tests.utils.common import disc_photo, free_port, wait_for

UPLOAD = "/api/v1/upload"


def test_upload_creates_project_with_urls(client) -> None:
    data = disc_photo(256)
    r = client.post(UPLOAD, files={"file": ("disc.png", data, "image/png")},
                    data={"name": "My disc", "remove_bg": "true"})
    assert r.status_code == 201, r.text
    body = r.json()
    pid = body["project_id"]
    assert body["name"] == "My disc"
    assert body["status_url"] == f"/api/v1/status/{pid}"
    assert body["events_url"] == f"/api/v1/projects/{pid}/events"
    # the original round-trips byte for byte through the /files route
    orig = client.get(body["original_url"])
    assert orig.status_code == 200 and orig.content == data
    assert orig.headers["content-type"] == "image/png"
    processed = client.get(body["processed_url"])
    assert processed.headers["content-type"] == "image/png"
    rgba = np.asarray(Image.open(io.BytesIO(processed.content)))
    assert rgba.ndim == 3 and rgba.shape[2] == 4
    alpha = rgba[..., 3] > 127
    assert 0.05 < alpha.mean() < 0.95  # background removed, object kept
    # the status route agrees
    st = client.get(body["status_url"]).json()
    assert st["project"]["id"] == pid and st["project"]["name"] == "My disc"
    assert st["project"]["processed_url"] == body["processed_url"]
    assert st["views"] == [] and st["models"] == [] and st["project"]["job_active"] is False
    row = client.app.state.ctx.repo.get_project(pid)
    assert row["client_id"] == "testclient"


def test_exif_orientation_is_applied(client) -> None:
    # stored pixels: a wide ellipse; EXIF 6 = rotate 90 deg for display -> a tall ellipse
    data = disc_photo(384, fmt="JPEG", exif_orientation=6, ellipse=(0.36, 0.16))
    r = client.post(UPLOAD, files={"file": ("rotated.jpg", data, "image/jpeg")})
    assert r.status_code == 201, r.text
    rgba = np.asarray(Image.open(io.BytesIO(client.get(r.json()["processed_url"]).content)))
    ys, xs = np.nonzero(rgba[..., 3] > 127)
    height, width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    assert height > 1.6 * width, (height, width)


def test_eleven_megabytes_is_413(client) -> None:
    big = b"\x89PNG\r\n\x1a\n" + bytes(11 * 1024 * 1024)
    r = client.post(UPLOAD, files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413
    assert "10 MB" in r.json()["detail"]
    assert client.get("/api/v1/projects").json()["total"] == 0


def _asgi_upload(app, chunks: int, chunk_size: int, content_length: int | None = None):
    """Drive the ASGI app directly with a multipart body of ``chunks`` x ``chunk_size`` bytes
    of file data; returns (status, body, number of body chunks the app pulled)."""
    boundary = "XyZb0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode()
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        if pulled == 1:
            return {"type": "http.request", "body": head, "more_body": True}
        if pulled - 1 <= chunks:
            return {"type": "http.request", "body": b"\x89" * chunk_size, "more_body": True}
        return {"type": "http.request", "body": f"\r\n--{boundary}--\r\n".encode(),
                "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
               (b"host", b"testserver")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": UPLOAD, "raw_path": UPLOAD.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.9", 5000), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, pulled


def test_size_limit_is_enforced_while_streaming(client) -> None:
    """A chunked 50 MB upload is refused after ~10 MB + 1 chunk; the rest is never read."""
    status, body, pulled = _asgi_upload(client.app, chunks=50, chunk_size=1024 * 1024)
    assert status == 413, body
    assert pulled <= 1 + 11, pulled  # header chunk + 10 MB + the chunk that crossed the limit


def test_declared_content_length_over_limit_is_refused_unread(client) -> None:
    status, _body, pulled = _asgi_upload(client.app, chunks=50, chunk_size=1024 * 1024,
                                         content_length=50 * 1024 * 1024)
    assert status == 413
    assert pulled == 0


def test_exactly_the_limit_passes_the_size_check(make_client) -> None:
    c = make_client(max_upload_bytes=4096)
    ok = disc_photo(24)  # small PNG well under 4 KiB: size check passes, validation rejects
    assert len(ok) < 4096
    r = c.post(UPLOAD, files={"file": ("a.png", ok, "image/png")})
    assert r.status_code == 422  # too small an image, not 413
    r = c.post(UPLOAD, files={"file": ("a.png", ok + bytes(4097 - len(ok)), "image/png")})
    assert r.status_code == 413 and "4096 bytes" in r.json()["detail"]


def test_text_file_is_415_whatever_the_client_says(client) -> None:
    r = client.post(UPLOAD, files={"file": ("photo.png", b"hello, I am text\n" * 100, "image/png")})
    assert r.status_code == 415
    assert "not an image" in r.json()["detail"]


def test_not_multipart_is_415(client) -> None:
    r = client.post(UPLOAD, content=disc_photo(64), headers={"content-type": "image/png"})
    assert r.status_code == 415
    assert "multipart/form-data" in r.json()["detail"]


def test_missing_file_field_is_422(client) -> None:
    r = client.post(UPLOAD, files={"photo": ("a.png", disc_photo(64), "image/png")})
    assert r.status_code == 422
    assert "'file'" in r.json()["detail"]


def test_bad_remove_bg_is_422(client) -> None:
    r = client.post(UPLOAD, files={"file": ("a.png", disc_photo(64), "image/png")},
                    data={"remove_bg": "maybe"})
    assert r.status_code == 422 and "remove_bg" in r.json()["detail"]


@pytest.mark.parametrize(
    ("image", "rule_word"),
    [
        (np.full((300, 300, 3), 128, np.uint8), "blank"),
        (np.zeros((20, 20, 3), np.uint8), f"at least {MIN_SIDE}"),
    ],
)
def test_unusable_image_is_422_with_the_rule(client, image, rule_word) -> None:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    r = client.post(UPLOAD, files={"file": ("x.png", buf.getvalue(), "image/png")})
    assert r.status_code == 422, r.text
    assert rule_word in r.json()["detail"].lower()
    assert client.get("/api/v1/projects").json()["total"] == 0  # nothing half-created


def test_rate_limit_429_with_retry_after_on_11th(client) -> None:
    text = {"file": ("a.txt", b"not an image", "text/plain")}
    for _ in range(10):
        assert client.post(UPLOAD, files=text).status_code == 415
    r = client.post(UPLOAD, files=text)
    assert r.status_code == 429
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert "10/minute" in r.json()["detail"]
    # other routes are not limited
    assert client.get("/api/v1/projects").status_code == 200


@pytest.fixture
def redis_url():
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        r = redis.Redis(port=port)
        wait_for(lambda: _ping(r), 10, interval=0.05, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _ping(r) -> bool:
    try:
        return bool(r.ping())
    except Exception:  # noqa: BLE001
        return False


def test_rate_limit_shared_through_redis(make_client, redis_url) -> None:
    """Two API processes (two apps) share one counter in Redis."""
    a = make_client(redis_url=redis_url, rate_limit="3/minute")
    b = make_client(redis_url=redis_url, rate_limit="3/minute")
    text = {"file": ("a.txt", b"text", "text/plain")}
    assert [a.post(UPLOAD, files=text).status_code for _ in range(2)] == [415, 415]
    assert b.post(UPLOAD, files=text).status_code == 415
    r = b.post(UPLOAD, files=text)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert a.post(UPLOAD, files=text).status_code == 429
