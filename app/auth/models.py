"""API keys (only a sha256 of each is stored), their audit trail and review-page sessions."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class Role(StrEnum):
    """What a key may do: ehr predicts, clinician works the queue, admin manages keys."""

    EHR = "ehr"
    CLINICIAN = "clinician"
    ADMIN = "admin"


class KeyAction(StrEnum):
    """What was done to a key."""

    CREATE = "create"
    REVOKE = "revoke"


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


class KeyEvent(Base):
    """One change to a key: which key, what, by whom (an admin key or the command line), when."""

    __tablename__ = "api_key_events"
    __table_args__ = (CheckConstraint("action IN ('create', 'revoke')", name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    actor_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PageSession(Base):
    """A signed-in review-page session; the cookie names it, so sign-out can end it here."""

    __tablename__ = "page_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NOTE: a sha256 of the cookie's random session id, as keys are stored: a copy of the
    # table is no list of live sessions.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
