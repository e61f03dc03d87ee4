"""risk band: the calibrated 5th-95th percentile of the dropout passes per review item

Revision ID: 7d1e4b9c2a04
Revises: 7d1e4b9c2a03
Create Date: 2026-12-04 09:00:00+00:00

Two nullable columns added in place (no table rebuild). Items stored before have no band:
their passes were not kept, so the page shows none rather than an invented one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d1e4b9c2a04"
down_revision: str | None = "7d1e4b9c2a03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("review_items", sa.Column("band_low", sa.Float(), nullable=True))
    op.add_column("review_items", sa.Column("band_high", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("band_high")
        batch.drop_column("band_low")
