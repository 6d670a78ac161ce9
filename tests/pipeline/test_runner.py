"""The runner end to end on both deployments (SQLite + local, PostgreSQL + S3), resume after an
interruption, monotonic progress, and the ``glimpse3d run`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from glimpse3d.cli import app
from glimpse3d.config import get_settings
from glimpse3d.errors import Cancelled
from glimpse3d.jobs.outcomes import run_and_record
from glimpse3d.pipeline.preprocess import preprocess_image, validate_image
from glimpse3d.pipeline.runner import PipelineRunner, ProgressEvent
from glimpse3d.splat.cameras import camera_record
from glimpse3d.storage.base import DEPTH, ENHANCED, MODELS, MULTIVIEW, PROCESSED, UPLOADS

SAMPLES = Path(__file__).resolve().parents[2] / "glimpse3d" / "samples"
SMALL = dict(view_size=64, max_gaussians=1500, train_steps=60, export_formats=["ply", "splat"],
             cleanup_interval_minutes=0)
STATUS_ORDER = ["uploading", "preprocessing", "multiview_generating", "depth_estimating",
                "reconstructing", "refining", "exporting", "completed"]


def _events() -> tuple[list[ProgressEvent], Any]:
    events: list[ProgressEvent] = []
    return events, events.append


def test_run_all_records_every_row_and_file(repo_and_storage, make_settings):
    repo, storage = repo_and_storage
    settings = make_settings(**SMALL)
    events, on_progress = _events()
    runner = PipelineRunner(repo, storage, settings, on_progress=on_progress)
    project = runner.ingest((SAMPLES / "mug.png").read_bytes(), "mug.png")
    pid = project["id"]
    report = runner.run_all(pid, iterations=2)

    row = repo.get_project(pid)
    assert row["status"] == "completed" and row["progress_percentage"] == 100
    # the processed image's camera (the crop's) is recorded and the proxy was read with it
    photo = validate_image((SAMPLES / "mug.png").read_bytes())
    expected = camera_record(preprocess_image(photo).camera)
    assert row["input_camera"] == pytest.approx(expected)
    assert runner.run.proxy is not None and runner.run.proxy.camera0 is not None
    assert camera_record(runner.run.proxy.camera0)["fx"] == pytest.approx(expected["fx"])
    counts = repo.table_counts(pid)
    assert counts["multiview_generation"] == 16
    assert counts["depth_maps"] == 16
    n_iter = counts["enhancement_iterations"]
    assert 1 <= n_iter <= 2
    assert counts["gaussian_splat_models"] == n_iter + 1
    assert counts["enhanced_views"] == 16 * n_iter
    assert counts["refinement_metrics"] > 16 * n_iter  # per-view psnr/ssim + aggregates
    assert counts["export_history"] == 2
    versions = [m["version"] for m in repo.list_models(pid)]
    assert versions == list(range(n_iter + 1))  # contiguous v0..vN

    # one file per row, in the bucket layout of docs/architecture.md ("Buckets")
    assert storage.list(UPLOADS, f"{pid}/") == [f"{pid}/original.png"]
    assert set(storage.list(PROCESSED, f"{pid}/")) == {f"{pid}/processed.png", f"{pid}/mask.png"}
    assert len(storage.list(MULTIVIEW, f"{pid}/views/")) == 16
    assert len(storage.list(DEPTH, f"{pid}/")) == 32
    assert len(storage.list(ENHANCED, f"{pid}/iter_1/")) == 32  # rendered + enhanced
    assert f"{pid}/models/v{n_iter}.ply" in storage.list(MODELS, f"{pid}/")

    # metrics are real numbers in range
    it = report["iterations"][0]
    assert 15.0 < it["psnr"] < 60.0 and 0.3 < it["ssim"] <= 1.0
    assert 0.0 <= it["overall_quality"] <= 1.0
    assert set(report["stage_seconds"]) >= {"multiview", "depth", "reconstruct", "refine", "export"}

    # progress never goes backwards and statuses follow the pipeline order
    values = [e.progress for e in events if e.progress >= 0]
    assert values == sorted(values) and values[-1] == 100
    order = [STATUS_ORDER.index(e.status) for e in events]
    assert order == sorted(order)

    summary = repo.project_summary(pid)
    assert summary["latest_version"] == n_iter

    repo.delete_project(pid)
    storage.delete_project(pid)
    assert all(v == 0 for v in repo.table_counts(pid).values())
    assert all(storage.list(bucket, f"{pid}/") == [] for bucket in
               (UPLOADS, PROCESSED, MULTIVIEW, DEPTH, ENHANCED, MODELS))


def test_interrupted_run_resumes_without_duplicates(make_settings, sqlite_url, tmp_path):
    from glimpse3d.db.repository import open_repository
    from glimpse3d.storage.local import LocalStorage

    repo = open_repository(sqlite_url)
    storage = LocalStorage(tmp_path / "storage")
    settings = make_settings(**SMALL)
    pid = PipelineRunner(repo, storage, settings).ingest((SAMPLES / "toy.png").read_bytes(),
                                                         "toy.png")["id"]
    # "crash" during the depth stage: the cancel flag trips once 5 depth maps are done
    crash = PipelineRunner(repo, storage, settings,
                           should_cancel=lambda: len(repo.list_depth_maps(pid)) >= 5)
    with pytest.raises(Cancelled):  # the runner raises; the outcome is recorded by jobs
        run_and_record(crash, pid, {"kind": "run", "iterations": 1}, reraise=True)
    assert repo.get_project(pid)["status"] == "cancelled"
    assert len(repo.list_views(pid)) == 16
    assert 5 <= len(repo.list_depth_maps(pid)) < 16
    view0_before = storage.get_bytes(MULTIVIEW, f"{pid}/views/view_00.png")

    events, on_progress = _events()
    report = PipelineRunner(repo, storage, settings, on_progress=on_progress).run_all(pid, 1)
    assert {"preprocess", "multiview"} <= set(report["skipped_stages"])
    assert "depth" not in report["skipped_stages"]
    assert storage.get_bytes(MULTIVIEW, f"{pid}/views/view_00.png") == view0_before
    counts = repo.table_counts(pid)
    assert counts["multiview_generation"] == 16 and counts["depth_maps"] == 16
    assert counts["gaussian_splat_models"] == counts["enhancement_iterations"] + 1
    assert repo.get_project(pid)["status"] == "completed"

    # a run on the completed project only adds what was asked: one more refinement iteration
    again = PipelineRunner(repo, storage, settings).run_all(pid, 1)
    assert {"multiview", "depth", "reconstruct"} <= set(again["skipped_stages"])
    after = repo.table_counts(pid)
    assert after["multiview_generation"] == 16 and after["depth_maps"] == 16
    assert after["gaussian_splat_models"] == after["enhancement_iterations"] + 1
    assert after["enhancement_iterations"] <= counts["enhancement_iterations"] + 1


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GLIMPSE3D_DATA_DIR", str(tmp_path / "data"))
    for key, value in SMALL.items():
        monkeypatch.setenv(f"GLIMPSE3D_{key.upper()}",
                           json.dumps(value) if isinstance(value, list) else str(value))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_cli_run_writes_bucket_layout_and_report(cli_env):
    out = cli_env / "out"
    result = CliRunner().invoke(app, ["run", str(SAMPLES / "mug.png"), "-o", str(out),
                                      "--iterations", "1", "--seed", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    pid = report["project_id"]
    assert report["status"] == "completed"
    assert report["total_seconds"] > 0
    assert len(report["iterations"]) == 1
    for export in report["exports"].values():
        assert Path(export["path"]).is_file()
        assert Path(export["path"]).is_relative_to(out / "3d-models" / pid / "exports")
    assert len(list((out / "multiview-images" / pid / "views").glob("view_*.png"))) == 16
    assert len(list((out / "depth-maps" / pid).glob("depth_*.npy"))) == 16
    depth = np.load(out / "depth-maps" / pid / "depth_00.npy")
    fg = depth[depth > 0]
    assert fg.size > 0 and 0.8 < fg.mean() < 2.2  # metric z around the camera distance 1.5

    # running again on the same OUTDIR resumes the completed project's output dir
    again = CliRunner().invoke(app, ["run", str(SAMPLES / "mug.png"), "-o", str(out),
                                     "--iterations", "1", "--seed", "3"])
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"this is not an image", "image"),
        ("tiny", "at least 128 px"),
        (None, "not found"),
    ],
)
def test_cli_run_bad_input_exits_2_with_one_line(cli_env, content, needle):
    photo = cli_env / "photo.png"
    if content == "tiny":
        Image.new("RGB", (64, 64), (200, 30, 30)).save(photo)
    elif content is not None:
        photo.write_bytes(content)
    result = CliRunner().invoke(app, ["run", str(photo), "-o", str(cli_env / "o")])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0].lower(), result.output
