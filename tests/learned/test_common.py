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


@pytest.mark.parametrize("mem, managed", [(8.0, True), (80.0, False)])
def test_place_pipeline_memory_aware(monkeypatch, mem, managed):
    """Small GPUs: accelerate's model offload; large ones: left on the CPU for
    ensure_resident to move (so other models can be offloaded first)."""
    monkeypatch.setattr(common, "gpu_memory_gib", lambda d: mem if d.type == "cuda" else None)
    pipe = _RecordingPipe()
    assert common.place_pipeline(pipe, common.Placement(torch.device("cuda"), torch.float16)) \
        is managed
    assert (("offload", "cuda") in pipe.calls) is managed
    assert not any(c[0] == "to" for c in pipe.calls if isinstance(c, tuple))
    assert "slicing" in pipe.calls and "tiling" in pipe.calls
    cpu = _RecordingPipe()
    assert common.place_pipeline(cpu, common.Placement(torch.device("cpu"), torch.float32)) is False
    assert cpu.calls == [("bar", {"disable": True})]  # already on the CPU: nothing to move


class _Backend:
    """A learned backend as ensure_resident sees it: a placement and its modules."""

    def __init__(self, n_params: int, device: str = "cuda"):
        self.placement = common.Placement(torch.device(device), torch.float32)
        self.net = torch.nn.Linear(n_params, 1, bias=False)  # n_params * 4 bytes

    def modules(self):
        return [self.net]


@pytest.fixture
def fake_gpu(monkeypatch):
    """A GPU of ``total`` bytes: free = total - bytes of the resident backends' modules."""
    where: dict[int, str] = {}

    def move(modules, device):
        for m in modules:
            where[id(m)] = str(torch.device(device).type)

    def setup(total: int):
        def free(device):
            used = sum(common.module_bytes([b.net]) for b in common._RESIDENT.values())
            return total - used

        monkeypatch.setattr(common, "free_gpu_bytes", free)
        monkeypatch.setattr(common, "move_modules", move)
        monkeypatch.setattr(common, "_on_device", lambda modules, device: all(
            where.get(id(m)) == device.type for m in modules))
        monkeypatch.setattr(common, "ACTIVATION_MARGIN_GIB", 0.0)
        monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
        return where

    return setup


def test_one_model_resident_when_memory_is_short(fake_gpu):
    where = fake_gpu(total=6000)  # room for one 4000-byte model at a time
    a, b = _Backend(1000), _Backend(1000)
    common.ensure_resident(a)
    assert where[id(a.net)] == "cuda" and common.resident_count() == 1
    common.ensure_resident(b)
    assert where[id(a.net)] == "cpu" and where[id(b.net)] == "cuda"
    assert common.resident_count() == 1
    common.ensure_resident(a)  # back again: b is offloaded
    assert where[id(b.net)] == "cpu" and where[id(a.net)] == "cuda"


def test_models_stay_together_when_memory_allows(fake_gpu):
    where = fake_gpu(total=10**9)
    a, b, c = _Backend(1000), _Backend(2000), _Backend(10)
    for backend in (a, b, c):
        common.ensure_resident(backend)
    assert {where[id(x.net)] for x in (a, b, c)} == {"cuda"} and common.resident_count() == 3
    cpu = _Backend(1000, device="cpu")
    common.ensure_resident(cpu)  # CPU backends are not tracked or moved
    assert id(cpu.net) not in where and common.resident_count() == 3


def test_least_recently_used_is_offloaded_first(fake_gpu):
    where = fake_gpu(total=9000)  # two 4000-byte models fit, not three
    a, b, c = _Backend(1000), _Backend(1000), _Backend(1000)
    common.ensure_resident(a)
    common.ensure_resident(b)
    common.ensure_resident(a)  # a used again: b is now the least recently used
    common.ensure_resident(c)
    assert where[id(b.net)] == "cpu" and where[id(a.net)] == "cuda" and where[id(c.net)] == "cuda"


def test_weight_variant_of_local_directories(tmp_path):
    both = tmp_path / "both" / "unet"
    both.mkdir(parents=True)
    (both / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (both / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    only16 = tmp_path / "only16" / "unet"
    only16.mkdir(parents=True)
    (only16 / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    root_both, root16 = str(tmp_path / "both"), str(tmp_path / "only16")
    assert common.weight_variant(root_both, "unet", torch.float16) == "fp16"  # GPU: fp16 files
    assert common.weight_variant(root_both, "unet", torch.float32) is None  # CPU: fp32 files
    assert common.weight_variant(root16, "unet", torch.float32) == "fp16"  # the only weights
    assert common.weight_variant(root_both, "vae", torch.float16) is None
    assert common.weight_variant("not/a-cached-repo", "unet", torch.float16) is None


def test_a_pipeline_that_wraps_its_modules_keeps_one_residency_entry(fake_gpu):
    """Zero123++'s pipeline wraps its UNet on the first call: same pipeline, same entry."""
    where = fake_gpu(total=10**9)
    backend = _Backend(100)
    backend.pipe = object()
    common.ensure_resident(backend)
    backend.net = torch.nn.Sequential(backend.net)  # the "wrapped" module list
    where[id(backend.net)] = "cpu"
    common.ensure_resident(backend)
    assert common.resident_count() == 1 and where[id(backend.net)] == "cuda"
