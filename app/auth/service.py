"""API key issue and verification: keys are `trg_<prefix>_<secret>`; only a sha256 is stored."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from app.auth.models import ApiKey, Role
from app.core.errors import ForbiddenError, UnauthorizedError

KEY_SCHEME = "trg"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (recorded as the actor) and its role."""

    key_id: int
    name: str
    role: Role

    def require(self, *roles: Role) -> "Principal":
        """Return self if the role is one of `roles`, else raise 403."""
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise ForbiddenError(
                f"this endpoint needs the role {allowed}; the key is {self.role.value}"
            )
        return self


def hash_key(key: str) -> str:
    """Hex sha256 of a key (keys are 256-bit random, so no salt or slow hash is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(*, session: Session, name: str, role: Role) -> tuple[ApiKey, str]:
    """Store a new key's hash; return the row and the plain key (shown once, never stored)."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(name=name, role=role.value, prefix=prefix, key_hash=hash_key(key))
    session.add(row)
    session.commit()
    return row, key


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
