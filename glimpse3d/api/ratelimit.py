"""Per-identity rate limit on uploads, on the ``limits`` library (the engine under slowapi),
and :class:`SlotLimiter`, the server-wide caps on concurrent decodes, exports and streams.

Limits are keyed on :attr:`glimpse3d.auth.Identity.limit_key`: the owner when the caller is
authenticated (so neither new connections nor a forged ``X-Forwarded-For`` reset them),
the peer address only in ``none`` mode.

Rates use slowapi's syntax (``settings.rate_limit``, default ``10/minute``); a moving window
gives an exact ``Retry-After``. Counters live in memory, or in Redis when
``settings.redis_url`` is set so several API processes share them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from glimpse3d.api.errors import ApiError, RateLimited
from glimpse3d.errors import UserError

log = logging.getLogger(__name__)


class UploadLimiter:
    """``hit(client_id)`` counts one upload and raises :class:`RateLimited` past the rate."""

    def __init__(self, rate: str, redis_url: str | None = None, namespace: str = "upload") -> None:
        try:
            self.item = parse(rate)
        except ValueError as exc:
            raise UserError(f"invalid rate_limit {rate!r}: use e.g. '10/minute'") from exc
        self.rate = rate
        self.namespace = namespace
        self.storage = storage_from_string(redis_url or "memory://")
        self.limiter = MovingWindowRateLimiter(self.storage)

    def hit(self, client_id: str) -> None:
        try:
            allowed = self.limiter.hit(self.item, self.namespace, client_id)
        except Exception:  # noqa: BLE001 - a broken counter store must not block uploads
            log.warning("rate-limit storage unavailable; allowing the request", exc_info=True)
            return
        if not allowed:
            stats = self.limiter.get_window_stats(self.item, self.namespace, client_id)
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimited(
                f"too many uploads: the limit is {self.rate} per user; "
                f"retry in {retry_after} s",
                retry_after,
            )

    def reset(self) -> None:
        self.storage.reset()


SLOT_RETRY_AFTER = 5  # seconds suggested when a server-wide cap is full


class SlotLimiter:
    """At most ``size`` holders at once, server-wide (a semaphore shared by the event loop
    and worker threads). ``hold()`` waits up to ``wait_seconds`` for a slot, then answers
    503 with ``Retry-After``."""

    def __init__(self, what: str, size: int, wait_seconds: float = 0.0) -> None:
        self.what = what
        self.size = int(size)
        self.wait_seconds = float(wait_seconds)
        self._sem = threading.BoundedSemaphore(self.size)
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    def _busy(self) -> ApiError:
        return ApiError(503, f"the server is busy: {self.size} {self.what} at once is the "
                        f"most allowed; retry in {SLOT_RETRY_AFTER} s",
                        {"Retry-After": str(SLOT_RETRY_AFTER)})

    async def acquire(self) -> None:
        """Take a slot (waiting up to ``wait_seconds``) or raise 503; pair with :meth:`release`."""
        if not self._sem.acquire(blocking=False):
            deadline = time.monotonic() + self.wait_seconds
            while True:
                if time.monotonic() >= deadline:
                    raise self._busy()
                await asyncio.sleep(0.05)
                if self._sem.acquire(blocking=False):
                    break
        with self._lock:
            self._held += 1

    def release(self) -> None:
        with self._lock:
            self._held -= 1
        self._sem.release()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
