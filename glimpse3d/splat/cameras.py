"""Pinhole cameras in the SyncDreamer convention (docs/architecture.md, "Cameras").

World is Z-up; cameras use the OpenCV convention (x right, y down, z forward) and are
stored as world-to-camera (w2c) 4x4 matrices. Angles in the public API are in degrees,
distances in scene units (the object fits a sphere of radius ~0.5 at the origin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from glimpse3d.domain import NUM_VIEWS

ELEVATION_DEG = 30.0
AZIMUTH_STEP_DEG = 22.5
DISTANCE = 1.5
BASE_SIZE = 256
BASE_FOCAL = 280.0  # pixels at 256x256 -> FOV ~= 49.1 degrees


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: OpenCV w2c extrinsics plus intrinsics in pixels.

    ``w2c`` maps homogeneous world points to camera space (x right, y down, z forward).
    ``elevation``/``azimuth`` are in degrees and kept for bookkeeping (NaN when unknown).
    """

    w2c: np.ndarray  # (4, 4) float64
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    elevation: float = float("nan")
    azimuth: float = float("nan")
    distance: float = float("nan")

    @property
    def c2w(self) -> np.ndarray:
        """Camera-to-world 4x4 matrix."""
        return np.linalg.inv(self.w2c)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, shape (3,)."""
        rot = self.w2c[:3, :3]
        return -rot.T @ self.w2c[:3, 3]

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - conventional name
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (N,3) world points; returns pixel coords (N,2) and camera depth z (N,).

        Pixel centres are at integer + 0.5 (pixel (0,0) covers [0,1)x[0,1)).
        """
        pts = np.asarray(points_world, dtype=np.float64)
        cam = pts @ self.w2c[:3, :3].T + self.w2c[:3, 3]
        z = cam[:, 2]
        safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
        u = self.fx * cam[:, 0] / safe + self.cx
        v = self.fy * cam[:, 1] / safe + self.cy
        return np.stack([u, v], axis=1), z

    def resized(self, width: int, height: int | None = None) -> Camera:
        """The same camera at another image size (intrinsics scaled)."""
        height = width if height is None else height
        sx, sy = width / self.width, height / self.height
        return Camera(
            w2c=self.w2c.copy(),
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=self.cx * sx,
            cy=self.cy * sy,
            width=width,
            height=height,
            elevation=self.elevation,
            azimuth=self.azimuth,
            distance=self.distance,
        )


def similarity_camera(camera: Camera, scale: float, shift: np.ndarray) -> Camera:
    """The camera that sees a model transformed by ``p -> scale * p + shift`` (world units)
    as ``camera`` sees the model itself: w2c' = [R | (R shift + T) / scale]."""
    w2c = camera.w2c.copy()
    w2c[:3, 3] = (w2c[:3, :3] @ np.asarray(shift, dtype=np.float64) + w2c[:3, 3]) / scale
    return replace(camera, w2c=w2c)


def camera_center(elevation_deg: float, azimuth_deg: float, distance: float = DISTANCE) -> np.ndarray:
    """World position d*(cos e cos a, cos e sin a, sin e) for angles in degrees."""
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    return distance * np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])


def look_at_w2c(
    eye: np.ndarray, target: np.ndarray | None = None, up: np.ndarray | None = None
) -> np.ndarray:
    """OpenCV world-to-camera matrix for a camera at ``eye`` looking at ``target``.

    World ``up`` (default +Z) appears as "up" (negative y) in the image.
    """
    eye = np.asarray(eye, dtype=np.float64)
    target = np.zeros(3) if target is None else np.asarray(target, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight along up: pick any right vector
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward], axis=0)
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ eye
    return w2c


def orbit_camera(
    elevation_deg: float,
    azimuth_deg: float,
    distance: float = DISTANCE,
    size: int = BASE_SIZE,
    height: int | None = None,
) -> Camera:
    """Camera on the orbit sphere looking at the origin; focal scaled from 280 px @ 256."""
    width = int(size)
    height = width if height is None else int(height)
    focal = BASE_FOCAL * width / BASE_SIZE
    return Camera(
        w2c=look_at_w2c(camera_center(elevation_deg, azimuth_deg, distance)),
        fx=focal,
        fy=focal,
        cx=width / 2.0,
        cy=height / 2.0,
        width=width,
        height=height,
        elevation=float(elevation_deg),
        azimuth=float(azimuth_deg),
        distance=float(distance),
    )


