"""GPU smoke run: the whole pipeline on a sample with gsplat and every learned backend whose
weights are present, with per-stage time and peak GPU memory (a script, not a test).

    python benchmarks/gpu_smoke.py [--sample glimpse3d/samples/mug.png] [--train-steps 300]
                                   [--iterations 1] [--json out.json]

1. Environment: torch, CUDA device, gsplat; without a CUDA GPU every GPU step prints a
   ``SKIP`` line and the script exits 0 after the CPU-only checks.
2. Splat kernels: a 256 px render of 5000 gaussians and a 50-step training at 128 px on
   the GPU (gsplat) and on the CPU (numba), in the same run; prints both and their ratio
   (without a GPU only the CPU render is timed).
3. Pipeline: ``PipelineRunner.run_all`` on the sample (temporary SQLite + local storage).
   Each stage uses its learned backend when that backend's weights are configured the way
   docs/models.md documents (``GLIMPSE3D_<STAGE>_BACKEND`` + ``GLIMPSE3D_<STAGE>_MODEL``, a
   local directory or a cached hub id; Zero123++ also needs ``GLIMPSE3D_MULTIVIEW_PIPELINE``
   and ``GLIMPSE3D_TRUST_REMOTE_CODE=1``; SyncDreamer ``GLIMPSE3D_SYNCDREAMER_DIR``);
   otherwise it prints ``SKIP <stage> ...`` and runs the classic backend. Per stage: wall
   time and peak GPU memory (``torch.cuda.max_memory_allocated``, reset between stages).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glimpse3d.config import Settings  # noqa: E402
from glimpse3d.splat.device import describe, gsplat_available, splat_device  # noqa: E402

GIB = 2**30

#: stage -> (backend setting value used when weights are present, the settings it needs)
LEARNED = {
    "segment": ("transformers", ("segment_model",)),
    "multiview": (None, ("multiview_model",)),  # the backend named in GLIMPSE3D_MULTIVIEW_BACKEND
    "depth": ("transformers", ("depth_model",)),
    "enhance": ("diffusers", ("enhance_model",)),
    "feature": ("transformers", ("feature_model",)),
}


def cuda_ready() -> bool:
    return torch.cuda.is_available()


def peak_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / GIB if cuda_ready() else None


def reset_peak() -> None:
    if cuda_ready():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def environment() -> dict:
    info = {"torch": torch.__version__, "cuda": cuda_ready(), "gsplat": gsplat_available()}
    print(f"torch {torch.__version__}")
    if not cuda_ready():
        print("SKIP gpu: no CUDA GPU visible (torch.cuda.is_available() is False); "
              "this run checks the CPU paths only and has not measured anything on a GPU")
        return info
    info["device"] = describe(torch.device("cuda"))
    info["gpu_total_gib"] = round(torch.cuda.get_device_properties(0).total_memory / GIB, 1)
    print(f"device {info['device']}, {info['gpu_total_gib']} GiB")
    if not gsplat_available():
        print("SKIP gsplat: not usable (pip install 'glimpse3d[gpu]' and the CUDA toolkit to build its "
              "kernels); device=auto stays on "
              "the CPU numba kernel")
    return info


def splat_kernels() -> dict:
    """Render + train timings on the GPU (gsplat) against the CPU (numba), same run."""
    from glimpse3d.splat.cameras import syncdreamer_cameras
    from glimpse3d.splat.gaussians import GaussianModel
    from glimpse3d.splat.rasterizer import render
    from glimpse3d.splat.training import TrainConfig, train

    model = GaussianModel.random(5000, seed=1)
    cams = syncdreamer_cameras(256)
    small = syncdreamer_cameras(128)
    with torch.no_grad():
        targets = []
        for cam in small:
            out = render(model, cam, backend="fast")
            targets.append((cam, torch.cat([out.rgb.clamp(0, 1), out.alpha[..., None]], -1)))
    start = GaussianModel.random(5000, seed=2)
    gpu = cuda_ready() and gsplat_available()
    results = {}
    devices = ["cpu"] + (["cuda"] if gpu else [])
    for dev in devices:
        m = start.to(dev)
        with torch.no_grad():
            render(m, cams[0])  # warm-up (numba / CUDA kernels)
            if dev == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(10):
                render(m, cams[0])
            if dev == "cuda":
                torch.cuda.synchronize()
            render_ms = (time.perf_counter() - t) / 10 * 1e3
        results[dev] = {"render_ms": round(render_ms, 2)}
        if not gpu:
            print(f"splat {dev}: render 256px {render_ms:.1f} ms (training not timed without a GPU)")
            continue
        reset_peak()
        t = time.perf_counter()
        _, stats = train(start, targets, TrainConfig(steps=50, image_size=128, device=dev,
                                                     densify=False, torch_threads=None))
        train_s = time.perf_counter() - t
        results[dev].update(train_50_steps_s=round(train_s, 2), device=stats["device"],
                            peak_gib=None if dev == "cpu" else round(peak_gib() or 0, 3))
        print(f"splat {dev}: render 256px {render_ms:.1f} ms, train 50 steps {train_s:.2f} s")
    if "cuda" not in results:
        print("SKIP splat cuda: needs a CUDA GPU and gsplat")
    else:
        r = results["cpu"]["train_50_steps_s"] / max(results["cuda"]["train_50_steps_s"], 1e-9)
        print(f"splat training: gsplat is {r:.1f}x the CPU numba kernel's speed")
        results["train_speedup"] = round(r, 2)
    return results


def learned_settings(base: Settings) -> tuple[Settings, list[str]]:
    """Settings with each stage's learned backend where its weights are configured."""
    from glimpse3d.learned.common import MissingWeightsError, resolve_weights
    from glimpse3d.pipeline.backends import load_backend

    update, used = {}, []
    for stage, (backend, needs) in LEARNED.items():
        chosen = os.environ.get(f"GLIMPSE3D_{stage.upper()}_BACKEND") or backend
        value = getattr(base, needs[0], None)
        if stage == "multiview" and chosen == "syncdreamer":
            value = base.syncdreamer_dir
        if not chosen or chosen == "classic" or not value:
            print(f"SKIP {stage}: no learned weights configured "
                  f"(GLIMPSE3D_{needs[0].upper()} not set); classic backend")
            continue
        if chosen != "syncdreamer":
            try:
                resolve_weights(value, needs[0], "-", ("config.json", "model_index.json"))
            except MissingWeightsError as exc:
                print(f"SKIP {stage} ({chosen}): {str(exc).split('. ')[0]}; classic backend")
                continue
        trial = base.model_copy(update={**update, f"{stage}_backend": chosen})
        try:
            load_backend(stage, trial)
        except Exception as exc:  # noqa: BLE001 - report and fall back
            print(f"SKIP {stage} ({chosen}): {str(exc).splitlines()[0][:200]}; classic backend")
            continue
        update[f"{stage}_backend"] = chosen
        used.append(f"{stage}={chosen}")
    return base.model_copy(update=update), used


