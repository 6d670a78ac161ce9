"""The install-time warm-up compiles every cached numba kernel the pipeline uses.

Run in a fresh interpreter with an empty ``NUMBA_CACHE_DIR``: in the test process the other
splat tests may have compiled the kernels already, and then this test could not fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json
from glimpse3d.splat import _raster_numba as raster
from glimpse3d.splat import mesh, meshraster, texture
kernels = [raster._forward_kernel, raster._backward_kernel, raster._project_fwd_kernel,
           raster._project_bwd_kernel, raster._bin_kernel, mesh._scatter, mesh._hull_kernel,
           meshraster._rasterize, texture._bake_kernel]
before = [k.__name__ for k in kernels if k.signatures]
from glimpse3d.splat.warmup import warm_up
seconds = warm_up()
missing = [k.__name__ for k in kernels if not k.signatures]
print(json.dumps({"seconds": seconds, "before": before, "missing": missing}))
"""


def test_warm_up_compiles_the_kernels(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == []  # nothing compiled before the warm-up in a fresh process
    assert 0 < result["seconds"] < 120
    assert result["missing"] == [], f"{result['missing']} were not compiled"
    assert list((tmp_path / "numba-cache").rglob("*.nbi")), "the warm-up wrote no cache index"
