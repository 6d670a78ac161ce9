"""Pipeline benchmark: wall time per stage on the bundled samples, and novel-view quality on
synthetic objects whose true shape is known.

Quality protocol: each synthetic object is rendered from view 0 (elevation 30°, azimuth 0°) as
the input photo; the whole pipeline runs on it; the final model is rendered at held-out cameras
(azimuths between the 16 training views, and elevations 15° / 45°) and compared with the truth:
silhouette IoU (alpha > 0.5) and PSNR/SSIM inside the true silhouette.

    python benchmarks/bench_pipeline.py [--iterations 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from glimpse3d.config import Settings
from glimpse3d.db.repository import open_repository
from glimpse3d.pipeline.metrics import masked_psnr, masked_ssim
from glimpse3d.pipeline.runner import PipelineRunner
from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.splat.formats import model_from_bytes
from glimpse3d.splat.rasterizer import render
from glimpse3d.storage.base import MODELS
from glimpse3d.storage.local import LocalStorage
from glimpse3d.testing.synthetic import (
    catalogue,
    fit_view0,
    png_bytes,
    render_truth,
    silhouette_iou,
    synthetic_photo,
)

SAMPLES = Path(__file__).resolve().parents[1] / "glimpse3d" / "samples"
HELD_OUT = [(30.0, 11.25 + 45.0 * k) for k in range(8)] + [(30.0, 348.75), (15.0, 60.0),
                                                           (45.0, 150.0), (15.0, 240.0),
                                                           (45.0, 300.0)]


def run_pipeline(photo: bytes, name: str, root: Path, iterations: int) -> tuple[dict, object]:
    settings = Settings(data_dir=root / "data")
    repo = open_repository(settings.resolved_database_url)
    storage = LocalStorage(root / "storage")
    runner = PipelineRunner(repo, storage, settings)
    start = time.perf_counter()
    project = runner.ingest(photo, name + ".png", name=name)
    ingest_s = time.perf_counter() - start
    report = runner.run_all(project["id"], iterations=iterations)
    report["stage_seconds"]["preprocess"] = round(ingest_s, 3)
    report["total_seconds"] = round(time.perf_counter() - start, 3)
    final = repo.list_models(project["id"])[-1]
    model = model_from_bytes(storage.get_bytes(MODELS, final["model_key"]), "ply")
    return report, model


def held_out_quality(model: object, obj: object, size: int = 128) -> dict[str, float]:
    """Scores at the held-out cameras. ``psnr_near`` averages the cameras within 60° of the
    input view: colours far from it (the back) are a guess that no single photo determines."""
    ious, psnrs, ssims, near = [], [], [], []
    for elevation, azimuth in HELD_OUT:
        cam = orbit_camera(elevation, azimuth, size=size)
        truth, _ = render_truth(obj, cam, ssaa=2)
        out = render(model, cam)
        alpha = out.alpha.detach().numpy()
        rgb = out.rgb.detach().numpy()
        mask = truth[..., 3] > 0.5
        ious.append(silhouette_iou(alpha, truth[..., 3]))
        # compare colours composited over white, inside the true silhouette
        pred = rgb + (1 - alpha[..., None])
        ref = truth[..., :3] * truth[..., 3:4] + (1 - truth[..., 3:4])
        psnrs.append(masked_psnr(pred, ref, mask))
        ssims.append(masked_ssim(pred, ref, mask))
        if min(azimuth % 360.0, 360.0 - azimuth % 360.0) <= 60.0:
            near.append(psnrs[-1])
    return {"iou_mean": float(np.mean(ious)), "iou_min": float(np.min(ious)),
            "psnr": float(np.mean(psnrs)), "psnr_near": float(np.mean(near)),
            "ssim": float(np.mean(ssims))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one sample, two objects")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--objects", nargs="+", choices=sorted(catalogue()),
                        help="synthetic objects to score (default: all)")
    parser.add_argument("--no-samples", action="store_true", help="skip the sample photos")
    args = parser.parse_args()
    results: dict[str, dict] = {"samples": {}, "synthetic": {}}
    samples = sorted(p for p in SAMPLES.iterdir() if p.suffix in {".png", ".jpg"})
    objects = catalogue()
    if args.quick:
        samples, objects = samples[:1], {k: objects[k] for k in list(objects)[:2]}
    if args.objects:
        objects = {k: objects[k] for k in args.objects}
    if args.no_samples:
        samples = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'sample':<12}{'total s':>9}  stages (s)")
        for path in samples:
            report, _ = run_pipeline(path.read_bytes(), path.stem, Path(tmp) / path.stem,
                                     args.iterations)
            results["samples"][path.name] = report["stage_seconds"] | {
                "total": report["total_seconds"]}
            stages = "  ".join(f"{k}={v:.1f}" for k, v in report["stage_seconds"].items())
            print(f"{path.stem:<12}{report['total_seconds']:>9.1f}  {stages}")
        print(f"\n{'object':<10}{'IoU mean':>9}{'IoU min':>9}{'PSNR':>7}{'near':>7}{'SSIM':>7}"
              f"{'total s':>9}")
        for name, obj in objects.items():
            obj = fit_view0(obj)
            photo, _ = synthetic_photo(obj)
            report, model = run_pipeline(png_bytes(photo), name, Path(tmp) / f"syn-{name}",
                                         args.iterations)
            q = held_out_quality(model, obj)
            q["total_seconds"] = report["total_seconds"]
            results["synthetic"][name] = q
            print(f"{name:<10}{q['iou_mean']:>9.3f}{q['iou_min']:>9.3f}{q['psnr']:>7.2f}"
                  f"{q['psnr_near']:>7.2f}{q['ssim']:>7.3f}{report['total_seconds']:>9.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