def pipeline(sample: Path, train_steps: int, iterations: int) -> dict:
    from glimpse3d.db.repository import open_repository
    from glimpse3d.pipeline.runner import PipelineRunner
    from glimpse3d.storage.local import LocalStorage

    base = Settings(train_steps=train_steps, refine_iterations=iterations,
                    export_formats=["ply", "splat", "mp4"])
    settings, used = learned_settings(base)  # the backends it loaded stay cached
    print(f"pipeline backends: {', '.join(used) or 'all classic'}; splat on "
          f"{describe(splat_device(settings.device))}")
    peaks: dict[str, float] = {}
    current = {"stage": None}

    def on_progress(event) -> None:  # noqa: ANN001
        if event.step != current["stage"]:
            if current["stage"] is not None and cuda_ready():
                peaks[current["stage"]] = round(max(peaks.get(current["stage"], 0.0),
                                                    peak_gib() or 0.0), 3)
            current["stage"] = event.step
            reset_peak()

    with tempfile.TemporaryDirectory(prefix="glimpse3d-gpu-smoke-") as tmp:
        repo = open_repository(f"sqlite:///{Path(tmp) / 'smoke.db'}")
        storage = LocalStorage(Path(tmp) / "storage")
        storage.ensure_buckets()
        try:
            runner = PipelineRunner(repo, storage, settings, on_progress=on_progress)
            reset_peak()
            t = time.perf_counter()
            project = runner.ingest(sample.read_bytes(), sample.name)
            report = runner.run_all(project["id"], iterations=iterations)
            total = time.perf_counter() - t
            if current["stage"] is not None and cuda_ready():
                peaks[current["stage"]] = round(peak_gib() or 0.0, 3)
        finally:
            repo.close()
    for stage, seconds in report["stage_seconds"].items():
        peak = peaks.get(stage)
        mem = f", peak GPU {peak:.2f} GiB" if peak is not None else ""
        print(f"stage {stage}: {seconds:.2f} s{mem}")
    print(f"pipeline total {total:.1f} s, status {report['status']}, "
          f"{len(report['iterations'])} refinement iteration(s)")
    return {"backends": used, "stage_seconds": report["stage_seconds"], "peak_gib": peaks,
            "total_s": round(total, 2), "status": report["status"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, default=ROOT / "glimpse3d" / "samples" / "mug.png")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    out = {"environment": environment(), "splat": splat_kernels()}
    if args.skip_pipeline:
        print("SKIP pipeline: --skip-pipeline")
    elif not cuda_ready():
        print("SKIP pipeline on GPU: no CUDA GPU (run with --skip-pipeline to silence this); "
              "the CPU pipeline is measured by benchmarks/bench_pipeline.py")
    else:
        out["pipeline"] = pipeline(args.sample, args.train_steps, args.iterations)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
