"""A job that loses its database mid-stage is re-queued (``RetryLater``) and resumes from the
last completed stage without duplicating rows or files (in-process, real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from glimpse3d.jobs import distributed as d
from tests.utils.cluster import disc_photo
from tests.utils.services import PG_ADMIN_DSN


def test_lost_database_requeues_then_resumes(pq_settings: Callable[..., Any],
                                             tmp_path: Path) -> None:
    from glimpse3d.db.repository import open_repository
    from glimpse3d.pipeline.runner import PipelineRunner
    from glimpse3d.storage.local import LocalStorage

    settings = pq_settings()
    db = make_url(settings.resolved_database_url).database
    repo = open_repository(settings.resolved_database_url)
    storage = LocalStorage(tmp_path / "storage")
    storage.ensure_buckets()
    admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True)
    fired: list[str] = []

    def cut_database(event: Any) -> None:
        """At the first depth map: refuse new sessions and end the existing ones."""
        if event.status == "depth_estimating" and event.step.startswith("depth ") and not fired:
            fired.append(event.step)
            admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (db,))

    try:
        pid = PipelineRunner(repo, storage, settings).ingest(disc_photo(384, seed=5), "d.png")["id"]
        repo.update_project(pid, job={"kind": "generate"})  # as enqueue records it
        runner = d.JobRunner(settings, repo, storage, on_progress=cut_database)
        with pytest.raises(d.RetryLater, match="database connection lost"):
            runner.run(None, pid, {"kind": "generate"})
        assert fired == ["depth 1/16"]
        admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')

        project = repo.get_project(pid)
        assert project["job"] == {"kind": "generate"} and project["attempts"] == 1
        assert project["status"] == "depth_estimating"  # not failed: it will be retried
        assert repo.table_counts(pid)["multiview_generation"] == 16
        assert repo.table_counts(pid)["depth_maps"] < 16

        assert runner.run(None, pid, {"kind": "generate"}) == "completed"
        project = repo.get_project(pid)
        assert (project["status"], project["job"], project["attempts"]) == ("completed", None, 0)
        counts = repo.table_counts(pid)
        assert (counts["multiview_generation"], counts["depth_maps"]) == (16, 16)
        assert [m["version"] for m in repo.list_models(pid)] == [0]
        assert {(e["model_version"], e["format"]) for e in repo.list_exports(pid)} == {
            (0, "ply"), (0, "splat")}
        assert len(storage.list("depth-maps", f"{pid}/")) == 32
        assert len(storage.list("multiview-images", f"{pid}/")) == 16
        assert len(storage.list("3d-models", f"{pid}/")) == 3
    finally:
        admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
        admin.close()
        repo.close()
