"""Learned (model-weight) backends for the pipeline stages.

Imported only when a learned backend is selected through
``glimpse3d.pipeline.backends.load_backend``; the classic path never imports this package.
See ``docs/models.md`` for settings, recommended checkpoints and memory notes.
"""
