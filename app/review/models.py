"""The review queue: flagged cases and the audit trail of every status change."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Double,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class ReviewStatus(StrEnum):
    """Where a case stands: pending -> in_review -> resolved, or superseded by a newer version."""

    PENDING = "pending"
    IN_REVIEW = "in_review"
    RESOLVED = "resolved"
    SUPERSEDED = "superseded"


OPEN_STATUSES: Final = (ReviewStatus.PENDING.value, ReviewStatus.IN_REVIEW.value)
_OPEN: Final = text("status IN ('pending', 'in_review')")


class Outcome(StrEnum):
    """The clinician's conclusion on a case."""

    AGREE = "agree"
    OVERRIDE = "override"
    NEEDS_FOLLOW_UP = "needs_follow_up"


class ReviewItem(Base):
    """A flagged prediction waiting for (or under, or after) clinician review."""

    __tablename__ = "review_items"
    __table_args__ = (
        # NOTE: the idempotency key: a retried request finds the row instead of adding one; a
        # changed encounter is a new version, and at most one version per encounter is open.
        UniqueConstraint("encounter_id", "model_version", "content_hash"),
        Index(
            "uq_review_items_open_encounter",
            "encounter_id",
            "model_version",
            unique=True,
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        CheckConstraint(
            "status IN ('pending', 'in_review', 'resolved', 'superseded')", name="status"
        ),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('agree', 'override', 'needs_follow_up')", name="outcome"
        ),
        Index("ix_review_items_status_std", "status", "std", "id"),
        Index("ix_review_items_status_created_at", "status", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    encounter: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical encounter
    probability: Mapped[float] = mapped_column(Float)
    std: Mapped[float] = mapped_column(Float)
    # The calibrated 5th-95th percentile band of the passes; null on items stored before it.
    band_low: Mapped[float | None] = mapped_column(Float, default=None)
    band_high: Mapped[float | None] = mapped_column(Float, default=None)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    threshold: Mapped[float] = mapped_column(Float)
    n_samples: Mapped[int] = mapped_column()
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=ReviewStatus.PENDING.value)
    assignee: Mapped[str | None] = mapped_column(String(200), default=None)  # the key's name
    assignee_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    # The clinician's own estimate of the readmission risk when resolving; null when not given.
    clinician_risk: Mapped[float | None] = mapped_column(Double, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ReviewEvent(Base):
    """One status change of a review item: who, when, from what to what (append-only)."""

    __tablename__ = "review_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("review_items.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))  # the key's name (or who else acted)
    actor_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
