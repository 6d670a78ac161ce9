"""SQLAlchemy 2 models for the 8 tables of docs/architecture.md ("Tables and views") and
``api_keys`` (one schema for SQLite and PostgreSQL).

Conventions:
- ids are UUID strings (``String(36)``), made in Python (``uuid4``) so both dialects agree;
- timestamps are timezone-aware UTC (``TIMESTAMP WITH TIME ZONE`` on PostgreSQL; SQLite
  stores naive UTC and :class:`UTCDateTime` hands back aware values);
- every child row references ``projects.id`` with ``ON DELETE CASCADE`` (:class:`ProjectChild`);
- natural unique keys make stage re-runs idempotent (see ``__table_args__``);
- ``refinement_metrics.view_index`` is NULL for a whole-iteration metric; two partial unique
  indexes make (iteration_id, metric_name, view_index) unique with NULL counted as a value.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A fresh UUID4 as a 36-character string."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always returns aware UTC datetimes (SQLite included).

    Naive values passed in are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
NOW = text("CURRENT_TIMESTAMP")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _id(sort_order: int = 0) -> Any:
    return mapped_column(String(36), primary_key=True, default=new_id, sort_order=sort_order)


def _created(sort_order: int = 0) -> Any:
    return mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, server_default=NOW, sort_order=sort_order
    )


def _foreign_id(target: str, sort_order: int = 0) -> Any:
    """A required, indexed ``String(36)`` reference to ``target`` that cascades deletes."""
    return mapped_column(
        String(36),
        ForeignKey(target, ondelete="CASCADE"),
        nullable=False,
        index=True,
        sort_order=sort_order,
    )


class ProjectChild:
    """Mixin for the child tables: ``id`` and ``project_id`` (references ``projects.id``) are
    their first columns, ``created_at`` their last (``sort_order`` puts them there; mixin
    columns would otherwise follow the table's own)."""

    id: Mapped[str] = _id(sort_order=-2)
    project_id: Mapped[str] = _foreign_id("projects.id", sort_order=-1)
    created_at: Mapped[datetime] = _created(sort_order=1)


class Project(Base):
    """One uploaded photo and everything made from it. Progress is a percentage in [0, 100]."""

    __tablename__ = "projects"

    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(
        String(32), nullable=False, default="uploading", server_default="uploading"
    )
    current_step: Mapped[str | None] = mapped_column(String(64))
    progress_percentage: Mapped[float] = mapped_column(
        Float, nullable=False, default=0.0, server_default=text("0")
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(128))
    #: who started the recorded ``job`` (identity or, in ``none`` mode, client address):
    #: the per-requester job cap counts these rows, so it holds across workers.
    job_requester: Mapped[str | None] = mapped_column(String(128))
    #: set when a delete began; the row is hidden from then on and removed once its files
    #: are gone (``glimpse3d cleanup`` finishes deletes that were interrupted).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    job: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    original_image_key: Mapped[str | None] = mapped_column(String(512))
    processed_image_key: Mapped[str | None] = mapped_column(String(512))
    #: camera 0 of the processed image (the crop of the photo; the flat record of
    #: ``glimpse3d.splat.cameras.camera_record``); NULL for projects processed before it was
    #: recorded (read as the convention's camera 0)
    input_camera: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_projects_status", "status"),
        Index("ix_projects_created_at", "created_at"),
        Index("ix_projects_owner_id", "owner_id"),
        Index("ix_projects_client_id_status", "client_id", "status"),
        Index("ix_projects_job_requester", "job_requester"),
    )


class MultiviewGeneration(ProjectChild, Base):
    """One generated view (16 per project with the SyncDreamer cameras, 7 with Zero123++)
    and the camera it was made at: angles in degrees (docs/architecture.md, "Cameras"), orbit distance in scene
    units, pinhole intrinsics in pixels. The camera columns are NULL for views recorded
    before they existed (read as the SyncDreamer camera at those angles)."""

    __tablename__ = "multiview_generation"

    view_index: Mapped[int] = mapped_column(Integer, nullable=False)
    elevation: Mapped[float] = mapped_column(Float, nullable=False)
    azimuth: Mapped[float] = mapped_column(Float, nullable=False)
    distance: Mapped[float | None] = mapped_column(Float, nullable=True)
    fx: Mapped[float | None] = mapped_column(Float, nullable=True)
    fy: Mapped[float | None] = mapped_column(Float, nullable=True)
    cx: Mapped[float | None] = mapped_column(Float, nullable=True)
    cy: Mapped[float | None] = mapped_column(Float, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_key: Mapped[str] = mapped_column(String(512), nullable=False)
    backend: Mapped[str] = mapped_column(String(64), nullable=False)
    generation_time: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)

    __table_args__ = (UniqueConstraint("project_id", "view_index"),)


