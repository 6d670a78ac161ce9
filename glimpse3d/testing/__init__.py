"""Test objects for the suite and the benchmarks (not used by the product code).

``glimpse3d.testing.synthetic``: signed-distance shapes rendered as photos with known
geometry, and the sample photos' generator.
``glimpse3d.testing.processes``: stopping the child processes (``glimpse3d serve``) that
the suite and the benchmarks start.
"""
