"""Initial schema: the 8 tables of docs/architecture.md ("Tables and views") and the 2 views (views SQL as of this revision)

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from glimpse3d.db.views import VIEWS

JSON_TYPE = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=36), nullable=False),
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
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_index(
        "ix_projects_client_id_status", "projects", ["client_id", "status"], unique=False
    )
    op.create_index("ix_projects_created_at", "projects", ["created_at"], unique=False)
    op.create_index("ix_projects_owner_id", "projects", ["owner_id"], unique=False)
    op.create_index("ix_projects_status", "projects", ["status"], unique=False)

    op.create_table(
        "depth_maps",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("view_index", sa.Integer(), nullable=False),
        sa.Column("depth_key", sa.String(length=512), nullable=False),
        sa.Column("heatmap_key", sa.String(length=512), nullable=False),
        sa.Column("min_depth", sa.Float(), nullable=False),
        sa.Column("max_depth", sa.Float(), nullable=False),
        sa.Column("mean_depth", sa.Float(), nullable=False),
        sa.Column("confidence_score", sa.Float(), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_depth_maps_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_depth_maps")),
        sa.UniqueConstraint(
            "project_id", "view_index", name=op.f("uq_depth_maps_project_id_view_index")
        ),
    )
    op.create_index(op.f("ix_depth_maps_project_id"), "depth_maps", ["project_id"], unique=False)

    op.create_table(
        "enhancement_iterations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
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
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_enhancement_iterations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enhancement_iterations")),
        sa.UniqueConstraint(
            "project_id",
            "iteration_number",
            name=op.f("uq_enhancement_iterations_project_id_iteration_number"),
        ),
    )
    op.create_index(
        op.f("ix_enhancement_iterations_project_id"),
        "enhancement_iterations",
        ["project_id"],
        unique=False,
    )

    op.create_table(
        "export_history",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("file_key", sa.String(length=512), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_export_history_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_history")),
        sa.UniqueConstraint(
            "project_id",
            "model_version",
            "format",
            name=op.f("uq_export_history_project_id_model_version_format"),
        ),
    )
    op.create_index(
        op.f("ix_export_history_project_id"), "export_history", ["project_id"], unique=False
    )

    op.create_table(
        "gaussian_splat_models",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("parent_version", sa.Integer(), nullable=True),
        sa.Column("model_key", sa.String(length=512), nullable=False),
        sa.Column("num_gaussians", sa.Integer(), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_gaussian_splat_models_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gaussian_splat_models")),
        sa.UniqueConstraint(
            "project_id", "version", name=op.f("uq_gaussian_splat_models_project_id_version")
        ),
    )
    op.create_index(
        op.f("ix_gaussian_splat_models_project_id"),
        "gaussian_splat_models",
        ["project_id"],
        unique=False,
    )

    op.create_table(
        "multiview_generation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("view_index", sa.Integer(), nullable=False),
        sa.Column("elevation", sa.Float(), nullable=False),
        sa.Column("azimuth", sa.Float(), nullable=False),
        sa.Column("image_key", sa.String(length=512), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column("generation_time", sa.Float(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_multiview_generation_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_multiview_generation")),
        sa.UniqueConstraint(
            "project_id", "view_index", name=op.f("uq_multiview_generation_project_id_view_index")
        ),
    )
    op.create_index(
        op.f("ix_multiview_generation_project_id"),
        "multiview_generation",
        ["project_id"],
        unique=False,
    )

    op.create_table(
        "enhanced_views",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("iteration_id", sa.String(length=36), nullable=False),
        sa.Column("view_index", sa.Integer(), nullable=False),
        sa.Column("rendered_key", sa.String(length=512), nullable=False),
        sa.Column("enhanced_key", sa.String(length=512), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("depth_consistency", sa.Float(), nullable=True),
        sa.Column("feature_similarity", sa.Float(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["iteration_id"],
            ["enhancement_iterations.id"],
            name=op.f("fk_enhanced_views_iteration_id_enhancement_iterations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_enhanced_views_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enhanced_views")),
        sa.UniqueConstraint(
            "iteration_id", "view_index", name=op.f("uq_enhanced_views_iteration_id_view_index")
        ),
    )
    op.create_index(
        op.f("ix_enhanced_views_iteration_id"), "enhanced_views", ["iteration_id"], unique=False
    )
    op.create_index(
        op.f("ix_enhanced_views_project_id"), "enhanced_views", ["project_id"], unique=False
    )

    op.create_table(
        "refinement_metrics",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("iteration_id", sa.String(length=36), nullable=False),
        sa.Column("metric_name", sa.String(length=64), nullable=False),
        sa.Column("metric_value", sa.Float(), nullable=False),
        sa.Column("view_index", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["iteration_id"],
            ["enhancement_iterations.id"],
            name=op.f("fk_refinement_metrics_iteration_id_enhancement_iterations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_refinement_metrics_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refinement_metrics")),
    )
    op.create_index(
        op.f("ix_refinement_metrics_iteration_id"),
        "refinement_metrics",
        ["iteration_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_refinement_metrics_project_id"), "refinement_metrics", ["project_id"], unique=False
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

    for sql in VIEWS.values():
        op.execute(sql)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and (bind.dialect.server_version_info or (0,)) >= (15,):
        # Views then obey the caller's row-level security (Supabase), not the owner's.
        for name in VIEWS:
            op.execute(f"ALTER VIEW {name} SET (security_invoker = true)")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
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
