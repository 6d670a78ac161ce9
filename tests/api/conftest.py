"""Fixtures: an app over a temporary data directory (SQLite + local storage)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.utils.settings import FAST


@pytest.fixture
def api_settings(make_settings: Callable[..., Any]) -> Callable[..., Any]:
    """``api_settings(**overrides)``: small, fast settings on ``tmp_path``."""

    def make(**overrides: Any) -> Any:
        return make_settings(**{**FAST, **overrides})

    return make


@pytest.fixture
def make_client(api_settings: Callable[..., Any]) -> Iterator[Callable[..., TestClient]]:
    """``make_client(start_worker=False, **settings) -> TestClient`` (lifespan running)."""
    from glimpse3d.api.app import create_app

    stack: list[TestClient] = []

    def make(start_worker: bool = False, **overrides: Any) -> TestClient:
        app = create_app(api_settings(**overrides), start_worker=start_worker)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        return client

    yield make
    for client in reversed(stack):
        client.__exit__(None, None, None)
        client.app.state.ctx.repo.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """An app whose job worker is NOT started: jobs stay queued (no pipeline runs)."""
    return make_client()
