"""Classic proxy benchmark: held-out silhouette IoU of the proxy shape for each shape prior.

Each object is rendered from view 0 as a photo, preprocessed, and its classic proxy (the shape
the 16 views are rendered from) is compared with the truth at 15 held-out cameras. This is
the measurement behind the ``auto`` rule of :mod:`glimpse3d.pipeline.prism` (no splat
training, so it runs in seconds per object; ``bench_pipeline.py`` scores the final model).

    python benchmarks/bench_proxy.py [--priors rotational auto prism] [--objects box cube ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from glimpse3d.pipeline.multiview import render_proxy
from glimpse3d.pipeline.preprocess import preprocess_image, validate_image
from glimpse3d.pipeline.proxy import SHAPE_PRIORS, build_proxy
from glimpse3d.splat.cameras import orbit_camera
from glimpse3d.testing import synthetic as S

HELD_OUT = [(30.0, 11.25 + 45.0 * k) for k in range(8)] + [
    (30.0, 90.0), (30.0, 180.0), (15.0, 60.0), (45.0, 150.0), (15.0, 240.0), (45.0, 300.0),
    (30.0, 348.75)]


def _capsule() -> S.SyntheticObject:
    def sdf(q: np.ndarray) -> np.ndarray:
        axis = np.zeros_like(q)
        axis[:, 2] = np.clip(q[:, 2], -0.2, 0.2)
        return np.linalg.norm(q - axis, axis=1) - 0.25

    def albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
        return np.stack([0.3 + 0 * q[:, 0], 0.6 + 0.3 * np.sin(8 * q[:, 2]), 0.8 + 0 * q[:, 0]], 1)

    return S.SyntheticObject("capsule", sdf, albedo, radius=0.5)


def _ellipsoid(axes: tuple[float, float, float]) -> S.SyntheticObject:
    a = np.asarray(axes)

    def sdf(q: np.ndarray) -> np.ndarray:  # a bound, hence the lipschitz factor
        k0 = np.linalg.norm(q / a, axis=1)
        k1 = np.linalg.norm(q / a**2, axis=1)
        return k0 * (k0 - 1) / np.maximum(k1, 1e-9)

    def albedo(q: np.ndarray, n: np.ndarray) -> np.ndarray:
        return np.stack([0.9 + 0 * q[:, 0], 0.4 + 0.3 * np.sin(8 * q[:, 0]), 0.4 + 0 * q[:, 0]], 1)

    return S.SyntheticObject("ellipsoid", sdf, albedo, radius=float(a.max()) + 0.01, lipschitz=0.6)


def objects() -> dict[str, S.SyntheticObject]:
    """The catalogue plus boxes at other yaws and proportions, a capsule and an ellipsoid."""
    out = dict(S.catalogue())
    out["cube-face-on"] = S.make_box(0.0, (0.3, 0.3, 0.3), name="cube-face-on")
    out["cube-45"] = S.make_box(45.0, (0.3, 0.3, 0.3), name="cube-45")
    out["deep-box"] = S.make_box(0.0, (0.35, 0.22, 0.2), name="deep-box")
    out["wide-box"] = S.make_box(90.0, (0.35, 0.22, 0.2), name="wide-box")
    out["tall-box-60"] = S.make_box(60.0, (0.2, 0.25, 0.4), name="tall-box-60")
    out["capsule"] = _capsule()
    out["ellipsoid"] = _ellipsoid((0.45, 0.3, 0.25))
    return out


def proxy_iou(processed: np.ndarray, obj: S.SyntheticObject, prior: str) -> tuple[list[float], str, float]:
    start = time.perf_counter()
    proxy = build_proxy(processed, shape_prior=prior)
    seconds = time.perf_counter() - start
    ious = []
    for elevation, azimuth in HELD_OUT:
        cam = orbit_camera(elevation, azimuth, size=128)
        rgba, _ = render_proxy(proxy, cam)
        ious.append(S.silhouette_iou(rgba[..., 3], S.silhouette(obj, cam)))
    return ious, proxy.shape, seconds


def main() -> None:
    catalogue = objects()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--priors", nargs="+", default=["rotational", "auto"], choices=SHAPE_PRIORS)
    parser.add_argument("--objects", nargs="+", default=list(catalogue), choices=list(catalogue))
    args = parser.parse_args()
    header = "".join(f"{p + ' mean/min':>24}" for p in args.priors)
    print(f"{'object':<14}{header}   auto reads it as")
    for name in args.objects:
        obj = S.fit_view0(catalogue[name])
        photo, _ = S.synthetic_photo(obj, size=512, ssaa=1)
        processed = preprocess_image(validate_image(S.png_bytes(photo))).rgba
        cells, read_as = [], ""
        for prior in args.priors:
            ious, shape, seconds = proxy_iou(processed, obj, prior)
            cells.append(f"{np.mean(ious):>10.3f} / {np.min(ious):.3f} ({seconds:.1f}s)")
            if prior == "auto":
                read_as = shape
        print(f"{name:<14}" + "".join(f"{c:>24}" for c in cells) + f"   {read_as}")


if __name__ == "__main__":
    main()
