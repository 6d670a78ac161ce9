"""``glimpse3d doctor``: one PASS/FAIL line per check, with a one-line hint for each FAIL.

Checks, in order: settings, database connection, tables, views, migrations at head,
buckets, a write/read/delete round trip on the database and one on storage. A check whose
prerequisite failed prints SKIP. Nothing here waits long: PostgreSQL connects with a 5 s
timeout and S3 with 3 s connect / 10 s read timeouts and 2 attempts. The doctor never
changes the schema (it does not migrate) and leaves no rows or objects behind.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from glimpse3d.config import Settings

DB_CONNECT_TIMEOUT_S = 5
S3_DOCTOR_OPTIONS = {"connect_timeout": 3.0, "read_timeout": 10.0, "max_attempts": 2}


@dataclass
class CheckResult:
    name: str
    status: str  # PASS | FAIL | SKIP
    detail: str
    hint: str = ""


class _Fail(Exception):
    def __init__(self, detail: str, hint: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint


def explain_db_error(exc: BaseException, url: str = "") -> tuple[str, str]:
    """(what happened, how to fix it) for a database connection error."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return (
            first,
            "wrong password: fix the password in GLIMPSE3D_DATABASE_URL (Supabase: Project Settings > Database)",
        )
    if "role" in low and "does not exist" in low:
        return (
            first,
            "unknown user: fix the user in GLIMPSE3D_DATABASE_URL (Supabase pooler users look like postgres.<project-ref>)",
        )
    if "not permitted to log in" in low:
        return first, "the user may not log in: use a role with LOGIN in GLIMPSE3D_DATABASE_URL"
    if "database" in low and "does not exist" in low:
        return (
            first,
            "the database does not exist: create it (createdb) or fix the name in GLIMPSE3D_DATABASE_URL",
        )
    if any(
        s in low
        for s in (
            "could not translate host name",
            "name or service not known",
            "connection refused",
            "timeout expired",
            "timed out",
            "network is unreachable",
            "no route to host",
        )
    ):
        return (
            first,
            "unreachable host: check host/port in GLIMPSE3D_DATABASE_URL, that the server runs and the firewall allows it",
        )
    if "unable to open database file" in low:
        return (
            first,
            "cannot open the SQLite file: check that GLIMPSE3D_DATA_DIR exists and is writable",
        )
    if "ssl" in low:
        return (
            first,
            "TLS problem: add ?sslmode=require to GLIMPSE3D_DATABASE_URL for hosted databases",
        )
    return first, "check GLIMPSE3D_DATABASE_URL"


def _check_settings(state: dict[str, Any]) -> str:
    from glimpse3d.db.engine import mask_url, normalize_url

    settings = state["settings"]
    if settings is None:
        from glimpse3d.config import Settings

        try:
            settings = Settings()
        except Exception as exc:  # noqa: BLE001 - pydantic ValidationError and friends
            raise _Fail(
                str(exc).splitlines()[0], "fix the GLIMPSE3D_* variables or .env (see .env.example)"
            ) from exc
        state["settings"] = settings
    url = settings.resolved_database_url
    try:
        normalize_url(url)
    except Exception as exc:  # noqa: BLE001
        raise _Fail(
            str(exc), "set GLIMPSE3D_DATABASE_URL to sqlite:///path or postgresql://..."
        ) from exc
    storage_url = settings.resolved_storage_url
    if "://" in storage_url and not storage_url.startswith(("s3://", "file://")):
        raise _Fail(
            f"unsupported storage URL {storage_url!r}",
            "set GLIMPSE3D_STORAGE_URL to a directory or s3://prefix",
        )
    return f"database {mask_url(url)}, storage {storage_url}, queue {settings.queue}"


def _check_connection(state: dict[str, Any]) -> str:
    from sqlalchemy import text

    from glimpse3d.db.engine import make_engine, mask_url

    url = state["settings"].resolved_database_url
    engine = make_engine(url, connect_timeout=DB_CONNECT_TIMEOUT_S)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                version = conn.execute(text("show server_version")).scalar()
                detail = f"PostgreSQL {version}"
            else:
                version = conn.execute(text("select sqlite_version()")).scalar()
                detail = f"SQLite {version}"
    except Exception as exc:  # noqa: BLE001
        engine.dispose()
        what, hint = explain_db_error(exc, url)
        raise _Fail(f"{mask_url(url)}: {what}", hint) from exc
    state["engine"] = engine
    return f"{detail} at {mask_url(url)}"


