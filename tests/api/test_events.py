"""GET /api/v1/projects/{id}/events: server-sent events, ids, Last-Event-ID, keep-alive, end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.utils.api import seed_project


def read_events(lines: Iterator[str], n: int) -> tuple[list[dict], int]:
    """The next ``n`` events from an SSE line iterator (plus how many comments were seen)."""
    events: list[dict] = []
    current: dict = {}
    comments = 0
    for line in lines:
        if line.startswith(":"):
            comments += 1
        elif line == "":
            if "data" in current:
                events.append(current)
                current = {}
                if len(events) == n:
                    break
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[field] = json.loads(value) if field == "data" else value
    return events, comments


def test_events_ids_resume_keepalive_and_end(client) -> None:
    ctx = client.app.state.ctx
    ctx.sse_poll_interval = 0.05
    ctx.sse_keepalive = 0.2
    pid = seed_project(ctx)
    url = f"/api/v1/projects/{pid}/events"

    with client.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        first, _ = read_events(lines, 1)
        assert first[0]["event"] == "status"
        assert first[0]["data"]["status"] == "preprocessing"
        assert first[0]["data"]["progress_percentage"] == 10.0
        assert "T" in first[0]["data"]["updated_at"] and first[0]["data"]["updated_at"].endswith("Z")
        # nothing changes for a while: keep-alive comments arrive
        ctx.repo.update_project(pid, status="multiview_generating", progress_percentage=25.0,
                                current_step="view 8/16")
        second, _ = read_events(lines, 1)
        assert second[0]["data"]["current_step"] == "view 8/16"
        assert int(second[0]["id"]) > int(first[0]["id"])
        last_id = second[0]["id"]
    # changes made while the client is away
    ctx.repo.update_project(pid, status="depth_estimating", progress_percentage=50.0)
    with client.stream("GET", url, headers={"Last-Event-ID": last_id}) as r:
        lines = r.iter_lines()
        resumed, _ = read_events(lines, 1)
        assert resumed[0]["data"]["status"] == "depth_estimating"
        assert int(resumed[0]["id"]) > int(last_id)
        _, comments = read_events(_until_comment(lines), 1)
        assert comments >= 1  # ": keep-alive" while idle
        ctx.repo.update_project(pid, status="completed", progress_percentage=100.0)
        end, _ = read_events(lines, 1)
        assert end[0]["event"] == "end" and end[0]["data"]["status"] == "completed"
        assert int(end[0]["id"]) > int(resumed[0]["id"])
        assert list(lines) == []  # the stream closed by itself
        end_id = end[0]["id"]
    # the client has seen the end: 204 tells EventSource to stop reconnecting
    assert client.get(url, headers={"Last-Event-ID": end_id}).status_code == 204
    # a client that missed the end gets it at once
    with client.stream("GET", url, headers={"Last-Event-ID": last_id}) as r:
        events, _ = read_events(r.iter_lines(), 5)
        assert [e["event"] for e in events] == ["end"]


def _until_comment(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        yield line
        if line.startswith(":"):
            yield ""
            return


@contextmanager
def _streaming(client) -> Iterator[tuple[Any, str, Iterator[str]]]:
    """A seeded project's event stream, its first event read: yields (ctx, pid, lines)."""
    ctx = client.app.state.ctx
    ctx.sse_poll_interval = 0.05
    pid = seed_project(ctx)
    with client.stream("GET", f"/api/v1/projects/{pid}/events") as r:
        lines = r.iter_lines()
        read_events(lines, 1)
        yield ctx, pid, lines


def test_events_of_a_deleted_project(client) -> None:
    with _streaming(client) as (ctx, pid, lines):
        ctx.repo.delete_project(pid)
        events, _ = read_events(lines, 1)
        assert events[0]["event"] == "deleted"


def test_events_stop_when_the_app_shuts_down(client) -> None:
    with _streaming(client) as (ctx, _, lines):
        ctx.shutting_down.set()
        assert list(lines) == []
