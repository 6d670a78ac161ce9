"""``glimpse3d run PHOTO -o OUTDIR``: the whole pipeline with Rich progress bars and a report.

With local storage (the default) OUTDIR is the storage root (one folder per bucket); with
S3 storage the files go to the buckets and OUTDIR holds the report only. The project is recorded
in the configured database. Re-running on the same OUTDIR with the same photo resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from glimpse3d.cli._common import handle_errors
from glimpse3d.domain import DEFAULT_ITERATIONS, STAGES
from glimpse3d.errors import UserError

if TYPE_CHECKING:
    from glimpse3d.pipeline.runner import ProgressEvent

STATE_FILE = ".glimpse3d-project.json"
STAGE_LABELS = {
    "preprocessing": "Preprocess",
    "multiview_generating": "Multiview",
    "depth_estimating": "Depth",
    "reconstructing": "Reconstruct",
    "refining": "Refine",
    "exporting": "Export",
}


class StageBars:
    """One Rich progress bar per stage, fed by the runner's progress events."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {
            status: progress.add_task(STAGE_LABELS[status], total=100.0, step="")
            for status, _lo, _hi in STAGES.values()
        }
        self.ranges = {status: (lo, hi) for status, lo, hi in STAGES.values()}

    def __call__(self, event: ProgressEvent) -> None:
        if event.status == "completed":
            for task in self.tasks.values():
                self.progress.update(task, completed=100.0)
            return
        if event.status not in self.tasks:
            return
        lo, hi = self.ranges[event.status]
        for status, task in self.tasks.items():  # earlier stages are finished
            if self.ranges[status][1] <= lo:
                self.progress.update(task, completed=100.0)
        done = 100.0 * (event.progress - lo) / (hi - lo) if hi > lo else 100.0
        self.progress.update(self.tasks[event.status], completed=max(0.0, min(done, 100.0)),
                             step=event.step)


@handle_errors
def run(
    photo: Annotated[Path, typer.Argument(help="Input photo (PNG/JPEG/WebP).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output directory.")] = Path("out"),
    iterations: Annotated[
        int, typer.Option(min=0, max=10, help="Refinement iterations.")
    ] = DEFAULT_ITERATIONS,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    remove_bg: Annotated[bool, typer.Option(help="Remove the background.")] = True,
    name: Annotated[str | None, typer.Option(help="Project name.")] = None,
    fresh: Annotated[bool, typer.Option(help="Start over instead of resuming.")] = False,
) -> None:
    """Run the whole pipeline on PHOTO; artifacts + report.json go to OUT."""
    run_photo(
        photo, out, iterations=iterations, seed=seed, remove_bg=remove_bg, name=name, fresh=fresh
    )


def _photo_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_photo(
    photo: Path,
    out: Path,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    seed: int = 0,
    remove_bg: bool = True,
    name: str | None = None,
    fresh: bool = False,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run (or resume) the pipeline on ``photo`` with artifacts under ``out``; returns the report."""
    from glimpse3d.config import get_settings
    from glimpse3d.pipeline.preprocess import validate_image
    from glimpse3d.services import open_services
    from glimpse3d.storage.local import LocalStorage

    console = console or Console(stderr=True)
    if not photo.is_file():
        raise UserError(f"photo not found: {photo}")
    data = photo.read_bytes()
    settings = get_settings().model_copy(update={"seed": seed})
    validate_image(data, max_bytes=settings.max_upload_bytes)  # fail fast, before any output
    out.mkdir(parents=True, exist_ok=True)
    local = "://" not in settings.resolved_storage_url \
        or settings.resolved_storage_url.startswith("file://")
    with open_services(settings, storage=LocalStorage(out) if local else None,
                       queue=False) as services:
        services.storage.ensure_buckets()
        return _run_recorded(services, photo, out, data, iterations=iterations, seed=seed,
                             remove_bg=remove_bg, name=name, fresh=fresh, console=console)


def _run_recorded(services: Any, photo: Path, out: Path, data: bytes, *, iterations: int,
                  seed: int, remove_bg: bool, name: str | None, fresh: bool,
                  console: Console) -> dict[str, Any]:
    from glimpse3d.db.repository import ProjectNotFound
    from glimpse3d.jobs.outcomes import run_and_record
    from glimpse3d.pipeline.runner import PipelineRunner

    settings, repo, storage = services.settings, services.repo, services.storage

    state_path = out / STATE_FILE
    digest = _photo_digest(data)
    project_id: str | None = None
    if state_path.exists() and not fresh:
        state = json.loads(state_path.read_text())
        if state.get("photo_sha256") == digest and state.get("seed") == seed:
            try:
                project = repo.get_project(state["project_id"])
                if project["status"] != "completed" or state.get("iterations") != iterations:
                    project_id = project["id"]
                    console.print(f"resuming project {project_id} (completed stages are skipped)")
                else:
                    console.print(f"project {project['id']} already completed; re-running fresh")
            except ProjectNotFound:
                project_id = None

    bars = Progress(TextColumn("{task.description:<12}"), BarColumn(), TextColumn(
        "{task.percentage:>5.1f}%"), TimeElapsedColumn(), TextColumn("{task.fields[step]}"),
        console=console, transient=False)
    started = time.perf_counter()
    with bars:
        runner = PipelineRunner(repo, storage, settings, on_progress=StageBars(bars))
        if project_id is None:
            project = runner.ingest(data, photo.name, name=name or photo.stem, remove_bg=remove_bg,
                                    project_settings={"seed": seed})
            project_id = project["id"]
            state_path.write_text(json.dumps({"project_id": project_id, "photo_sha256": digest,
                                              "seed": seed, "iterations": iterations}))
        _, report = run_and_record(runner, project_id, {"kind": "run", "iterations": iterations},
                                   reraise=True)
    report["total_seconds"] = round(time.perf_counter() - started, 3)
    report["photo"] = str(photo)
    report["outdir"] = str(out)
    report["database"] = _redact(settings.resolved_database_url)
    report_path = out / "report.json"
    report_path.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"[green]done[/] in {report['total_seconds']:.1f} s — project {project_id}")
    final = next((e for e in reversed(list(report["exports"].values())) if e["format"] == "ply"), None)
    if final and final.get("path"):
        console.print(f"model: {final['path']}", soft_wrap=True)
    console.print(f"report: {report_path}", soft_wrap=True)
    return report


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
