"""Checks on an uploaded photo that need no decoding, and metadata stripping.

``probe_photo`` reads the format and the declared size from the file's header (Pillow parses
only the header until ``load()``), so an oversized or bomb-like image is refused in
microseconds, before it takes a decode slot. ``strip_metadata`` removes EXIF (GPS, camera,
times), XMP, IPTC and text chunks from JPEG, PNG and WebP files without re-encoding the
pixels; only the EXIF orientation survives (as a minimal EXIF block) so the photo still
displays upright. Other formats are re-saved by Pillow (lossless for BMP/TIFF).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

from PIL import Image

from glimpse3d.api.errors import ApiError
from glimpse3d.domain import PILLOW_IMAGE_FORMATS
from glimpse3d.pipeline.preprocess import MAX_SIDE

ORIENTATION_TAG = 0x0112
#: The largest declared image accepted: both sides at most ``MAX_SIDE``.
MAX_DECLARED_PIXELS = MAX_SIDE * MAX_SIDE
Image.MAX_IMAGE_PIXELS = MAX_DECLARED_PIXELS  # Pillow's own bomb guard at the same limit



def probe_photo(data: bytes) -> tuple[str, int, int]:
    """(Pillow format, width, height) from the header; ApiError 422 when the declared size
    is over ``MAX_SIDE`` on a side, 415 when the header is unreadable."""
    too_big = ApiError(
        422, f"the image is larger than {MAX_SIDE}x{MAX_SIDE} pixels (or a decompression "
        f"bomb); upload a photo of at most {MAX_SIDE} px on its long side")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (w, h) = str(img.format or ""), img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_big from None
    except Exception:  # noqa: BLE001 - any header Pillow cannot read
        raise ApiError(415, "the file is not a readable image; upload a PNG, JPEG or WebP "
                       "photo") from None
    if max(w, h) > MAX_SIDE:
        raise too_big
    if fmt not in PILLOW_IMAGE_FORMATS:
        raise ApiError(415, f"unsupported image type {fmt or 'unknown'}; send a PNG, JPEG or "
                       "WebP photo")
    return fmt, w, h


def _orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.getexif().get(ORIENTATION_TAG, 1) or 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF: treat as upright
        return 1


def _minimal_exif(orientation: int) -> bytes:
    """``Exif\\0\\0`` + a TIFF block holding only the orientation tag."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return exif.tobytes()


_JPEG_KEEP_APPS = {0xE0, 0xEE}  # JFIF, Adobe (colour transform)


def _strip_jpeg(data: bytes, orientation: int) -> bytes:
    out = bytearray(b"\xff\xd8")
    i = 2
    inserted = orientation == 1
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("bad JPEG marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan: the rest is image data
            if not inserted:
                out += _app1(orientation)
            out += data[i:]
            return bytes(out)
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        segment = data[i : i + 2 + length]
        is_app = 0xE0 <= marker <= 0xEF
        keep = (not is_app and marker != 0xFE) or marker in _JPEG_KEEP_APPS or (
            marker == 0xE2 and segment[4:16] == b"ICC_PROFILE\x00")
        if keep:
            out += segment
            if marker == 0xE0 and not inserted:
                out += _app1(orientation)
                inserted = True
        i += 2 + length
    raise ValueError("truncated JPEG")


def _app1(orientation: int) -> bytes:
    payload = _minimal_exif(orientation)
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


_PNG_DROP = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _strip_png(data: bytes, orientation: int) -> bytes:
    out = bytearray(data[:8])
    i = 8
    inserted = orientation == 1
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind = data[i + 4 : i + 8]
        chunk = data[i : i + 12 + length]
        if kind == b"IDAT" and not inserted:
            out += _png_chunk(b"eXIf", _minimal_exif(orientation)[6:])
            inserted = True
        if kind not in _PNG_DROP:
            out += chunk
        i += 12 + length
        if kind == b"IEND":
            return bytes(out)
    raise ValueError("truncated PNG")


def _strip_webp(data: bytes, orientation: int) -> bytes:
    chunks: list[tuple[bytes, bytes]] = []
    i = 12
    while i + 8 <= len(data):
        kind = data[i : i + 4]
        (length,) = struct.unpack("<I", data[i + 4 : i + 8])
        body = data[i + 8 : i + 8 + length]
        if kind not in (b"EXIF", b"XMP "):
            chunks.append((kind, body))
        i += 8 + length + (length & 1)
    if orientation != 1 and chunks and chunks[0][0] == b"VP8X":
        chunks.append((b"EXIF", _minimal_exif(orientation)[6:]))
    if chunks and chunks[0][0] == b"VP8X":
        flags = chunks[0][1][0] & ~0x0C  # clear the EXIF and XMP bits
        if orientation != 1:
            flags |= 0x08
        chunks[0] = (b"VP8X", bytes([flags]) + chunks[0][1][1:])
    body = b"WEBP" + b"".join(
        k + struct.pack("<I", len(b)) + b + (b"\x00" if len(b) & 1 else b"") for k, b in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _resave(data: bytes, fmt: str) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        buf = io.BytesIO()
        img.save(buf, fmt)
    return buf.getvalue()


def strip_metadata(data: bytes, fmt: str) -> bytes:
    """``data`` without EXIF/XMP/IPTC/text metadata (the orientation kept); ``fmt`` is
    Pillow's name of the format. Unparseable containers are returned unchanged (the decoder
    refuses them later)."""
    orientation = _orientation(data)
    orientation = orientation if 1 <= orientation <= 8 else 1
    try:
        if fmt in ("JPEG", "MPO"):
            return _strip_jpeg(data, orientation)
        if fmt == "PNG":
            return _strip_png(data, orientation)
        if fmt == "WEBP":
            return _strip_webp(data, orientation)
        if fmt in ("TIFF", "BMP"):
            return _resave(data, fmt)
    except (ValueError, struct.error, OSError):
        return data
    return data
