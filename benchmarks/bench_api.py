"""Status-endpoint latency under load: N concurrent pollers while a pipeline runs.

Starts ``glimpse3d serve`` in a subprocess on a free loopback port over a temporary data
directory (the embedded default: SQLite + local storage + in-process worker), uploads a
photo, queues ``generate`` and polls ``GET /api/v1/status/{id}`` from N threads (each with
its own keep-alive connection) until the project completes or ``--seconds`` pass.
Prints p50/p90/p99/max latency (ms), throughput and errors.

    .venv/bin/python benchmarks/bench_api.py [--pollers 50] [--seconds 120] [--fast]

``--fast`` uses small views (64 px) and a 1000-gaussian budget so the run is short.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from glimpse3d.testing.processes import stop_process


def _photo() -> bytes:
    samples = sorted((Path(__file__).resolve().parents[1] / "glimpse3d" / "samples").glob("*.png"))
    if samples:
        return samples[0].read_bytes()
    size = 512
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size, 3), 232, np.uint8)
    inside = (xx - 256) ** 2 + (yy - 256) ** 2 < 150**2
    img[inside] = (205, 60, 40)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pollers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=180.0, help="Upper bound on the run.")
    ap.add_argument("--fast", action="store_true", help="Small views / gaussian budget.")
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="glimpse3d-bench-")
    port = _free_port()
    env = {**os.environ, "GLIMPSE3D_DATA_DIR": data, "GLIMPSE3D_CLEANUP_INTERVAL_MINUTES": "0",
           "GLIMPSE3D_RATE_LIMIT": "1000/minute"}
    if args.fast:
        env.update(GLIMPSE3D_VIEW_SIZE="64", GLIMPSE3D_MAX_GAUSSIANS="1000")
    server = subprocess.Popen(
        [sys.executable, "-m", "glimpse3d.cli", "serve", "--port", str(port)],
        env=env, cwd=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        r = httpx.post(f"{base}/api/v1/upload", files={"file": ("p.png", _photo(), "image/png")},
                       timeout=120)
        r.raise_for_status()
        pid = r.json()["project_id"]
        httpx.post(f"{base}/api/v1/generate/{pid}", timeout=30).raise_for_status()

        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()
        final: dict = {}

        def poll() -> None:
            mine: list[float] = []
            with httpx.Client(base_url=base, timeout=30) as c:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        resp = c.get(f"/api/v1/status/{pid}")
                        ok = resp.status_code == 200
                    except httpx.HTTPError as exc:
                        ok, resp = False, None
                        with lock:
                            errors.append(type(exc).__name__)
                    mine.append(time.perf_counter() - t0)
                    if ok:
                        project = resp.json()["project"]
                        if project["status"] in ("completed", "failed") and not project["job_active"]:
                            final.update(project)
                            stop.set()
                    elif resp is not None:
                        with lock:
                            errors.append(str(resp.status_code))
            with lock:
                latencies.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=poll, daemon=True) for _ in range(args.pollers)]
        for t in threads:
            t.start()
        stop.wait(args.seconds)
        stop.set()
        for t in threads:
            t.join(30)
        wall = time.perf_counter() - started
        ms = np.array(latencies) * 1000
        print(f"pollers={args.pollers} requests={len(ms)} wall={wall:.1f}s "
              f"throughput={len(ms) / wall:.0f} req/s errors={len(errors)}")
        print(f"status latency ms: p50={np.percentile(ms, 50):.1f} p90={np.percentile(ms, 90):.1f} "
              f"p99={np.percentile(ms, 99):.1f} max={ms.max():.1f}")
        print(f"pipeline: {final.get('status', 'still running')} "
              f"progress={final.get('progress_percentage', '?')} ({'fast' if args.fast else 'default'} settings)")
    finally:
        stop_process(server, 20)


if __name__ == "__main__":
    main()