def _inspect_names(state: dict[str, Any]) -> tuple[set[str], set[str]]:
    from sqlalchemy import inspect

    if "names" not in state:
        with state["engine"].connect() as conn:
            insp = inspect(conn)
            state["names"] = (set(insp.get_table_names()), set(insp.get_view_names()))
    return state["names"]


def _require_all(expected: tuple[str, ...], present: set[str]) -> None:
    """Fail with the names of ``expected`` that are not ``present`` (tables or views)."""
    missing = [name for name in expected if name not in present]
    if missing:
        raise _Fail(
            f"missing {', '.join(missing)}",
            "run `glimpse3d db upgrade` (or apply supabase_schema.sql)",
        )


def _check_tables(state: dict[str, Any]) -> str:
    from glimpse3d.db.models import TABLES

    _require_all(TABLES, _inspect_names(state)[0])
    return f"{len(TABLES)} tables present"


def _check_views(state: dict[str, Any]) -> str:
    from glimpse3d.db.repository import VIEW_NAMES

    _require_all(VIEW_NAMES, _inspect_names(state)[1])
    return ", ".join(VIEW_NAMES)


def _check_migrations(state: dict[str, Any]) -> str:
    from glimpse3d.db.migrate import current_revision, head_revision

    with state["engine"].connect() as conn:
        current = current_revision(conn)
    head = head_revision()
    if current != head:
        raise _Fail(
            f"database at {current or 'no revision'}, code expects {head}",
            "run `glimpse3d db upgrade`",
        )
    return f"revision {head} (head)"


def _check_buckets(state: dict[str, Any]) -> str:
    from glimpse3d.storage.base import StorageError
    from glimpse3d.storage.factory import open_storage

    settings = state["settings"]
    try:
        storage = open_storage(settings, s3_options=S3_DOCTOR_OPTIONS)
        storage.check()
    except StorageError as exc:
        raise _Fail(str(exc), _storage_hint(str(exc))) from exc
    except Exception as exc:  # noqa: BLE001
        from glimpse3d.storage.s3 import explain_s3_error

        msg = explain_s3_error(exc)
        raise _Fail(msg, _storage_hint(msg)) from exc
    state["storage"] = storage
    return f"6 buckets in {storage!r}"


def _storage_hint(message: str) -> str:
    low = message.lower()
    if "missing" in low and "bucket" in low:
        return "create the missing buckets (Supabase: Storage > New bucket or apply supabase_schema.sql; MinIO/AWS: `aws s3 mb`)"
    if "access denied" in low or "access key" in low:
        return "wrong S3 keys: set GLIMPSE3D_S3_ACCESS_KEY_ID / GLIMPSE3D_S3_SECRET_ACCESS_KEY (Supabase: Storage > S3 Connection)"
    if "unreachable" in low:
        return "unreachable host: check GLIMPSE3D_S3_ENDPOINT_URL (Supabase: https://<ref>.supabase.co/storage/v1/s3)"
    if "not writable" in low or "does not exist" in low:
        return "check GLIMPSE3D_STORAGE_URL / GLIMPSE3D_DATA_DIR and its permissions"
    return "check GLIMPSE3D_STORAGE_URL and the s3_* settings"


def _check_db_roundtrip(state: dict[str, Any]) -> str:
    from glimpse3d.db.repository import ProjectNotFound, Repository

    repo = Repository(state["settings"].resolved_database_url)
    pid = str(uuid.uuid4())
    try:
        repo.create_project("glimpse3d-doctor", project_id=pid, settings={"doctor": True})
        repo.upsert_view(pid, 0, 30.0, 0.0, f"{pid}/views/view_00.png", "doctor", 0.0)
        if repo.project_summary(pid)["view_count"] != 1:
            raise _Fail(
                "wrote a view but project_summary does not count it", "run `glimpse3d db upgrade`"
            )
        repo.delete_project(pid)
        if repo.table_counts(pid)["multiview_generation"] != 0:
            raise _Fail(
                "deleting a project left its rows (ON DELETE CASCADE missing)",
                "run `glimpse3d db upgrade`",
            )
        try:
            repo.get_project(pid)
        except ProjectNotFound:
            pass
        else:
            raise _Fail("a deleted project is still readable", "check the database user's rights")
    except _Fail:
        raise
    except Exception as exc:  # noqa: BLE001
        what, hint = explain_db_error(exc)
        if "permission denied" in what.lower():
            hint = "the database user may not write: grant it insert/update/delete on the 8 tables"
        raise _Fail(what, hint) from exc
    finally:
        with contextlib.suppress(Exception):  # normally already gone
            repo.delete_project(pid)
        repo.close()
    return "insert, upsert, view, cascade delete"


