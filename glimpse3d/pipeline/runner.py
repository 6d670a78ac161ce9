"""The pipeline runner: stages as idempotent, resumable steps over a repository + storage.

CONTRACT (the API, jobs and CLI code against these names):

    runner = PipelineRunner(repo, storage, settings, on_progress=cb, should_cancel=fn)
    project = runner.ingest(data, filename, name=None, remove_bg=True, owner_id=None,
                            client_id=None, project_settings=None)   # validate + preprocess
    runner.generate(project_id)            # multiview -> depth -> reconstruct (v0) -> exports of v0
    runner.refine(project_id, iterations=3, strength=0.5)   # v(n+1).. -> exports of the last
    runner.run_job(project_id, job)        # job = {"kind": "generate"|"refine"|"run", ...}
    bucket, key = runner.export(project_id, fmt, version=None)   # on demand, recorded
    report = runner.run_all(project_id, iterations=3)        # everything; used by the CLI

Each stage skips itself when its outputs are already recorded (resume after a crash).
Progress (``glimpse3d.domain.STAGES``): preprocessing 10, multiview 10->40, depth 40->60,
reconstruct 60->70, refining 70->95, exporting 95->100; never decreasing within a run.
``on_progress(event: ProgressEvent)`` is called after each step; ``should_cancel()`` is polled
between steps and raises ``glimpse3d.errors.Cancelled``. The runner writes progress only: a
failure or a cancellation is raised and recorded by the caller (``glimpse3d.jobs.outcomes``).
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from glimpse3d.config import Settings, get_settings
from glimpse3d.domain import DEPTH, ENHANCED, MODELS, MULTIVIEW, PROCESSED, STAGES, UPLOADS
from glimpse3d.errors import Cancelled, UserError, WrongState
from glimpse3d.pipeline.backends import (
    BackendUnavailable,
    backend_class,
    load_backend,
    multiview_cameras,
    resolve_strength,
)
from glimpse3d.splat.cameras import Camera, camera_from_record, camera_record
from glimpse3d.splat.images import load_rgba, rgba_png_bytes
from glimpse3d.splat.mesh_asset import MeshOptions
from glimpse3d.storage.base import guess_content_type, keys

if TYPE_CHECKING:
    from glimpse3d.pipeline.proxy import Proxy

log = logging.getLogger(__name__)

GENERATE_EXPORTS = ("ply", "splat")
# refinement stops early once overall quality (in [0,1]) rises by less than this
CONVERGENCE_DELTA = 0.001


@dataclass
class ProgressEvent:
    """One progress update: a project status (``glimpse3d.domain``), a step label and the percentage (0-100)."""

    project_id: str
    status: str
    step: str
    progress: float
    message: str = ""


@dataclass
class _Run:
    """Per-call bookkeeping: stage wall times for the report, and the run's shape proxy
    (built at most once per run, from ``proxy_of``: the project id and its processed image)."""

    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    proxy: Proxy | None = None
    proxy_of: tuple[str, np.ndarray] | None = None


class PipelineRunner:
    """Runs the stages of one project against a repository and a storage backend."""

    def __init__(
        self,
        repo: Any,
        storage: Any,
        settings: Settings | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> None:
        self.repo = repo
        self.storage = storage
        self.settings = settings or get_settings()
        self.on_progress = on_progress
        self.should_cancel = should_cancel
        self.run = _Run()
        self._last_emit: tuple[str, str, float] | None = None

    # ================================================================ public API
    def ingest(
        self,
        data: bytes,
        filename: str = "upload",
        *,
        name: str | None = None,
        remove_bg: bool = True,
        owner_id: str | None = None,
        client_id: str | None = None,
        project_settings: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Validate a photo, record a project, store the original and preprocess it."""
        from glimpse3d.pipeline.preprocess import validate_image

        image = validate_image(data, max_bytes=self.settings.max_upload_bytes)
        ext = {"JPEG": "jpg", "MPO": "jpg"}.get(image.format or "", (image.format or "png").lower())
        psettings = {"remove_bg": bool(remove_bg), "seed": self.settings.seed}
        psettings.update(project_settings or {})
        project_name = name or Path(filename).stem or "untitled"
        project = self.repo.create_project(
            project_name[:200], settings=psettings, owner_id=owner_id, client_id=client_id
        )
        pid = project["id"]
        try:
            key = keys.original(pid, ext)
            self.storage.put_bytes(UPLOADS, key, data, guess_content_type(key))
            self.repo.update_project(pid, original_image_key=key)
            self._stage_preprocess(pid, force=True)
        except BaseException:
            # an unusable photo, or storage/database failing: leave nothing behind
            self._undo_ingest(pid)
            raise
        return self.repo.get_project(pid)

    def _undo_ingest(self, project_id: str) -> None:
        """Remove a half-created project: its files, then its row (best effort; what is left
        when storage or the database is down is swept by ``glimpse3d cleanup``)."""
        from glimpse3d.db.repository import ProjectNotFound

        try:
            self.storage.delete_project(project_id)
        except Exception:  # noqa: BLE001 - the original error matters more
            log.warning("could not remove the files of failed upload %s", project_id,
                        exc_info=True)
        try:
            self.repo.delete_project(project_id)
        except ProjectNotFound:
            pass
        except Exception:  # noqa: BLE001
            log.warning("could not remove the row of failed upload %s", project_id,
                        exc_info=True)

    def generate(self, project_id: str) -> None:
        """Multiview -> depth -> reconstruct (v0) -> quick exports of v0; ends 'completed'."""
        with self._guard(project_id):
            self._begin(project_id, reset_to=STAGES["multiview"][1], status="multiview_generating")
            self._stage_preprocess(project_id)
            self._stage_multiview(project_id)
            self._stage_depth(project_id)
            self._stage_reconstruct(project_id)
            self._stage_export(project_id, GENERATE_EXPORTS, version=0)
            self._complete(project_id)

    def refine(
        self, project_id: str, iterations: int | None = None, strength: float | str | None = None,
        until_iteration: int | None = None,
    ) -> None:
        """Run refinement iterations after the latest version, then export the result."""
        with self._guard(project_id):
            if not self.repo.list_models(project_id):
                raise WrongState("the project has no model yet; run generate first")
            n = self.settings.refine_iterations if iterations is None else int(iterations)
            done = len(self.repo.list_iterations(project_id))
            target = until_iteration if until_iteration is not None else done + n
            project = self.repo.get_project(project_id)
            job = dict(project.get("job") or {})
            job.update({"kind": "refine", "until_iteration": target,
                        "strength": resolve_strength(strength)})
            self.repo.update_project(project_id, job=job)
            self._begin(project_id, reset_to=STAGES["refine"][1], status="refining")
            self._stage_refine(project_id, target, resolve_strength(strength))
            self._stage_export(project_id, tuple(self.settings.export_formats))
            self._complete(project_id)

    def run_all(self, project_id: str, iterations: int | None = None,
                strength: float | str | None = None) -> dict[str, Any]:
        """Every stage (resumable) -> report dict. Used by ``glimpse3d run``."""
        started = time.perf_counter()
        with self._guard(project_id):
            n = self.settings.refine_iterations if iterations is None else int(iterations)
            project = self.repo.get_project(project_id)
            job = dict(project.get("job") or {})
            target = job.get("until_iteration")
            if target is None:
                target = len(self.repo.list_iterations(project_id)) + n
                self.repo.update_project(
                    project_id, job={"kind": "run", "until_iteration": target}
                )
            self._begin(project_id, reset_to=None)
            self._stage_preprocess(project_id)
            self._stage_multiview(project_id)
            self._stage_depth(project_id)
            self._stage_reconstruct(project_id)
            self._stage_refine(project_id, target, resolve_strength(strength))
            self._stage_export(project_id, tuple(self.settings.export_formats))
            self._complete(project_id)
        return self.report(project_id, total_seconds=time.perf_counter() - started)

    def run_job(self, project_id: str, job: dict[str, Any]) -> dict[str, Any] | None:
        """Run a queued job dict: {"kind": "generate"} | {"kind": "refine", "iterations": n,
        "strength": s, "until_iteration": k} | {"kind": "run", "iterations": n}.
        Returns the report for a ``run`` job, else None."""
        kind = job.get("kind")
        if kind == "generate":
            self.generate(project_id)
        elif kind == "refine":
            self.refine(project_id, job.get("iterations"), job.get("strength"),
                        until_iteration=job.get("until_iteration"))
        elif kind == "run":
            return self.run_all(project_id, job.get("iterations"), job.get("strength"))
        else:
            raise UserError(f"unknown job kind {kind!r}")
        return None

    def export(self, project_id: str, fmt: str, version: int | None = None,
               faces: int | None = None, texture_size: int | None = None,
               scale: float | None = None) -> tuple[str, str]:
        """Make (or reuse) an export of ``version`` (default latest); returns (bucket, key).

        ``faces``/``texture_size``/``scale`` override the mesh settings for glb/obj/usdz."""
        fmt = fmt.lower().lstrip(".")
        models = self.repo.list_models(project_id)
        if not models:
            raise WrongState("the project has no model yet; run generate first")
        version = models[-1]["version"] if version is None else int(version)
        if version not in {m["version"] for m in models}:
            raise UserError(f"version {version} does not exist (have v0..v{models[-1]['version']})")
        options = self._mesh_options(faces, texture_size, scale)
        return self._export_one(project_id, fmt, version, options)

    def _mesh_options(self, faces: int | None = None, texture_size: int | None = None,
                      scale: float | None = None) -> MeshOptions:
        s = self.settings
        return MeshOptions(
            faces=s.mesh_faces if faces is None else int(faces),
            texture_size=s.mesh_texture_size if texture_size is None else int(texture_size),
            scale=s.mesh_scale if scale is None else float(scale),
        )

    # ============================================================ bookkeeping
    def _check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("cancelled by the user")

    def _emit(self, pid: str, stage: str, fraction: float, step: str | None = None,
              message: str = "", force: bool = False) -> None:
        """Report progress inside ``stage`` (fraction 0..1 of its range)."""
        self._check_cancel()
        status, lo, hi = STAGES[stage]
        pct = round(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), 1)
        step = step or stage
        key = (status, step, pct)
        if not force and self._last_emit is not None and self._last_emit[:2] == key[:2] \
                and pct - self._last_emit[2] < 1.0 and fraction < 1.0:
            return  # throttle: at most one DB write per percent within a step
        self._last_emit = key
        row = self.repo.update_project(pid, status=status, current_step=step,
                                       progress_percentage=pct)
        if self.on_progress is not None:
            self.on_progress(ProgressEvent(pid, status, step, float(row["progress_percentage"]),
                                           message))

    def _begin(self, pid: str, reset_to: float | None, status: str | None = None) -> None:
        """Start a run: clear the last error; optionally restart progress at ``reset_to`` and
        show ``status`` at once (so a poller never sees the previous run's terminal state)."""
        fields: dict[str, Any] = {"error_message": None, "completed_at": None}
        if status is not None:
            fields.update(status=status, current_step="starting")
        if reset_to is not None:
            fields.update(progress_percentage=reset_to, reset_progress=True)
        self.repo.update_project(pid, **fields)
        self._last_emit = None

    def _complete(self, pid: str) -> None:
        from datetime import UTC, datetime

        row = self.repo.update_project(
            pid, status="completed", current_step="done", progress_percentage=100.0,
            completed_at=datetime.now(UTC), job=None,
        )
        if self.on_progress is not None:
            self.on_progress(ProgressEvent(pid, "completed", "done", float(row["progress_percentage"])))

    @contextmanager
    def _guard(self, pid: str) -> Iterator[None]:
        """Check that the project exists, then run the body. A failure or a cancellation is
        raised as is and leaves the row as it was: the caller records the outcome
        (``glimpse3d.jobs.outcomes.run_and_record``)."""
        self.repo.get_project(pid)  # ProjectNotFound early
        yield

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.run.timings[stage] = self.run.timings.get(stage, 0.0) + time.perf_counter() - start

    def _overrides(self, pid: str) -> dict[str, Any]:
        return dict(self.repo.get_project(pid).get("settings") or {})

    def _seed(self, pid: str) -> int:
        return int(self._overrides(pid).get("seed", self.settings.seed))

    def _cameras(self, pid: str) -> list[Camera]:
        """The cameras of the project's views: as recorded with them (multiview_generation),
        else those the configured multiview backend makes (its fixed views or the 16
        SyncDreamer cameras)."""
        rows = self.repo.list_views(pid)
        if rows:
            return [camera_from_record(r, self.settings.view_size) for r in rows]
        return multiview_cameras(self.settings, self._overrides(pid))

    def _put_png(self, bucket: str, key: str, rgb: np.ndarray, alpha: np.ndarray | None = None) -> int:
        return self.storage.put_bytes(bucket, key, rgba_png_bytes(rgb, alpha), "image/png")

    # ================================================================ stages
    def _stage_preprocess(self, pid: str, force: bool = False) -> None:
        from glimpse3d.pipeline.preprocess import preprocess_image, validate_image

        project = self.repo.get_project(pid)
        key = project.get("processed_image_key")
        if not force and key and self.storage.exists(PROCESSED, key):
            self.run.skipped.append("preprocess")
            return
        with self._timed("preprocess"):
            self._emit(pid, "preprocess", 0.0, "validating", force=True)
            data = self.storage.get_bytes(UPLOADS, project["original_image_key"])
            image = validate_image(data)
            settings = dict(project.get("settings") or {})
            remove_bg = bool(settings.get("remove_bg", True))
            segmenter = load_backend("segment", self.settings, settings) if remove_bg else None
            result = preprocess_image(image, remove_bg=remove_bg, segmenter=segmenter)
            self._put_png(PROCESSED, keys.mask(pid), result.mask[..., None].repeat(3, -1))
            processed_key = keys.processed(pid)
            rgb = result.rgba[..., :3] * result.rgba[..., 3:4]
            self._put_png(PROCESSED, processed_key, rgb, result.rgba[..., 3])
            camera = camera_record(result.camera) if result.camera is not None else None
            self.repo.update_project(pid, processed_image_key=processed_key, input_camera=camera)
            self._emit(pid, "preprocess", 1.0, "preprocessed", force=True)

    def _load_processed(self, pid: str) -> np.ndarray:
        project = self.repo.get_project(pid)
        return load_rgba(self.storage.get_bytes(PROCESSED, project["processed_image_key"]))

    def _proxy(self, pid: str, processed: np.ndarray) -> Proxy | None:
        """The run's shape proxy of the project's processed image (``settings.proxy_shape``),
        built on first use (also when resuming after the multiview stage) and reused by the
        later stages of the run. None when the silhouette gives no proxy (a classic backend
        then raises its own error)."""
        from glimpse3d.pipeline.proxy import build_proxy

        built = self.run.proxy_of
        if built is None or built[0] != pid or not np.array_equal(built[1], processed):
            camera = self._input_camera(pid)
            try:
                self.run.proxy = build_proxy(processed, shape_prior=self.settings.proxy_shape,
                                             camera=camera)
            except ValueError:
                self.run.proxy = None
            self.run.proxy_of = (pid, processed)
        return self.run.proxy

    def _input_camera(self, pid: str) -> Camera | None:
        """The camera the proxy reads the processed image with: the crop's own
        (``projects.input_camera``) where the proxy makes the views (the classic multiview
        backend); else, and for projects processed before it was recorded, None (the
        convention's camera 0, as learned generators read the processed image: their views
        show the object at the processed image's framing, which the proxy must match)."""
        record = self.repo.get_project(pid).get("input_camera")
        if not record:
            return None
        try:
            generator = backend_class("multiview", self.settings, self._overrides(pid))
        except BackendUnavailable:
            return None
        return camera_from_record(record) if getattr(generator, "uses_proxy", False) else None

    def _stage_multiview(self, pid: str) -> None:
        # the backend's cameras (its fixed views, or the 16 SyncDreamer ones), no weights loaded
        cameras = multiview_cameras(self.settings, self._overrides(pid))
        n = len(cameras)
        views = self.repo.list_views(pid)
        if len(views) == n and all(self.storage.exists(MULTIVIEW, v["image_key"]) for v in views):
            self.run.skipped.append("multiview")
            return
        if len(views) > n:  # views of another backend: their cameras would mix with the new ones
            raise UserError(
                f"this project already has {len(views)} views from the "
                f"{views[0]['backend']!r} multiview backend, which makes another camera set than "
                f"the configured one ({n} views); upload the photo as a new project"
            )
        with self._timed("multiview"):
            self._emit(pid, "multiview", 0.0, "generating views", force=True)
            processed = self._load_processed(pid)
            backend = load_backend("multiview", self.settings, self._overrides(pid))
            start = time.perf_counter()
            extra = {"proxy": self._proxy(pid, processed)} if getattr(backend, "uses_proxy", False) else {}
            images = backend.generate(processed, cameras, seed=self._seed(pid), **extra)
            per_view = (time.perf_counter() - start) / max(len(images), 1)
            if len(images) != n:
                raise RuntimeError(f"multiview backend returned {len(images)} views, expected {n}")
            for k, (img, cam) in enumerate(zip(images, cameras, strict=True)):
                key = keys.view(pid, k)
                self._put_png(MULTIVIEW, key, img[..., :3] * img[..., 3:4], img[..., 3])
                self.repo.upsert_view(pid, k, cam.elevation, cam.azimuth, key, backend.name, per_view,
                                      camera=camera_record(cam))
                self._emit(pid, "multiview", (k + 1) / n, f"view {k + 1}/{n}")

    def _load_views(self, pid: str) -> list[np.ndarray]:
        rows = self.repo.list_views(pid)
        return [load_rgba(self.storage.get_bytes(MULTIVIEW, r["image_key"])) for r in rows]

    def _stage_depth(self, pid: str) -> None:
        from glimpse3d.pipeline.depth import depth_heatmap, depth_stats

        rows = self.repo.list_depth_maps(pid)
        cameras = self._cameras(pid)
        n = len(cameras)
        if len(rows) == n and all(self.storage.exists(DEPTH, r["depth_key"]) for r in rows):
            self.run.skipped.append("depth")
            return
        with self._timed("depth"):
            self._emit(pid, "depth", 0.0, "estimating depth", force=True)
            processed = self._load_processed(pid)
            views = self._load_views(pid)
            backend = load_backend("depth", self.settings, self._overrides(pid))
            proxy = self._proxy(pid, processed) if getattr(backend, "uses_proxy", False) else None
            for k, (view, cam) in enumerate(zip(views, cameras, strict=True)):
                result = backend.estimate(view, cam, processed, proxy=proxy)
                depth = np.asarray(result.depth, dtype=np.float32)
                buf = io.BytesIO()
                np.save(buf, depth)
                dkey, hkey = keys.depth(pid, k), keys.heatmap(pid, k)
                self.storage.put_bytes(DEPTH, dkey, buf.getvalue(), "application/octet-stream")
                heat = Image.fromarray(depth_heatmap(depth))
                out = io.BytesIO()
                heat.save(out, format="PNG")
                self.storage.put_bytes(DEPTH, hkey, out.getvalue(), "image/png")
                lo, hi, mean = depth_stats(depth)
                self.repo.upsert_depth_map(pid, k, dkey, hkey, lo, hi, mean,
                                           float(result.confidence), backend.name)
                self._emit(pid, "depth", (k + 1) / n, f"depth {k + 1}/{n}")

    def _load_depths(self, pid: str) -> list[np.ndarray]:
        rows = self.repo.list_depth_maps(pid)
        return [np.load(io.BytesIO(self.storage.get_bytes(DEPTH, r["depth_key"]))) for r in rows]

    def _save_model(self, pid: str, model: Any, version: int, parent: int | None, source: str) -> None:
        from glimpse3d.splat.formats import model_to_bytes

        key = keys.model(pid, version)
        size = self.storage.put_bytes(MODELS, key, model_to_bytes(model, "ply"),
                                      "application/octet-stream")
        self.repo.upsert_model(pid, version, parent, key, model.num_gaussians, size, source)

    def _load_model(self, pid: str, version: int | None = None) -> tuple[Any, int]:
        from glimpse3d.splat.formats import model_from_bytes

        models = self.repo.list_models(pid)
        row = models[-1] if version is None else next(m for m in models if m["version"] == version)
        return model_from_bytes(self.storage.get_bytes(MODELS, row["model_key"]), "ply"), row["version"]

    def _stage_reconstruct(self, pid: str) -> None:
        from glimpse3d.pipeline.reconstruct import default_train_config, reconstruct

        models = self.repo.list_models(pid)
        if any(m["version"] == 0 and self.storage.exists(MODELS, m["model_key"]) for m in models):
            self.run.skipped.append("reconstruct")
            return
        with self._timed("reconstruct"):
            self._emit(pid, "reconstruct", 0.0, "initialising gaussians", force=True)
            views, depths = self._load_views(pid), self._load_depths(pid)

            def on_step(step: int, total: int) -> None:
                self._emit(pid, "reconstruct", step / max(total, 1), f"training {step}/{total}")

            seed = self._seed(pid)
            base = default_train_config(self.settings.max_gaussians, seed)
            k = self.settings.train_steps / base.steps  # keep the densification schedule's shape
            config = replace(
                base, steps=self.settings.train_steps, device=self.settings.device,
                densify_from=max(1, round(base.densify_from * k)),
                densify_until=max(2, round((base.densify_until or base.steps) * k)),
                densify_interval=max(1, round(base.densify_interval * k)),
            )
            model, _stats = reconstruct(
                views, depths, self._cameras(pid), max_gaussians=self.settings.max_gaussians,
                seed=seed, on_step=on_step, should_stop=self.should_cancel, config=config,
            )
            self._check_cancel()
            self._save_model(pid, model, 0, None, "reconstruct")
            self._emit(pid, "reconstruct", 1.0, "v0 saved", force=True)

    def _stage_refine(self, pid: str, until_iteration: int, strength: float) -> None:
        from glimpse3d.pipeline.refine import refine_iteration

        done = self.repo.list_iterations(pid)
        if len(done) >= until_iteration or (done and done[-1].get("converged")):
            self.run.skipped.append("refine")
            return
        with self._timed("refine"):
            overrides = self._overrides(pid)
            enhancer = load_backend("enhance", self.settings, overrides)
            features = load_backend("feature", self.settings, overrides)
            references, depths = self._load_views(pid), self._load_depths(pid)
            cameras = self._cameras(pid)
            seed = self._seed(pid)
            first = len(done) + 1
            previous = done[-1]["overall_quality"] if done else None
            total = until_iteration - len(done)
            for number in range(first, until_iteration + 1):
                model, version = self._load_model(pid)
                base = (number - first) / total
                self._emit(pid, "refine", base, f"iteration {number}", force=True)

                def on_view(k: int, n: int = len(cameras), *, base: float = base,
                            number: int = number) -> None:
                    self._emit(pid, "refine", base + (k + 1) / max(n, 1) / total * 0.9,
                               f"iteration {number}: view {k + 1}/{n}")

                result = refine_iteration(
                    model, references, depths, cameras, enhancer=enhancer, features=features,
                    iteration=number, previous_quality=previous, strength=strength,
                    seed=seed + number, on_view=on_view, should_stop=self.should_cancel,
                    work_size=self.settings.view_size, convergence_threshold=CONVERGENCE_DELTA,
                    device=self.settings.device,
                )
                self._check_cancel()
                self._record_iteration(pid, number, version, result, enhancer.name)
                previous = result.metrics["overall_quality"]
                self._emit(pid, "refine", (number - first + 1) / total, f"iteration {number} done",
                           force=True)
                if result.converged:
                    break

    def _record_iteration(self, pid: str, number: int, version_in: int, result: Any,
                          backend: str) -> None:
        version_out = version_in + 1
        for k in range(len(result.rendered)):
            rendered = result.rendered[k]
            self._put_png(ENHANCED, keys.rendered(pid, number, k), rendered[..., :3], rendered[..., 3])
            self._put_png(ENHANCED, keys.enhanced(pid, number, k), result.enhanced[k])
        self._save_model(pid, result.model, version_out, version_in, f"refine:{backend}")
        m = result.metrics
        row = self.repo.upsert_iteration(
            pid, number, version_in, version_out, float(m["psnr"]), float(m["ssim"]),
            None if m.get("lpips") is None else float(m["lpips"]),
            float(m["depth_consistency"]), float(m["feature_consistency"]),
            float(m["overall_quality"]), bool(result.converged), float(result.seconds),
        )
        iteration_id = row["id"]
        for k in range(len(result.rendered)):
            self.repo.upsert_enhanced_view(
                pid, iteration_id, k, keys.rendered(pid, number, k), keys.enhanced(pid, number, k),
                bool(result.accepted[k]), float(result.view_depth_consistency[k]),
                float(result.view_feature_similarity[k]),
            )
            for name, value in result.per_view[k].items():
                if value is not None:
                    self.repo.upsert_metric(pid, iteration_id, name, float(value), k)
        for name, value in m.items():
            if value is not None:
                self.repo.upsert_metric(pid, iteration_id, name, float(value), None)
        self.repo.upsert_metric(pid, iteration_id, "accepted_views", float(sum(result.accepted)))

    def _stage_export(self, pid: str, formats: tuple[str, ...], version: int | None = None) -> None:
        with self._timed("export"):
            models = self.repo.list_models(pid)
            version = models[-1]["version"] if version is None else version
            for i, fmt in enumerate(formats):
                self._emit(pid, "export", i / len(formats), f"exporting .{fmt}", force=True)
                self._export_one(pid, fmt, version)
            self._emit(pid, "export", 1.0, "exported", force=True)

    def _export_one(self, pid: str, fmt: str, version: int,
                    options: MeshOptions | None = None) -> tuple[str, str]:
        from glimpse3d.splat.export import (
            FILE_EXTENSIONS,
            MESH_FORMATS,
            export_model,
            normalize_format,
        )

        fmt = normalize_format(fmt)
        options = options or self._mesh_options()
        tag = options.tag() if fmt in MESH_FORMATS else ""
        # one export_history row per (version, format): other mesh options get their own file
        # name (e.g. v0.f5000-t512.glb) and the row points at the latest one made
        key = keys.export(pid, version, f"{tag}.{FILE_EXTENSIONS[fmt]}" if tag else FILE_EXTENSIONS[fmt])
        existing = [e for e in self.repo.list_exports(pid)
                    if e["format"] == fmt and e["model_version"] == version]
        if existing and existing[0]["file_key"] == key and self.storage.exists(MODELS, key):
            return MODELS, key
        model, _ = self._load_model(pid, version)
        with tempfile.TemporaryDirectory(prefix="glimpse3d-export-") as tmp:
            path = Path(tmp) / f"v{version}.{FILE_EXTENSIONS[fmt]}"
            export_model(model, fmt, path, mesh_options=options,
                         metadata={"project_id": pid, "model_version": version})
            size = self.storage.put_file(MODELS, key, path, guess_content_type(key))
        self.repo.add_export(pid, version, fmt, key, size)
        return MODELS, key

    # ================================================================ report
    def report(self, pid: str, total_seconds: float | None = None) -> dict[str, Any]:
        """A JSON-ready summary: stage wall times, iteration metrics, models, exports."""
        project = self.repo.get_project(pid)
        exports = {}
        for e in self.repo.list_exports(pid):
            path = self.storage.local_path(MODELS, e["file_key"])
            exports[f"v{e['model_version']}.{e['format']}"] = {
                "format": e["format"], "version": e["model_version"], "key": e["file_key"],
                "path": str(path) if path else None, "bytes": e["file_size_bytes"],
            }
        iterations = [
            {k: it.get(k) for k in ("iteration_number", "model_version_in", "model_version_out",
                                    "psnr", "ssim", "lpips", "depth_consistency",
                                    "feature_consistency", "overall_quality", "converged",
                                    "processing_time")}
            for it in self.repo.list_iterations(pid)
        ]
        models = [{k: m.get(k) for k in ("version", "parent_version", "model_key", "num_gaussians",
                                          "file_size_bytes", "source")}
                  for m in self.repo.list_models(pid)]
        return {
            "project_id": pid,
            "name": project.get("name"),
            "status": project.get("status"),
            "stage_seconds": {k: round(v, 3) for k, v in self.run.timings.items()},
            "skipped_stages": list(self.run.skipped),
            "total_seconds": None if total_seconds is None else round(total_seconds, 3),
            "iterations": iterations,
            "models": models,
            "exports": exports,
            "backends": {s: (project.get("settings") or {}).get(f"{s}_backend")
                         or getattr(self.settings, f"{s}_backend")
                         for s in ("segment", "multiview", "depth", "enhance", "feature")},
        }

