"""Contact sheet of eval photos: the processed input, then the classic proxy (which the v0
model matches to within 0.02 IoU on the quality benchmark) at six azimuths, elevation 30°.

    python benchmarks/contact_sheet.py [--photos shoe sofa ...] [-o docs/quality_contact.png]

Reads ``../shared/eval/photos`` (or ``$GLIMPSE3D_EVAL/photos``); each row is labelled with
the photo's name and the shape reading ``auto`` chose.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_quality import ROOT, eval_dir
from PIL import Image, ImageDraw

AZIMUTHS = (0.0, 60.0, 120.0, 180.0, 240.0, 300.0)
DEFAULT = ("shoe", "school_bus1", "sofa", "toaster", "teapot", "bread", "cat", "house",
           "box", "cargo", "milk", "lunch_bag")


def row(path: Path, size: int) -> tuple[np.ndarray, str]:
    from glimpse3d.pipeline.multiview import render_proxy
    from glimpse3d.pipeline.preprocess import preprocess_image, validate_image
    from glimpse3d.pipeline.proxy import build_proxy
    from glimpse3d.splat.cameras import orbit_camera

    result = preprocess_image(validate_image(path.read_bytes()))
    processed = result.rgba
    proxy = build_proxy(processed, camera=result.camera)
    photo = (np.clip(processed, 0, 1) * 255 + 0.5).astype(np.uint8)
    tiles = [Image.fromarray(photo, "RGBA").resize((size, size), Image.LANCZOS)]
    for az in AZIMUTHS:
        rgba, _ = render_proxy(proxy, orbit_camera(30.0, az, size=size))
        tiles.append(Image.fromarray((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8), "RGBA"))
    out = Image.new("RGB", (size * len(tiles), size), "white")
    for i, t in enumerate(tiles):
        out.paste(t, (i * size, 0), t)
    ImageDraw.Draw(out).text((4, 4), f"{path.stem} ({proxy.shape})", fill=(0, 0, 0))
    return np.asarray(out), proxy.shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="+", default=list(DEFAULT))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "quality_contact.png")
    args = parser.parse_args()
    root = eval_dir()
    if root is None:
        raise SystemExit("no ../shared/eval here: nothing to draw")
    rows = []
    for name in args.photos:
        img, shape = row(root / "photos" / f"{name}.png", args.size)
        print(f"{name}: {shape}")
        rows.append(img)
    Image.fromarray(np.concatenate(rows, 0)).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
