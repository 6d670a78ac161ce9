"""The mesh users download: decimated, UV-textured (or vertex-coloured), in glTF conventions.

Pipeline (all from one Gaussian-splat model): render the splats at the bake cameras (the 16
pipeline views plus a few from below) -> density surface carved by the renders' silhouettes
(:func:`glimpse3d.splat.mesh.extract_surface`) -> quadric decimation to the face budget ->
xatlas unwrap + texture baked from the renders (:mod:`glimpse3d.splat.texture`), or per-vertex
colours baked the same way -> the asset frame below.

Asset frame (glTF 2.0 conventions, also used for OBJ and USDZ): right-handed, **Y up**, metres,
the object's front -- the input photo's side, i.e. the direction of pipeline camera 0
(world +X) -- towards **+Z**, the lowest point on **y = 0**, the bounding box centred on
x = z = 0. From our Z-up world: ``(x, y, z) -> (y, z, x)`` (a rotation, see
:data:`WORLD_TO_ASSET_ROTATION`), then scaled so that the fit radius (the distance from the
bounding-box centre to the farthest vertex) is ``scale`` metres (default 1: one unit = the fit
radius).

This module is light to import (numpy only at the top); the defaults live in
:mod:`glimpse3d.domain`.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from glimpse3d import __version__
from glimpse3d.domain import (
    DEFAULT_MESH_FACES,
    DEFAULT_TEXTURE_SIZE,
    MAX_MESH_FACES,
    MAX_TEXTURE_SIZE,
    MIN_MESH_FACES,
    MIN_TEXTURE_SIZE,
)
from glimpse3d.errors import UserError

DEFAULT_FACES = DEFAULT_MESH_FACES
DEFAULT_MESH_RESOLUTION = 96
MIN_FACES, MAX_FACES = MIN_MESH_FACES, MAX_MESH_FACES
MIN_TEXTURE, MAX_TEXTURE = MIN_TEXTURE_SIZE, MAX_TEXTURE_SIZE
BAKE_VIEW_SIZE = 256  # pixels of the splat renders the colours are baked from
GENERATOR = f"Glimpse3D {__version__}"

# rows: asset x, y, z in terms of world x, y, z
WORLD_TO_ASSET_ROTATION = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


class MeshOptionsError(UserError):
    """A mesh export parameter is out of range."""

    http_status = 422


@dataclass(frozen=True)
class MeshOptions:
    """``faces``: face budget; ``texture_size``: texture side in pixels, 0 = per-vertex colours
    instead of a texture; ``scale``: metres for the fit radius; ``resolution``: voxels along the
    longest side for the surface extraction."""

    faces: int = DEFAULT_FACES
    texture_size: int = DEFAULT_TEXTURE_SIZE
    scale: float = 1.0
    resolution: int = DEFAULT_MESH_RESOLUTION

    def __post_init__(self) -> None:
        if not MIN_FACES <= int(self.faces) <= MAX_FACES:
            raise MeshOptionsError(f"faces must be between {MIN_FACES} and {MAX_FACES}, got {self.faces}")
        size = int(self.texture_size)
        if size != 0 and not MIN_TEXTURE <= size <= MAX_TEXTURE:
            raise MeshOptionsError(
                f"texture size must be 0 (vertex colours) or between {MIN_TEXTURE} and "
                f"{MAX_TEXTURE} pixels, got {self.texture_size}"
            )
        if not (np.isfinite(self.scale) and 1e-4 <= float(self.scale) <= 1e4):
            raise MeshOptionsError(f"scale must be between 0.0001 and 10000 metres, got {self.scale}")
        from glimpse3d.splat.mesh import MAX_RESOLUTION, MIN_RESOLUTION  # numba: lazy

        if not MIN_RESOLUTION <= int(self.resolution) <= MAX_RESOLUTION:
            raise MeshOptionsError(
                f"mesh resolution must be between {MIN_RESOLUTION} and {MAX_RESOLUTION}, "
                f"got {self.resolution}"
            )

    @property
    def textured(self) -> bool:
        return int(self.texture_size) > 0

    def tag(self) -> str:
        """'' for the defaults, else a short file-name-safe summary, e.g. 'f5000-t512'."""
        parts = []
        if self.faces != DEFAULT_FACES:
            parts.append(f"f{self.faces}")
        if self.texture_size != DEFAULT_TEXTURE_SIZE:
            parts.append(f"t{self.texture_size}" if self.textured else "vc")
        if self.scale != 1.0:
            parts.append(f"s{self.scale:g}")
        if self.resolution != DEFAULT_MESH_RESOLUTION:
            parts.append(f"r{self.resolution}")
        return "-".join(parts)


@dataclass
class MeshAsset:
    """A triangle mesh in the asset frame (module docstring).

    ``vertices`` (V,3) float32 metres; ``faces`` (F,3) uint32, counter-clockwise seen from
    outside; ``normals`` (V,3) float32 unit; ``uvs`` (V,2) float32 in [0,1], v up, and
    ``texture`` (T,T,3) uint8 RGB, row 0 at v = 1 -- or ``vertex_colors`` (V,4) uint8 RGBA;
    ``world_to_asset`` (4,4) maps our Z-up world (scene units) to the asset frame;
    ``metadata`` goes into each file's asset metadata (generator, project id...).
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    world_to_asset: np.ndarray
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def asset_transform(world_vertices: np.ndarray, scale: float) -> np.ndarray:
    """The 4x4 world -> asset matrix for a mesh with these vertices (module docstring)."""
    rotated = world_vertices @ WORLD_TO_ASSET_ROTATION.T
    lo, hi = rotated.min(axis=0), rotated.max(axis=0)
    centre = 0.5 * (lo + hi)
    radius = float(np.linalg.norm(rotated - centre, axis=1).max())
    s = float(scale) / max(radius, 1e-12)
    shift = np.array([centre[0], lo[1], centre[2]])
    m = np.eye(4)
    m[:3, :3] = s * WORLD_TO_ASSET_ROTATION
    m[:3, 3] = -s * shift
    return m


