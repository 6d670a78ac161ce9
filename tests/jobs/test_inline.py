"""The in-process job engine: runs, records, resumes, gives up, fails cleanly, cancels.

Jobs here run through the real ``PipelineRunner`` on projects whose stages are already
recorded (so only the quick export step does work)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from glimpse3d.errors import UserError, WrongState
from glimpse3d.jobs.base import JobQueue, validate_job
from glimpse3d.jobs.factory import make_queue
from glimpse3d.jobs.inline import InlineQueue
from glimpse3d.jobs.outcomes import interrupted_jobs
from glimpse3d.splat.cameras import syncdreamer_cameras
from glimpse3d.splat.formats import model_to_bytes
from glimpse3d.splat.gaussians import GaussianModel
from glimpse3d.splat.images import rgba_png_bytes
from glimpse3d.storage.base import DEPTH, MODELS, MULTIVIEW, PROCESSED, UPLOADS, keys
from tests.utils.common import disc_photo, wait_for


@pytest.fixture
def env(make_settings, tmp_path):
    from glimpse3d.db.repository import open_repository
    from glimpse3d.storage.local import LocalStorage

    settings = make_settings(view_size=64, max_gaussians=1000, export_formats=["ply"])
    repo = open_repository(f"sqlite:///{tmp_path / 'g.db'}")
    storage = LocalStorage(tmp_path / "storage")
    storage.ensure_buckets()
    queues: list[InlineQueue] = []

    def queue(**kw: Any) -> InlineQueue:
        q = InlineQueue(settings, repo, storage, **kw)
        queues.append(q)
        return q

    yield settings, repo, storage, queue
    for q in queues:
        q.stop(5)
    repo.close()


def seed_generated(repo, storage, size: int = 64) -> str:
    """A project with every generate stage recorded: processed image, 16 views, 16 depth
    maps, model v0 — a ``generate`` job on it only makes the v0 exports."""
    pid = repo.create_project("seeded")["id"]
    png = disc_photo(64)
    storage.put_bytes(UPLOADS, keys.original(pid, "png"), png)
    storage.put_bytes(PROCESSED, keys.processed(pid), png)
    repo.update_project(pid, original_image_key=keys.original(pid, "png"),
                        processed_image_key=keys.processed(pid), status="preprocessing")
    rgb = np.full((size, size, 3), 0.5, np.float32)
    alpha = np.ones((size, size), np.float32)
    for k, cam in enumerate(syncdreamer_cameras(size)):
        storage.put_bytes(MULTIVIEW, keys.view(pid, k), rgba_png_bytes(rgb, alpha))
        repo.upsert_view(pid, k, cam.elevation, cam.azimuth, keys.view(pid, k), "test", 0.0)
        buf = io.BytesIO()
        np.save(buf, np.full((size, size), 1.5, np.float32))
        storage.put_bytes(DEPTH, keys.depth(pid, k), buf.getvalue())
        storage.put_bytes(DEPTH, keys.heatmap(pid, k), rgba_png_bytes(rgb, None))
        repo.upsert_depth_map(pid, k, keys.depth(pid, k), keys.heatmap(pid, k), 1.5, 1.5, 1.5,
                              1.0, "test")
    g = GaussianModel.random(200, seed=3)
    size_b = storage.put_bytes(MODELS, keys.model(pid, 0), model_to_bytes(g, "ply"))
    repo.upsert_model(pid, 0, None, keys.model(pid, 0), g.num_gaussians, size_b, "test")
    return pid


def finished(repo, pid: str) -> dict | None:
    p = repo.get_project(pid)
    return p if p["status"] in ("completed", "failed", "cancelled") and not p["job"] else None


def test_validate_job() -> None:
    assert validate_job({"kind": "generate", "extra": 1}) == {"kind": "generate"}
    assert validate_job({"kind": "refine", "iterations": 2, "strength": "high"}) == {
        "kind": "refine", "iterations": 2, "strength": 0.75}
    for bad in ({"kind": "explode"}, {"kind": "refine", "iterations": 11},
                {"kind": "refine", "strength": "max"}, {"kind": "refine", "strength": 0}):
        with pytest.raises(UserError):
            validate_job(bad)


def test_make_queue_picks_the_engine(env) -> None:
    settings, repo, storage, _ = env
    q = make_queue(settings, repo, storage)
    assert isinstance(q, InlineQueue) and isinstance(q, JobQueue)


def test_job_runs_records_progress_and_clears(env) -> None:
    _, repo, storage, queue = env
    events: list[Any] = []
    checked = threading.Event()

    def on_progress(event: Any) -> None:
        events.append(event)
        checked.wait(30)  # the job (a few quick exports) waits until the checks below are done

    q = queue(on_progress=on_progress)
    q.start()
    q.check()
    pid = seed_generated(repo, storage)
    q.enqueue(pid, {"kind": "generate"}, client_id="c1")
    assert repo.get_project(pid)["job"] == {"kind": "generate"}
    with pytest.raises(WrongState):
        q.enqueue(pid, {"kind": "generate"})
    checked.set()
    p = wait_for(lambda: finished(repo, pid), 60, what="the job")
    assert p["status"] == "completed" and p["progress_percentage"] == 100.0
    assert p["attempts"] == 0 and p["job"] is None
    assert sorted(e["format"] for e in repo.list_exports(pid)) == ["ply", "splat"]
    assert not q.is_active(pid) and q.active_count("c1") == 0
    assert events and events[-1].status == "completed"
    assert [e.progress for e in events if e.progress >= 0] == sorted(
        e.progress for e in events if e.progress >= 0)


def test_interrupted_job_is_resumed_on_start(env) -> None:
    """A process died with the job recorded: the next start picks it up and finishes it."""
    _, repo, storage, queue = env
    pid = seed_generated(repo, storage)
    repo.update_project(pid, job={"kind": "generate"}, attempts=1, status="reconstructing")
    assert [j[0] for j in interrupted_jobs(repo)] == [pid]
    q = queue()
    q.start()
    p = wait_for(lambda: finished(repo, pid), 60, what="the resumed job")
    assert p["status"] == "completed"
    assert len(repo.list_views(pid)) == 16 and len(repo.list_models(pid)) == 1  # no duplicates


def test_gives_up_after_max_attempts(env) -> None:
    settings, repo, storage, queue = env
    pid = seed_generated(repo, storage)
    repo.update_project(pid, job={"kind": "generate"}, attempts=settings.max_job_attempts,
                        status="multiview_generating")
    q = queue()
    q.start()
    p = wait_for(lambda: finished(repo, pid), 30, what="the give-up")
    assert p["status"] == "failed"
    assert p["error_message"] == "gave up after 3 interrupted attempts of the generate job"


def test_failure_is_recorded_and_the_worker_survives(env) -> None:
    _, repo, storage, queue = env
    broken = repo.create_project("broken")["id"]
    repo.update_project(broken, processed_image_key=keys.processed(broken),
                        original_image_key=keys.original(broken, "png"))  # files missing
    good = seed_generated(repo, storage)
    q = queue()
    q.start()
    q.enqueue(broken, {"kind": "generate"})
    q.enqueue(good, {"kind": "generate"})
    p = wait_for(lambda: finished(repo, broken), 60, what="the failure")
    assert p["status"] == "failed" and p["error_message"]
    assert "Traceback" not in p["error_message"]
    assert wait_for(lambda: finished(repo, good), 60)["status"] == "completed"
    q.check()


def test_stop_keeps_queued_jobs_for_the_next_start(env) -> None:
    _, repo, storage, queue = env
    pid = seed_generated(repo, storage)
    q1 = queue()  # never started
    q1.enqueue(pid, {"kind": "generate"})
    q1.stop(1)
    assert repo.get_project(pid)["job"] == {"kind": "generate"}
    q2 = queue()
    q2.start()
    assert wait_for(lambda: finished(repo, pid), 60)["status"] == "completed"


def test_cancel_queued_and_unknown(env) -> None:
    _, repo, storage, queue = env
    pid = seed_generated(repo, storage)
    q = queue()  # not started: the job stays queued
    assert q.cancel(pid) is False
    q.enqueue(pid, {"kind": "generate"}, client_id="c9")
    assert q.active_count("c9") == 1 and q.active_count("other") == 0
    assert q.cancel(pid) is True
    assert not q.is_active(pid) and q.active_count("c9") == 0
    p = repo.get_project(pid)
    assert p["status"] == "cancelled" and p["job"] is None
    with pytest.raises(RuntimeError, match="not started"):
        q.check()


def start_held_in_first_step(queue: Callable[..., InlineQueue], pid: str
                             ) -> tuple[InlineQueue, threading.Event]:
    """A started queue running a ``generate`` job of ``pid`` that its progress callback holds
    inside the first step (asserted reached); the job goes on once the returned event is set
    (or after 10 s)."""
    started = threading.Event()
    release = threading.Event()

    def on_progress(event: Any) -> None:
        if event.project_id == pid and not started.is_set():
            started.set()
            release.wait(10)

    q = queue(on_progress=on_progress)
    q.start()
    q.enqueue(pid, {"kind": "generate"})
    assert started.wait(30)
    return q, release


def test_cancel_a_running_job(env) -> None:
    """The flag is polled between steps: the job stops with status 'cancelled'."""
    _, repo, storage, queue = env
    pid = seed_generated(repo, storage)
    q, release = start_held_in_first_step(queue, pid)
    assert q.cancel(pid) is True
    release.set()
    p = wait_for(lambda: finished(repo, pid), 30, what="the cancellation")
    assert p["status"] == "cancelled" and p["job"] is None
    assert not q.is_active(pid)


def test_shutdown_mid_job_keeps_it_recorded_and_the_next_start_finishes_it(env) -> None:
    _, repo, storage, queue = env
    pid = seed_generated(repo, storage)
    q1, release = start_held_in_first_step(queue, pid)
    stopper = threading.Thread(target=q1.stop, args=(20,))
    stopper.start()
    wait_for(lambda: q1._stopping.is_set(), 5)
    release.set()
    stopper.join(30)
    p = repo.get_project(pid)
    assert p["job"] is not None and p["job"]["kind"] == "generate"
    assert p["status"] != "cancelled"  # interrupted, not cancelled
    q2 = queue()
    q2.start()
    p = wait_for(lambda: finished(repo, pid), 60, what="the resumed job")
    assert p["status"] == "completed"
    assert sorted(e["format"] for e in repo.list_exports(pid)) == ["ply", "splat"]