def _check_storage_roundtrip(state: dict[str, Any]) -> str:
    from glimpse3d.storage.base import MODELS

    storage = state["storage"]
    key = f"_doctor/{uuid.uuid4().hex}.txt"
    payload = uuid.uuid4().bytes * 4
    try:
        storage.put_bytes(MODELS, key, payload)
        if storage.get_bytes(MODELS, key) != payload:
            raise _Fail("read back different bytes than written", "check the storage service")
        storage.delete(MODELS, key)
        if storage.exists(MODELS, key):
            raise _Fail("object still exists after delete", "the S3 keys may lack delete rights")
    except _Fail:
        raise
    except Exception as exc:  # noqa: BLE001
        from glimpse3d.storage.s3 import explain_s3_error

        msg = explain_s3_error(exc, MODELS)
        raise _Fail(
            msg,
            _storage_hint(msg)
            if "S3 error" not in msg
            else "the S3 keys may lack write/delete rights on the buckets",
        ) from exc
    return f"put/get/delete in {MODELS}"


def _check_queue(state: dict[str, Any]) -> str:
    """Through the queue interface: the inline queue needs nothing; procrastinate needs its
    schema and live workers."""
    settings = state["settings"]
    from glimpse3d.services import open_services

    services = open_services(settings, s3_options=S3_DOCTOR_OPTIONS)
    queue = services.queue
    assert queue is not None
    try:
        return queue.describe()
    except Exception as exc:  # noqa: BLE001 - reported as a FAIL line
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "no live worker" in message:
            raise _Fail(message, "start one with `glimpse3d worker`") from exc
        raise _Fail(f"procrastinate: {message}",
                    "run `glimpse3d db upgrade` to apply the job schema") from exc
    finally:
        queue.stop()
        services.close()


CHECKS: list[tuple[str, Callable[[dict[str, Any]], str], tuple[str, ...]]] = [
    ("settings", _check_settings, ()),
    ("database connection", _check_connection, ("settings",)),
    ("tables", _check_tables, ("database connection",)),
    ("views", _check_views, ("database connection",)),
    ("migrations at head", _check_migrations, ("database connection",)),
    ("buckets", _check_buckets, ("settings",)),
    ("database round trip", _check_db_roundtrip, ("tables", "views")),
    ("storage round trip", _check_storage_roundtrip, ("buckets",)),
    ("job queue", _check_queue, ("migrations at head",)),
]


def run_checks(settings: Settings | None = None) -> list[CheckResult]:
    """Run every check; returns one result per check (PASS, FAIL or SKIP)."""
    state: dict[str, Any] = {"settings": settings}
    results: dict[str, CheckResult] = {}
    try:
        for name, fn, needs in CHECKS:
            blocked = [n for n in needs if results[n].status != "PASS"]
            if blocked:
                results[name] = CheckResult(name, "SKIP", f"needs {', '.join(blocked)}")
                continue
            try:
                results[name] = CheckResult(name, "PASS", fn(state))
            except _Fail as exc:
                results[name] = CheckResult(name, "FAIL", exc.detail, exc.hint)
            except Exception as exc:  # noqa: BLE001 - the doctor reports, never crashes
                results[name] = CheckResult(
                    name,
                    "FAIL",
                    f"{type(exc).__name__}: {exc}".splitlines()[0],
                    "run with --debug for details",
                )
    finally:
        engine = state.get("engine")
        if engine is not None:
            engine.dispose()
    return list(results.values())


def run_doctor(settings: Settings | None = None, console: Console | None = None) -> bool:
    """Print one PASS/FAIL/SKIP line per check; True when every check passed."""
    console = console or Console()
    results = run_checks(settings)
    colours = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}
    for r in results:
        line = f"[{colours[r.status]}]{r.status}[/] {escape(r.name)}: {escape(r.detail)}"
        if r.hint:
            line += f"\n     [bold]hint:[/] {escape(r.hint)}"
        console.print(line, highlight=False, soft_wrap=True)
    ok = all(r.status == "PASS" for r in results)
    failed = sum(r.status != "PASS" for r in results)
    console.print(
        "[green]all checks passed[/]" if ok else f"[red]{failed} check(s) did not pass[/]",
        highlight=False,
    )
    return ok
