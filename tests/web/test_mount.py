"""The workspace's static serving (no browser): routes, the import map, offline-only assets."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from glimpse3d.web import STATIC_DIR, mount_web


def _client(max_upload_bytes: int | None = None) -> TestClient:
    app = FastAPI()
    if max_upload_bytes is not None:
        app.state.settings = SimpleNamespace(max_upload_bytes=max_upload_bytes)
    mount_web(app)
    return TestClient(app)


def test_index_and_client_routes_serve_the_page_with_the_upload_limit() -> None:
    client = _client(5 * 1024 * 1024)
    for path in ("/", "/projects", "/projects/0b7c-anything"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert '<script type="importmap">' in r.text
        assert 'content="5242880"' in r.text
    assert 'content="10485760"' in _client().get("/").text  # default 10 MB
    assert client.get("/favicon.ico").headers["content-type"].startswith("image/svg")
    assert client.get("/static/nope.js").status_code == 404


def test_import_map_targets_exist_and_nothing_comes_from_a_cdn() -> None:
    client = _client()
    html = client.get("/").text
    imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1))["imports"]
    assert set(imports) == {"three", "three/addons/", "@sparkjsdev/spark"}
    for spec, url in imports.items():
        assert url.startswith("/static/vendor/"), spec
    for url in (imports["three"], imports["@sparkjsdev/spark"],
                imports["three/addons/"] + "controls/OrbitControls.js",
                imports["three/addons/"] + "postprocessing/Pass.js",
                "/static/vendor/three/three.core.js"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert "javascript" in r.headers["content-type"], url
    for rel in ("vendor/three/LICENSE", "vendor/spark/LICENSE", "vendor/spark/LICENSE.fflate"):
        assert (STATIC_DIR / rel).is_file(), rel
    # our own page code and styles reference no remote host
    own = [STATIC_DIR / "index.html", STATIC_DIR / "css" / "app.css", *sorted((STATIC_DIR / "js").glob("*.js"))]
    for path in own:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name
    # every module our scripts import resolves to a file or an import-map entry
    for path in sorted((STATIC_DIR / "js").glob("*.js")):
        for spec in re.findall(r'(?:from|import)\s*\(?\s*"([^"]+)"', path.read_text(encoding="utf-8")):
            if spec.startswith("./"):
                assert (path.parent / spec).is_file(), (path.name, spec)
            else:
                assert spec in imports or any(spec.startswith(k) for k in imports if k.endswith("/")), spec
