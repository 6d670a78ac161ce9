"""Thresholds shared by every rasterizer backend (torch, numba, gsplat) so they give the same
images and gradients: pairs with ``alpha < ALPHA_MIN`` are skipped, alpha is clamped to
``ALPHA_MAX``, and a pixel stops at the gaussian that would bring its transmittance below
``TRANSMITTANCE_MIN`` (that gaussian is not drawn)."""

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
TRANSMITTANCE_MIN = 1e-4
