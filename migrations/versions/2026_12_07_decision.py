"""decision: the action threshold and the decision-flip probability per review item

Revision ID: 7d1e4b9c2a08
Revises: 7d1e4b9c2a06
Create Date: 2026-12-07 09:00:00+00:00

Two nullable columns added in place (no table rebuild). Items stored before have neither:
they were flagged on the std, with no action threshold, so the page shows none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d1e4b9c2a08"
down_revision: str | None = "7d1e4b9c2a06"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("review_items", sa.Column("action_threshold", sa.Float(), nullable=True))
    op.add_column("review_items", sa.Column("decision_flip_probability", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("decision_flip_probability")
        batch.drop_column("action_threshold")
