"""Device/dtype choice, weight resolution, the model cache and import laziness."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch

from glimpse3d.errors import UserError
from glimpse3d.learned import common
from glimpse3d.learned.common import MissingWeightsError, cached, resolve_weights
from glimpse3d.pipeline.backends import BackendUnavailable, load_backend


def test_device_and_dtype_on_cpu():
    assert not torch.cuda.is_available()
    dev = common.select_device("auto")
    assert dev.type in {"cpu", "mps"}
    assert common.select_device("cpu") == torch.device("cpu")
    assert common.select_dtype(torch.device("cpu")) == torch.float32
    assert common.select_dtype(torch.device("cuda")) == torch.float16
    with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
        common.select_device("cuda")
    assert common.Placement.from_settings("cpu").dtype == torch.float32


def test_missing_weights_is_user_error_and_unavailable():
    err = MissingWeightsError("x")
    assert isinstance(err, UserError) and isinstance(err, BackendUnavailable)


def test_resolve_unset_names_setting_and_fix():
    with pytest.raises(MissingWeightsError) as info:
        resolve_weights(None, "depth_model", "Intel/dpt-hybrid-midas")
    msg = str(info.value)
    assert "GLIMPSE3D_DEPTH_MODEL=" in msg
    assert "local directory" in msg
    assert "hf download Intel/dpt-hybrid-midas --local-dir" in msg
    assert "huggingface-cli download" in msg


def test_resolve_hub_id_offline_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingWeightsError, match="offline") as info:
        resolve_weights("someone/not-downloaded-model", "feature_model", "facebook/dinov2-small")
    assert "GLIMPSE3D_FEATURE_MODEL" in str(info.value)
    assert "hf download someone/not-downloaded-model" in str(info.value)


def test_resolve_paths(tmp_path):
    with pytest.raises(MissingWeightsError, match="not found"):
        resolve_weights(str(tmp_path / "nope"), "depth_model", "x/y")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingWeightsError, match="not a saved model directory"):
        resolve_weights(str(empty), "depth_model", "x/y")
    (empty / "config.json").write_text("{}")
    assert resolve_weights(str(empty), "depth_model", "x/y") == str(empty.resolve())


def test_cache_one_instance_per_key():
    calls = []

    def loader():
        calls.append(1)
        return object()

    a = cached(int, "m", "cpu", loader)
    b = cached(int, "m", "cpu", loader)
    c = cached(int, "m", "cuda", loader)
    assert a is b and a is not c and len(calls) == 2
    common.clear_cache()
    assert common.cache_size() == 0


def test_cache_is_lru_bounded(monkeypatch):
    monkeypatch.setattr(common, "MAX_CACHED_MODELS", 2)
    a = cached(int, "a", "cpu", object)
    cached(int, "b", "cpu", object)
    assert cached(int, "a", "cpu", object) is a  # touch a: b is now the oldest
    cached(int, "c", "cpu", object)
    assert common.cache_size() == 2
    assert cached(int, "a", "cpu", object) is a
    loads = []
    cached(int, "b", "cpu", lambda: loads.append(1))  # b was evicted: loaded again
    assert loads == [1]


def test_unknown_backend_and_missing_model_via_registry(make_settings):
    with pytest.raises(BackendUnavailable, match="unknown depth backend"):
        load_backend("depth", make_settings(depth_backend="nope"))
    with pytest.raises(MissingWeightsError, match="GLIMPSE3D_DEPTH_MODEL"):
        load_backend("depth", make_settings(depth_backend="transformers", device="cpu"))


def test_modules_import_lazily():
    """The classic path never imports glimpse3d.learned, and the learned modules import
    without pulling in diffusers/transformers until a backend is built."""
    code = (
        "import sys\n"
        "import glimpse3d.pipeline.backends, glimpse3d.config\n"
        "assert not [m for m in sys.modules if m.startswith('glimpse3d.learned')]\n"
        "import glimpse3d.learned.segmentation, glimpse3d.learned.multiview, glimpse3d.learned.depth\n"
        "import glimpse3d.learned.enhance, glimpse3d.learned.features\n"
        "assert 'diffusers' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class _RecordingPipe:
    """Stands in for a diffusers pipeline: records which placement calls were made."""

    def __init__(self):
        self.calls = []
        self.vae = types.SimpleNamespace(
            enable_slicing=lambda: self.calls.append("slicing"),
            enable_tiling=lambda: self.calls.append("tiling"),
        )

    def enable_model_cpu_offload(self, device=None):
        self.calls.append(("offload", str(device)))

    def to(self, device):
        self.calls.append(("to", str(device)))
        return self

    def set_progress_bar_config(self, **kw):
        self.calls.append(("bar", kw))


@pytest.mark.parametrize("mem, expected", [(8.0, ("offload", "cuda")), (80.0, ("to", "cuda"))])
def test_place_pipeline_memory_aware(monkeypatch, mem, expected):
    monkeypatch.setattr(common, "gpu_memory_gib", lambda d: mem if d.type == "cuda" else None)
    pipe = _RecordingPipe()
    common.place_pipeline(pipe, common.Placement(torch.device("cuda"), torch.float16))
    assert pipe.calls[0] == expected
    assert "slicing" in pipe.calls and "tiling" in pipe.calls
    cpu = _RecordingPipe()
    common.place_pipeline(cpu, common.Placement(torch.device("cpu"), torch.float32))
    assert cpu.calls == [("bar", {"disable": True})]  # already on the CPU: nothing to move