class DepthMap(ProjectChild, Base):
    """One depth map (16 per project); depths in scene units along the camera z axis."""

    __tablename__ = "depth_maps"

    view_index: Mapped[int] = mapped_column(Integer, nullable=False)
    depth_key: Mapped[str] = mapped_column(String(512), nullable=False)
    heatmap_key: Mapped[str] = mapped_column(String(512), nullable=False)
    min_depth: Mapped[float] = mapped_column(Float, nullable=False)
    max_depth: Mapped[float] = mapped_column(Float, nullable=False)
    mean_depth: Mapped[float] = mapped_column(Float, nullable=False)
    confidence_score: Mapped[float] = mapped_column(Float, nullable=False)
    backend: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (UniqueConstraint("project_id", "view_index"),)


class GaussianSplatModel(ProjectChild, Base):
    """One model version (v0 from reconstruction, v1..vN from refinement)."""

    __tablename__ = "gaussian_splat_models"

    version: Mapped[int] = mapped_column(Integer, nullable=False)
    parent_version: Mapped[int | None] = mapped_column(Integer)
    model_key: Mapped[str] = mapped_column(String(512), nullable=False)
    num_gaussians: Mapped[int] = mapped_column(Integer, nullable=False)
    file_size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    source: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (UniqueConstraint("project_id", "version"),)


class EnhancementIteration(ProjectChild, Base):
    """One refinement iteration: model v_in -> v_out with its quality figures."""

    __tablename__ = "enhancement_iterations"

    iteration_number: Mapped[int] = mapped_column(Integer, nullable=False)
    model_version_in: Mapped[int] = mapped_column(Integer, nullable=False)
    model_version_out: Mapped[int] = mapped_column(Integer, nullable=False)
    psnr: Mapped[float | None] = mapped_column(Float)
    ssim: Mapped[float | None] = mapped_column(Float)
    lpips: Mapped[float | None] = mapped_column(Float)
    depth_consistency: Mapped[float | None] = mapped_column(Float)
    feature_consistency: Mapped[float | None] = mapped_column(Float)
    overall_quality: Mapped[float | None] = mapped_column(Float)
    converged: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    processing_time: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("project_id", "iteration_number"),)


class EnhancedView(ProjectChild, Base):
    """One view rendered and enhanced during an iteration."""

    __tablename__ = "enhanced_views"

    iteration_id: Mapped[str] = _foreign_id("enhancement_iterations.id")
    view_index: Mapped[int] = mapped_column(Integer, nullable=False)
    rendered_key: Mapped[str] = mapped_column(String(512), nullable=False)
    enhanced_key: Mapped[str] = mapped_column(String(512), nullable=False)
    accepted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    depth_consistency: Mapped[float | None] = mapped_column(Float)
    feature_similarity: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("iteration_id", "view_index"),)


class RefinementMetric(ProjectChild, Base):
    """One named metric of an iteration, for one view or (view_index NULL) the whole set."""

    __tablename__ = "refinement_metrics"

    iteration_id: Mapped[str] = _foreign_id("enhancement_iterations.id")
    metric_name: Mapped[str] = mapped_column(String(64), nullable=False)
    metric_value: Mapped[float] = mapped_column(Float, nullable=False)
    view_index: Mapped[int | None] = mapped_column(Integer)


_metric = RefinementMetric.__table__
Index(
    "uq_refinement_metrics_per_view",
    _metric.c.iteration_id,
    _metric.c.metric_name,
    _metric.c.view_index,
    unique=True,
    sqlite_where=_metric.c.view_index.is_not(None),
    postgresql_where=_metric.c.view_index.is_not(None),
)
Index(
    "uq_refinement_metrics_overall",
    _metric.c.iteration_id,
    _metric.c.metric_name,
    unique=True,
    sqlite_where=_metric.c.view_index.is_(None),
    postgresql_where=_metric.c.view_index.is_(None),
)


class ExportHistory(ProjectChild, Base):
    """One exported file; re-exporting the same (version, format) replaces the row."""

    __tablename__ = "export_history"

    model_version: Mapped[int] = mapped_column(Integer, nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    file_key: Mapped[str] = mapped_column(String(512), nullable=False)
    file_size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (UniqueConstraint("project_id", "model_version", "format"),)


class ApiKey(Base):
    """An API key (``GLIMPSE3D_AUTH=api_key``): only its SHA-256 is stored; ``prefix`` (the
    first characters of the key) identifies it in listings. Revoked keys keep their row."""

    __tablename__ = "api_keys"

    id: Mapped[str] = _id()
    owner_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


TABLES: tuple[str, ...] = (
    "projects",
    "multiview_generation",
    "depth_maps",
    "gaussian_splat_models",
    "enhancement_iterations",
    "enhanced_views",
    "refinement_metrics",
    "export_history",
)
CHILD_TABLES: tuple[str, ...] = TABLES[1:]
#: Tables of the service itself (not project data): no row-level policy grants them to users.
SERVICE_TABLES: tuple[str, ...] = ("api_keys",)
