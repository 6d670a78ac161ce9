"""The repository the pipeline, API and jobs call. One code path for SQLite and PostgreSQL.

CONTRACT (fixed; other layers code against it). Ids are UUID strings. Every ``upsert_*``
is idempotent on the table's natural unique key, so a re-run stage never duplicates rows.
Methods return plain dicts (column name -> value, datetimes as ``datetime``), JSON-ready
after ``jsonable_encoder``.
"""

from __future__ import annotations

from typing import Any

PROJECT_STATUSES = (
    "uploading",
    "preprocessing",
    "multiview_generating",
    "depth_estimating",
    "reconstructing",
    "refining",
    "exporting",
    "completed",
    "failed",
    "cancelled",
)
ACTIVE_STATUSES = PROJECT_STATUSES[:7]


class ProjectNotFound(LookupError):
    """No project with that id."""


class Repository:
    """Signature stub -- implemented in this module by the persistence layer."""

    # ---- lifecycle
    def __init__(self, url: str) -> None:
        raise NotImplementedError

    def close(self) -> None: ...

    def check(self) -> None:
        """Raise with a clear message if the database is unreachable or tables/views are missing."""

    # ---- projects
    def create_project(
        self,
        name: str,
        settings: dict[str, Any] | None = None,
        owner_id: str | None = None,
        project_id: str | None = None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """Insert a project with status 'uploading', progress 0; returns its row."""

    def get_project(self, project_id: str) -> dict[str, Any]:
        """Raises ProjectNotFound."""

    def update_project(self, project_id: str, **fields: Any) -> dict[str, Any]:
        """Set columns (status, current_step, progress_percentage, error_message,
        original_image_key, processed_image_key, settings, completed_at ...); bumps updated_at.
        ``progress_percentage`` never decreases unless ``reset_progress=True`` is passed."""

    def list_projects(
        self, limit: int = 20, offset: int = 0, status: str | None = None,
        owner_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first; returns (rows, total)."""

    def delete_project(self, project_id: str) -> None:
        """Delete the project and (by cascade) all its rows. Raises ProjectNotFound."""

    def projects_older_than(self, days: float) -> list[str]: ...

    def projects_with_status(self, statuses: tuple[str, ...]) -> list[dict[str, Any]]: ...

    # ---- stage rows
    def upsert_view(
        self, project_id: str, view_index: int, elevation: float, azimuth: float,
        image_key: str, backend: str, generation_time: float,
    ) -> dict[str, Any]: ...

    def list_views(self, project_id: str) -> list[dict[str, Any]]:
        """Ordered by view_index."""

    def upsert_depth_map(
        self, project_id: str, view_index: int, depth_key: str, heatmap_key: str,
        min_depth: float, max_depth: float, mean_depth: float, confidence_score: float,
        backend: str,
    ) -> dict[str, Any]: ...

    def list_depth_maps(self, project_id: str) -> list[dict[str, Any]]: ...

    def upsert_model(
        self, project_id: str, version: int, parent_version: int | None, model_key: str,
        num_gaussians: int, file_size_bytes: int, source: str,
    ) -> dict[str, Any]: ...

    def list_models(self, project_id: str) -> list[dict[str, Any]]:
        """Ordered by version."""

    def upsert_iteration(
        self, project_id: str, iteration_number: int, model_version_in: int,
        model_version_out: int, psnr: float, ssim: float, lpips: float | None,
        depth_consistency: float, feature_consistency: float, overall_quality: float,
        converged: bool, processing_time: float,
    ) -> dict[str, Any]:
        """Returns the row including its ``id`` (used as iteration_id below)."""

    def list_iterations(self, project_id: str) -> list[dict[str, Any]]: ...

    def upsert_enhanced_view(
        self, project_id: str, iteration_id: str, view_index: int, rendered_key: str,
        enhanced_key: str, accepted: bool, depth_consistency: float, feature_similarity: float,
    ) -> dict[str, Any]: ...

    def list_enhanced_views(self, project_id: str, iteration_id: str | None = None) -> list[dict[str, Any]]: ...

    def upsert_metric(
        self, project_id: str, iteration_id: str, metric_name: str, metric_value: float,
        view_index: int | None = None,
    ) -> dict[str, Any]: ...

    def list_metrics(self, project_id: str) -> list[dict[str, Any]]: ...

    def add_export(
        self, project_id: str, model_version: int, format: str, file_key: str,
        file_size_bytes: int,
    ) -> dict[str, Any]: ...

    def list_exports(self, project_id: str) -> list[dict[str, Any]]: ...

    # ---- views
    def project_summary(self, project_id: str) -> dict[str, Any]: ...

    def refinement_progress(self, project_id: str) -> list[dict[str, Any]]: ...

    def table_counts(self, project_id: str) -> dict[str, int]:
        """Rows per table for one project (8 keys)."""


def open_repository(url: str) -> Repository:
    """Connect and make sure the schema is at the latest migration; returns a Repository."""
    raise NotImplementedError