def view_azimuth(view_index: int) -> float:
    """Azimuth in degrees of SyncDreamer view ``view_index`` (0..15)."""
    return AZIMUTH_STEP_DEG * view_index


def syncdreamer_cameras(size: int = BASE_SIZE) -> list[Camera]:
    """The 16 fixed cameras: elevation 30°, azimuth 22.5·k, distance 1.5."""
    return [orbit_camera(ELEVATION_DEG, view_azimuth(k), DISTANCE, size) for k in range(NUM_VIEWS)]


# ----------------------------------------------------------------- recorded cameras

#: fields of a camera as recorded per view (multiview_generation columns): degrees,
#: scene units, pixels
CAMERA_FIELDS = ("elevation", "azimuth", "distance", "fx", "fy", "cx", "cy", "width", "height")


def input_camera(size: int, zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> Camera:
    """Camera 0 (elevation 30°, azimuth 0°, distance 1.5) of a photo cropped out of a wider
    one: focal length ``zoom`` times the convention's at ``size`` px, principal point (the
    image of the origin) ``shift`` (px) from the image centre. ``zoom=1, shift=(0, 0)`` is
    :func:`orbit_camera` ``(ELEVATION_DEG, 0, size=size)``."""
    cam = orbit_camera(ELEVATION_DEG, 0.0, size=size)
    return replace(cam, fx=cam.fx * zoom, fy=cam.fy * zoom, cx=cam.cx + float(shift[0]),
                   cy=cam.cy + float(shift[1]))


def camera_record(camera: Camera) -> dict[str, float | int]:
    """A camera as the flat record stored with its view (see :data:`CAMERA_FIELDS`)."""
    return {
        "elevation": float(camera.elevation), "azimuth": float(camera.azimuth),
        "distance": float(camera.distance), "fx": float(camera.fx), "fy": float(camera.fy),
        "cx": float(camera.cx), "cy": float(camera.cy),
        "width": int(camera.width), "height": int(camera.height),
    }


def camera_from_record(record: dict, size: int = BASE_SIZE) -> Camera:
    """The orbit camera of a recorded view, looking at the origin (world Z up).

    Records without intrinsics (views recorded before cameras were stored) get the
    SyncDreamer camera at their angles: distance 1.5, focal 280 px at 256, ``size`` px.
    """
    elevation, azimuth = float(record["elevation"]), float(record["azimuth"])
    if record.get("fx") is None:
        return orbit_camera(elevation, azimuth, DISTANCE, size)
    distance = float(record.get("distance") or DISTANCE)
    return Camera(
        w2c=look_at_w2c(camera_center(elevation, azimuth, distance)),
        fx=float(record["fx"]), fy=float(record["fy"]), cx=float(record["cx"]),
        cy=float(record["cy"]), width=int(record["width"]), height=int(record["height"]),
        elevation=elevation, azimuth=azimuth, distance=distance,
    )


def fov_camera(elevation_deg: float, azimuth_deg: float, distance: float, fov_deg: float,
               size: int) -> Camera:
    """Square pinhole camera on the orbit sphere with a vertical/horizontal field of view
    ``fov_deg`` (degrees), looking at the origin."""
    focal = 0.5 * size / math.tan(math.radians(fov_deg) / 2.0)
    return Camera(
        w2c=look_at_w2c(camera_center(elevation_deg, azimuth_deg, distance)),
        fx=focal, fy=focal, cx=size / 2.0, cy=size / 2.0, width=int(size), height=int(size),
        elevation=float(elevation_deg), azimuth=float(azimuth_deg), distance=float(distance),
    )


def matching_distance(fov_deg: float) -> float:
    """Orbit distance at which an object looks as large through a ``fov_deg`` lens as it
    does through the SyncDreamer camera at 1.5 (same ``radius / (d * tan(fov/2))``)."""
    base_half_tan = (BASE_SIZE / 2.0) / BASE_FOCAL
    return DISTANCE * base_half_tan / math.tan(math.radians(fov_deg) / 2.0)
