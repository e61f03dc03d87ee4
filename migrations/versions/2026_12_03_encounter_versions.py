"""encounter versions: a content hash per item, one open item per encounter, `superseded`

Revision ID: 7d1e4b9c2a03
Revises: 7d1e4b9c2a02
Create Date: 2026-12-03 12:00:00+00:00

Existing items get the hash of their stored encounter. Downgrading cannot keep several
versions of one encounter under the old UNIQUE(encounter_id, model_version): it deletes the
superseded items (their events go with them), then all but the newest item of each encounter.
"""

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d1e4b9c2a03"
down_revision: str | None = "7d1e4b9c2a02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "status IN ('pending', 'in_review')"
_OLD_STATUSES = "status IN ('pending', 'in_review', 'resolved')"
_NEW_STATUSES = "status IN ('pending', 'in_review', 'resolved', 'superseded')"


def _content_hash(encounter: object) -> str:
    """As `app.review.versions.content_hash`, frozen here so the migration never changes."""
    canonical = json.dumps(encounter, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
    items = sa.table(
        "review_items", sa.column("id", sa.Integer()), sa.column("encounter", sa.JSON()),
        sa.column("content_hash", sa.String()),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(items.c.id, items.c.encounter)).all()
    for item_id, encounter in rows:
        connection.execute(
            items.update()
            .where(items.c.id == item_id)
            .values(content_hash=_content_hash(encounter))
        )
    with op.batch_alter_table("review_items") as batch:
        batch.alter_column("content_hash", existing_type=sa.String(length=64), nullable=False)
        batch.drop_constraint(op.f("uq_review_items_encounter_id_model_version"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_review_items_encounter_id_model_version_content_hash"),
            ["encounter_id", "model_version", "content_hash"],
        )
        batch.drop_constraint(op.f("ck_review_items_status"), type_="check")
        batch.create_check_constraint(op.f("ck_review_items_status"), _NEW_STATUSES)
    op.create_index(
        "uq_review_items_open_encounter",
        "review_items",
        ["encounter_id", "model_version"],
        unique=True,
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )


def downgrade() -> None:
    op.drop_index("uq_review_items_open_encounter", table_name="review_items")
    op.execute("DELETE FROM review_items WHERE status = 'superseded'")
    op.execute(
        "DELETE FROM review_items WHERE id NOT IN"
        " (SELECT MAX(id) FROM review_items GROUP BY encounter_id, model_version)"
    )
    with op.batch_alter_table("review_items") as batch:
        batch.drop_constraint(op.f("ck_review_items_status"), type_="check")
        batch.create_check_constraint(op.f("ck_review_items_status"), _OLD_STATUSES)
        batch.drop_constraint(
            op.f("uq_review_items_encounter_id_model_version_content_hash"), type_="unique"
        )
        batch.create_unique_constraint(
            op.f("uq_review_items_encounter_id_model_version"), ["encounter_id", "model_version"]
        )
        batch.drop_column("content_hash")
