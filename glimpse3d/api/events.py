"""Progress fan-out for the server-sent-events stream.

The stream polls the project row (every ``poll_interval`` seconds), so it works whichever
process runs the job; :class:`ProgressBroadcaster`, fed by the runner's ``on_progress`` in this
process, only wakes the streams early so in-process progress arrives at once.

Event ids are the row's ``updated_at`` in microseconds since the epoch (strictly increasing
within a stream), so a client that reconnects with ``Last-Event-ID`` only gets newer states;
a project already in a terminal state that the client has seen answers 204 (which tells an
``EventSource`` to stop reconnecting).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

TERMINAL = ("completed", "failed", "cancelled")


class ProgressBroadcaster:
    """Thread-safe: ``publish`` from worker threads, ``subscribe`` inside the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._messages: dict[str, str] = {}

    def publish(self, event: Any) -> None:
        """``on_progress`` callback: remember the message and wake the project's streams."""
        pid = str(getattr(event, "project_id", ""))
        message = getattr(event, "message", None)
        with self._lock:
            if message:
                self._messages[pid] = str(message)
            subs = list(self._subs.get(pid, ()))
        for loop, ev in subs:
            with suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(ev.set)

    def last_message(self, project_id: str) -> str | None:
        with self._lock:
            return self._messages.get(project_id)

    @contextmanager
    def subscribe(self, project_id: str) -> Iterator[asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._subs.setdefault(project_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                subs = self._subs.get(project_id)
                if subs is not None:
                    subs.discard(entry)
                    if not subs:
                        del self._subs[project_id]

    def subscribers(self, project_id: str) -> int:
        with self._lock:
            return len(self._subs.get(project_id, ()))


def event_id(project: dict[str, Any]) -> int:
    """The row's ``updated_at`` in microseconds since the epoch (naive = UTC)."""
    ts = project.get("updated_at") or project.get("created_at")
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if not isinstance(ts, datetime):
        return 0
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1_000_000)


def is_terminal(project: dict[str, Any], job_active: bool) -> bool:
    return project.get("status") in TERMINAL and not job_active and not project.get("job")


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):  # like the JSON responses: ISO 8601, 'Z' for UTC
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def format_event(eid: int, event: str, data: dict[str, Any]) -> str:
    return f"id: {eid}\nevent: {event}\ndata: {json.dumps(data, default=_json_default)}\n\n"


async def project_events(
    project_id: str,
    load: Callable[[], Any],
    snapshot: Callable[[dict[str, Any]], dict[str, Any]],
    is_active: Callable[[], bool],
    broadcaster: ProgressBroadcaster,
    stop: threading.Event,
    last_event_id: int = 0,
    poll_interval: float = 0.5,
    keepalive: float = 15.0,
) -> AsyncIterator[str]:
    """The SSE body: one ``status`` event per change of the project row, keep-alive comments,
    an ``end`` event at a terminal state (or ``deleted``); stops when ``stop`` is set.

    ``load`` is an async callable returning the project row (or None once deleted).
    """
    loop = asyncio.get_running_loop()
    last_sent = last_event_id
    last_fp: tuple | None = None
    last_beat = loop.time()
    with broadcaster.subscribe(project_id) as wake:
        yield "retry: 2000\n\n"
        while not stop.is_set():
            wake.clear()
            project = await load()
            if project is None:
                yield format_event(last_sent + 1, "deleted", {"project_id": project_id})
                return
            active = await run_in_threadpool(is_active)  # may read the database
            data = snapshot(project)
            data["job_active"] = active
            fp = tuple(sorted((k, str(v)) for k, v in data.items() if k != "message"))
            eid = event_id(project)
            if fp != last_fp and (eid > last_sent or last_fp is not None):
                eid = max(eid, last_sent + 1)
                terminal = is_terminal(project, active)
                yield format_event(eid, "end" if terminal else "status", data)
                last_sent, last_fp = eid, fp
                last_beat = loop.time()
                if terminal:
                    return
            elif last_fp is None:
                last_fp = fp  # resumed: the client already has this state
                if is_terminal(project, active):
                    return
            if loop.time() - last_beat >= keepalive:
                yield ": keep-alive\n\n"
                last_beat = loop.time()
            with suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=poll_interval)
