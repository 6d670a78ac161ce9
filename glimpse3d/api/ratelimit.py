"""Per-client rate limit on uploads, on the ``limits`` library (the engine under slowapi).

Rates use slowapi's syntax (``settings.rate_limit``, default ``10/minute``); a moving window
gives an exact ``Retry-After``. Counters live in memory, or in Redis when
``settings.redis_url`` is set so several API processes share them.
"""

from __future__ import annotations

import logging
import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from glimpse3d.api.errors import RateLimited
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
                f"too many uploads: the limit is {self.rate} per client; "
                f"retry in {retry_after} s",
                retry_after,
            )

    def reset(self) -> None:
        self.storage.reset()
