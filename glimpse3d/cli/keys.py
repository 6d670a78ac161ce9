"""``glimpse3d keys create OWNER | list | revoke ID``: API keys in the configured database
(``GLIMPSE3D_AUTH=api_key``). Keys are stored hashed (:mod:`glimpse3d.auth.keys`); ``create``
prints the new key alone on its last line, once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from glimpse3d.cli._common import handle_errors

if TYPE_CHECKING:
    from glimpse3d.db.repository import Repository

app = typer.Typer(help="API keys (GLIMPSE3D_AUTH=api_key).", no_args_is_help=True)


@contextmanager
def _repo() -> Iterator[Repository]:
    from glimpse3d.config import get_settings
    from glimpse3d.db.repository import open_repository

    settings = get_settings()
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    repo = open_repository(settings.resolved_database_url)
    try:
        yield repo
    finally:
        repo.close()


@app.command("create")
@handle_errors
def create(
    owner: Annotated[str, typer.Argument(help="Owner id the key acts as (projects' owner_id).")],
    name: Annotated[str | None, typer.Option(help="A label for the listing.")] = None,
) -> None:
    """Create an API key for OWNER; the key is printed alone on the last line."""
    from glimpse3d.auth.keys import create_key

    with _repo() as repo:
        row, key = create_key(repo, owner, name)
    typer.echo(f"created key {row['prefix']}… (id {row['id']}) for owner {row['owner_id']}; "
               "it is shown once, store it now:")
    typer.echo(key)


@app.command("list")
@handle_errors
def list_keys() -> None:
    """List keys (id, prefix, owner, state); the keys themselves are never stored."""
    with _repo() as repo:
        rows = repo.list_api_keys()
    if not rows:
        typer.echo("no API keys (create one with `glimpse3d keys create OWNER`)")
    for r in rows:
        state = f"revoked {r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "active"
        label = f"  {r['name']}" if r.get("name") else ""
        typer.echo(f"{r['id']}  {r['prefix']}…  owner={r['owner_id']}  "
                   f"created {r['created_at']:%Y-%m-%d %H:%M}  {state}{label}")


@app.command("revoke")
@handle_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id or prefix (from `keys list`).")],
) -> None:
    """Revoke a key; requests with it answer 401 from then on."""
    from glimpse3d.errors import UserError

    with _repo() as repo:
        rows = repo.revoke_api_key(key_id.strip().rstrip("…"))
    if not rows:
        raise UserError(f"no active API key with id or prefix {key_id!r} (see `glimpse3d keys list`)")
    for r in rows:
        typer.echo(f"revoked {r['id']} ({r['prefix']}…, owner {r['owner_id']})")
