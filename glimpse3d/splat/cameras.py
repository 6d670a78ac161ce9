"""Pinhole cameras in the SyncDreamer convention (DESIGN §2).

World is Z-up; cameras use the OpenCV convention (x right, y down, z forward) and are
stored as world-to-camera (w2c) 4x4 matrices. Angles in the public API are in degrees,
distances in scene units (the object fits a sphere of radius ~0.5 at the origin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
