"""outcomes: every answered score, the readmissions reported for them, and their audit trail

Revision ID: 7d1e4b9c2a07
Revises: 7d1e4b9c2a05
Create Date: 2026-12-06 09:00:00+00:00

Three new tables and one nullable column on review_items (added in place, no table rebuild).
Encounters scored before this revision have no scored_encounters row: their answers were not
kept, so live performance starts with the scores answered from here on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.base import UTCDateTime

revision: str = "7d1e4b9c2a07"
down_revision: str | None = "7d1e4b9c2a05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scored_encounters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.String(length=140), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("probability", sa.Double(), nullable=False),
        sa.Column("raw_probability", sa.Double(), nullable=False),
        sa.Column("std", sa.Double(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.String(length=200), nullable=False),
        sa.Column("age", sa.String(length=16), nullable=True),
        sa.Column("gender", sa.String(length=32), nullable=True),
        sa.Column("race", sa.String(length=32), nullable=True),
        sa.Column("admission_type_id", sa.String(length=8), nullable=True),
        sa.Column("discharged_on", sa.Date(), nullable=False),
        sa.Column("scored_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scored_encounters")),
        sa.UniqueConstraint(
            "encounter_id",
            "model_version",
            name=op.f("uq_scored_encounters_encounter_id_model_version"),
        ),
    )
    op.create_index(
        "ix_scored_encounters_model_version_discharged_on",
        "scored_encounters",
        ["model_version", "discharged_on"],
    )
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.String(length=140), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("readmitted", sa.Boolean(), nullable=False),
        sa.Column("readmitted_on", sa.Date(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint(
            "encounter_id", "model_version", name=op.f("uq_outcomes_encounter_id_model_version")
        ),
    )
    op.create_table(
        "outcome_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("encounter_id", sa.String(length=140), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("readmitted", sa.Boolean(), nullable=False),
        sa.Column("readmitted_on", sa.Date(), nullable=True),
        sa.Column("previous_readmitted", sa.Boolean(), nullable=True),
        sa.Column("previous_readmitted_on", sa.Date(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcome_events")),
    )
    op.create_index(
        "ix_outcome_events_encounter", "outcome_events", ["encounter_id", "model_version"]
    )
    op.add_column("review_items", sa.Column("clinician_risk", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("clinician_risk")
    op.drop_index("ix_outcome_events_encounter", table_name="outcome_events")
    op.drop_table("outcome_events")
    op.drop_table("outcomes")
    op.drop_index(
        "ix_scored_encounters_model_version_discharged_on", table_name="scored_encounters"
    )
    op.drop_table("scored_encounters")
