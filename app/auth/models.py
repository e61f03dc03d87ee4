"""API keys: only a sha256 of each key is stored, next to a public prefix used to find it."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class Role(StrEnum):
    """What a key may do: ehr predicts, clinician works the queue, admin manages keys."""

    EHR = "ehr"
    CLINICIAN = "clinician"
    ADMIN = "admin"


class ApiKey(Base):
    """One API key."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('ehr', 'clinician', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
