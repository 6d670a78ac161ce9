"""Initial schema: the 8 tables of docs/architecture.md ("Tables and views") and the 2 views (views SQL as of this revision)

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from glimpse3d.db.views import VIEWS, create_views, drop_views

JSON_TYPE = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.text("CURRENT_TIMESTAMP"),
        nullable=False,
    )


def _id(name: str) -> sa.Column:
    return sa.Column(name, sa.String(length=36), nullable=False)


def _create_child_table(
    name: str,
    *columns: sa.Column,
    unique: tuple[str, ...] = (),
    references: tuple[tuple[str, str], ...] = (("project_id", "projects"),),
) -> None:
    """Create a child table as this revision defines them: ``id``, the reference columns of
    ``references`` ((column, parent table), each an indexed foreign key to ``parent.id`` with
    ``ON DELETE CASCADE``), ``columns``, ``created_at``; optionally one unique constraint."""
    refs = sorted(references)
    constraints: list[sa.SchemaItem] = [
        sa.ForeignKeyConstraint(
            [column],
            [f"{parent}.id"],
            name=op.f(f"fk_{name}_{column}_{parent}"),
            ondelete="CASCADE",
        )
        for column, parent in refs
    ]
    constraints.append(sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")))
    if unique:
        constraints.append(sa.UniqueConstraint(*unique, name=op.f(f"uq_{name}_{'_'.join(unique)}")))
    op.create_table(
        name,
        _id("id"),
        *(_id(column) for column, _ in references),
        *columns,
        _created_at(),
        *constraints,
    )
    for column, _ in refs:
        op.create_index(op.f(f"ix_{name}_{column}"), name, [column], unique=False)


_ITERATION_REFS = (("project_id", "projects"), ("iteration_id", "enhancement_iterations"))


def upgrade() -> None:
    op.create_table(
        "projects",
        _id("id"),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="uploading", nullable=False),
        sa.Column("current_step", sa.String(length=64), nullable=True),
        sa.Column("progress_percentage", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("settings", JSON_TYPE, nullable=True),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("job", JSON_TYPE, nullable=True),
        sa.Column("original_image_key", sa.String(length=512), nullable=True),
        sa.Column("processed_image_key", sa.String(length=512), nullable=True),
        _created_at("created_at"),
        _created_at("updated_at"),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index(
        "ix_projects_client_id_status", "projects", ["client_id", "status"], unique=False
    )
    op.create_index("ix_projects_created_at", "projects", ["created_at"], unique=False)
    op.create_index("ix_projects_owner_id", "projects", ["owner_id"], unique=False)
    op.create_index("ix_projects_status", "projects", ["status"], unique=False)

    _create_child_table(
        "depth_maps",
        sa.Column("view_index", sa.Integer(), nullable=False),
        sa.Column("depth_key", sa.String(length=512), nullable=False),
        sa.Column("heatmap_key", sa.String(length=512), nullable=False),
        sa.Column("min_depth", sa.Float(), nullable=False),
        sa.Column("max_depth", sa.Float(), nullable=False),
        sa.Column("mean_depth", sa.Float(), nullable=False),
        sa.Column("confidence_score", sa.Float(), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        unique=("project_id", "view_index"),
    )
    _create_child_table(
        "enhancement_iterations",
        sa.Column("iteration_number", sa.Integer(), nullable=False),
        sa.Column("model_version_in", sa.Integer(), nullable=False),
        sa.Column("model_version_out", sa.Integer(), nullable=False),
        sa.Column("psnr", sa.Float(), nullable=True),
        sa.Column("ssim", sa.Float(), nullable=True),
        sa.Column("lpips", sa.Float(), nullable=True),
        sa.Column("depth_consistency", sa.Float(), nullable=True),
        sa.Column("feature_consistency", sa.Float(), nullable=True),
        sa.Column("overall_quality", sa.Float(), nullable=True),
        sa.Column("converged", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("processing_time", sa.Float(), nullable=True),
        unique=("project_id", "iteration_number"),
    )
    _create_child_table(
        "export_history",
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("file_key", sa.String(length=512), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=False),
        unique=("project_id", "model_version", "format"),
    )
    _create_child_table(
        "gaussian_splat_models",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        sa.Column("model_key", sa.String(length=512), nullable=False),
        sa.Column("num_gaussians", sa.Integer(), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        unique=("project_id", "version"),
    )
    _create_child_table(
        "multiview_generation",
        sa.Column("view_index", sa.Integer(), nullable=False),
        sa.Column("elevation", sa.Float(), nullable=False),
        sa.Column("azimuth", sa.Float(), nullable=False),
        sa.Column("image_key", sa.String(length=512), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column("generation_time", sa.Float(), nullable=False),
        unique=("project_id", "view_index"),
    )
    _create_child_table(
        "enhanced_views",
        sa.Column("view_index", sa.Integer(), nullable=False),
        sa.Column("rendered_key", sa.String(length=512), nullable=False),
        sa.Column("enhanced_key", sa.String(length=512), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("depth_consistency", sa.Float(), nullable=True),
        sa.Column("feature_similarity", sa.Float(), nullable=True),
        unique=("iteration_id", "view_index"),
        references=_ITERATION_REFS,
    )
    _create_child_table(
        "refinement_metrics",
        sa.Column("metric_name", sa.String(length=64), nullable=False),
        sa.Column("metric_value", sa.Float(), nullable=False),
        sa.Column("view_index", sa.Integer(), nullable=True),
        references=_ITERATION_REFS,
    )
    op.create_index(
        "uq_refinement_metrics_overall",
        "refinement_metrics",
        ["iteration_id", "metric_name"],
        unique=True,
        sqlite_where=sa.text("view_index IS NULL"),
        postgresql_where=sa.text("view_index IS NULL"),
    )
    op.create_index(
        "uq_refinement_metrics_per_view",
        "refinement_metrics",
        ["iteration_id", "metric_name", "view_index"],
        unique=True,
        sqlite_where=sa.text("view_index IS NOT NULL"),
        postgresql_where=sa.text("view_index IS NOT NULL"),
    )

    create_views(op, VIEWS)


def downgrade() -> None:
    drop_views(op, VIEWS)
    op.drop_index("uq_refinement_metrics_per_view", table_name="refinement_metrics")
    op.drop_index("uq_refinement_metrics_overall", table_name="refinement_metrics")
    op.drop_index(op.f("ix_refinement_metrics_project_id"), table_name="refinement_metrics")
    op.drop_index(op.f("ix_refinement_metrics_iteration_id"), table_name="refinement_metrics")

    op.drop_table("refinement_metrics")
    op.drop_index(op.f("ix_enhanced_views_project_id"), table_name="enhanced_views")
    op.drop_index(op.f("ix_enhanced_views_iteration_id"), table_name="enhanced_views")

    op.drop_table("enhanced_views")
    op.drop_index(op.f("ix_multiview_generation_project_id"), table_name="multiview_generation")

    op.drop_table("multiview_generation")
    op.drop_index(op.f("ix_gaussian_splat_models_project_id"), table_name="gaussian_splat_models")

    op.drop_table("gaussian_splat_models")
    op.drop_index(op.f("ix_export_history_project_id"), table_name="export_history")

    op.drop_table("export_history")
    op.drop_index(op.f("ix_enhancement_iterations_project_id"), table_name="enhancement_iterations")

    op.drop_table("enhancement_iterations")
    op.drop_index(op.f("ix_depth_maps_project_id"), table_name="depth_maps")

    op.drop_table("depth_maps")
    op.drop_index("ix_projects_status", table_name="projects")
    op.drop_index("ix_projects_owner_id", table_name="projects")
    op.drop_index("ix_projects_created_at", table_name="projects")
    op.drop_index("ix_projects_client_id_status", table_name="projects")

    op.drop_table("projects")
