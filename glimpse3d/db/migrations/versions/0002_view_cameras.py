"""multiview_generation: the camera each view was made at (distance, fx, fy, cx, cy, width,
height; NULL for older rows, read as the SyncDreamer camera at their angles).

A column that already exists is skipped, so the revision also applies to a database where
a newer ``supabase_schema.sql`` was run first.

Revision ID: 0002_view_cameras
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the views are unchanged by this revision; recreated on downgrade
from glimpse3d.db.views import VIEWS, create_views, drop_views

revision = "0002_view_cameras"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "multiview_generation"
COLUMNS = (
    ("distance", sa.Float()),
    ("fx", sa.Float()),
    ("fy", sa.Float()),
    ("cx", sa.Float()),
    ("cy", sa.Float()),
    ("width", sa.Integer()),
    ("height", sa.Integer()),
)


def upgrade() -> None:
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}
    for name, type_ in COLUMNS:
        if name not in existing:
            op.add_column(TABLE, sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    # SQLite drops columns by copying the table, which the views reference: drop them first
    drop_views(op, VIEWS)
    with op.batch_alter_table(TABLE) as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
    create_views(op, VIEWS)
