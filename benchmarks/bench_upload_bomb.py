"""The 8000x8000 16-bit PNG bomb against a real ``glimpse3d serve``: wall time of the 422 and
the server's peak-RSS growth (VmHWM after minus VmRSS before, /proc), for this checkout or
another one (``--tree PATH``, e.g. a checkout of an older commit, for a baseline).

    python benchmarks/bench_upload_bomb.py [--tree PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.test_limits import _rss_kib, png_bomb  # noqa: E402
from tests.utils.servers import serve_process  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose server runs")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bomb = png_bomb()
    with tempfile.TemporaryDirectory() as data:
        env = {"GLIMPSE3D_DATA_DIR": data, "GLIMPSE3D_CLEANUP_INTERVAL_MINUTES": "0",
               "GLIMPSE3D_RATE_LIMIT": "1000/minute", "PYTHONPATH": str(args.tree)}
        os.environ["PYTHONPATH"] = str(args.tree)
        with serve_process(env) as (base, pid), httpx.Client(base_url=base, timeout=300) as c:
            c.get("/api/v1/projects")
            for i in range(args.repeat):
                with open(f"/proc/{pid}/clear_refs", "w") as fh:
                    fh.write("5")
                before = _rss_kib(pid, "VmRSS")
                t0 = time.perf_counter()
                r = c.post("/api/v1/upload", files={"file": ("bomb.png", bomb, "image/png")})
                dt = time.perf_counter() - t0
                growth = (_rss_kib(pid, "VmHWM") - before) / 1024
                print(f"{args.tree.name} #{i}: {r.status_code} in {dt * 1000:.1f} ms, "
                      f"peak RSS +{growth:.1f} MB ({len(bomb)} B upload)")


if __name__ == "__main__":
    main()
