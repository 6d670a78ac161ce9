"""projects.input_camera: camera 0 of the processed image (the crop of the photo, as the
flat camera record of the views; NULL for older rows, read as the convention's camera 0).

A column that already exists is skipped, so the revision also applies to a database where
a newer ``supabase_schema.sql`` was run first.

Revision ID: 0004_input_camera
Revises: 0003_identity
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from glimpse3d.db.views import VIEWS  # unchanged by this revision; recreated on downgrade

revision = "0004_input_camera"
down_revision = "0003_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("projects")}
    if "input_camera" not in columns:
        json_type = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
        op.add_column("projects", sa.Column("input_camera", json_type, nullable=True))


def downgrade() -> None:
    # SQLite drops columns by copying the table, which the views reference: drop them first
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("input_camera")
    for sql in VIEWS.values():
        op.execute(sql)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and (bind.dialect.server_version_info or (0,)) >= (15,):
        for name in VIEWS:
            op.execute(f"ALTER VIEW {name} SET (security_invoker = true)")
