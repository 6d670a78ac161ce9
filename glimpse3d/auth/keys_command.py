"""``glimpse3d keys create OWNER | list | revoke ID``: manage API keys in the configured
database (the Typer registration is in the CLI; this module holds the work)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from glimpse3d.errors import UserError

if TYPE_CHECKING:
    from glimpse3d.db.repository import Repository


@contextmanager
def _repo() -> Iterator[Repository]:
    from glimpse3d.config import get_settings
    from glimpse3d.db.repository import open_repository

    repo = open_repository(get_settings().resolved_database_url)
    try:
        yield repo
    finally:
        repo.close()


def keys_create(owner: str, name: str | None = None, echo: Callable[[str], None] = print) -> str:
    """Create a key for ``owner``; prints a note, then the key alone on the last line."""
    from glimpse3d.auth.keys import create_key

    with _repo() as repo:
        row, key = create_key(repo, owner, name)
    echo(f"created key {row['prefix']}… (id {row['id']}) for owner {row['owner_id']}; "
         "it is shown once, store it now:")
    echo(key)
    return key


def keys_list(echo: Callable[[str], None] = print) -> list[dict]:
    """One line per key: id, prefix, owner, created, revoked (never the key)."""
    with _repo() as repo:
        rows = repo.list_api_keys()
    if not rows:
        echo("no API keys (create one with `glimpse3d keys create OWNER`)")
    for r in rows:
        state = f"revoked {r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "active"
        label = f"  {r['name']}" if r.get("name") else ""
        echo(f"{r['id']}  {r['prefix']}…  owner={r['owner_id']}  "
             f"created {r['created_at']:%Y-%m-%d %H:%M}  {state}{label}")
    return rows


def keys_revoke(key_id: str, echo: Callable[[str], None] = print) -> int:
    """Revoke the key with this id or prefix; UserError when no active key matches."""
    with _repo() as repo:
        rows = repo.revoke_api_key(key_id.strip().rstrip("…"))
    if not rows:
        raise UserError(f"no active API key with id or prefix {key_id!r} (see `glimpse3d keys list`)")
    for r in rows:
        echo(f"revoked {r['id']} ({r['prefix']}…, owner {r['owner_id']})")
    return len(rows)
