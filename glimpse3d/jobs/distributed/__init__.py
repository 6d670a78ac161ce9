"""The distributed job engine: procrastinate 3.x workers on the app's PostgreSQL.

Processes and roles
-------------------
* API processes make a :class:`ProcrastinateQueue` (``settings.queue == "procrastinate"``).
  ``enqueue`` records the job on the project row (``projects.job``) and defers the task
  ``glimpse3d.run_pipeline_job(project_id, job)`` on the ``pipeline`` or ``gpu`` queue
  (:func:`queue_for`). It never runs pipelines itself.
* ``glimpse3d worker`` (:func:`run_worker`) runs procrastinate workers that execute those
  tasks with a :class:`~glimpse3d.pipeline.runner.PipelineRunner`.

At-least-once, without duplicates
---------------------------------
* Every procrastinate job of a project carries ``lock = queueing_lock = project id``: at most
  one queued and one running job per project, and never two running at once.
* Workers heartbeat (procrastinate 3.x ``procrastinate_workers``). A worker killed with
  SIGKILL stops heartbeating; :func:`recover_stalled_jobs` (run every few seconds by every
  worker and every API process, serialised by a transaction-scoped advisory lock) puts the
  ``doing`` jobs of workers silent for more than ``stalled_seconds`` back to ``todo``
  (procrastinate's ``get_stalled_jobs`` + ``retry_job`` queries, in one transaction).
* While a task runs it holds a session advisory lock on the project (on its own connection):
  a second run of the same project (e.g. after a false stall) waits until the first one's
  process or connection is gone. The runner skips stages whose outputs are recorded and all
  writes are upserts on natural keys, so a resumed job never duplicates rows or files.
* ``is_active`` is ``projects.job`` (recorded before the deferral, cleared by the worker once
  the run recorded its outcome), so every API process answers the same without a cache.
* Each start of a job increments ``projects.attempts``; after ``settings.max_job_attempts``
  starts the project is marked failed with a reason (a job that keeps killing workers stops).
  A graceful worker shutdown (SIGTERM) interrupts the job between steps and re-queues it
  without counting the attempt; a lost database connection re-queues it and counts it.

Timings (seconds) come from settings when they have the fields, else from the environment:
``GLIMPSE3D_WORKER_HEARTBEAT_SECONDS`` (10), ``GLIMPSE3D_WORKER_STALLED_SECONDS`` (30),
``GLIMPSE3D_WORKER_POLL_SECONDS`` (5), ``GLIMPSE3D_WORKER_SHUTDOWN_SECONDS`` (20; keep it
below the stalled timeout: heartbeats stop while a worker shuts down).

Modules: :mod:`.app` (names, timings, connections, schema, the task), :mod:`.queue` (API
side), :mod:`.worker` (worker processes), :mod:`.recovery` (stalled workers' jobs).
"""

from __future__ import annotations

from glimpse3d.jobs.distributed.app import (
    DEFAULT_QUEUE,
    GPU_QUEUE,
    PROJECT_LOCK_NAMESPACE,
    QUEUES,
    TASK_NAME,
    RetryLater,
    WorkerTuning,
    apply_schema,
    conninfo_from_url,
    make_app,
    queue_for,
    schema_present,
    tuning,
)
from glimpse3d.jobs.distributed.queue import ProcrastinateQueue
from glimpse3d.jobs.distributed.recovery import StalledJobWatcher, recover_stalled_jobs
from glimpse3d.jobs.distributed.worker import JobRunner, run_worker

__all__ = [
    "DEFAULT_QUEUE",
    "GPU_QUEUE",
    "PROJECT_LOCK_NAMESPACE",
    "QUEUES",
    "TASK_NAME",
    "JobRunner",
    "ProcrastinateQueue",
    "RetryLater",
    "StalledJobWatcher",
    "WorkerTuning",
    "apply_schema",
    "conninfo_from_url",
    "make_app",
    "queue_for",
    "recover_stalled_jobs",
    "run_worker",
    "schema_present",
    "tuning",
]
