"""Upload hardening and response headers: the stored original keeps its real format and
loses its EXIF/GPS/text metadata (orientation and pixels kept), the header size check
happens before decoding, ``nosniff`` everywhere, a CSP on the workspace, and Host headers
outside ``allowed_hosts`` refused (DNS rebinding)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from glimpse3d.api.errors import ApiError
from glimpse3d.api.photo import probe_photo, strip_metadata
from tests.utils.common import disc_photo


def _with_metadata(fmt: str, orientation: int = 6) -> bytes:
    img = Image.open(io.BytesIO(disc_photo(400, "PNG"))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SpyCam"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.5)})
    buf = io.BytesIO()
    kwargs: dict = {"exif": exif.tobytes()}
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "taken at home, 12 Elm St")
        kwargs["pnginfo"] = info
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = 90
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_strip_metadata_keeps_pixels_and_orientation(fmt: str) -> None:
    data = _with_metadata(fmt)
    out = strip_metadata(data, fmt)
    before, after = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(out))
    assert after.format == fmt
    exif = after.getexif()
    assert dict(exif) == {0x0112: 6}  # only the orientation survives
    assert exif.get_ifd(0x8825) == {}
    assert "Comment" not in after.info
    assert b"SpyCam" not in out and b"Elm St" not in out
    assert np.array_equal(np.asarray(before.convert("RGB")), np.asarray(after.convert("RGB")))


def test_strip_metadata_without_orientation_adds_none() -> None:
    out = strip_metadata(_with_metadata("JPEG", orientation=1), "JPEG")
    assert dict(Image.open(io.BytesIO(out)).getexif()) == {}


def test_probe_reads_the_header_only() -> None:
    assert probe_photo(disc_photo(300, "PNG")) == ("PNG", 300, 300)
    # a 5000 px side, declared in a header with no pixel data behind it
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 5000, 300, 8, 2, 0, 0, 0)
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")
    with pytest.raises(ApiError) as err:
        probe_photo(header)
    assert err.value.status_code == 422 and "4096" in err.value.detail
    with pytest.raises(ApiError) as err:
        probe_photo(b"\x89PNG\r\n\x1a\nnot really")
    assert err.value.status_code == 415


@pytest.mark.parametrize("fmt,ext,ctype", [("JPEG", "jpg", "image/jpeg"),
                                           ("WEBP", "webp", "image/webp"),
                                           ("PNG", "png", "image/png")])
def test_upload_stores_the_real_format_without_metadata(client, fmt, ext, ctype) -> None:
    data = _with_metadata(fmt, orientation=1)
    r = client.post("/api/v1/upload", files={"file": (f"p.{ext}", data, "application/x-foo")})
    assert r.status_code == 201, r.text
    url = r.json()["original_url"]
    assert url.split("?")[0].endswith(f"/original.{ext}")
    raw = client.get(url)
    assert raw.headers["content-type"] == ctype
    assert b"SpyCam" not in raw.content and Image.open(io.BytesIO(raw.content)).getexif().get_ifd(
        0x8825) == {}


def test_metadata_kept_when_asked(make_client) -> None:
    client = make_client(keep_photo_metadata=True)
    data = _with_metadata("JPEG", orientation=1)
    r = client.post("/api/v1/upload", files={"file": ("p.jpg", data, "image/jpeg")})
    assert client.get(r.json()["original_url"]).content == data


def test_security_headers_and_trusted_hosts(client) -> None:
    api = client.get("/api/v1/projects")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in api.headers
    page = client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'sha256-" in csp  # the page's inline import map, by hash
    assert "content-security-policy" not in client.get("/docs").headers
    evil = client.get("/api/v1/projects", headers={"Host": "attacker.example"})
    assert evil.status_code == 400
    assert client.get("/health", headers={"Host": "localhost:8000"}).status_code in (200, 503)


def test_csp_allows_the_object_store_and_supabase(make_settings) -> None:
    from glimpse3d.api.headers import content_security_policy

    csp = content_security_policy(make_settings(
        storage_url="s3://g3d-", s3_endpoint_url="https://abc.supabase.co/storage/v1/s3",
        supabase_url="https://abc.supabase.co"))
    assert "connect-src 'self' https://abc.supabase.co" in csp