def build_mesh_asset(model, options: MeshOptions | None = None) -> MeshAsset:  # noqa: ANN001
    """Mesh, colour and frame for ``model`` (a GaussianModel) with ``options``."""
    import time

    from glimpse3d.splat.mesh import extract_surface, render_splat_views, rgba8, simplify
    from glimpse3d.splat.texture import ViewBaker, bake_cameras, bake_texture

    opts = options or MeshOptions()
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = now - t
        t = now

    views = render_splat_views(model, bake_cameras(BAKE_VIEW_SIZE))
    lap("render_views")
    surface, density = extract_surface(model, opts.resolution, views=views)
    lap("extract")
    mesh = simplify(surface, opts.faces)
    lap("simplify")
    world_to_asset = asset_transform(np.asarray(mesh.vertices), opts.scale)
    baker = ViewBaker(np.asarray(mesh.vertices), np.asarray(mesh.faces), views)
    if opts.textured:
        uvmesh, texture = bake_texture(mesh, views, opts.texture_size, density.colors_at, baker)
        lap("unwrap_bake")
        world_verts, faces = uvmesh.vertices, uvmesh.faces
        normals = np.asarray(mesh.vertex_normals)[uvmesh.source_vertex]
        extra: dict[str, Any] = {"uvs": uvmesh.uvs.astype(np.float32), "texture": texture}
    else:
        world_verts, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        normals = np.asarray(mesh.vertex_normals)
        rgb = baker.colors(world_verts, normals, density.colors_at)
        extra = {"vertex_colors": rgba8(rgb)}
        lap("bake_vertices")
    verts = world_verts @ world_to_asset[:3, :3].T + world_to_asset[:3, 3]
    n = normals @ WORLD_TO_ASSET_ROTATION.T
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return MeshAsset(
        vertices=verts.astype(np.float32),
        faces=np.asarray(faces, np.uint32),
        normals=n.astype(np.float32),
        world_to_asset=world_to_asset,
        # row-major; lets a viewer put the mesh back where the splats are
        metadata={"generator": GENERATOR,
                  "world_to_asset": [round(float(x), 9) for x in world_to_asset.ravel()]},
        timings=timings,
        **extra,
    )


def model_fingerprint(model) -> str:  # noqa: ANN001
    """SHA-1 of a GaussianModel's tensors (the same model loaded twice has the same one)."""
    digest = hashlib.sha1()
    for tensor in model.tensors().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class AssetCache:
    """The last few assets built, keyed by (model fingerprint, options): exporting .glb, .obj
    and .usdz of one model builds its mesh once."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._items: dict[tuple[str, MeshOptions], MeshAsset] = {}
        self._lock = threading.Lock()

    def get(self, model, options: MeshOptions) -> MeshAsset:  # noqa: ANN001
        key = (model_fingerprint(model), options)
        with self._lock:
            if key in self._items:
                return self._items[key]
            asset = build_mesh_asset(model, options)
            self._items[key] = asset
            while len(self._items) > self.size:
                self._items.pop(next(iter(self._items)))
            return asset


def asset_world_vertices(asset: MeshAsset) -> np.ndarray:
    """The asset's vertices back in our Z-up world (scene units)."""
    inv = np.linalg.inv(asset.world_to_asset)
    return asset.vertices.astype(np.float64) @ inv[:3, :3].T + inv[:3, 3]


def render_asset(asset: MeshAsset, camera, ssaa: int = 2) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Unlit render of ``asset`` from a world-space camera: RGB (H,W,3) over black and
    coverage (H,W), float32 in [0,1] (see :func:`glimpse3d.splat.meshraster.render_mesh`)."""
    from glimpse3d.splat.meshraster import render_mesh

    colors = None if asset.vertex_colors is None else asset.vertex_colors[:, :3] / 255.0
    texture = None if asset.texture is None else asset.texture / 255.0
    return render_mesh(asset_world_vertices(asset), asset.faces.astype(np.int64), camera,
                       uvs=asset.uvs, texture=texture, vertex_colors=colors, ssaa=ssaa)


def fidelity(asset: MeshAsset, model, size: int = BAKE_VIEW_SIZE) -> dict[str, list[float]]:  # noqa: ANN001
    """Asset vs splat renders at the 16 pipeline cameras (``size`` px, over black):
    per-view ``psnr`` (dB, RGB premultiplied by coverage) and silhouette ``iou`` (coverage
    above 0.5)."""
    from glimpse3d.splat.cameras import syncdreamer_cameras
    from glimpse3d.splat.mesh import render_splat_views

    cameras = syncdreamer_cameras(size)
    views = render_splat_views(model, cameras)
    psnr, iou = [], []
    for k, camera in enumerate(cameras):
        rgb, cover = render_asset(asset, camera)
        ref = views.rgb[k] * views.alpha[k][..., None]
        mse = float(np.mean((rgb - ref) ** 2))
        psnr.append(10.0 * np.log10(1.0 / max(mse, 1e-12)))
        a, b = cover > 0.5, views.alpha[k] > 0.5
        iou.append(float((a & b).sum() / max((a | b).sum(), 1)))
    return {"psnr": psnr, "iou": iou}
