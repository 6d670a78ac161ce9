"""Pure math / file-format core: gaussians, cameras, rasterizer, losses, training, formats.

Nothing in this package imports the web, database or storage layers.
"""
