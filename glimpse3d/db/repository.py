"""The repository the pipeline, API and jobs call. One code path for SQLite and PostgreSQL.

CONTRACT (fixed; other layers code against it). Ids are UUID strings. Every ``upsert_*``
is idempotent on the table's natural unique key, so a re-run stage never duplicates rows.
Methods return plain dicts (column name -> value, datetimes as ``datetime``), JSON-ready
after ``jsonable_encoder``.

Implementation notes: SQLAlchemy Core, one short transaction per call (thread-safe: the
engine's pool hands each thread its own connection); upserts are the dialect's
``INSERT ... ON CONFLICT DO UPDATE``; progress is raised with a ``CASE`` inside the UPDATE so
two writers can never lower it. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    inspect,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from glimpse3d.db.engine import WRITE, make_engine, mask_url, normalize_url
from glimpse3d.db.models import TABLES, Base, UTCDateTime, new_id, utcnow
from glimpse3d.domain import ACTIVE_STATUSES, LOCAL_OWNER, PROJECT_STATUSES

VIEW_NAMES = ("project_summary", "refinement_progress")


class ProjectNotFound(LookupError):
    """No project with that id."""


class DatabaseCheckError(RuntimeError):
    """The database is unreachable or its schema is incomplete; the message says what to do."""


_T = Base.metadata.tables
projects = _T["projects"]
views_t = _T["multiview_generation"]
depth_t = _T["depth_maps"]
models_t = _T["gaussian_splat_models"]
iterations_t = _T["enhancement_iterations"]
enhanced_t = _T["enhanced_views"]
metrics_t = _T["refinement_metrics"]
exports_t = _T["export_history"]
api_keys_t = _T["api_keys"]

# The two views, described for typed reads (not part of Base.metadata: migrations own them).
_views_md = MetaData()
project_summary_v = Table(
    "project_summary",
    _views_md,
    Column("id", String(36)),
    Column("name", String),
    Column("status", String),
    Column("current_step", String),
    Column("progress_percentage", Float),
    Column("owner_id", String),
    Column("created_at", UTCDateTime()),
    Column("updated_at", UTCDateTime()),
    Column("completed_at", UTCDateTime()),
    Column("view_count", Integer),
    Column("depth_map_count", Integer),
    Column("model_count", Integer),
    Column("iteration_count", Integer),
    Column("export_count", Integer),
    Column("latest_version", Integer),
    Column("best_quality", Float),
)
refinement_progress_v = Table(
    "refinement_progress",
    _views_md,
    Column("project_id", String(36)),
    Column("iteration_id", String(36)),
    Column("iteration_number", Integer),
    Column("model_version_in", Integer),
    Column("model_version_out", Integer),
    Column("psnr", Float),
    Column("ssim", Float),
    Column("lpips", Float),
    Column("overall_quality", Float),
    Column("quality_change", Float),
    Column("converged", Boolean),
    Column("processing_time", Float),
    Column("created_at", UTCDateTime()),
)

_UPDATABLE = {c.name for c in projects.columns if c.name not in ("id", "created_at", "updated_at")}


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


class Repository:
    """All reads and writes of the 8 tables and 2 views. Does not migrate: see ``open_repository``."""

    # ---- lifecycle
    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self._write_engine = self.engine.execution_options(**WRITE)

    def __repr__(self) -> str:
        return f"Repository({mask_url(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A short write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        with self._write_engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def check(self) -> None:
        """Raise with a clear message if the database is unreachable or tables/views are missing."""
        try:
            with self._read() as conn:
                conn.execute(select(literal(1))).scalar_one()
                insp = inspect(conn)
                tables = set(insp.get_table_names())
                views = set(insp.get_view_names())
        except Exception as exc:  # noqa: BLE001 - re-raised with a one-line reason
            raise DatabaseCheckError(
                f"database {mask_url(self.url)} unreachable: {_first_line(exc)}"
            ) from exc
        missing = [t for t in TABLES if t not in tables] + [v for v in VIEW_NAMES if v not in views]
        if missing:
            raise DatabaseCheckError(
                f"database {mask_url(self.url)} lacks {', '.join(missing)}: run `glimpse3d db upgrade`"
            )

    def check_writable(self) -> None:
        """Raise unless a write transaction can start and write (a no-op UPDATE, rolled
        back): catches a read-only file, volume or PostgreSQL replica/transaction mode."""
        with self._write_engine.connect() as conn, conn.begin() as tx:
            conn.execute(
                update(projects).where(projects.c.id == "").values(updated_at=utcnow())
            )
            tx.rollback()

    # ---- projects
    def create_project(
        self,
        name: str,
        settings: dict[str, Any] | None = None,
        owner_id: str | None = LOCAL_OWNER,
        project_id: str | None = None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """Insert a project with status 'uploading', progress 0; returns its row.
        ``owner_id`` None means the local owner (CLI, ``none`` auth mode): no row is
        made without an owner."""
        now = utcnow()
        pid = project_id or new_id()
        values = {
            "id": pid,
            "name": name,
            "status": "uploading",
            "progress_percentage": 0.0,
            "settings": settings,
            "owner_id": owner_id or LOCAL_OWNER,
            "client_id": client_id,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self._tx() as conn:
            conn.execute(projects.insert().values(**values))
            return self._get_project(conn, pid)

    def _get_project(self, conn: Connection, project_id: str) -> dict[str, Any]:
        row = conn.execute(select(projects).where(projects.c.id == project_id)).first()
        if row is None:
            raise ProjectNotFound(project_id)
        return _row(row)

    def get_project(self, project_id: str) -> dict[str, Any]:
        """Raises ProjectNotFound."""
        with self._read() as conn:
            return self._get_project(conn, project_id)

    def get_owned_project(self, project_id: str, owner_id: str) -> dict[str, Any]:
        """The project if ``owner_id`` owns it and no delete has begun; else ProjectNotFound
        (another owner's project is indistinguishable from a missing one)."""
        with self._read() as conn:
            row = conn.execute(
                select(projects).where(
                    projects.c.id == project_id,
                    projects.c.owner_id == owner_id,
                    projects.c.deleted_at.is_(None),
                )
            ).first()
        if row is None:
            raise ProjectNotFound(project_id)
        return _row(row)

    def mark_deleted(self, project_id: str) -> None:
        """Begin a delete: hide the row (``deleted_at``) before its files go. ProjectNotFound
        when absent."""
        with self._tx() as conn:
            res = conn.execute(
                update(projects).where(projects.c.id == project_id).values(deleted_at=utcnow())
            )
            if res.rowcount == 0:
                raise ProjectNotFound(project_id)

    def deleted_project_ids(self) -> list[str]:
        """Projects whose delete began but did not finish (files may remain), oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(projects.c.id)
                .where(projects.c.deleted_at.is_not(None))
                .order_by(projects.c.deleted_at)
            ).all()
        return [r[0] for r in rows]

    def project_ids(self) -> set[str]:
        """The ids of every project row (deleted-marked included): for the orphan-file sweep."""
        with self._read() as conn:
            return {r[0] for r in conn.execute(select(projects.c.id)).all()}

    def update_project(self, project_id: str, **fields: Any) -> dict[str, Any]:
        """Set columns (status, current_step, progress_percentage, error_message,
        original_image_key, processed_image_key, settings, completed_at ...); bumps updated_at.
        ``progress_percentage`` never decreases unless ``reset_progress=True`` is passed.
        Setting status 'completed' also sets ``completed_at`` when not given; an active
        status clears it."""
        reset = bool(fields.pop("reset_progress", False))
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise TypeError(f"update_project: unknown column(s) {sorted(unknown)}")
        status = fields.get("status")
        if status is not None and status not in PROJECT_STATUSES:
            raise ValueError(f"unknown project status {status!r}; one of {PROJECT_STATUSES}")
        values: dict[str, Any] = dict(fields)
        if status is not None and "completed_at" not in values:
            if status == "completed":
                values["completed_at"] = utcnow()
            elif status in ACTIVE_STATUSES:
                values["completed_at"] = None  # running again: not complete any more
        if "progress_percentage" in values:
            p = float(values["progress_percentage"])
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"progress_percentage must be in [0, 100], got {p}")
            if not reset:
                col = projects.c.progress_percentage
                values["progress_percentage"] = case((col < p, p), else_=col)
            else:
                values["progress_percentage"] = p
        values["updated_at"] = utcnow()
        with self._tx() as conn:
            res = conn.execute(update(projects).where(projects.c.id == project_id).values(**values))
            if res.rowcount == 0:
                raise ProjectNotFound(project_id)
            return self._get_project(conn, project_id)

    def list_projects(
        self,
        limit: int = 20,
        offset: int = 0,
        status: str | None = None,
        owner_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first, rows whose delete began left out; returns (rows, total)."""
        cond: list[ColumnElement[bool]] = [projects.c.deleted_at.is_(None)]
        if status is not None:
            cond.append(projects.c.status == status)
        if owner_id is not None:
            cond.append(projects.c.owner_id == owner_id)
        where = and_(True, *cond)
        with self._read() as conn:
            total = conn.execute(
                select(func.count()).select_from(projects).where(where)
            ).scalar_one()
            rows = conn.execute(
                select(projects)
                .where(where)
                .order_by(projects.c.created_at.desc(), projects.c.id.desc())
                .limit(max(0, int(limit)))
                .offset(max(0, int(offset)))
            ).all()
        return [_row(r) for r in rows], int(total)

    def delete_project(self, project_id: str) -> None:
        """Delete the project and (by cascade) all its rows. Raises ProjectNotFound."""
        with self._tx() as conn:
            res = conn.execute(delete(projects).where(projects.c.id == project_id))
            if res.rowcount == 0:
                raise ProjectNotFound(project_id)

    def count_jobs_of(self, requester: str) -> int:
        """Projects with a recorded (queued or running) job started by ``requester``."""
        with self._read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(projects)
                    .where(projects.c.job_requester == requester, projects.c.job.is_not(None))
                ).scalar_one()
            )

    # ---- api keys
    def add_api_key(
        self, owner_id: str, key_hash: str, prefix: str, name: str | None = None
    ) -> dict[str, Any]:
        """Record a key by its hash; returns the row."""
        values = {"id": new_id(), "owner_id": owner_id, "key_hash": key_hash,
                  "prefix": prefix, "name": name, "created_at": utcnow()}
        with self._tx() as conn:
            conn.execute(api_keys_t.insert().values(**values))
            return _row(conn.execute(select(api_keys_t).where(api_keys_t.c.id == values["id"])).one())

    def find_api_key(self, key_hash: str) -> dict[str, Any] | None:
        """The unrevoked key with this hash, or None."""
        with self._read() as conn:
            row = conn.execute(
                select(api_keys_t).where(
                    api_keys_t.c.key_hash == key_hash, api_keys_t.c.revoked_at.is_(None)
                )
            ).first()
        return None if row is None else _row(row)

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every key (revoked ones too), oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(api_keys_t).order_by(api_keys_t.c.created_at, api_keys_t.c.id)
            ).all()
        return [_row(r) for r in rows]

    def revoke_api_key(self, id_or_prefix: str) -> list[dict[str, Any]]:
        """Revoke the unrevoked key whose id or prefix is ``id_or_prefix``; returns the rows
        revoked (empty when none matched)."""
        match = (api_keys_t.c.id == id_or_prefix) | (api_keys_t.c.prefix == id_or_prefix)
        live = and_(match, api_keys_t.c.revoked_at.is_(None))
        with self._tx() as conn:
            rows = [_row(r) for r in conn.execute(select(api_keys_t).where(live)).all()]
            if rows:
                conn.execute(update(api_keys_t).where(live).values(revoked_at=utcnow()))
        return rows

    def projects_older_than(self, days: float) -> list[str]:
        """Ids of projects created more than ``days`` days ago, oldest first."""
        cutoff = utcnow() - timedelta(days=float(days))
        with self._read() as conn:
            rows = conn.execute(
                select(projects.c.id)
                .where(projects.c.created_at < cutoff)
                .order_by(projects.c.created_at)
            ).all()
        return [r[0] for r in rows]

    def projects_with_status(self, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        """Projects whose status is one of ``statuses``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(projects)
                .where(projects.c.status.in_(list(statuses)))
                .order_by(projects.c.created_at, projects.c.id)
            ).all()
        return [_row(r) for r in rows]

    # ---- generic upsert
    def _upsert(
        self,
        table: Table,
        values: dict[str, Any],
        key: Sequence[str],
        index_where: ColumnElement[bool] | None = None,
    ) -> dict[str, Any]:
        values = {"id": new_id(), "created_at": utcnow(), **values}
        stmt = self._insert(table).values(**values)
        changed = {k: stmt.excluded[k] for k in values if k not in ("id", "created_at", *key)}
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in key], index_where=index_where, set_=changed
        )
        where = and_(*[table.c[k] == values[k] for k in key])
        if index_where is not None:
            where = and_(where, index_where)
        try:
            with self._tx() as conn:
                conn.execute(stmt)
                return _row(conn.execute(select(table).where(where)).one())
        except IntegrityError as exc:
            self._raise_missing_parent(values, exc)
            raise

    def _raise_missing_parent(self, values: dict[str, Any], exc: Exception) -> None:
        pid = values.get("project_id")
        with self._read() as conn:
            if (
                pid is not None
                and conn.execute(select(projects.c.id).where(projects.c.id == pid)).first() is None
            ):
                raise ProjectNotFound(pid) from exc
            iid = values.get("iteration_id")
            if (
                iid is not None
                and conn.execute(select(iterations_t.c.id).where(iterations_t.c.id == iid)).first()
                is None
            ):
                raise LookupError(f"no refinement iteration with id {iid}") from exc

    def _list(self, table: Table, project_id: str, *order: Any) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                select(table).where(table.c.project_id == project_id).order_by(*order)
            ).all()
        return [_row(r) for r in rows]

    # ---- stage rows
    def upsert_view(
        self,
        project_id: str,
        view_index: int,
        elevation: float,
        azimuth: float,
        image_key: str,
        backend: str,
        generation_time: float,
        camera: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One generated view; angles in degrees, generation_time in seconds; ``camera``
        (``glimpse3d.splat.cameras.camera_record``) adds distance and intrinsics."""
        row = {
            "project_id": project_id,
            "view_index": int(view_index),
            "elevation": float(elevation),
            "azimuth": float(azimuth),
            "image_key": image_key,
            "backend": backend,
            "generation_time": float(generation_time),
        }
        for name in ("distance", "fx", "fy", "cx", "cy"):
            if camera and camera.get(name) is not None:
                row[name] = float(camera[name])
        for name in ("width", "height"):
            if camera and camera.get(name) is not None:
                row[name] = int(camera[name])
        return self._upsert(views_t, row, ("project_id", "view_index"))

    def list_views(self, project_id: str) -> list[dict[str, Any]]:
        """Ordered by view_index."""
        return self._list(views_t, project_id, views_t.c.view_index)

    def upsert_depth_map(
        self,
        project_id: str,
        view_index: int,
        depth_key: str,
        heatmap_key: str,
        min_depth: float,
        max_depth: float,
        mean_depth: float,
        confidence_score: float,
        backend: str,
    ) -> dict[str, Any]:
        return self._upsert(
            depth_t,
            {
                "project_id": project_id,
                "view_index": int(view_index),
                "depth_key": depth_key,
                "heatmap_key": heatmap_key,
                "min_depth": float(min_depth),
                "max_depth": float(max_depth),
                "mean_depth": float(mean_depth),
                "confidence_score": float(confidence_score),
                "backend": backend,
            },
            ("project_id", "view_index"),
        )

    def list_depth_maps(self, project_id: str) -> list[dict[str, Any]]:
        """Ordered by view_index."""
        return self._list(depth_t, project_id, depth_t.c.view_index)

    def upsert_model(
        self,
        project_id: str,
        version: int,
        parent_version: int | None,
        model_key: str,
        num_gaussians: int,
        file_size_bytes: int,
        source: str,
    ) -> dict[str, Any]:
        return self._upsert(
            models_t,
            {
                "project_id": project_id,
                "version": int(version),
                "parent_version": None if parent_version is None else int(parent_version),
                "model_key": model_key,
                "num_gaussians": int(num_gaussians),
                "file_size_bytes": int(file_size_bytes),
                "source": source,
            },
            ("project_id", "version"),
        )

    def list_models(self, project_id: str) -> list[dict[str, Any]]:
        """Ordered by version."""
        return self._list(models_t, project_id, models_t.c.version)

    def upsert_iteration(
        self,
        project_id: str,
        iteration_number: int,
        model_version_in: int,
        model_version_out: int,
        psnr: float,
        ssim: float,
        lpips: float | None,
        depth_consistency: float,
        feature_consistency: float,
        overall_quality: float,
        converged: bool,
        processing_time: float,
    ) -> dict[str, Any]:
        """Returns the row including its ``id`` (used as iteration_id below).

        The id of an existing (project_id, iteration_number) row is kept on re-run."""
        return self._upsert(
            iterations_t,
            {
                "project_id": project_id,
                "iteration_number": int(iteration_number),
                "model_version_in": int(model_version_in),
                "model_version_out": int(model_version_out),
                "psnr": _opt_float(psnr),
                "ssim": _opt_float(ssim),
                "lpips": _opt_float(lpips),
                "depth_consistency": _opt_float(depth_consistency),
                "feature_consistency": _opt_float(feature_consistency),
                "overall_quality": _opt_float(overall_quality),
                "converged": bool(converged),
                "processing_time": _opt_float(processing_time),
            },
            ("project_id", "iteration_number"),
        )

    def list_iterations(self, project_id: str) -> list[dict[str, Any]]:
        """Ordered by iteration_number."""
        return self._list(iterations_t, project_id, iterations_t.c.iteration_number)

    def upsert_enhanced_view(
        self,
        project_id: str,
        iteration_id: str,
        view_index: int,
        rendered_key: str,
        enhanced_key: str,
        accepted: bool,
        depth_consistency: float,
        feature_similarity: float,
    ) -> dict[str, Any]:
        return self._upsert(
            enhanced_t,
            {
                "project_id": project_id,
                "iteration_id": iteration_id,
                "view_index": int(view_index),
                "rendered_key": rendered_key,
                "enhanced_key": enhanced_key,
                "accepted": bool(accepted),
                "depth_consistency": _opt_float(depth_consistency),
                "feature_similarity": _opt_float(feature_similarity),
            },
            ("iteration_id", "view_index"),
        )

    def list_enhanced_views(
        self, project_id: str, iteration_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Ordered by iteration then view_index; each row also carries ``iteration_number``."""
        stmt = (
            select(enhanced_t, iterations_t.c.iteration_number)
            .join(iterations_t, iterations_t.c.id == enhanced_t.c.iteration_id)
            .where(enhanced_t.c.project_id == project_id)
            .order_by(iterations_t.c.iteration_number, enhanced_t.c.view_index)
        )
        if iteration_id is not None:
            stmt = stmt.where(enhanced_t.c.iteration_id == iteration_id)
        with self._read() as conn:
            return [_row(r) for r in conn.execute(stmt).all()]

    def upsert_metric(
        self,
        project_id: str,
        iteration_id: str,
        metric_name: str,
        metric_value: float,
        view_index: int | None = None,
    ) -> dict[str, Any]:
        """One metric; ``view_index`` None means the whole iteration (unique per name)."""
        vi = metrics_t.c.view_index
        return self._upsert(
            metrics_t,
            {
                "project_id": project_id,
                "iteration_id": iteration_id,
                "metric_name": metric_name,
                "metric_value": float(metric_value),
                "view_index": None if view_index is None else int(view_index),
            },
            ("iteration_id", "metric_name")
            if view_index is None
            else ("iteration_id", "metric_name", "view_index"),
            index_where=vi.is_(None) if view_index is None else vi.is_not(None),
        )

    def list_metrics(self, project_id: str) -> list[dict[str, Any]]:
        """Ordered by iteration, name, view (whole-iteration first); rows carry ``iteration_number``."""
        stmt = (
            select(metrics_t, iterations_t.c.iteration_number)
            .join(iterations_t, iterations_t.c.id == metrics_t.c.iteration_id)
            .where(metrics_t.c.project_id == project_id)
            .order_by(
                iterations_t.c.iteration_number,
                metrics_t.c.metric_name,
                metrics_t.c.view_index.is_not(None),
                metrics_t.c.view_index,
            )
        )
        with self._read() as conn:
            return [_row(r) for r in conn.execute(stmt).all()]

    def add_export(
        self,
        project_id: str,
        model_version: int,
        format: str,
        file_key: str,
        file_size_bytes: int,
    ) -> dict[str, Any]:
        """Record an exported file; the same (model_version, format) again replaces the row."""
        return self._upsert(
            exports_t,
            {
                "project_id": project_id,
                "model_version": int(model_version),
                "format": format.lower().lstrip("."),
                "file_key": file_key,
                "file_size_bytes": int(file_size_bytes),
            },
            ("project_id", "model_version", "format"),
        )

    def list_exports(self, project_id: str) -> list[dict[str, Any]]:
        """Ordered by model_version then format."""
        return self._list(exports_t, project_id, exports_t.c.model_version, exports_t.c.format)

    # ---- views
    def project_summary(self, project_id: str) -> dict[str, Any]:
        """The ``project_summary`` row. Raises ProjectNotFound."""
        v = project_summary_v
        with self._read() as conn:
            row = conn.execute(select(v).where(v.c.id == project_id)).first()
        if row is None:
            raise ProjectNotFound(project_id)
        out = _row(row)
        for k in (
            "view_count",
            "depth_map_count",
            "model_count",
            "iteration_count",
            "export_count",
        ):
            out[k] = int(out[k] or 0)
        return out

    def refinement_progress(self, project_id: str) -> list[dict[str, Any]]:
        """Per iteration: quality and its change vs the previous one (None for the first)."""
        v = refinement_progress_v
        with self._read() as conn:
            rows = conn.execute(
                select(v).where(v.c.project_id == project_id).order_by(v.c.iteration_number)
            ).all()
        out = [_row(r) for r in rows]
        for r in out:
            r["converged"] = bool(r["converged"])
        return out

    def table_counts(self, project_id: str) -> dict[str, int]:
        """Rows per table for one project (8 keys)."""
        parts = [
            select(literal(name).label("t"), func.count().label("n"))
            .select_from(_T[name])
            .where((_T[name].c.id if name == "projects" else _T[name].c.project_id) == project_id)
            for name in TABLES
        ]
        with self._read() as conn:
            rows = conn.execute(union_all(*parts)).all()
        counts = {name: 0 for name in TABLES}
        counts.update({t: int(n) for t, n in rows})
        return counts


def _opt_float(x: float | None) -> float | None:
    return None if x is None else float(x)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_repository(url: str) -> Repository:
    """Connect and make sure the schema is at the latest migration; returns a Repository."""
    from glimpse3d.db.migrate import upgrade_engine

    repo = Repository(url)
    try:
        upgrade_engine(repo.engine)
    except Exception:
        repo.close()
        raise
    return repo

