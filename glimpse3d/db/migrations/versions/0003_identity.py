"""Identity: api_keys, projects.job_requester and projects.deleted_at; projects without an
owner become the local owner's ('local', the value of ``glimpse3d.domain.LOCAL_OWNER``
as of this revision).

Each step is skipped when its object already exists, so the revision also applies to a
database where a newer ``supabase_schema.sql`` was run first (it creates ``api_keys``).

Revision ID: 0003_identity
Revises: 0002_view_cameras
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from glimpse3d.db.views import VIEWS  # unchanged by this revision

revision = "0003_identity"
down_revision = "0002_view_cameras"
branch_labels = None
depends_on = None

LOCAL_OWNER = "local"


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    columns = {c["name"] for c in insp.get_columns("projects")}
    indexes = {i["name"] for i in insp.get_indexes("projects")}
    with op.batch_alter_table("projects") as batch:
        if "job_requester" not in columns:
            batch.add_column(sa.Column("job_requester", sa.String(length=128), nullable=True))
        if "deleted_at" not in columns:
            batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        if "ix_projects_job_requester" not in indexes:
            batch.create_index("ix_projects_job_requester", ["job_requester"], unique=False)
    op.execute(
        sa.text("UPDATE projects SET owner_id = :owner WHERE owner_id IS NULL").bindparams(
            owner=LOCAL_OWNER
        )
    )
    if insp.has_table("api_keys"):
        return
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_owner_id", "api_keys", ["owner_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_api_keys_owner_id", table_name="api_keys")
    op.drop_table("api_keys")
    # SQLite rebuilds the table to drop columns, which its views would block: drop, recreate.
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("projects") as batch:
        batch.drop_index("ix_projects_job_requester")
        batch.drop_column("deleted_at")
        batch.drop_column("job_requester")
    for sql in VIEWS.values():
        op.execute(sql)
