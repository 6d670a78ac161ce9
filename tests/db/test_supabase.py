"""supabase_schema.sql: generated from the models, applies to PostgreSQL with stub Supabase
``auth``/``storage`` schemas, and its row-level security really isolates two users."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

import glimpse3d
from glimpse3d.db.engine import make_engine
from glimpse3d.db.migrate import VERSION_TABLE, head_revision, schema_diff
from glimpse3d.db.repository import open_repository
from glimpse3d.db.supabase import generate_supabase_schema
from glimpse3d.domain import BUCKETS

REPO_ROOT = Path(glimpse3d.__file__).resolve().parents[1]

STUBS = """
do $$ begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then create role anon nologin; end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then create role authenticated nologin; end if;
end $$;
create schema auth;
create function auth.uid() returns uuid language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid $$;
grant usage on schema auth to anon, authenticated;
create schema storage;
create table storage.buckets (id text primary key, name text not null, public boolean default false);
create table storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text not null,
  owner uuid default auth.uid()
);
alter table storage.objects enable row level security;
grant usage on schema storage to anon, authenticated;
grant select, insert, update, delete on storage.objects to anon, authenticated;
grant select on storage.buckets to anon, authenticated;
grant usage on schema public to anon, authenticated;
"""


def _dsn(pg_url: str) -> str:
    return make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_committed_schema_is_current():
    committed = (REPO_ROOT / "supabase_schema.sql").read_text()
    assert committed == generate_supabase_schema(), (
        "supabase_schema.sql is stale: run `glimpse3d db supabase-schema`"
    )


def test_rls_isolates_users(pg_url):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(_dsn(pg_url), autocommit=True) as conn:
        conn.execute(STUBS)
        conn.execute(generate_supabase_schema())
        conn.execute(generate_supabase_schema())  # idempotent
        buckets = conn.execute("select id, public from storage.buckets order by id").fetchall()
        assert [r[0] for r in buckets] == sorted(BUCKETS)
        assert not any(r[1] for r in buckets)
        assert conn.execute(f"select version_num from {VERSION_TABLE}").fetchall() == [
            (head_revision(),)
        ]
        # the service side (owner, not bound by RLS) writes rows for two users
        pa = conn.execute(
            "insert into projects (name, owner_id) values ('a', %s) returning id", (a,)
        ).fetchone()[0]
        pb = conn.execute(
            "insert into projects (name, owner_id) values ('b', %s) returning id", (b,)
        ).fetchone()[0]
        for pid in (pa, pb):
            conn.execute(
                "insert into multiview_generation (project_id, view_index, elevation, azimuth, image_key, backend, generation_time)"
                " values (%s, 0, 30, 0, 'k', 'classic', 0.1)",
                (pid,),
            )
            conn.execute(
                "insert into enhancement_iterations (project_id, iteration_number, model_version_in, model_version_out, overall_quality)"
                " values (%s, 1, 0, 1, 0.5)",
                (pid,),
            )
        conn.execute(
            "insert into storage.objects (bucket_id, name) values ('3d-models', %s)",
            (f"{pb}/models/v0.ply",),
        )

        conn.execute("set role authenticated")
        conn.execute("select set_config('request.jwt.claim.sub', %s, false)", (a,))
        assert conn.execute("select id from projects").fetchall() == [(pa,)]
        assert conn.execute("select project_id from multiview_generation").fetchall() == [(pa,)]
        assert conn.execute(
            "select id, view_count, iteration_count from project_summary"
        ).fetchall() == [(pa, 1, 1)]
        assert conn.execute("select project_id from refinement_progress").fetchall() == [(pa,)]
        # A cannot change or delete B's rows ...
        assert (
            conn.execute("update projects set name = 'hacked' where id = %s", (pb,)).rowcount == 0
        )
        assert (
            conn.execute("delete from multiview_generation where project_id = %s", (pb,)).rowcount
            == 0
        )
        # ... nor create rows in B's name or under B's project
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into projects (name, owner_id) values ('x', %s)", (b,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into depth_maps (project_id, view_index, depth_key, heatmap_key, min_depth, max_depth, mean_depth, confidence_score, backend)"
                " values (%s, 1, 'd', 'h', 1, 2, 1.5, 1, 'x')",
                (pb,),
            )
        # A may work on their own project, and ids default to UUIDs
        new = conn.execute(
            "insert into projects (name, owner_id) values ('a2', %s) returning id", (a,)
        ).fetchone()[0]
        assert uuid.UUID(new)
        assert (
            conn.execute("update projects set name = 'renamed' where id = %s", (pa,)).rowcount == 1
        )
        # storage objects follow the project's owner (first key segment)
        conn.execute(
            "insert into storage.objects (bucket_id, name) values ('3d-models', %s)",
            (f"{pa}/models/v0.ply",),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into storage.objects (bucket_id, name) values ('3d-models', %s)",
                (f"{pb}/models/v1.ply",),
            )
        assert [r[0] for r in conn.execute("select name from storage.objects").fetchall()] == [
            f"{pa}/models/v0.ply"
        ]

        conn.execute("select set_config('request.jwt.claim.sub', %s, false)", (b,))
        assert conn.execute("select name from projects").fetchall() == [("b",)]
        conn.execute("reset role")
        conn.execute("set role anon")
        assert conn.execute("select count(*) from storage.objects").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from projects")
        conn.execute("reset role")

    # The app (as owner) continues from the generated schema: no migration, no drift.
    repo = open_repository(pg_url)
    try:
        repo.check()
        assert repo.get_project(pa)["name"] == "renamed"
        assert repo.project_summary(pb)["view_count"] == 1
    finally:
        repo.close()
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert schema_diff(conn) == []
    finally:
        engine.dispose()


def test_public_access_policies(pg_url):
    with psycopg.connect(_dsn(pg_url), autocommit=True) as conn:
        conn.execute(STUBS)
        conn.execute(generate_supabase_schema())
        conn.execute(generate_supabase_schema(public_access=True))  # switching modes is clean
        assert all(r[0] for r in conn.execute("select public from storage.buckets").fetchall())
        policies = conn.execute(
            "select policyname from pg_policies where tablename = 'projects'"
        ).fetchall()
        assert policies == [("glimpse3d_public",)]
        conn.execute("set role anon")
        pid = conn.execute("insert into projects (name) values ('open') returning id").fetchone()[0]
        assert conn.execute("select name from projects where id = %s", (pid,)).fetchone() == (
            "open",
        )
        conn.execute(
            "insert into storage.objects (bucket_id, name) values ('project-uploads', 'x/original.png')"
        )
        conn.execute("reset role")


def test_cli_writes_schema(tmp_path):
    from typer.testing import CliRunner

    from glimpse3d.cli import app

    out = tmp_path / "schema.sql"
    result = CliRunner().invoke(app, ["db", "supabase-schema", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == generate_supabase_schema()
