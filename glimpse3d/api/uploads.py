"""Streaming multipart parsing for ``POST /api/v1/upload`` with the size limit enforced as
bytes arrive, and content sniffing of the photo (the client's content type is ignored).

A request whose ``Content-Length`` already exceeds the limit is refused before any of its
body is read; otherwise the body is fed chunk by chunk to ``python_multipart``'s streaming
parser and the upload is refused with 413 as soon as the file part passes
``max_upload_bytes`` (the rest of the body is never read).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from glimpse3d.api.errors import ApiError
from glimpse3d.domain import IMAGE_FORMATS

#: Room for the multipart envelope and the small text fields (bytes).
FORM_OVERHEAD = 64 * 1024
MAX_FIELD_BYTES = 1024
MAX_PARTS = 8

#: Magic numbers of the photo formats of ``glimpse3d.domain.IMAGE_FORMATS`` (checked on the
#: first bytes of the file).
_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("png", b"\x89PNG\r\n\x1a\n", 0),
    ("jpeg", b"\xff\xd8\xff", 0),
    ("webp", b"WEBP", 8),  # RIFF....WEBP
    ("bmp", b"BM", 0),
    ("tiff", b"II*\x00", 0),
    ("tiff", b"MM\x00*", 0),
)
assert {name for name, _, _ in _SIGNATURES} == set(IMAGE_FORMATS), "a format without a signature"


def sniff_image_format(head: bytes) -> str | None:
    """The image format named by the file's first bytes ('png', 'jpeg', 'webp', ...), or None."""
    for name, magic, offset in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic and (name != "webp" or head[:4] == b"RIFF"):
            return name
    return None


def too_large(limit: int) -> ApiError:
    mb = limit / (1024 * 1024)
    return ApiError(413, f"the file is too large: the limit is {mb:.3g} MB ({limit} bytes)")


@dataclass
class ParsedUpload:
    """The multipart form of an upload: the file's bytes and the text fields."""

    data: bytes = b""
    filename: str = ""
    has_file: bool = False
    fields: dict[str, str] = field(default_factory=dict)


class _FormCollector:
    """Callbacks for ``MultipartParser``: collect one file part and small text fields."""

    def __init__(self, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.result = ParsedUpload()
        self._file = bytearray()
        self._value = bytearray()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._kind = ""  # "file" | "field" | "skip"
        self._name = ""
        self._parts = 0

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise ApiError(422, f"too many form fields (at most {MAX_PARTS})")
        self._headers = {}
        self._value = bytearray()

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_name).decode("latin-1").lower()] = bytes(self._header_value)
        self._header_name = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if self._name == "file" and filename is not None:
            if self.result.has_file:
                raise ApiError(422, "send exactly one file in the field 'file'")
            self._kind = "file"
            self.result.has_file = True
            self.result.filename = filename.decode("utf-8", "replace")
        elif filename is not None:
            self._kind = "skip"  # other files are ignored
        else:
            self._kind = "field"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            if len(self._file) + (end - start) > self.max_file_bytes:
                raise too_large(self.max_file_bytes)
            self._file.extend(data[start:end])
        elif self._kind == "field":
            if len(self._value) + (end - start) > MAX_FIELD_BYTES:
                raise ApiError(422, f"the form field {self._name!r} is too long")
            self._value.extend(data[start:end])

    def on_part_end(self) -> None:
        if self._kind == "field" and self._name:
            self.result.fields[self._name] = self._value.decode("utf-8", "replace")
        elif self._kind == "file":
            self.result.data = bytes(self._file)
            self._file = bytearray()
        self._kind = ""


async def read_upload(request: Request, max_bytes: int) -> ParsedUpload:
    """Parse the multipart body of ``request`` while counting bytes; raises ``ApiError``
    413 past ``max_bytes`` (file) or ``max_bytes + FORM_OVERHEAD`` (whole body), 415 when the
    body is not multipart/form-data, 422 when it is malformed or has no ``file``."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(415, "send the photo as multipart/form-data with the field 'file'")
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
        if declared > max_bytes + FORM_OVERHEAD:
            raise too_large(max_bytes)
    collector = _FormCollector(max_bytes)
    parser = MultipartParser(boundary, collector.callbacks())
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_bytes + FORM_OVERHEAD:
                raise too_large(max_bytes)
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(422, f"malformed multipart body: {exc}") from None
    if not collector.result.has_file:
        raise ApiError(422, "no file: send the photo in the multipart field 'file'")
    return collector.result
