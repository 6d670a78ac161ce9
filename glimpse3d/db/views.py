"""SQL of the two views (docs/architecture.md, "Tables and views"); the same text runs on SQLite (>= 3.25) and PostgreSQL.

Migrations import these strings as of their revision: when a view changes, copy the old text
into the old revision before editing it here, and add a revision that recreates the view.
"""

from __future__ import annotations

from typing import Any

PROJECT_SUMMARY = """
CREATE VIEW project_summary AS
SELECT
    p.id AS id,
    p.name AS name,
    p.status AS status,
    p.current_step AS current_step,
    p.progress_percentage AS progress_percentage,
    p.owner_id AS owner_id,
    p.created_at AS created_at,
    p.updated_at AS updated_at,
    p.completed_at AS completed_at,
    (SELECT COUNT(*) FROM multiview_generation v WHERE v.project_id = p.id) AS view_count,
    (SELECT COUNT(*) FROM depth_maps d WHERE d.project_id = p.id) AS depth_map_count,
    (SELECT COUNT(*) FROM gaussian_splat_models m WHERE m.project_id = p.id) AS model_count,
    (SELECT COUNT(*) FROM enhancement_iterations i WHERE i.project_id = p.id) AS iteration_count,
    (SELECT COUNT(*) FROM export_history e WHERE e.project_id = p.id) AS export_count,
    (SELECT MAX(m.version) FROM gaussian_splat_models m WHERE m.project_id = p.id) AS latest_version,
    (SELECT MAX(i.overall_quality) FROM enhancement_iterations i WHERE i.project_id = p.id) AS best_quality
FROM projects p
"""

REFINEMENT_PROGRESS = """
CREATE VIEW refinement_progress AS
SELECT
    i.project_id AS project_id,
    i.id AS iteration_id,
    i.iteration_number AS iteration_number,
    i.model_version_in AS model_version_in,
    i.model_version_out AS model_version_out,
    i.psnr AS psnr,
    i.ssim AS ssim,
    i.lpips AS lpips,
    i.overall_quality AS overall_quality,
    i.overall_quality - LAG(i.overall_quality) OVER (
        PARTITION BY i.project_id ORDER BY i.iteration_number
    ) AS quality_change,
    i.converged AS converged,
    i.processing_time AS processing_time,
    i.created_at AS created_at
FROM enhancement_iterations i
"""

VIEWS: dict[str, str] = {
    "project_summary": PROJECT_SUMMARY.strip(),
    "refinement_progress": REFINEMENT_PROGRESS.strip(),
}


def drop_views(op: Any, views: dict[str, str]) -> None:
    """In a migration (``op``: ``alembic.op``): drop ``views``, last first (SQLite copies a
    table to drop a column, which a view that references it blocks)."""
    for name in reversed(views):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def create_views(op: Any, views: dict[str, str]) -> None:
    """In a migration: create ``views`` (name -> SQL); on PostgreSQL >= 15 they then obey the
    caller's row-level security (Supabase), not the owner's (``security_invoker``)."""
    for sql in views.values():
        op.execute(sql)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and (bind.dialect.server_version_info or (0,)) >= (15,):
        for name in views:
            op.execute(f"ALTER VIEW {name} SET (security_invoker = true)")
