"""Every eval photo through ``glimpse3d run`` end to end, as a user would run it.

    python benchmarks/run_eval_photos.py [--photos shoe sofa ...] [--workers 2] [--iterations 3]

Reads ``../shared/eval/photos`` (or ``$GLIMPSE3D_EVAL/photos``), runs the CLI once per photo
(its own output folder and SQLite database under a temporary directory), and prints one line
per photo: the exit code, the wall time, the stage shares and the refinement versions made
(or the CLI's one-line reason when it refuses a photo). Ends with the counts: a crash (exit
code 1) or a hang (past ``--timeout``) fails the run (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_quality import eval_dir


def run_one(photo: Path, iterations: int, timeout: float, root: Path) -> dict:
    out = root / photo.stem
    env = {**os.environ, "GLIMPSE3D_DATA_DIR": str(out / "data")}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "glimpse3d"), "run", str(photo), "-o", str(out),
             "--iterations", str(iterations)],
            capture_output=True, text=True, timeout=timeout, env=env)
        code, text = proc.returncode, (proc.stdout + proc.stderr).strip()
    except subprocess.TimeoutExpired:
        code, text = "timeout", ""
    wall = time.perf_counter() - start
    row = {"photo": photo.stem, "code": code, "wall": wall}
    report = out / "report.json"
    if code == 0 and report.exists():
        rep = json.loads(report.read_text())
        stages = rep.get("stage_seconds", {})
        total = sum(stages.values()) or 1.0
        row["shares"] = {k: round(100 * v / total) for k, v in stages.items()}
        row["versions"] = len(rep.get("iterations", [])) + 1
    elif text:
        row["reason"] = text.splitlines()[-1][:160]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    root = eval_dir()
    if root is None:
        raise SystemExit("no ../shared/eval here: nothing to run")
    photos = sorted((root / "photos").glob("*.png"))
    if args.photos:
        photos = [p for p in photos if p.stem in set(args.photos)]
    with tempfile.TemporaryDirectory(prefix="g3d-eval-") as tmp, \
            ThreadPoolExecutor(args.workers) as pool:
        rows = list(pool.map(lambda p: run_one(p, args.iterations, args.timeout, Path(tmp)), photos))
    for r in rows:
        extra = r.get("reason") or f"versions v0..v{r.get('versions', 1) - 1} shares {r.get('shares')}"
        print(f"{r['photo']:14s} exit {r['code']!s:7s} {r['wall']:6.1f} s  {extra}")
    ok = [r for r in rows if r["code"] == 0]
    refused = [r for r in rows if r["code"] == 2]
    broken = [r for r in rows if r["code"] not in (0, 2)]
    walls = sorted(r["wall"] for r in ok)
    median = walls[len(walls) // 2] if walls else float("nan")
    print(f"{len(ok)} done, {len(refused)} refused, {len(broken)} crashed or hung; "
          f"median wall {median:.1f} s ({args.workers} at a time)")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
