"""Both storage backends (local directory, S3 on a real moto server) against one contract."""

from __future__ import annotations

import io
import os
import urllib.request

import pytest

from glimpse3d.storage import BUCKETS, InvalidKey, Storage, StorageError, keys
from glimpse3d.storage.base import DEPTH, MODELS, MULTIVIEW, UPLOADS
from glimpse3d.storage.local import LocalStorage


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        s = LocalStorage(tmp_path / "store")
        s.ensure_buckets()
        return s
    return request.getfixturevalue("s3_storage_factory")()


def test_protocol(storage):
    assert isinstance(storage, Storage)
    storage.check()


def test_put_get_roundtrip(storage, tmp_path):
    pid = "p1"
    data = os.urandom(70_000)
    assert storage.put_bytes(MULTIVIEW, keys.view(pid, 3), data) == len(data)
    assert storage.get_bytes(MULTIVIEW, keys.view(pid, 3)) == data
    assert storage.exists(MULTIVIEW, keys.view(pid, 3))
    assert not storage.exists(MULTIVIEW, keys.view(pid, 4))
    assert storage.size(MULTIVIEW, keys.view(pid, 3)) == len(data)
    # overwrite is idempotent
    assert storage.put_bytes(MULTIVIEW, keys.view(pid, 3), b"x") == 1
    assert storage.get_bytes(MULTIVIEW, keys.view(pid, 3)) == b"x"
    # file in, file out
    src = tmp_path / "model.ply"
    src.write_bytes(data)
    assert storage.put_file(MODELS, keys.model(pid, 0), src) == len(data)
    out = storage.download_to(MODELS, keys.model(pid, 0), tmp_path / "dl" / "v0.ply")
    assert out.read_bytes() == data
    with pytest.raises(FileNotFoundError):
        storage.get_bytes(MODELS, keys.model(pid, 9))
    with pytest.raises(FileNotFoundError):
        storage.size(MODELS, keys.model(pid, 9))
    with pytest.raises(FileNotFoundError):
        storage.download_to(MODELS, keys.model(pid, 9), tmp_path / "x")


def test_stream_upload(storage):
    big = os.urandom(9 * 1024 * 1024 + 123)  # above the S3 multipart threshold

    class OneWay(io.RawIOBase):  # a non-seekable stream, like an HTTP body
        def __init__(self, data: bytes) -> None:
            self._buf = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            return self._buf.read(n)

    assert storage.put_stream(UPLOADS, keys.original("p2", "png"), OneWay(big)) == len(big)
    assert storage.get_bytes(UPLOADS, keys.original("p2", "png")) == big
    assert storage.content_type(UPLOADS, keys.original("p2", "png")) == "image/png"
    storage.put_bytes(MODELS, keys.export("p2", 1, "glb"), b"glTF")
    assert storage.content_type(MODELS, keys.export("p2", 1, "glb")) == "model/gltf-binary"


def test_list_and_delete_project(storage):
    for pid in ("aa", "ab"):
        for k in range(3):
            storage.put_bytes(MULTIVIEW, keys.view(pid, k), b"v")
            storage.put_bytes(DEPTH, keys.depth(pid, k), b"d")
        storage.put_bytes(MODELS, keys.model(pid, 0), b"m")
    assert storage.list(MULTIVIEW, "aa/") == [f"aa/views/view_{k:02d}.png" for k in range(3)]
    assert storage.list(MULTIVIEW, "aa/views/view_0") == [
        f"aa/views/view_{k:02d}.png" for k in range(3)
    ]
    assert storage.list(MULTIVIEW, "a") == sorted(
        f"{p}/views/view_{k:02d}.png" for p in ("aa", "ab") for k in range(3)
    )
    assert storage.list(MULTIVIEW, "zz/") == []
    assert storage.delete_prefix(DEPTH, "ab/") == 3
    assert storage.list(DEPTH) == [keys.depth("aa", k) for k in range(3)]
    assert storage.delete_project("aa") == 7
    for bucket in BUCKETS:
        assert not any(k.startswith("aa/") for k in storage.list(bucket))
    assert storage.list(MULTIVIEW) == [f"ab/views/view_{k:02d}.png" for k in range(3)]
    assert storage.delete_project("aa") == 0
    storage.delete(MODELS, keys.model("ab", 0))
    storage.delete(MODELS, keys.model("ab", 0))  # absent is fine
    assert not storage.exists(MODELS, keys.model("ab", 0))


def test_many_keys_paginate_and_batch_delete(storage):
    n = 61
    if not isinstance(storage, LocalStorage):
        storage.page_size = 25  # 3 list pages, 3 delete batches
    for i in range(n):
        storage.put_bytes(DEPTH, f"big/depth_{i:04d}.npy", b"")
    listed = storage.list(DEPTH, "big/")
    assert (
        len(listed) == n
        and listed[0] == "big/depth_0000.npy"
        and listed[-1] == f"big/depth_{n - 1:04d}.npy"
    )
    assert storage.delete_project("big") == n
    assert storage.list(DEPTH, "big/") == []


def test_traversal_refused(storage):
    for key in ["../escape.png", "p/../../x", "/etc/passwd", "a//b", "", "a\\..\\b", "p/./x"]:
        with pytest.raises(InvalidKey):
            storage.put_bytes(UPLOADS, key, b"x")
        with pytest.raises(InvalidKey):
            storage.get_bytes(UPLOADS, key)
        with pytest.raises(InvalidKey):
            storage.list(UPLOADS, key + "/")
    assert storage.list(UPLOADS) == []


