"""``python -m glimpse3d.cli``: the same app as the ``glimpse3d`` entry point."""

from glimpse3d.cli import app

app()
