"""Glimpse3D: one photo in, a refined 3D Gaussian-splat model out."""

__version__ = "0.1.0"
