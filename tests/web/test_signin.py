"""The workspace's sign-in (js/auth.js) in a real browser against a real server in
``api_key`` mode: the dialog opens, a wrong key shows the server's reason, the right key
shows that owner's projects only (thumbnails load through signed links), sign-out asks
again. (``none`` mode: the other browser tests run with no dialog at all.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.utils.api import live_server
from tests.utils.common import disc_photo
from tests.web.test_workspace import (  # noqa: F401 - browser_context is a fixture
    CHROMIUM,
    Console,
    browser_context,
    wait_js,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def key_server(make_settings) -> Iterator[dict[str, Any]]:
    from glimpse3d.api.app import create_app
    from glimpse3d.auth.keys import create_key

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium)")
    app = create_app(make_settings(auth="api_key", cleanup_interval_minutes=0),
                     start_worker=False)
    ctx = app.state.ctx
    runner = ctx.runner()
    mine = runner.ingest(disc_photo(), "mine.png", name="Dora's mug", owner_id="dora")
    runner.ingest(disc_photo(), "other.png", name="Eve's secret", owner_id="eve")
    _, key = create_key(ctx.repo, "dora")
    try:
        with live_server(app) as base:
            yield {"url": base, "key": key, "pid": mine["id"]}
    finally:
        ctx.repo.close()


def test_sign_in_with_an_api_key(key_server, browser_context) -> None:  # noqa: F811
    pg = browser_context.new_page()
    pg.set_default_timeout(20_000)
    console = Console(pg)
    try:
        pg.goto(key_server["url"] + "/")
        pg.wait_for_selector("#signin-dialog[open]")
        assert "Eve" not in pg.inner_text("body")
        pg.fill("#signin-dialog input[name=api_key]", "g3d_wrong")
        pg.click("#signin-submit")
        pg.wait_for_selector("#signin-error:not(:empty)")
        assert "API key" in pg.inner_text("#signin-error")
        pg.fill("#signin-dialog input[name=api_key]", key_server["key"])
        pg.click("#signin-submit")
        pg.wait_for_selector("text=Dora's mug")
        assert "Eve's secret" not in pg.inner_text("body")
        assert pg.inner_text("#signin-toggle") == "Sign out"
        wait_js(pg, "() => [...document.querySelectorAll('img.thumb')]"
                    ".some(i => i.complete && i.naturalWidth > 0)")  # through its signed link
        assert pg.evaluate("document.querySelector('#signin-dialog')?.open ?? false") is False
        # the project page: its status and event stream work with the stored key
        pg.goto(f"{key_server['url']}/projects/{key_server['pid']}")
        pg.wait_for_selector("text=Dora's mug")
        pg.click("#signin-toggle")
        pg.wait_for_selector("#signin-dialog[open]")
        unexpected = [e for e in console.errors if "401" not in e]
        assert unexpected == [], console.errors
    finally:
        pg.close()


def test_supabase_email_sign_in(make_settings, browser_context) -> None:  # noqa: F811
    """Supabase mode: the page reads /api/v1/auth/config, signs in with email and password
    against (a loopback stand-in of) Supabase Auth, and the token it gets is accepted."""
    import uuid

    from glimpse3d.api.app import create_app
    from tests.utils.servers import jwk_of, jwks_server, rsa_private_key, supabase_token

    key = rsa_private_key()
    user = str(uuid.uuid4())
    holder: dict[str, str] = {}
    users = {"ann@example.com": ("correct horse", user)}
    with jwks_server([jwk_of(key, "k1")], users=users, anon_key="anon-123",
                     sign=lambda sub: supabase_token(sub, key, issuer=holder["issuer"])) as url:
        holder["issuer"] = f"{url}/auth/v1"
        app = create_app(make_settings(auth="supabase", supabase_url=url,
                                       supabase_anon_key="anon-123",
                                       cleanup_interval_minutes=0), start_worker=False)
        ctx = app.state.ctx
        ctx.runner().ingest(disc_photo(), "a.png", name="Ann's teapot", owner_id=user)
        ctx.runner().ingest(disc_photo(), "b.png", name="Not Ann's", owner_id=str(uuid.uuid4()))
        pg = browser_context.new_page()
        pg.set_default_timeout(20_000)
        try:
            with live_server(app) as base:
                pg.goto(base + "/")
                pg.wait_for_selector("#signin-dialog[open] input[name=email]")
                pg.fill("input[name=email]", "ann@example.com")
                pg.fill("input[name=password]", "wrong")
                pg.click("#signin-submit")
                pg.wait_for_selector("#signin-error:not(:empty)")
                assert "Invalid login credentials" in pg.inner_text("#signin-error")
                pg.fill("input[name=password]", "correct horse")
                pg.click("#signin-submit")
                pg.wait_for_selector("text=Ann's teapot")
                assert "Not Ann's" not in pg.inner_text("body")
        finally:
            pg.close()
            ctx.repo.close()
