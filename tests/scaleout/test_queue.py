"""The procrastinate queue on a real PostgreSQL, without worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from glimpse3d.errors import UserError, WrongState
from glimpse3d.jobs import distributed as d
from glimpse3d.jobs.distributed.worker import _is_transient


def _pg(settings: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(d.conninfo_from_url(settings.resolved_database_url),
                         autocommit=True) as conn:
        cur = conn.execute(sql, args or None)
        return cur.fetchall() if cur.description else []


def test_conninfo_from_url() -> None:
    got = d.conninfo_from_url(
        "postgresql+psycopg://u:p%40ss@db.example.com:6543/app?sslmode=require&pgbouncer=true")
    assert got == "postgresql://u:p%40ss@db.example.com:6543/app?sslmode=require"
    assert d.conninfo_from_url("postgres://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(UserError, match="needs PostgreSQL"):
        d.conninfo_from_url("sqlite:///x.db")


def test_tuning_from_env(monkeypatch: pytest.MonkeyPatch, make_settings: Any) -> None:
    monkeypatch.setenv("GLIMPSE3D_WORKER_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("GLIMPSE3D_WORKER_STALLED_SECONDS", "3")
    t = d.tuning(make_settings())
    assert (t.heartbeat, t.stalled, t.poll, t.shutdown) == (0.5, 3.0, 5.0, 20.0)
    assert t.recovery_interval == 1.0
    monkeypatch.setenv("GLIMPSE3D_WORKER_STALLED_SECONDS", "1")
    with pytest.raises(UserError, match="twice the heartbeat"):
        d.tuning(make_settings())
    monkeypatch.setenv("GLIMPSE3D_WORKER_STALLED_SECONDS", "soon")
    with pytest.raises(ValidationError, match="worker_stalled_seconds"):
        make_settings()  # a typed setting: rejected when the settings are read


def test_queue_for(make_settings: Any) -> None:
    classic = make_settings()
    assert d.queue_for(classic, {"kind": "generate"}) == "pipeline"
    assert d.queue_for(classic, {"kind": "refine"}) == "pipeline"
    assert d.queue_for(classic, {"kind": "generate"}, {"depth_backend": "transformers"}) == "gpu"
    learned = make_settings(enhance_backend="diffusers")
    assert d.queue_for(learned, {"kind": "generate"}) == "pipeline"
    assert d.queue_for(learned, {"kind": "refine"}) == "gpu"
    assert d.queue_for(make_settings(device="cuda"), {"kind": "generate"}) == "gpu"


def test_apply_schema_is_idempotent(pq_settings: Any) -> None:
    settings = pq_settings()
    assert d.apply_schema(settings) is True
    assert d.apply_schema(settings) is False
    names = {r[0] for r in _pg(settings, "SELECT tablename FROM pg_tables "
                                         "WHERE tablename LIKE 'procrastinate%%'")}
    assert {"procrastinate_jobs", "procrastinate_workers", "procrastinate_events"} <= names


def test_db_upgrade_applies_procrastinate_schema(pg_url: str, tmp_path: Any) -> None:
    env = {**os.environ, "GLIMPSE3D_DATABASE_URL": pg_url, "GLIMPSE3D_QUEUE": "procrastinate",
           "GLIMPSE3D_DATA_DIR": str(tmp_path)}
    for _ in range(2):  # the second run finds everything in place
        proc = subprocess.run([sys.executable, "-m", "glimpse3d.cli", "db", "upgrade"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert d.schema_present(d.conninfo_from_url(pg_url))


def test_enqueue_is_active_cancel(pq: tuple[Any, Any, Any]) -> None:
    settings, repo, queue = pq
    assert isinstance(queue, d.ProcrastinateQueue)
    queue.check()
    pid = repo.create_project("a", client_id="10.0.0.1")["id"]
    assert not queue.is_active(pid)
    queue.enqueue(pid, {"kind": "generate"}, client_id="10.0.0.1")
    assert queue.is_active(pid)
    assert repo.get_project(pid)["job"] == {"kind": "generate"}
    assert queue.active_count("10.0.0.1") == 1
    assert queue.active_count("10.0.0.2") == 0
    rows = _pg(settings, "SELECT status, queue_name, lock, queueing_lock, args->>'project_id' "
                         "FROM procrastinate_jobs")
    assert rows == [("todo", "pipeline", pid, pid, pid)]
    with pytest.raises(WrongState):
        queue.enqueue(pid, {"kind": "generate"})
    with pytest.raises(UserError):
        queue.enqueue(pid, {"kind": "explode"})
    assert queue.cancel(pid) is True
    project = repo.get_project(pid)
    assert (project["status"], project["job"]) == ("cancelled", None)
    assert not queue.is_active(pid)
    assert queue.cancel(pid) is False
    assert _pg(settings, "SELECT status FROM procrastinate_jobs") == [("cancelled",)]


def test_start_requeues_recorded_job_without_procrastinate_job(pq: tuple[Any, Any, Any]) -> None:
    settings, repo, queue = pq
    pid = repo.create_project("orphan")["id"]
    repo.update_project(pid, status="depth_estimating", job={"kind": "generate"})
    assert _pg(settings, "SELECT count(*) FROM procrastinate_jobs") == [(0,)]
    queue.start()  # idempotent; re-queues the orphan
    queue.stop()
    queue.start()
    assert queue.is_active(pid)
    assert _pg(settings, "SELECT status, lock FROM procrastinate_jobs") == [("todo", pid)]


def test_recover_stalled_jobs(pq: tuple[Any, Any, Any]) -> None:
    settings, repo, queue = pq
    dead, live = (r[0] for r in _pg(settings, "INSERT INTO procrastinate_workers (last_heartbeat) "
                                              "VALUES (NOW()), (NOW()) RETURNING id"))
    _pg(settings, "UPDATE procrastinate_workers SET last_heartbeat = NOW() - interval '1 hour' "
                  "WHERE id = %s", dead)
    pids = [repo.create_project(n)["id"] for n in ("a", "b")]
    for pid in pids:
        queue.enqueue(pid, {"kind": "generate"})
    ids = [r[0] for r in _pg(settings, "SELECT id FROM procrastinate_jobs ORDER BY id")]
    for job_id, worker in zip(ids, (dead, live), strict=True):
        _pg(settings, "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s "
                      "WHERE id = %s", worker, job_id)
    assert d.recover_stalled_jobs(queue.conninfo, 30) == [ids[0]]
    assert d.recover_stalled_jobs(queue.conninfo, 30) == []
    assert _pg(settings, "SELECT id, status, attempts FROM procrastinate_jobs ORDER BY id") == [
        (ids[0], "todo", 1), (ids[1], "doing", 0)]
    assert _pg(settings, "SELECT id FROM procrastinate_workers") == [(live,)]
    assert queue.live_workers() == 1


def test_runner_gives_up_after_max_attempts(pq: tuple[Any, Any, Any]) -> None:
    settings, repo, _queue = pq
    runner = d.JobRunner(settings, repo, storage=None)  # type: ignore[arg-type]
    pid = repo.create_project("crashy")["id"]
    repo.update_project(pid, status="reconstructing", job={"kind": "generate"},
                        attempts=settings.max_job_attempts)
    assert runner.run(None, pid, {"kind": "generate"}) == "gave up: too many attempts"
    project = repo.get_project(pid)
    assert project["status"] == "failed" and project["job"] is None
    assert f"gave up after {settings.max_job_attempts}" in project["error_message"]
    # a project without a recorded job (finished or cancelled meanwhile) is left alone
    assert runner.run(None, pid, {"kind": "generate"}).startswith("no recorded job")
    assert runner.run(None, "00000000-0000-0000-0000-000000000000",
                      {"kind": "generate"}) == "project deleted"


def test_runner_waits_while_project_locked(pq: tuple[Any, Any, Any]) -> None:
    settings, repo, _queue = pq
    runner = d.JobRunner(settings, repo, storage=None)  # type: ignore[arg-type]
    pid = repo.create_project("busy")["id"]
    repo.update_project(pid, job={"kind": "generate"})
    with psycopg.connect(runner.conninfo, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, hashtext(%s))",
                      (d.PROJECT_LOCK_NAMESPACE, pid))
        with pytest.raises(d.RetryLater, match="another worker"):
            runner.run(None, pid, {"kind": "generate"})
    assert repo.get_project(pid)["attempts"] == 0  # not counted


def test_lost_connection_is_transient(pq: tuple[Any, Any, Any]) -> None:
    settings, repo, _queue = pq
    conninfo = d.conninfo_from_url(settings.resolved_database_url)
    with psycopg.connect(conninfo, autocommit=True) as victim:
        backend = victim.info.backend_pid
        _pg(settings, "SELECT pg_terminate_backend(%s)", backend)
        with pytest.raises(psycopg.Error) as direct:
            victim.execute("SELECT 1")
    assert _is_transient(direct.value)
    # the same through SQLAlchemy (a pooled connection killed while checked out)
    import sqlalchemy as sa

    with repo.engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        _pg(settings, "SELECT pg_terminate_backend(%s)", pid)
        with pytest.raises(sa.exc.DBAPIError) as wrapped:
            conn.execute(sa.text("SELECT 1"))
    assert _is_transient(wrapped.value)
    try:
        raise RuntimeError("stage failed") from ValueError("bad pixel")
    except RuntimeError as exc:
        assert not _is_transient(exc)
    assert repo.get_project(repo.create_project("after")["id"])["name"] == "after"  # pool heals


def test_finishing_run_does_not_block_the_next_job(pq: tuple[Any, Any, Any]) -> None:
    """A run that recorded its outcome (project.job cleared) but whose procrastinate job is
    still 'doing' for a moment must not turn the next request into a 409."""
    settings, repo, queue = pq
    pid = repo.create_project("p")["id"]
    queue.enqueue(pid, {"kind": "generate"})
    _pg(settings, "UPDATE procrastinate_jobs SET status = 'doing'")
    assert queue.is_active(pid)  # running and recorded
    repo.update_project(pid, status="completed", job=None)
    assert not queue.is_active(pid)
    assert queue.cancel(pid) is False
    queue.enqueue(pid, {"kind": "refine", "iterations": 1})
    assert queue.is_active(pid)
    assert _pg(settings, "SELECT status, args->'job'->>'kind' FROM procrastinate_jobs "
                         "ORDER BY id") == [("doing", "generate"), ("todo", "refine")]
