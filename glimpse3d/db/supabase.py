"""Generate ``supabase_schema.sql`` from the models: tables, indexes, the two views, row-level
security, storage buckets and their policies. Every statement is idempotent, so the file can
be applied to an empty project or on top of ``glimpse3d db upgrade`` (it then only adds RLS,
policies and buckets).

Default policies: a signed-in user (``auth.uid()``) sees and changes only the projects whose
``owner_id`` is their user id, the child rows of those projects, and the storage objects under
``{project_id}/`` in the 6 buckets. ``public_access=True`` writes the seed's open policies
instead (anyone with the anon key may read and write; buckets public) -- for demos only.
The API and workers connect as the database owner / with S3 keys and are not bound by RLS;
they write the caller's id (``auth.uid()`` for Supabase tokens) as ``owner_id``, so the rows
they make are exactly the ones the policies hand to that user. ``api_keys`` (hashes of API
keys) has RLS on and no policy: no Supabase role can read it.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from glimpse3d.db.migrate import VERSION_TABLE, head_revision
from glimpse3d.db.models import SERVICE_TABLES, TABLES, Base
from glimpse3d.db.views import VIEWS
from glimpse3d.domain import BUCKETS

_OWNER = "(select auth.uid())::text"


def _stmt(sql: str) -> str:
    lines = [line.rstrip().replace("\t", "    ") for line in sql.strip().splitlines()]
    return "\n".join(lines).rstrip(";") + ";"


def _tables_sql() -> list[str]:
    dialect = postgresql.dialect()
    out: list[str] = []
    for table in Base.metadata.sorted_tables:
        out.append(_stmt(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect))))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            out.append(_stmt(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))))
        out.append(
            f"alter table public.{table.name} alter column id set default gen_random_uuid()::text;"
        )
    return out


def _views_sql() -> list[str]:
    out = []
    for name, sql in VIEWS.items():
        head = f"CREATE VIEW {name} AS"
        assert sql.startswith(head), name
        out.append(
            _stmt(
                f"create or replace view public.{name} with (security_invoker = true) as"
                + sql[len(head) :]
            )
        )
    return out


def _version_sql() -> list[str]:
    return [
        f"create table if not exists public.{VERSION_TABLE} (\n"
        f"    version_num varchar(32) not null,\n"
        f"    constraint {VERSION_TABLE}_pkc primary key (version_num)\n);",
        f"insert into public.{VERSION_TABLE} (version_num)\n"
        f"    select '{head_revision()}' where not exists (select 1 from public.{VERSION_TABLE});",
        f"alter table public.{VERSION_TABLE} enable row level security;",
    ]


def _policy(name: str, table: str, roles: str, cond: str) -> list[str]:
    return [
        f"create policy {name} on {table} for all to {roles}\n"
        f"    using ({cond})\n    with check ({cond});",
    ]


def _rls_sql(public_access: bool) -> list[str]:
    roles = "anon, authenticated" if public_access else "authenticated"
    out: list[str] = []
    for table in TABLES:
        out.append(f"alter table public.{table} enable row level security;")
    for table in TABLES:
        # Drop both flavours so switching between owner and public mode leaves no stale policy.
        out.append(f"drop policy if exists glimpse3d_owner on public.{table};")
        out.append(f"drop policy if exists glimpse3d_public on public.{table};")
        if public_access:
            out += _policy("glimpse3d_public", f"public.{table}", roles, "true")
        elif table == "projects":
            out += _policy("glimpse3d_owner", "public.projects", roles, f"owner_id = {_OWNER}")
        else:
            cond = (
                "exists (select 1 from public.projects p\n"
                f"        where p.id = {table}.project_id and p.owner_id = {_OWNER})"
            )
            out += _policy("glimpse3d_owner", f"public.{table}", roles, cond)
    for table in SERVICE_TABLES:
        out.append(f"alter table public.{table} enable row level security;")
        out.append(f"revoke all on public.{table} from anon, authenticated;")
    tables = ", ".join(f"public.{t}" for t in TABLES)
    views = ", ".join(f"public.{v}" for v in VIEWS)
    out.append(f"grant select, insert, update, delete on {tables} to {roles};")
    out.append(f"grant select on {views} to {roles};")
    if not public_access:
        out.append(f"revoke all on {tables}, {views} from anon;")
    return out


def _storage_sql(public_access: bool) -> list[str]:
    flag = "true" if public_access else "false"
    values = ",\n    ".join(f"('{b}', '{b}', {flag})" for b in BUCKETS)
    out = [
        "insert into storage.buckets (id, name, public) values\n"
        f"    {values}\n"
        "on conflict (id) do update set public = excluded.public;"
    ]
    in_buckets = "bucket_id in (" + ", ".join(f"'{b}'" for b in BUCKETS) + ")"
    out.append("drop policy if exists glimpse3d_objects_owner on storage.objects;")
    out.append("drop policy if exists glimpse3d_objects_public on storage.objects;")
    if public_access:
        out += _policy(
            "glimpse3d_objects_public", "storage.objects", "anon, authenticated", in_buckets
        )
    else:
        cond = (
            f"{in_buckets}\n        and exists (select 1 from public.projects p\n"
            f"        where p.id = split_part(objects.name, '/', 1) and p.owner_id = {_OWNER})"
        )
        out += _policy("glimpse3d_objects_owner", "storage.objects", "authenticated", cond)
    return out


def generate_supabase_schema(public_access: bool = False) -> str:
    """The whole schema as one SQL script (a single transaction) for the Supabase SQL editor."""
    mode = (
        "OPEN policies (--public-access): anyone with the anon key may read and write"
        if public_access
        else "owner policies: each signed-in user sees only their own projects"
    )
    sections = [
        ("Tables and indexes (the 8 tables of docs/architecture.md, 'Tables and views', "
         "and api_keys)", _tables_sql()),
        ("Views (run with the caller's rights, so RLS applies)", _views_sql()),
        ("Migration version, so `glimpse3d db upgrade` continues from here", _version_sql()),
        (f"Row-level security: {mode}", _rls_sql(public_access)),
        (
            "Storage buckets and object policies (keys start with the project id)",
            _storage_sql(public_access),
        ),
    ]
    lines = [
        "-- Glimpse3D schema for Supabase (PostgreSQL 15+).",
        "-- GENERATED by `glimpse3d db supabase-schema` from glimpse3d/db/models.py,",
        f"-- Alembic revision {head_revision()}. Do not edit by hand; regenerate instead.",
        "-- Idempotent: safe to run again, and on top of `glimpse3d db upgrade`.",
        "",
        "begin;",
    ]
    for title, statements in sections:
        lines += ["", f"-- {title}", ""]
        for statement in statements:
            if "\n" in statement and lines[-1] != "":
                lines.append("")
            lines.append(statement)
            if "\n" in statement:
                lines.append("")
    lines += ["commit;", ""]
    return "\n".join(lines)
