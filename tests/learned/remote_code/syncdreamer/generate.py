"""Stand-in of SyncDreamer's generate.py (liuyuan-pal/SyncDreamer): same command-line
flags and defaults, same output files (``<output>/<i>.png``: the 16 views of sample ``i``
side by side, 256 px each, uint8 RGB). Instead of sampling the diffusion model it draws
view ``k`` as a grey square of level ``(k + 2) / 20`` on white, so a test can tell the
views apart, and records the arguments it got in ``<output>/args.json``."""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg", type=str, default="configs/syncdreamer.yaml")
    parser.add_argument("--ckpt", type=str, default="ckpt/syncdreamer-pretrain.ckpt")
    parser.add_argument("--output", type=str, required=True)
    parser.add_argument("--input", type=str, required=True)
    parser.add_argument("--elevation", type=float, required=True)
    parser.add_argument("--sample_num", type=int, default=4)
    parser.add_argument("--crop_size", type=int, default=-1)
    parser.add_argument("--cfg_scale", type=float, default=2.0)
    parser.add_argument("--batch_view_num", type=int, default=8)
    parser.add_argument("--seed", type=int, default=6033)
    parser.add_argument("--sampler", type=str, default="ddim")
    parser.add_argument("--sample_steps", type=int, default=50)
    flags = parser.parse_args()

    if not Path(flags.ckpt).is_file():
        raise SystemExit(f"FileNotFoundError: {flags.ckpt}")
    image = Image.open(flags.input)
    if image.mode != "RGBA":
        raise SystemExit("the input must be an RGBA image with the background removed")
    out = Path(flags.output)
    out.mkdir(parents=True, exist_ok=True)
    views = []
    for k in range(16):
        view = np.full((256, 256, 3), 255, np.uint8)
        view[64:192, 64:192] = int(255 * (k + 2) / 20)
        views.append(view)
    for bi in range(flags.sample_num):
        Image.fromarray(np.concatenate(views, 1)).save(out / f"{bi}.png")
    (out / "args.json").write_text(json.dumps(vars(flags)))


if __name__ == "__main__":
    main()
