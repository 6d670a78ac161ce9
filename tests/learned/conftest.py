"""Fixtures for the learned-backend tests: offline hub, one torch thread, tiny checkpoints.

Tiny checkpoints are built once per session into a temp directory (``tiny_dirs``) and
each test loads them through the backend's own ``from_pretrained`` path.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# without the ``models`` extra there is nothing to test here (cheap check: no import)
if any(importlib.util.find_spec(m) is None for m in ("diffusers", "transformers", "safetensors")):
    collect_ignore_glob = ["test_*.py"]

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


@pytest.fixture(autouse=True)
def _offline_single_thread(monkeypatch: pytest.MonkeyPatch):
    """No hub access; one intra-op thread (tiny models are ~100x slower when two busy
    cores are oversubscribed); a clean model cache per test."""
    from glimpse3d.learned.common import clear_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    clear_cache()
    yield
    clear_cache()
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


def _build(root: Path, name: str) -> Path:
    from tests.learned import tiny

    target = root / name
    if not target.exists():
        torch.set_num_threads(1)
        getattr(tiny, f"tiny_{name}")(target)
    return target


@pytest.fixture(scope="session")
def tiny_dir(tiny_root: Path):
    """``tiny_dir("dpt")`` -> a saved tiny checkpoint directory (built once per session)."""
    return lambda name: _build(tiny_root, name)


@pytest.fixture
def object_rgba() -> np.ndarray:
    """A 64x64 straight-alpha RGBA image: a shaded orange disc on transparency."""
    h = w = 64
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - 31.5, yy - 31.5)
    alpha = np.clip(20.0 - r, 0.0, 1.0)
    shade = np.clip(1.0 - r / 30.0, 0.2, 1.0)
    rgb = np.stack([shade, 0.55 * shade, 0.15 * shade], -1)
    return np.concatenate([rgb, alpha[..., None]], -1).astype(np.float32)
