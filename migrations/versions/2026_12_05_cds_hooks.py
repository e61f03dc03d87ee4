"""cds hooks: the RiskAssessments emitted to EHRs and the EHRs' feedback on cards

Revision ID: 7d1e4b9c2a05
Revises: 7d1e4b9c2a04
Create Date: 2026-12-05 09:00:00+00:00

Two new tables; nothing existing changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "7d1e4b9c2a05"
down_revision: str | None = "7d1e4b9c2a04"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("encounter_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("review_item_id", sa.Integer(), nullable=True),
        sa.Column("resource", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_item_id"],
            ["review_items.id"],
            name=op.f("fk_risk_assessments_review_item_id_review_items"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_assessments")),
        sa.UniqueConstraint("resource_id", name=op.f("uq_risk_assessments_resource_id")),
        sa.UniqueConstraint(
            "encounter_id",
            "model_version",
            "content_hash",
            name=op.f("uq_risk_assessments_encounter_id_model_version_content_hash"),
        ),
    )
    op.create_index(op.f("ix_risk_assessments_encounter_id"), "risk_assessments", ["encounter_id"])
    op.create_table(
        "cds_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_uuid", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("override_reason", sa.JSON(), nullable=True),
        sa.Column("outcome_at", UTCDateTime(), nullable=False),
        sa.Column("review_item_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_key_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_item_id"],
            ["review_items.id"],
            name=op.f("fk_cds_feedback_review_item_id_review_items"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["actor_key_id"], ["api_keys.id"], name=op.f("fk_cds_feedback_actor_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cds_feedback")),
    )
    op.create_index(op.f("ix_cds_feedback_card_uuid"), "cds_feedback", ["card_uuid"])


def downgrade() -> None:
    op.drop_index(op.f("ix_cds_feedback_card_uuid"), table_name="cds_feedback")
    op.drop_table("cds_feedback")
    op.drop_index(op.f("ix_risk_assessments_encounter_id"), table_name="risk_assessments")
    op.drop_table("risk_assessments")
