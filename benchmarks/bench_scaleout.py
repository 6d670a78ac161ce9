"""Scale-out benchmark: throughput of 1 vs 2 workers, and status/SSE latency with 200 clients.

Needs a local PostgreSQL (``postgresql://postgres@127.0.0.1:5432``, trust auth) like the
tests; S3 is a moto server on loopback. Everything else runs in subprocesses: ``glimpse3d
worker`` processes and one API (uvicorn) process. Each part is bounded in time.

1. **Throughput**: N projects (uploaded in-process) are queued at once (``generate``) and run
   by 1, then 2 workers; prints wall time, projects/minute and the 2:1 ratio. On a 2-core
   machine the ratio is bounded by the cores (and the workers share them with the rest).
2. **Status latency**: ``--clients`` concurrent clients poll ``GET /api/v1/status/{id}``
   ``--requests`` times each while a worker runs a project; p50/p95/p99/max in ms.
3. **SSE latency**: ``--clients`` concurrent event streams on a running project; latency is
   the event's arrival time minus the row's ``updated_at`` (the event id, in microseconds),
   i.e. how long a worker's progress write takes to reach a client through another process.

    .venv/bin/python benchmarks/bench_scaleout.py [--projects 4] [--clients 200]
        [--requests 5] [--seconds 90] [--skip-throughput]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.utils.cluster import Cluster, disc_photo, running_cluster, wait_for  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _summary(name: str, ms: list[float], errors: int, seconds: float) -> None:
    print(f"{name}: n={len(ms)} errors={errors} in {seconds:.1f} s  "
          f"p50={_pct(ms, .5):.1f} p95={_pct(ms, .95):.1f} p99={_pct(ms, .99):.1f} "
          f"max={max(ms) if ms else float('nan'):.1f} ms  mean={statistics.fmean(ms) if ms else 0:.1f}")


class Env:
    """A fresh database + moto S3 + settings for one benchmark part."""

    def __init__(self, workdir: Path, s3_endpoint: str) -> None:
        from glimpse3d.config import Settings
        from glimpse3d.db.repository import open_repository
        from glimpse3d.jobs.distributed import ProcrastinateQueue
        from glimpse3d.storage.s3 import S3Storage

        self.db = f"g3d_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.db}"
        self.prefix = f"b{uuid.uuid4().hex[:8]}-"
        self.storage = S3Storage(bucket_prefix=self.prefix, endpoint_url=s3_endpoint,
                                 region="us-east-1", access_key="testing", secret_key="testing")
        self.storage.ensure_buckets()
        self.settings = Settings(_env_file=None, database_url=self.url, queue="procrastinate",
                                 view_size=64, max_gaussians=1000, refine_iterations=1,
                                 export_formats=["ply", "splat"], data_dir=workdir)
        self.repo = open_repository(self.url)
        self.queue = ProcrastinateQueue(self.settings, self.repo, self.storage,
                                        watch_stalled=False)
        self.workdir = workdir
        self.s3 = s3_endpoint

    def ingest(self, seed: int) -> str:
        from glimpse3d.pipeline.runner import PipelineRunner

        runner = PipelineRunner(self.repo, self.storage, self.settings)
        return str(runner.ingest(disc_photo(384, seed=seed), f"disc{seed}.png")["id"])

    def close(self) -> None:
        self.queue.stop()
        self.repo.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def _wait_done(env: Env, pids: list[str], timeout: float) -> None:
    def done() -> bool:
        rows = [env.repo.get_project(p) for p in pids]
        return all(r["status"] in ("completed", "failed") and not r["job"] for r in rows)

    wait_for(done, timeout, "the projects to finish", interval=0.25)


def throughput(s3: str, projects: int, workers: int, timeout: float) -> float:
    """Seconds for ``workers`` workers to run ``projects`` generate jobs queued at once."""
    with tempfile.TemporaryDirectory(prefix="g3d-bench-") as tmp:
        env = Env(Path(tmp), s3)
        try:
            pids = [env.ingest(i) for i in range(projects)]
            with running_cluster(Path(tmp) / "c", env.url, s3, env.prefix) as c:
                for i in range(workers):
                    c.start_worker(f"worker-{i}")
                c.wait_workers(workers)
                start = time.perf_counter()
                for pid in pids:
                    env.queue.enqueue(pid, {"kind": "generate"})
                _wait_done(env, pids, timeout)
                elapsed = time.perf_counter() - start
            failed = [p for p in pids if env.repo.get_project(p)["status"] != "completed"]
            print(f"{workers} worker(s): {projects} projects in {elapsed:.1f} s = "
                  f"{60 * projects / elapsed:.2f} projects/min"
                  + (f"  FAILED: {failed}" if failed else ""))
            return elapsed
        finally:
            env.close()


async def _status_load(base: str, pid: str, clients: int, requests: int) -> tuple[list[float], int]:
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one() -> None:
            nonlocal errors
            for _ in range(requests):
                t0 = time.perf_counter()
                try:
                    r = await client.get(f"/api/v1/status/{pid}")
                    r.raise_for_status()
                    lat.append((time.perf_counter() - t0) * 1000)
                except httpx.HTTPError:
                    errors += 1

        await asyncio.gather(*(one() for _ in range(clients)))
    return lat, errors


async def _sse_load(base: str, pid: str, clients: int, seconds: float) -> tuple[list[float], int, int]:
    lat: list[float] = []
    errors = 0
    ended = 0
    limits = httpx.Limits(max_connections=clients + 5)
    timeout = httpx.Timeout(30, read=seconds + 30)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:

        async def one() -> None:
            nonlocal errors, ended
            try:
                async with client.stream("GET", f"/api/v1/projects/{pid}/events") as r:
                    async for line in r.aiter_lines():
                        if line.startswith("id:"):
                            lat.append((time.time() - int(line[3:]) / 1e6) * 1000)
                        elif line.startswith("event: end"):
                            ended += 1
                            return
            except httpx.HTTPError:
                errors += 1

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(one() for _ in range(clients))),
                                   timeout=seconds)
    return lat, errors, ended


def latency(s3: str, clients: int, requests: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="g3d-bench-") as tmp:
        env = Env(Path(tmp), s3)
        try:
            with running_cluster(Path(tmp) / "c", env.url, s3, env.prefix) as c:
                api = c.start_api("api-1")
                c.start_worker("worker-0")
                c.wait_api(api)
                c.wait_workers(1)
                # status polling while a project runs
                pid = env.ingest(100)
                env.queue.enqueue(pid, {"kind": "generate"})
                t0 = time.perf_counter()
                lat, err = asyncio.run(_status_load(api.url, pid, clients, requests))
                _summary(f"status x{clients} clients", lat, err, time.perf_counter() - t0)
                _wait_done(env, [pid], seconds + 120)
                # event streams on a second running project
                pid2 = env.ingest(101)
                env.queue.enqueue(pid2, {"kind": "generate"})
                t0 = time.perf_counter()
                lat, err, ended = asyncio.run(_sse_load(api.url, pid2, clients, seconds))
                _summary(f"SSE x{clients} streams (row write -> client)", lat, err,
                         time.perf_counter() - t0)
                print(f"  streams that saw the end event: {ended}/{clients}")
                _check_alive(c)
        finally:
            env.close()


def _check_alive(c: Cluster) -> None:
    dead = [p.name for p in c.procs if not p.alive()]
    if dead:
        print("processes that died:", dead)
        print(c.logs())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--projects", type=int, default=4)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = f"http://{host}:{port}"
    try:
        if not args.skip_throughput:
            one = throughput(s3, args.projects, 1, timeout=60 * args.projects + 120)
            two = throughput(s3, args.projects, 2, timeout=60 * args.projects + 120)
            print(f"throughput ratio 2 workers : 1 worker = {one / two:.2f}")
        if not args.skip_latency:
            latency(s3, args.clients, args.requests, args.seconds)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
