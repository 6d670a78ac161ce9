"""A small real cluster for tests and benchmarks: ``glimpse3d worker`` and API (uvicorn)
subprocesses over one PostgreSQL database and one S3 endpoint, plus an optional Redis.

Every process gets ``PGAPPNAME`` = its name, so its database sessions can be found in
``pg_stat_activity`` (which worker holds a project's lock, whose connections to terminate).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from glimpse3d.jobs.distributed.app import PROJECT_LOCK_NAMESPACE
from tests.utils.common import disc_photo, free_port, wait_for  # noqa: F401 - re-used here
from tests.utils.settings import fast_env

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Cluster:
    """Starts and stops the processes; ``env`` holds the shared GLIMPSE3D_* settings."""

    workdir: Path
    database_url: str
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    @classmethod
    def make(cls, workdir: Path, database_url: str, s3_endpoint: str, bucket_prefix: str,
             **settings: Any) -> Cluster:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GLIMPSE3D_")}
        env.update({
            "GLIMPSE3D_DATA_DIR": str(workdir / "data"),
            "GLIMPSE3D_DATABASE_URL": database_url,
            "GLIMPSE3D_STORAGE_URL": f"s3://{bucket_prefix}",
            "GLIMPSE3D_S3_ENDPOINT_URL": s3_endpoint,
            "GLIMPSE3D_S3_ACCESS_KEY_ID": "testing",
            "GLIMPSE3D_S3_SECRET_ACCESS_KEY": "testing",
            "GLIMPSE3D_S3_REGION": "us-east-1",
            "GLIMPSE3D_QUEUE": "procrastinate",
            **fast_env(),
            "GLIMPSE3D_WORKER_HEARTBEAT_SECONDS": "0.5",
            "GLIMPSE3D_WORKER_STALLED_SECONDS": "5",
            "GLIMPSE3D_WORKER_POLL_SECONDS": "0.5",
            "GLIMPSE3D_WORKER_SHUTDOWN_SECONDS": "0.5",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPO_ROOT),
        })
        for k, v in settings.items():
            env[f"GLIMPSE3D_{k.upper()}"] = v if isinstance(v, str) else json.dumps(v)
        workdir.mkdir(parents=True, exist_ok=True)
        return cls(workdir, database_url, env)

    @property
    def conninfo(self) -> str:
        from glimpse3d.jobs.distributed import conninfo_from_url

        return conninfo_from_url(self.database_url)

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cur = conn.execute(query, args or None)
            return cur.fetchall() if cur.description else []

    def _spawn(self, name: str, argv: list[str], port: int | None = None,
               extra_env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        env = {**self.env, "PGAPPNAME": name, **(extra_env or {})}
        fh = log.open("wb")
        popen = subprocess.Popen(argv, cwd=self.workdir, env=env, stdout=fh,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        fh.close()
        proc = Proc(name, popen, log, port)
        self.procs.append(proc)
        return proc

    def start_worker(self, name: str, concurrency: int | None = None, queues: str = "") -> Proc:
        """``glimpse3d worker`` (concurrency from GLIMPSE3D_WORKER_CONCURRENCY unless given)."""
        argv = [sys.executable, "-m", "glimpse3d.cli", "worker"]
        if concurrency is not None:
            argv += ["--concurrency", str(concurrency)]
        if queues:
            argv += ["--queues", queues]
        return self._spawn(name, argv)

    def start_api(self, name: str, extra_env: dict[str, str] | None = None) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "--factory", "glimpse3d.api.app:create_app",
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        return self._spawn(name, argv, port=port, extra_env=extra_env)

    def start_redis(self) -> str:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        port = free_port()
        self._spawn("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], port=port)
        wait_for(lambda: _port_open(port), 10, "redis")
        return f"redis://127.0.0.1:{port}/0"

    def wait_api(self, proc: Proc, timeout: float = 60) -> None:
        import httpx

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            try:
                return httpx.get(proc.url + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout, f"{proc.name} to answer /health")

    def live_workers(self) -> int:
        with contextlib.suppress(psycopg.Error):
            return int(self.sql("SELECT count(*) FROM procrastinate_workers WHERE "
                                "last_heartbeat > NOW() - interval '5 seconds'")[0][0])
        return 0

    def wait_workers(self, n: int, timeout: float = 60) -> None:
        def ready() -> bool:
            for p in self.procs:
                if p.name.startswith("worker") and not p.alive() and p.popen.returncode != -9:
                    raise RuntimeError(f"{p.name} exited:\n{p.tail()}")
            return self.live_workers() >= n

        wait_for(ready, timeout, f"{n} live workers")

    def lock_holder(self, project_id: str) -> str | None:
        """The PGAPPNAME of the process holding the project's advisory lock (running it)."""
        rows = self.sql(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s "
            "AND l.objid = (hashtext(%s)::bigint & 4294967295) AND l.objsubid = 2",
            PROJECT_LOCK_NAMESPACE, project_id)
        return rows[0][0] if rows else None

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.proc(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)
        proc.popen.wait(30)

    def terminate_connections(self, prefix: str) -> int:
        """``pg_terminate_backend`` every session whose application_name starts with prefix."""
        rows = self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name LIKE %s AND pid <> pg_backend_pid()", prefix + "%")
        return sum(1 for r in rows if r[0])

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} (rc={p.popen.poll()})\n{p.tail()}" for p in self.procs)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_cluster(workdir: Path, database_url: str, s3_endpoint: str, bucket_prefix: str,
                    **settings: Any) -> Iterator[Cluster]:
    cluster = Cluster.make(workdir, database_url, s3_endpoint, bucket_prefix, **settings)
    try:
        yield cluster
    finally:
        cluster.stop()
