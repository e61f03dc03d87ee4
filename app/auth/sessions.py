"""Server-side review-page sessions: the signed cookie names one, the database says if it lives.

A session starts at sign-in and ends at sign-out, at its expiry, or when its key is revoked;
a copy of the cookie dies with it. Only a sha256 of the cookie's random session id is stored.
"""

import hashlib
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.auth.models import ApiKey, PageSession
from app.db.base import utcnow


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(*, session: Session, key_id: int, session_id: str, expires: int) -> None:
    """Record a signed-in session of `key_id` until `expires` (Unix seconds); commit.

    Sessions that ended by expiry are deleted on the way: nothing needs them any more.
    """
    now = utcnow()
    session.execute(delete(PageSession).where(PageSession.expires_at <= now))
    session.add(
        PageSession(
            token_hash=_digest(session_id),
            key_id=key_id,
            created_at=now,
            expires_at=datetime.fromtimestamp(expires, UTC),
        )
    )
    session.commit()


def live_key(*, session: Session, key_id: int, session_id: str) -> ApiKey | None:
    """The key of the live session `session_id` of `key_id`; None once it or its key ended."""
    query = (
        select(ApiKey)
        .join(PageSession, PageSession.key_id == ApiKey.id)
        .where(
            PageSession.token_hash == _digest(session_id),
            PageSession.key_id == key_id,
            PageSession.revoked_at.is_(None),
            PageSession.expires_at > utcnow(),
            ApiKey.revoked_at.is_(None),
        )
    )
    return session.scalars(query).first()


def end_session(*, session: Session, session_id: str) -> None:
    """End one session (sign-out); commit. Ending an ended session changes nothing."""
    session.execute(
        update(PageSession)
        .where(PageSession.token_hash == _digest(session_id), PageSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    session.commit()


def end_sessions_of(*, session: Session, key_id: int, now: datetime) -> None:
    """End every session of `key_id` (its key is being revoked); the caller commits."""
    session.execute(
        update(PageSession)
        .where(PageSession.key_id == key_id, PageSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
