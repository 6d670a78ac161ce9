"""Export benchmark: time, size and faces per format, and how well the textured mesh matches
the splat model (PSNR / silhouette IoU of the unlit mesh vs the splat renders at the 16
pipeline cameras, 256 px, over black).

Models: the bundled sample photos (mug, toy) and synthetic objects (box, cone, blob: photos from
``glimpse3d.testing.synthetic``) run through the pipeline (1 refinement iteration, cached under
benchmarks/results/export-models/), or any ``--models PATH.ply``.
Baseline, measured in the same run: a plain vertex-coloured marching-cubes .glb
(``extract_mesh`` at resolution 96, no carving, decimation or texture), the kind of file the
exporter wrote before. CPU seconds are the process's (all threads), wall seconds as seen.

    python benchmarks/bench_export.py [--models a.ply b.ply] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "results" / "export-models"
SAMPLES = ("mug", "toy")
SYNTHETIC = ("box", "cone", "blob")


def _photo(name: str) -> Path:
    if name in SAMPLES:
        return ROOT / "glimpse3d" / "samples" / f"{name}.png"
    from glimpse3d.testing.synthetic import catalogue, fit_view0, synthetic_photo

    path = CACHE / f"{name}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic_photo(fit_view0(catalogue()[name]))[0].save(path)
    return path


def pipeline_model(name: str) -> Path:
    """The final model of the pipeline run on ``name``'s photo (made once, then cached)."""
    import subprocess

    out = CACHE / name
    found = sorted(out.glob("3d-models/*/models/v*.ply"))
    if not found:
        env = dict(os.environ, GLIMPSE3D_EXPORT_FORMATS='["ply"]', GLIMPSE3D_DATA_DIR=str(out / "data"))
        subprocess.run(["glimpse3d", "run", str(_photo(name)), "-o", str(out), "--iterations", "1"],
                       check=True, env=env)
        found = sorted(out.glob("3d-models/*/models/v*.ply"))
    return found[-1]


def baseline_glb(model, path: Path) -> float:  # noqa: ANN001
    """Vertex-coloured marching cubes written by trimesh (what .glb was before textures)."""
    import numpy as np

    from glimpse3d.splat.mesh import extract_mesh

    start = time.perf_counter()
    mesh = extract_mesh(model, resolution=96)
    rot = np.eye(4)
    rot[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]
    mesh.apply_transform(rot)
    path.write_bytes(mesh.export(file_type="glb"))
    return time.perf_counter() - start


def bench(model_path: Path) -> dict:
    import numpy as np

    from glimpse3d.splat import export
    from glimpse3d.splat.formats import load_model
    from glimpse3d.splat.mesh_asset import MeshOptions, fidelity

    model = load_model(model_path)
    export.mesh_asset(load_model(model_path), MeshOptions(faces=500, texture_size=64, resolution=24))  # warm
    result: dict = {"model": str(model_path), "gaussians": model.num_gaussians, "formats": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline.glb"
        result["baseline_glb"] = {"seconds": round(baseline_glb(model, base), 3),
                                  "bytes": base.stat().st_size}
        total = 0.0
        for fmt in ("glb", "obj", "usdz", "ply", "splat", "spz", "mp4"):
            path = Path(tmp) / f"model.{export.FILE_EXTENSIONS[fmt]}"
            start, cpu = time.perf_counter(), time.process_time()
            export.export_model(model, fmt, path, metadata={"project_id": "bench"})
            seconds = time.perf_counter() - start
            total += seconds
            result["formats"][fmt] = {"seconds": round(seconds, 3), "bytes": path.stat().st_size,
                                      "cpu_seconds": round(time.process_time() - cpu, 3)}
        asset = export.mesh_asset(model)
        result["asset_stage_seconds"] = {k: round(v, 3) for k, v in asset.timings.items()}
        result["mesh_formats_seconds"] = round(sum(result["formats"][f]["seconds"]
                                                   for f in export.MESH_FORMATS), 3)
        result["mesh_formats_cpu_seconds"] = round(sum(result["formats"][f]["cpu_seconds"]
                                                       for f in export.MESH_FORMATS), 3)
        result["all_formats_seconds"] = round(total, 3)
        result["faces"] = len(asset.faces)
        score = fidelity(asset, model)
        result["psnr_mean"] = round(float(np.mean(score["psnr"])), 2)
        result["psnr_min"] = round(float(np.min(score["psnr"])), 2)
        result["iou_min"] = round(float(np.min(score["iou"])), 4)
        result["iou_mean"] = round(float(np.mean(score["iou"])), 4)
        b = result["baseline_glb"]["seconds"]
        result["mesh_formats_vs_baseline_glb"] = round(result["mesh_formats_seconds"] / b, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", type=Path, help="splat models (.ply/.splat/.spz)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch, numba)")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    models = args.models or [pipeline_model(s) for s in SAMPLES + SYNTHETIC]
    results = [bench(Path(m)) for m in models]
    print(json.dumps(results, indent=2))
    out = ROOT / "benchmarks" / "results" / "bench_export.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
