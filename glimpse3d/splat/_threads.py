"""``one_torch_thread()``: run a block of many small torch ops on one intra-op thread.

Rendering on the CPU, the compiled tile kernel (numba) uses every core while torch only does
small per-view tensor ops around it; with several torch threads those ops spin-wait next to
numba's workers. Measured on the export's 20 bake views (2 cores, loaded machine): ~3x less
wall and CPU time on one thread (the turntable video: 2x).
The setting is process-wide: torch work in other threads runs on one thread meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