def test_unknown_bucket_and_bad_project_id(storage):
    with pytest.raises(InvalidKey):
        storage.put_bytes("secrets", "a.txt", b"x")
    with pytest.raises(InvalidKey):
        storage.delete_project("..")
    with pytest.raises(InvalidKey):
        storage.delete_project("a/b")


def test_local_layout_atomic_and_url(tmp_path):
    s = LocalStorage(tmp_path / "root")
    s.put_bytes(MULTIVIEW, keys.view("pid", 1), b"png")
    path = tmp_path / "root" / "multiview-images" / "pid" / "views" / "view_01.png"
    assert path.read_bytes() == b"png"
    assert s.local_path(MULTIVIEW, keys.view("pid", 1)) == path.resolve()
    url = s.url(MULTIVIEW, keys.view("pid", 1))
    assert url.startswith("/files/multiview-images/pid/views/view_01.png?exp=")
    assert s.url(MODELS, "pid/exports/v 1.ply").split("?")[0] == "/files/3d-models/pid/exports/v%201.ply"
    query = dict(p.split("=") for p in url.split("?")[1].split("&"))
    assert s.link_valid(MULTIVIEW, keys.view("pid", 1), query["exp"], query["sig"])
    assert not s.link_valid(MULTIVIEW, keys.view("pid", 2), query["exp"], query["sig"])
    assert not s.link_valid(MULTIVIEW, keys.view("pid", 1), str(int(query["exp"]) + 1), query["sig"])
    # the key lives next to the buckets (mode 0600), shared by every process on this root
    assert (tmp_path / "root" / ".link-secret").stat().st_mode & 0o777 == 0o600
    assert LocalStorage(tmp_path / "root").link_valid(MULTIVIEW, keys.view("pid", 1), query["exp"], query["sig"])

    class Boom(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError("network went away")

    with pytest.raises(OSError):
        s.put_stream(MULTIVIEW, keys.view("pid", 1), Boom())
    assert path.read_bytes() == b"png"  # the old object is intact
    assert [p.name for p in path.parent.iterdir()] == ["view_01.png"]  # no temp file left
    # a symlink pointing out of the bucket is refused too
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "root" / "multiview-images" / "link")
    with pytest.raises(InvalidKey):
        s.put_bytes(MULTIVIEW, "link/x.png", b"x")
    # put_file on the object's own path is a no-op
    assert s.put_file(MULTIVIEW, keys.view("pid", 1), path) == 3


def test_local_check_reports_missing_buckets(tmp_path):
    s = LocalStorage(tmp_path / "nothing")
    with pytest.raises(StorageError, match="does not exist"):
        s.check()
    (tmp_path / "nothing").mkdir()
    with pytest.raises(StorageError, match="missing bucket"):
        s.check()
    s.ensure_buckets()
    s.check()


def test_s3_presigned_url_and_layout(s3_storage_factory):
    s = s3_storage_factory()
    s.put_bytes(MODELS, keys.export("pid", 2, "ply"), b"ply-bytes")
    assert s.list(MODELS) == ["pid/exports/v2.ply"]
    assert (
        s.client.head_object(Bucket=f"{s.bucket_prefix}3d-models", Key="pid/exports/v2.ply")[
            "ContentType"
        ]
        == "application/octet-stream"
    )
    url = s.url(MODELS, keys.export("pid", 2, "ply"), expires_seconds=60)
    assert "X-Amz-Signature" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - local moto server
        assert resp.read() == b"ply-bytes"
    assert s.local_path(MODELS, "pid/exports/v2.ply") is None


def test_s3_missing_bucket_and_factory(s3_storage_factory, s3_server, make_settings):
    s = s3_storage_factory(create_buckets=False)
    with pytest.raises(StorageError, match="missing S3 bucket"):
        s.check()
    assert len(s.missing_buckets()) == 6
    from glimpse3d.storage import open_storage, open_storage_url

    settings = make_settings(
        storage_url=f"s3://{s.bucket_prefix}",
        s3_endpoint_url=s3_server,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )
    opened = open_storage(settings, create_buckets=True)
    assert type(opened).__name__ == "S3Storage" and opened.bucket_prefix == s.bucket_prefix
    s.check()  # the factory created them
    local = open_storage(make_settings())
    assert isinstance(local, LocalStorage)
    assert local.root == (make_settings().data_dir / "storage").resolve()
    local.check()
    assert isinstance(open_storage_url(f"file://{settings.data_dir}/x", settings), LocalStorage)
    from glimpse3d.errors import UserError

    with pytest.raises(UserError):
        open_storage_url("gs://bucket", settings)


def test_open_streams(storage):
    data = os.urandom(3 * 1024 * 1024 + 5)
    storage.put_bytes(MODELS, "s/exports/v0.ply", data)
    fh = storage.open(MODELS, "s/exports/v0.ply")
    try:
        chunks = []
        while chunk := fh.read(1024 * 1024):
            chunks.append(chunk)
    finally:
        fh.close()
    assert len(chunks) == 4 and b"".join(chunks) == data
    with pytest.raises(FileNotFoundError):
        storage.open(MODELS, "s/exports/v9.ply")
