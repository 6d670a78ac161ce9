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

# the views are unchanged by this revision; recreated on downgrade
from glimpse3d.db.views import VIEWS, create_views, drop_views

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
    drop_views(op, VIEWS)
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("input_camera")
    create_views(op, VIEWS)
