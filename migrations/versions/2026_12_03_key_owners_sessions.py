"""key owners and sessions: cases and events by key id, the key audit trail, page sessions

Revision ID: 7d1e4b9c2a02
Revises: 3f6c1d2a9b10
Create Date: 2026-12-03 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "7d1e4b9c2a02"
down_revision: str | None = "3f6c1d2a9b10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns that now name a key by id; the name columns beside them stay, for display.
KEY_COLUMNS = (("review_items", "assignee_key_id"), ("review_events", "actor_key_id"))
UNRECORDED = "unrecorded (before the key audit)"


def upgrade() -> None:
    for table, column in KEY_COLUMNS:
        _add_key_column(table, column)
    # NOTE: a name is taken for a key only where exactly one key of the acting role bears it;
    # an ambiguous old claim keeps its name and no id, so nobody can resolve it by name alone
    # (an admin reassigns it). EHR keys queue cases; clinician keys do everything else.
    op.execute(
        "UPDATE review_items SET assignee_key_id = (SELECT min(k.id) FROM api_keys k"
        " WHERE k.name = review_items.assignee AND k.role = 'clinician')"
        " WHERE assignee IS NOT NULL AND (SELECT count(*) FROM api_keys k"
        " WHERE k.name = review_items.assignee AND k.role = 'clinician') = 1"
    )
    role = "CASE WHEN review_events.from_status IS NULL THEN 'ehr' ELSE 'clinician' END"
    op.execute(
        "UPDATE review_events SET actor_key_id = (SELECT min(k.id) FROM api_keys k"
        f" WHERE k.name = review_events.actor AND k.role = {role})"
        " WHERE (SELECT count(*) FROM api_keys k"
        f" WHERE k.name = review_events.actor AND k.role = {role}) = 1"
    )
    op.create_table(
        "api_key_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_key_id", sa.Integer(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "action IN ('create', 'revoke')", name=op.f("ck_api_key_events_action")
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_api_key_events_key_id_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["actor_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_events_actor_key_id_api_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_events")),
    )
    op.create_index(op.f("ix_api_key_events_key_id"), "api_key_events", ["key_id"])
    # NOTE: keys made before the audit existed get their creation (and revocation) recorded,
    # by an actor nobody knows, so every key's trail starts with its creation.
    op.execute(
        "INSERT INTO api_key_events (key_id, action, actor, at)"
        f" SELECT id, 'create', '{UNRECORDED}', created_at FROM api_keys"
    )
    op.execute(
        "INSERT INTO api_key_events (key_id, action, actor, at)"
        f" SELECT id, 'revoke', '{UNRECORDED}', revoked_at FROM api_keys"
        " WHERE revoked_at IS NOT NULL"
    )
    op.create_table(
        "page_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_page_sessions_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_page_sessions_token_hash")),
    )
    op.create_index(op.f("ix_page_sessions_key_id"), "page_sessions", ["key_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_page_sessions_key_id"), table_name="page_sessions")
    op.drop_table("page_sessions")
    op.drop_index(op.f("ix_api_key_events_key_id"), table_name="api_key_events")
    op.drop_table("api_key_events")
    for table, column in KEY_COLUMNS:
        # NOTE: SQLite cannot drop a column that references a table, so batch mode rebuilds
        # the table; migrations/env.py turns foreign keys off for that, or the rebuild of
        # review_items would cascade-delete every review event.
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)


def _add_key_column(table: str, column: str) -> None:
    """Add a nullable `column` referencing api_keys.id, named by the naming convention."""
    constraint = f"fk_{table}_{column}_api_keys"
    if op.get_bind().dialect.name == "sqlite":
        # NOTE: SQLite cannot add a constraint to a table, only a column that carries one;
        # a column is added in place, where a batch would copy the whole table.
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN {column} INTEGER"
            f" CONSTRAINT {constraint} REFERENCES api_keys (id)"
        )
        return
    op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
    op.create_foreign_key(op.f(constraint), table, "api_keys", [column], ["id"])
