"""Stall recovery: jobs of workers that stopped heartbeating go back to the queue."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from glimpse3d.jobs.distributed.app import RECOVERY_LOCK_KEY, TASK_NAME, _connect, _first_line

log = logging.getLogger(__name__)


def recover_stalled_jobs(conninfo: str, stalled_seconds: float) -> list[int]:
    """Re-queue (``doing`` -> ``todo``) the jobs of workers whose last heartbeat is older
    than ``stalled_seconds`` (or that were pruned), and prune those workers. One transaction
    under an advisory lock, so concurrent callers never re-queue a job twice. Returns the
    job ids re-queued."""
    from procrastinate import sql

    with _connect(conninfo, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (RECOVERY_LOCK_KEY,))
        cur = conn.execute(
            sql.queries["select_stalled_jobs_by_heartbeat"],
            {"queue": None, "task_name": TASK_NAME, "seconds_since_heartbeat": stalled_seconds},
        )
        ids = [int(r[0]) for r in cur.fetchall()]
        now = dt.datetime.now(dt.UTC)
        for job_id in ids:
            conn.execute(
                sql.queries["retry_job"],
                {"job_id": job_id, "retry_at": now, "new_priority": None,
                 "new_queue_name": None, "new_lock": None},
            )
        conn.execute(sql.queries["prune_stalled_workers"],
                     {"seconds_since_heartbeat": stalled_seconds})
        conn.commit()
    if ids:
        log.warning("re-queued %d job(s) of stalled workers: %s", len(ids), ids)
    return ids


class StalledJobWatcher:
    """A daemon thread calling :func:`recover_stalled_jobs` every ``interval`` seconds."""

    def __init__(self, conninfo: str, stalled_seconds: float, interval: float) -> None:
        self.conninfo = conninfo
        self.stalled_seconds = stalled_seconds
        self.interval = interval
        self.recovered: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="glimpse3d-stall-watch",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.recovered += recover_stalled_jobs(self.conninfo, self.stalled_seconds)
            except Exception as exc:  # noqa: BLE001 - keep watching; the DB may come back
                log.warning("stalled-job check failed: %s", _first_line(exc))

