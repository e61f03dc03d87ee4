"""token uses: the CDS Hooks JWT ids already accepted, so a replay is refused by every worker

Revision ID: 7d1e4b9c2a06
Revises: 7d1e4b9c2a05
Create Date: 2026-12-06 09:00:00+00:00

One new table; nothing existing changes. Its rows live only until their token expires.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "7d1e4b9c2a06"
down_revision: str | None = "7d1e4b9c2a05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "token_uses",
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name=op.f("pk_token_uses")),
    )
    op.create_index(op.f("ix_token_uses_expires_at"), "token_uses", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_token_uses_expires_at"), table_name="token_uses")
    op.drop_table("token_uses")
