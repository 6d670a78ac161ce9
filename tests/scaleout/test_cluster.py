"""Scale-out with real processes: PostgreSQL, a moto S3 server, ``glimpse3d worker`` and
uvicorn API subprocesses, Redis for shared rate limits. A worker is killed with SIGKILL
mid-stage, the workers' database sessions are terminated mid-job, a worker is stopped with
SIGTERM mid-job: projects must still complete, exactly once, with every row and file."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.cluster import Cluster, disc_photo, running_cluster, wait_for

pytestmark = pytest.mark.slow

ACTIVE = ("preprocessing", "multiview_generating", "depth_estimating", "reconstructing",
          "refining", "exporting")


def _repo(url: str) -> Any:
    from glimpse3d.db.repository import Repository

    return Repository(url)


def _assert_complete(repo: Any, storage: Any, pid: str, versions: list[int],
                     exports: set[tuple[int, str]]) -> None:
    """Exactly 16 views/depth maps, contiguous versions, one row and object per output."""
    project = repo.get_project(pid)
    assert project["status"] == "completed", project
    assert project["job"] is None and project["progress_percentage"] == 100.0
    counts = repo.table_counts(pid)
    n_iter = len(versions) - 1
    assert counts["multiview_generation"] == 16
    assert counts["depth_maps"] == 16
    assert [m["version"] for m in repo.list_models(pid)] == versions
    assert [m["parent_version"] for m in repo.list_models(pid)] == [None, *versions[:-1]]
    assert [i["iteration_number"] for i in repo.list_iterations(pid)] == list(range(1, n_iter + 1))
    assert counts["enhanced_views"] == 16 * n_iter
    assert {(e["model_version"], e["format"]) for e in repo.list_exports(pid)} == exports
    assert sorted(v["view_index"] for v in repo.list_views(pid)) == list(range(16))
    p = f"{pid}/"
    assert len(storage.list("multiview-images", p)) == 16
    assert len(storage.list("depth-maps", p)) == 32
    assert len(storage.list("enhanced-views", p)) == 32 * n_iter
    assert len(storage.list("3d-models", p)) == len(versions) + len(exports)
    assert len(storage.list("processed-images", p)) == 2
    assert len(storage.list("project-uploads", p)) == 1


def _watch(repo: Any, pid: str, seen: dict[str, Any], stop: threading.Event) -> None:
    """Record the largest ``attempts`` and the statuses a project goes through."""
    while not stop.wait(0.1):
        try:
            p = repo.get_project(pid)
        except Exception:  # noqa: BLE001 - keep watching
            continue
        seen["attempts"] = max(seen.get("attempts", 0), int(p["attempts"] or 0))
        seen.setdefault("statuses", []).append(p["status"])


def _sse(url: str, out: list[dict[str, Any]], done: threading.Event) -> None:
    """Collect server-sent events (``event`` + JSON ``data``) until the stream ends."""
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=60)) as r:
            event: dict[str, Any] = {}
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event["event"] = line[6:].strip()
                elif line.startswith("data:"):
                    event["data"] = json.loads(line[5:])
                elif line.startswith("id:"):
                    event["id"] = int(line[3:])
                elif not line and event:
                    out.append(event)
                    event = {}
                    if out[-1].get("event") in ("end", "deleted"):
                        return
    finally:
        done.set()


def test_two_apis_two_workers_survive_a_killed_worker(
    pg_url: str, s3_server: str, s3_storage_factory: Callable[..., Any], tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    storage = s3_storage_factory(prefix=prefix)
    with running_cluster(tmp_path / "cluster", pg_url, s3_server, prefix) as c:
        redis_url = c.start_redis()
        limits = {"GLIMPSE3D_REDIS_URL": redis_url, "GLIMPSE3D_RATE_LIMIT": "3/minute"}
        api1, api2 = c.start_api("api-1", limits), c.start_api("api-2", limits)
        c.start_worker("worker-a", queues="pipeline,gpu")
        c.start_worker("worker-b", concurrency=1)
        c.wait_api(api1)
        c.wait_api(api2)
        c.wait_workers(2)
        repo = _repo(pg_url)
        try:
            _run_kill_scenario(c, api1.url, api2.url, repo, storage)
        except BaseException:
            print(c.logs())
            raise
        finally:
            repo.close()


def _upload(base: str, seed: int) -> httpx.Response:
    return httpx.post(f"{base}/api/v1/upload", timeout=60,
                      files={"file": (f"disc{seed}.png", disc_photo(384, seed=seed), "image/png")})


def _run_kill_scenario(c: Cluster, a1: str, a2: str, repo: Any, storage: Any) -> None:
    # uploads on both API processes share one rate-limit counter (Redis): 3/minute in all
    r1, r2, r3 = _upload(a1, 1), _upload(a2, 2), _upload(a1, 3)
    assert [r.status_code for r in (r1, r2, r3)] == [201, 201, 201], r1.text
    r4 = _upload(a2, 4)
    assert r4.status_code == 429 and int(r4.headers["Retry-After"]) >= 1
    p1, p2 = r1.json()["project_id"], r2.json()["project_id"]

    # progress of a job queued on api-1 reaches a client streaming from api-2
    events: list[dict[str, Any]] = []
    sse_done = threading.Event()
    threading.Thread(target=_sse, args=(f"{a2}/api/v1/projects/{p1}/events", events, sse_done),
                     daemon=True).start()
    seen: dict[str, Any] = {}
    stop = threading.Event()
    threading.Thread(target=_watch, args=(repo, p1, seen, stop), daemon=True).start()

    assert httpx.post(f"{a1}/api/v1/generate/{p1}", timeout=30).status_code == 202
    assert httpx.post(f"{a2}/api/v1/generate/{p2}", timeout=30).status_code == 202
    again = httpx.post(f"{a2}/api/v1/generate/{p1}", timeout=30)
    assert again.status_code == 409, again.text  # one job per project, across processes

    # kill -9 the worker running p1 in the middle of a stage
    wait_for(lambda: repo.get_project(p1)["status"] in ("depth_estimating", "reconstructing"),
             120, "project 1 to reach depth or reconstruction")
    holder = wait_for(lambda: c.lock_holder(p1), 10, "the worker holding project 1")
    assert holder in ("worker-a", "worker-b")
    before = repo.get_project(p1)
    # cut the database sessions of both workers (the other one is running project 2) ...
    assert c.terminate_connections("worker-") >= 2
    # ... and kill -9 the one running project 1
    c.kill(holder)
    survivor = "worker-b" if holder == "worker-a" else "worker-a"
    c.start_worker("worker-c")  # a replacement joins while the dead worker's job waits

    for pid in (p1, p2):
        wait_for(lambda pid=pid: repo.get_project(pid)["status"] in ("completed", "failed"),
                 180, f"project {pid} to finish")
    stop.set()
    assert seen["attempts"] >= 2  # the killed start and the resumed one
    assert c.proc(survivor).alive()
    assert repo.get_project(p1)["completed_at"] > before["updated_at"]

    # refine through the other API process: v1 on top of v0, no gaps
    for pid, base in ((p1, a2), (p2, a1)):
        r = httpx.post(f"{base}/api/v1/refine/{pid}?iterations=1", timeout=30)
        assert r.status_code == 202, r.text
    # cut every database session of the workers again, during the refinement
    wait_for(lambda: repo.get_project(p1)["status"] in ("refining", "exporting", "completed"),
             120, "refinement to start")
    assert c.terminate_connections("worker-") >= 2
    for pid in (p1, p2):
        wait_for(lambda pid=pid: repo.get_project(pid)["status"] in ("completed", "failed")
                 and repo.get_project(pid)["job"] is None, 180, f"refinement of {pid}")
    assert c.proc(survivor).alive() and c.proc("worker-c").alive()
    for pid in (p1, p2):
        _assert_complete(repo, storage, pid, [0, 1],
                         {(0, "ply"), (0, "splat"), (1, "ply"), (1, "splat")})

    status = httpx.get(f"{a2}/api/v1/status/{p1}", timeout=30).json()
    assert status["project"]["status"] == "completed"
    assert len(status["views"]) == 16 and len(status["depth_maps"]) == 16

    assert sse_done.wait(30), "the event stream on api-2 did not end"
    kinds = [e.get("event") for e in events]
    assert kinds[-1] == "end" and events[-1]["data"]["status"] == "completed", events[-3:]
    statuses = {e["data"]["status"] for e in events if "data" in e}
    assert {"multiview_generating", "depth_estimating"} <= statuses, statuses
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    # the dead worker's job was re-queued, not duplicated: every job ended, none is left over
    rows = c.sql("SELECT status, count(*) FROM procrastinate_jobs GROUP BY status")
    assert all(s not in ("todo", "doing") for s, _ in rows), rows


def test_cancel_running_job_and_graceful_worker_shutdown(
    pg_url: str, s3_server: str, s3_storage_factory: Callable[..., Any], tmp_path: Path,
    make_settings: Callable[..., Any],
) -> None:
    """Cancel reaches a job running in another process; SIGTERM re-queues the running job
    without counting the attempt, and a new worker finishes it."""
    from glimpse3d.db.repository import open_repository
    from glimpse3d.jobs.distributed import ProcrastinateQueue
    from glimpse3d.pipeline.runner import PipelineRunner
    from tests.utils.settings import FAST

    prefix = f"t{uuid.uuid4().hex[:10]}-"
    storage = s3_storage_factory(prefix=prefix)
    settings = make_settings(database_url=pg_url, queue="procrastinate", **FAST)
    repo = open_repository(pg_url)
    queue = ProcrastinateQueue(settings, repo, storage, watch_stalled=False)
    runner = PipelineRunner(repo, storage, settings)
    with running_cluster(tmp_path / "cluster", pg_url, s3_server, prefix) as c:
        try:
            p1, p2 = (runner.ingest(disc_photo(384, seed=s), "d.png")["id"] for s in (11, 12))
            c.start_worker("worker-a")
            c.wait_workers(1)
            queue.enqueue(p1, {"kind": "generate"})
            wait_for(lambda: repo.get_project(p1)["attempts"] >= 1, 60,
                     "project 1 to start")  # "queued" shows the status at once; attempts count starts
            assert queue.cancel(p1) is True
            wait_for(lambda: repo.get_project(p1)["status"] == "cancelled"
                     and not queue.is_active(p1), 60, "the running job to stop")
            assert repo.get_project(p1)["job"] is None
            assert repo.table_counts(p1)["gaussian_splat_models"] == 0

            queue.enqueue(p2, {"kind": "generate"})
            wait_for(lambda: repo.get_project(p2)["attempts"] >= 1, 60,
                     "project 2 to start")
            assert repo.get_project(p2)["attempts"] == 1
            c.kill("worker-a", signal.SIGTERM)
            assert c.proc("worker-a").popen.returncode == 0
            project = repo.get_project(p2)
            assert project["job"] == {"kind": "generate"} and project["attempts"] == 0
            assert project["status"] in ACTIVE, project  # interrupted, not cancelled/failed
            assert c.sql("SELECT status FROM procrastinate_jobs WHERE lock = %s", p2) == [("todo",)]

            c.start_worker("worker-b")
            wait_for(lambda: repo.get_project(p2)["status"] in ("completed", "failed")
                     and not repo.get_project(p2)["job"], 180, "project 2 to finish")
            _assert_complete(repo, storage, p2, [0], {(0, "ply"), (0, "splat")})
        except BaseException:
            print(c.logs())
            raise
        finally:
            queue.stop()
            repo.close()
