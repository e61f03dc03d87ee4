"""What the CDS path keeps: each RiskAssessment it emitted, the EHR's feedback on cards, and
the JWT ids already used."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class RiskAssessmentRecord(Base):
    """One emitted RiskAssessment, so a retried hook and a pulling EHR get the same resource."""

    __tablename__ = "risk_assessments"
    # NOTE: the idempotency key is the review queue's: the same content scored by the same model
    # is the same assessment, whatever the hook instance.
    __table_args__ = (UniqueConstraint("encounter_id", "model_version", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), unique=True)  # also the card's uuid
    encounter_id: Mapped[str] = mapped_column(String(128), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    review_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("review_items.id", ondelete="SET NULL"), default=None
    )
    resource: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CardFeedback(Base):
    """The EHR's word on one card: accepted or overridden, and why (append-only)."""

    __tablename__ = "cds_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    card_uuid: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    override_reason: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    outcome_at: Mapped[datetime] = mapped_column(UTCDateTime())
    review_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("review_items.id", ondelete="SET NULL"), default=None
    )
    actor: Mapped[str] = mapped_column(String(200))
    actor_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TokenUse(Base):
    """One EHR JWT accepted: its `jti` is refused again, by every worker, until it expires."""

    __tablename__ = "token_uses"

    issuer: Mapped[str] = mapped_column(String(255), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
