"""Child processes started by the test suite and the benchmarks (a ``glimpse3d serve``...)."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM ``proc``, wait up to ``grace_s`` seconds for it to exit, then SIGKILL it and
    reap it (waiting up to 10 s more)."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
