"""The repository contract on SQLite+local and PostgreSQL+S3 (same tests, real databases)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from glimpse3d.db.models import TABLES
from glimpse3d.db.repository import ProjectNotFound, Repository, open_repository, projects


def _fill(repo: Repository, pid: str, n_views: int = 16, n_iters: int = 3) -> list[dict]:
    for k in range(n_views):
        repo.upsert_view(pid, k, 30.0, 22.5 * k, f"{pid}/views/view_{k:02d}.png", "classic", 0.01)
        repo.upsert_depth_map(
            pid,
            k,
            f"{pid}/depth_{k:02d}.npy",
            f"{pid}/heatmap_{k:02d}.png",
            1.0,
            2.0,
            1.5,
            0.9,
            "classic",
        )
    repo.upsert_model(pid, 0, None, f"{pid}/models/v0.ply", 1000, 62_000, "reconstruct")
    iters = []
    for i in range(1, n_iters + 1):
        repo.upsert_model(pid, i, i - 1, f"{pid}/models/v{i}.ply", 1000 + i, 62_000 + i, "refine")
        it = repo.upsert_iteration(
            pid,
            i,
            i - 1,
            i,
            20.0 + i,
            0.8,
            None,
            0.7,
            0.6,
            [0.5, 0.7, 0.65][i - 1],
            i == n_iters,
            1.5,
        )
        iters.append(it)
        for k in range(2):
            repo.upsert_enhanced_view(
                pid,
                it["id"],
                k,
                f"{pid}/iter_{i}/rendered_{k:02d}.png",
                f"{pid}/iter_{i}/view_{k:02d}.png",
                True,
                0.9,
                0.8,
            )
            repo.upsert_metric(pid, it["id"], "psnr", 20.0 + k, view_index=k)
        repo.upsert_metric(pid, it["id"], "psnr", 21.0)
    repo.add_export(pid, n_iters, "ply", f"{pid}/exports/v{n_iters}.ply", 62_003)
    repo.add_export(pid, n_iters, "splat", f"{pid}/exports/v{n_iters}.splat", 32_000)
    return iters


def test_create_get_update_project(repo_and_storage):
    repo, _ = repo_and_storage
    p = repo.create_project(
        "mug", settings={"seed": 3, "nested": {"a": [1, 2]}}, owner_id="u1", client_id="1.2.3.4"
    )
    assert p["status"] == "uploading" and p["progress_percentage"] == 0.0
    assert p["settings"] == {"seed": 3, "nested": {"a": [1, 2]}}
    assert p["attempts"] == 0 and p["job"] is None and p["client_id"] == "1.2.3.4"
    assert p["created_at"].tzinfo is not None
    assert abs((datetime.now(UTC) - p["created_at"]).total_seconds()) < 60
    assert len(p["id"]) == 36
    got = repo.get_project(p["id"])
    assert got == p
    q = repo.update_project(
        p["id"],
        status="preprocessing",
        current_step="preprocess",
        progress_percentage=10,
        job={"kind": "generate"},
        attempts=1,
    )
    assert (q["status"], q["current_step"], q["progress_percentage"]) == (
        "preprocessing",
        "preprocess",
        10.0,
    )
    assert q["job"] == {"kind": "generate"} and q["attempts"] == 1
    assert q["updated_at"] >= p["updated_at"]
    q = repo.update_project(p["id"], job=None)
    assert q["job"] is None
    done = repo.update_project(p["id"], status="completed", progress_percentage=100)
    assert done["completed_at"] is not None and done["completed_at"].tzinfo is not None
    assert repo.update_project(p["id"], status="refining")["completed_at"] is None
    with pytest.raises(ProjectNotFound):
        repo.get_project("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ProjectNotFound):
        repo.update_project("00000000-0000-0000-0000-000000000000", status="failed")
    with pytest.raises(ValueError):
        repo.update_project(p["id"], status="bogus")
    with pytest.raises(TypeError):
        repo.update_project(p["id"], no_such_column=1)
    fixed = repo.create_project("fixed", project_id="11111111-2222-3333-4444-555555555555")
    assert fixed["id"] == "11111111-2222-3333-4444-555555555555"
    # health check, and re-opening an up-to-date database is a no-op upgrade
    repo.check()
    again = open_repository(repo.url.render_as_string(hide_password=False))
    try:
        assert again.get_project(fixed["id"])["name"] == "fixed"
    finally:
        again.close()


def test_progress_is_monotonic(repo_and_storage):
    repo, _ = repo_and_storage
    pid = repo.create_project("p")["id"]
    seen = []
    for value in (10, 40, 25, 60, 59.5, 70):
        seen.append(repo.update_project(pid, progress_percentage=value)["progress_percentage"])
    assert seen == [10, 40, 40, 60, 60, 70]
    assert (
        repo.update_project(pid, progress_percentage=5, reset_progress=True)["progress_percentage"]
        == 5
    )
    with pytest.raises(ValueError):
        repo.update_project(pid, progress_percentage=101)

    # concurrent writers (threads share the repository) never lower it either
    repo.update_project(pid, progress_percentage=0, reset_progress=True)
    errors: list[BaseException] = []

    def writer(values):
        try:
            for v in values:
                repo.update_project(pid, progress_percentage=v)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(range(start, 100, 4),)) for start in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert repo.get_project(pid)["progress_percentage"] == 99


def test_upserts_are_idempotent(repo_and_storage):
    repo, _ = repo_and_storage
    pid = repo.create_project("p")["id"]
    iters1 = _fill(repo, pid)
    counts1 = repo.table_counts(pid)
    iters2 = _fill(repo, pid)  # a re-run of every stage
    assert repo.table_counts(pid) == counts1
    assert counts1 == {
        "projects": 1,
        "multiview_generation": 16,
        "depth_maps": 16,
        "gaussian_splat_models": 4,
        "enhancement_iterations": 3,
        "enhanced_views": 6,
        "refinement_metrics": 9,
        "export_history": 2,
    }
    assert set(counts1) == set(TABLES)
    # iteration ids survive a re-run (children keep pointing at them)
    assert [i["id"] for i in iters1] == [i["id"] for i in iters2]
    # an upsert updates the values in place
    row = repo.upsert_view(pid, 3, 30.0, 67.5, "new/key.png", "diffusers", 2.5)
    assert (row["image_key"], row["backend"], row["generation_time"]) == (
        "new/key.png",
        "diffusers",
        2.5,
    )
    views = repo.list_views(pid)
    assert [v["view_index"] for v in views] == list(range(16))
    assert views[3]["image_key"] == "new/key.png" and views[5]["azimuth"] == 112.5
    m = repo.upsert_metric(pid, iters1[0]["id"], "psnr", 99.0)
    assert m["view_index"] is None and m["metric_value"] == 99.0
    metrics = [x for x in repo.list_metrics(pid) if x["iteration_number"] == 1]
    assert [(x["view_index"], x["metric_value"]) for x in metrics] == [
        (None, 99.0),
        (0, 20.0),
        (1, 21.0),
    ]
    assert repo.table_counts(pid)["refinement_metrics"] == 9
    e = repo.add_export(pid, 3, ".PLY", "k2", 5)
    assert e["format"] == "ply" and e["file_key"] == "k2"
    assert [(x["model_version"], x["format"]) for x in repo.list_exports(pid)] == [
        (3, "ply"),
        (3, "splat"),
    ]


def test_views_values(repo_and_storage):
    repo, _ = repo_and_storage
    pid = repo.create_project("mug")["id"]
    empty = repo.project_summary(pid)
    assert (
        empty["view_count"] == 0
        and empty["latest_version"] is None
        and empty["best_quality"] is None
    )
    _fill(repo, pid)
    repo.update_project(pid, status="refining", progress_percentage=80)
    s = repo.project_summary(pid)
    assert (s["id"], s["name"], s["status"], s["progress_percentage"]) == (
        pid,
        "mug",
        "refining",
        80.0,
    )
    assert (
        s["view_count"],
        s["depth_map_count"],
        s["model_count"],
        s["iteration_count"],
        s["export_count"],
    ) == (16, 16, 4, 3, 2)
    assert s["latest_version"] == 3
    assert s["best_quality"] == pytest.approx(0.7)
    prog = repo.refinement_progress(pid)
    assert [r["iteration_number"] for r in prog] == [1, 2, 3]
    assert [r["overall_quality"] for r in prog] == pytest.approx([0.5, 0.7, 0.65])
    assert prog[0]["quality_change"] is None
    assert prog[1]["quality_change"] == pytest.approx(0.2)
    assert prog[2]["quality_change"] == pytest.approx(-0.05)
    assert prog[2]["converged"] is True
    # another project's iterations do not leak into the window
    other = repo.create_project("other")["id"]
    repo.upsert_iteration(other, 1, 0, 1, 1, 1, None, 1, 1, 0.1, False, 1)
    assert len(repo.refinement_progress(pid)) == 3
    assert repo.refinement_progress(other)[0]["quality_change"] is None
    with pytest.raises(ProjectNotFound):
        repo.project_summary("nope")
    # list orders and values
    assert [m["version"] for m in repo.list_models(pid)] == [0, 1, 2, 3]
    assert repo.list_models(pid)[1]["parent_version"] == 0
    its = repo.list_iterations(pid)
    assert [i["iteration_number"] for i in its] == [1, 2, 3]
    assert its[0]["lpips"] is None and its[2]["converged"] is True and its[0]["converged"] is False
    ev = repo.list_enhanced_views(pid)
    assert [(e["iteration_number"], e["view_index"]) for e in ev] == [
        (i, k) for i in (1, 2, 3) for k in (0, 1)
    ]
    ev2 = repo.list_enhanced_views(pid, iteration_id=its[1]["id"])
    assert [e["iteration_id"] for e in ev2] == [its[1]["id"]] * 2
    d = repo.list_depth_maps(pid)
    assert [x["view_index"] for x in d] == list(range(16)) and d[0]["mean_depth"] == 1.5


def test_delete_cascades(repo_and_storage):
    repo, _ = repo_and_storage
    keep = repo.create_project("keep")["id"]
    gone = repo.create_project("gone")["id"]
    _fill(repo, keep, n_views=2, n_iters=1)
    _fill(repo, gone, n_views=2, n_iters=2)
    before = repo.table_counts(keep)
    repo.delete_project(gone)
    assert repo.table_counts(gone) == {t: 0 for t in TABLES}
    assert repo.table_counts(keep) == before
    with pytest.raises(ProjectNotFound):
        repo.delete_project(gone)
    with pytest.raises(ProjectNotFound):
        repo.upsert_view(gone, 0, 30, 0, "k", "classic", 0.1)


def test_list_filters_and_age(repo_and_storage):
    repo, _ = repo_and_storage
    ids = [repo.create_project(f"p{i}", owner_id="a" if i % 2 else "b")["id"] for i in range(5)]
    repo.update_project(ids[0], status="failed")
    repo.update_project(ids[1], status="refining")
    old = datetime.now(UTC) - timedelta(days=40)
    with repo.engine.begin() as conn:
        conn.execute(update(projects).where(projects.c.id == ids[2]).values(created_at=old))
    rows, total = repo.list_projects(limit=2)
    assert total == 5 and len(rows) == 2
    assert rows[0]["id"] == ids[4] and rows[1]["id"] == ids[3]  # newest first
    rows, total = repo.list_projects(limit=10, offset=3)
    assert total == 5 and [r["id"] for r in rows] == [ids[0], ids[2]]
    assert repo.list_projects(status="failed")[1] == 1
    assert {r["id"] for r in repo.list_projects(owner_id="a")[0]} == {ids[1], ids[3]}
    assert repo.projects_older_than(30) == [ids[2]]
    assert repo.projects_older_than(50) == []
    assert [p["id"] for p in repo.projects_with_status(("failed", "refining"))] == [ids[0], ids[1]]
