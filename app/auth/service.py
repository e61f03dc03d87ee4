"""API key issue, verification, listing and revocation: keys are `trg_<prefix>_<secret>`.

Only a sha256 of each key is stored. Every creation and revocation is audited in
`api_key_events` with who did it: an admin key, or the command line and its OS user.
"""

import getpass
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, text, update
from sqlalchemy.orm import Session

from app.auth.models import ApiKey, KeyAction, KeyEvent, Role
from app.auth.sessions import end_sessions_of
from app.core.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)
from app.db.base import utcnow

KEY_SCHEME = "trg"
MAX_NAME = 200


def key_label(name: str, key_id: int | None) -> str:
    """How a key is shown everywhere: 'Dr Ada Rivera (key #3)', so equal names stay apart."""
    return name if key_id is None else f"{name} (key #{key_id})"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (what owns cases and is audited), name and role."""

    key_id: int | None  # None: an EHR known by its JWT issuer, not by a key
    name: str
    role: Role

    @property
    def label(self) -> str:
        """The key as shown to people: name and id."""
        return key_label(self.name, self.key_id)

    def require(self, *roles: Role) -> "Principal":
        """Return self if the role is one of `roles`, else raise 403."""
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise ForbiddenError(
                f"this endpoint needs the role {allowed}; the key is {self.role.value}"
            )
        return self


@dataclass(frozen=True)
class Actor:
    """Who changes a key, for its audit trail: an admin key, or the command line."""

    name: str
    key_id: int | None = None

    @classmethod
    def of(cls, principal: Principal) -> "Actor":
        """The admin key behind a request."""
        return cls(principal.name, principal.key_id)

    @classmethod
    def cli(cls) -> "Actor":
        """The command line, with the OS user running it where known: 'cli:alice'."""
        try:
            return cls(f"cli:{getpass.getuser()}"[:MAX_NAME])
        except (KeyError, OSError):  # NOTE: no user name in a bare container
            return cls("cli")


def hash_key(key: str) -> str:
    """Hex sha256 of a key (keys are 256-bit random, so no salt or slow hash is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def clean_name(name: str) -> str:
    """The name without surrounding blanks; 422 when empty, too long or holding control codes."""
    name = name.strip()
    if not name:
        raise BadRequestError("name: give the person or system that will hold the key")
    if len(name) > MAX_NAME:
        raise BadRequestError(f"name: at most {MAX_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise BadRequestError("name: control characters are not allowed")
    return name


def create_key(
    *, session: Session, name: str, role: Role, actor: Actor | None = None
) -> tuple[ApiKey, str]:
    """Store a new key's hash; return the row and the plain key (shown once, never stored).

    409 when a live key of the same role already has the name: two clinicians called alike
    would be told apart only by key number. `actor` defaults to the command line.
    """
    name = clean_name(name)
    _lock_name(session, name, role)
    _refuse_taken(session, name, role)  # NOTE: before the insert, so a refusal uses no id
    prefix = secrets.token_hex(6)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(name=name, role=role.value, prefix=prefix, key_hash=hash_key(key))
    session.add(row)
    session.flush()
    # NOTE: checked after the insert, which on SQLite holds the write lock until commit, so
    # a racing creation waits and then sees this key (PostgreSQL: see `_lock_name`).
    try:
        _refuse_taken(session, name, role, other_than=row.id)
    except ConflictError:
        session.rollback()
        raise
    _audit(session, row.id, KeyAction.CREATE, actor or Actor.cli())
    session.commit()
    return row, key


def _refuse_taken(session: Session, name: str, role: Role, *, other_than: int = 0) -> None:
    """409 when another live key of `role` is called `name`."""
    taken = session.scalars(
        select(ApiKey.id).where(
            ApiKey.name == name,
            ApiKey.role == role.value,
            ApiKey.revoked_at.is_(None),
            ApiKey.id != other_than,
        )
    ).first()
    if taken is not None:
        raise ConflictError(
            f"a live {role.value} key named {name!r} already exists (key #{taken}); "
            "choose another name, or revoke that key first"
        )


def _lock_name(session: Session, name: str, role: Role) -> None:
    """On PostgreSQL, make creations of one name in one role take turns (until commit)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"api key name\0{role.value}\0{name}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


def list_keys(*, session: Session) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def get_key(*, session: Session, key_id: int) -> ApiKey:
    """The key with `key_id`, or 404."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFoundError(f"API key #{key_id} does not exist")
    return row


def key_events(*, session: Session, key_id: int) -> list[KeyEvent]:
    """The audit trail of one key, oldest first."""
    query = select(KeyEvent).where(KeyEvent.key_id == key_id).order_by(KeyEvent.id)
    return list(session.scalars(query))


def revoke_key(*, session: Session, key_id: int, actor: Actor) -> ApiKey:
    """Revoke a live key and end its review-page sessions; 404 if unknown, 409 if revoked.

    A conditional update, so two admins revoking at once record one revocation.
    """
    now = utcnow()
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        row = get_key(session=session, key_id=key_id)
        when = f"{row.revoked_at:%Y-%m-%d %H:%M} UTC" if row.revoked_at else "an earlier moment"
        raise ConflictError(f"API key #{key_id} is already revoked (since {when})")
    end_sessions_of(session=session, key_id=key_id, now=now)
    _audit(session, key_id, KeyAction.REVOKE, actor, at=now)
    session.commit()
    row = get_key(session=session, key_id=key_id)
    session.refresh(row)
    return row


def _audit(
    session: Session, key_id: int, action: KeyAction, actor: Actor, *, at: datetime | None = None
) -> None:
    session.add(
        KeyEvent(
            key_id=key_id,
            action=action.value,
            actor=actor.name,
            actor_key_id=actor.key_id,
            at=at or utcnow(),
        )
    )


def authenticate(*, session: Session | Connection, key: str | None) -> Principal:
    """Find the live key matching `key`, comparing hashes in constant time; 401 otherwise."""
    if not key:
        raise UnauthorizedError("missing API key: send 'Authorization: Bearer <key>'")
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME:
        raise UnauthorizedError("invalid API key")
    # NOTE: plain columns, not an ORM entity: this runs on every API request.
    columns = (ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.key_hash, ApiKey.revoked_at)
    row = session.execute(select(*columns).where(ApiKey.prefix == parts[1])).one_or_none()
    # NOTE: hash and compare even when no row matched, so timing does not reveal valid prefixes.
    stored = row.key_hash if row is not None else "0" * 64
    if not hmac.compare_digest(stored, hash_key(key)) or row is None or row.revoked_at is not None:
        raise UnauthorizedError("invalid API key")
    return Principal(key_id=row.id, name=row.name, role=Role(row.role))
