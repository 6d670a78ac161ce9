"""The procrastinate app on the app's database: names, timings, connections, schema, task.

Shared by the API side (:mod:`.queue`), the workers (:mod:`.worker`) and the stall recovery
(:mod:`.recovery`); see the package docstring for how they work together.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from glimpse3d.errors import UserError

if TYPE_CHECKING:
    import procrastinate

    from glimpse3d.config import Settings

log = logging.getLogger(__name__)

TASK_NAME = "glimpse3d.run_pipeline_job"
DEFAULT_QUEUE = "pipeline"
GPU_QUEUE = "gpu"
QUEUES = (DEFAULT_QUEUE, GPU_QUEUE)
#: advisory-lock keys (bigint for recovery/schema; (int4, int4) namespace for projects)
RECOVERY_LOCK_KEY = 0x6733_645F_7374_6C  # "g3d_stl"
SCHEMA_LOCK_KEY = 0x6733_645F_7363_68  # "g3d_sch"
PROJECT_LOCK_NAMESPACE = 0x6733_6431  # "g3d1"
_LEARNED_STAGES = {
    "generate": ("multiview", "depth"),
    "refine": ("enhance", "feature"),
    "run": ("segment", "multiview", "depth", "enhance", "feature"),
}


class RetryLater(Exception):  # noqa: N818 - a signal to procrastinate, not an error
    """Raised by the task to put its job back in the queue (shutdown, lost connection,
    project busy elsewhere); the task's retry strategy retries exactly this exception."""


# ------------------------------------------------------------------ settings helpers
@dataclass(frozen=True)
class WorkerTuning:
    """Worker timings in seconds."""

    heartbeat: float = 10.0
    stalled: float = 30.0
    poll: float = 5.0
    shutdown: float = 20.0

    @property
    def recovery_interval(self) -> float:
        """How often stalled jobs are looked for."""
        return max(0.5, min(self.stalled / 3.0, 10.0))


def tuning(settings: Any) -> WorkerTuning:
    """Timings from ``settings.worker_*_seconds`` when present, else ``GLIMPSE3D_WORKER_*``."""
    out: dict[str, float] = {}
    for name in ("heartbeat", "stalled", "poll", "shutdown"):
        value = getattr(settings, f"worker_{name}_seconds", None)
        if value is None:
            value = os.environ.get(f"GLIMPSE3D_WORKER_{name.upper()}_SECONDS") or None
        if value is not None:
            try:
                out[name] = float(value)
            except ValueError:
                raise UserError(
                    f"GLIMPSE3D_WORKER_{name.upper()}_SECONDS must be a number of seconds, "
                    f"got {value!r}"
                ) from None
            if out[name] <= 0:
                raise UserError(f"GLIMPSE3D_WORKER_{name.upper()}_SECONDS must be positive")
    t = WorkerTuning(**out)
    if t.stalled <= 2 * t.heartbeat:
        raise UserError(
            f"the stalled-worker timeout ({t.stalled:g} s) must exceed twice the heartbeat "
            f"interval ({t.heartbeat:g} s)"
        )
    return t


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def conninfo_from_url(url: str) -> str:
    """A libpq connection URI (``postgresql://user:pw@host:port/db?sslmode=...``) for psycopg
    from the app's SQLAlchemy URL; SQLite raises ``UserError``."""
    from glimpse3d.db.engine import normalize_url

    parsed = normalize_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise UserError(
            "GLIMPSE3D_QUEUE=procrastinate needs PostgreSQL: set GLIMPSE3D_DATABASE_URL to a "
            "postgresql:// URL (or use GLIMPSE3D_QUEUE=inline)"
        )
    query = {k: v for k, v in parsed.query.items() if k != "pgbouncer"}
    return parsed.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


def _is_pooler(url: str) -> bool:
    from glimpse3d.db.engine import is_transaction_pooler, normalize_url

    return is_transaction_pooler(normalize_url(url))


def _connect(conninfo: str, autocommit: bool = True, timeout: int = 10) -> Any:
    import psycopg

    return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=timeout,
                           prepare_threshold=None)


def queue_for(settings: Settings, job: dict[str, Any],
              project_settings: dict[str, Any] | None = None) -> str:
    """``gpu`` when the job's stages use a learned backend or the device is CUDA, else
    ``pipeline``. GPU machines run ``glimpse3d worker --queues gpu`` (or both)."""
    if str(getattr(settings, "device", "auto")).startswith("cuda"):
        return GPU_QUEUE
    overrides = project_settings or {}
    for stage in _LEARNED_STAGES.get(str(job.get("kind")), ()):
        backend = overrides.get(f"{stage}_backend") or getattr(settings, f"{stage}_backend",
                                                               "classic")
        if backend != "classic":
            return GPU_QUEUE
    return DEFAULT_QUEUE


# ------------------------------------------------------------------ schema
def schema_present(conninfo: str) -> bool:
    """True when procrastinate's tables exist in the database."""
    with _connect(conninfo) as conn:
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        return bool(row and row[0])


def apply_schema(settings: Settings) -> bool:
    """Create procrastinate's schema in the app's database unless it is there already
    (idempotent and safe when several processes start at once). Returns True if applied."""
    from procrastinate.schema import SchemaManager

    conninfo = conninfo_from_url(settings.resolved_database_url)
    with _connect(conninfo, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        if row and row[0]:
            conn.rollback()
            return False
        conn.execute(SchemaManager.get_schema())
        conn.commit()
    log.info("applied procrastinate's schema")
    return True


# ------------------------------------------------------------------ the app and the task
def _pipeline_task(context: Any, project_id: str, job: dict[str, Any]) -> str:
    """The procrastinate task body: hand over to the worker process's :class:`JobRunner`."""
    runner: Any = (context.additional_context or {}).get("glimpse3d")
    if runner is None:  # pragma: no cover - only when a foreign worker picks the job up
        raise RuntimeError("run_pipeline_job must run in `glimpse3d worker`")
    return runner.run(context, project_id, job)


def make_app(settings: Settings, *, sync: bool, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate ``App`` on the app's database with the pipeline task registered.

    ``sync=True`` (API processes) uses a ``SyncPsycopgConnector``; workers use the async
    ``PsycopgConnector``. Behind a transaction pooler prepared statements are disabled."""
    import procrastinate
    from procrastinate.retry import RetryStrategy

    url = settings.resolved_database_url
    conninfo = conninfo_from_url(url)
    kwargs: dict[str, Any] = {"connect_timeout": 10}
    if _is_pooler(url):
        kwargs["prepare_threshold"] = None
    pool = {"conninfo": conninfo, "min_size": 1, "max_size": max(2, pool_size), "timeout": 10,
            "kwargs": kwargs}
    connector: Any = (procrastinate.SyncPsycopgConnector(**pool) if sync
                      else procrastinate.PsycopgConnector(**pool))
    app = procrastinate.App(connector=connector)
    app.task(
        name=TASK_NAME,
        pass_context=True,
        retry=RetryStrategy(wait=1, retry_exceptions=[RetryLater]),
    )(_pipeline_task)
    return app

