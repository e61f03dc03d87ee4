"""What the outcome domain keeps: each scored encounter, its outcome and the audit trail."""

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Double, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class ScoredEncounter(Base):
    """The latest answered score of one encounter by one model version (upserted per answer)."""

    __tablename__ = "scored_encounters"
    __table_args__ = (
        UniqueConstraint("encounter_id", "model_version"),
        Index("ix_scored_encounters_model_version_discharged_on", "model_version", "discharged_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[str] = mapped_column(String(140))
    model_version: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Double)  # calibrated: exactly the answered float
    raw_probability: Mapped[float] = mapped_column(Double)  # the MC mean Platt is fitted on
    std: Mapped[float] = mapped_column(Double)
    flagged: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[str] = mapped_column(String(200))  # a JSON list
    age: Mapped[str | None] = mapped_column(String(16), default=None)
    gender: Mapped[str | None] = mapped_column(String(32), default=None)
    race: Mapped[str | None] = mapped_column(String(32), default=None)
    admission_type_id: Mapped[str | None] = mapped_column(String(8), default=None)
    discharged_on: Mapped[date] = mapped_column(Date)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutcomeRecord(Base):
    """Whether a scored encounter was readmitted within 30 days, as the EHR last reported it."""

    __tablename__ = "outcomes"
    __table_args__ = (UniqueConstraint("encounter_id", "model_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[str] = mapped_column(String(140))
    model_version: Mapped[str] = mapped_column(String(64))
    readmitted: Mapped[bool] = mapped_column(Boolean)
    readmitted_on: Mapped[date | None] = mapped_column(Date, default=None)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(200))  # the key's name


class OutcomeEvent(Base):
    """One recording or correction of an outcome (append-only)."""

    __tablename__ = "outcome_events"
    __table_args__ = (Index("ix_outcome_events_encounter", "encounter_id", "model_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    encounter_id: Mapped[str] = mapped_column(String(140))
    model_version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # 'recorded' | 'corrected'
    readmitted: Mapped[bool] = mapped_column(Boolean)
    readmitted_on: Mapped[date | None] = mapped_column(Date, default=None)
    previous_readmitted: Mapped[bool | None] = mapped_column(Boolean, default=None)
    previous_readmitted_on: Mapped[date | None] = mapped_column(Date, default=None)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
