"""CDS Hooks 2.0 JWTs: an EHR's signed token in place of an API key, mapped to the `ehr` role.

Verified against the configured JWKS: `iss` one of the configured issuers, `aud` this service's
URL plus the path called, `exp` in the future, `jti` not seen before, RS384 or ES384. Replays
are refused per worker process (in memory, until the token expires): with several workers a
token replayed to another worker within its lifetime is not caught.
"""

import heapq
import threading
import time
from pathlib import Path
from typing import Final

import jwt

from app.auth.models import Role
from app.auth.service import Principal
from app.core.errors import UnauthorizedError

ALGORITHMS: Final = ["RS384", "ES384"]
MAX_LIFETIME_S: Final = 3600  # CDS Hooks asks for short-lived tokens; beyond this is refused


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token is a JWT (three dot-separated parts), not an API key."""
    return token.count(".") == 2 and not token.startswith("trg_")


class EhrTokens:
    """Verifies EHR JWTs and remembers their `jti` until they expire."""

    def __init__(self, jwks_path: Path, issuers: list[str], public_url: str) -> None:
        self.keys = jwt.PyJWKSet.from_json(jwks_path.read_text())
        self.issuers = frozenset(issuers)
        self.public_url = public_url.rstrip("/")
        self._seen: dict[tuple[str, str], float] = {}
        self._expiries: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def verify(self, token: str, path: str) -> Principal:
        """The EHR of a valid token for `path` (401 naming what is wrong otherwise)."""
        try:
            header = jwt.get_unverified_header(token)
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"the bearer JWT cannot be read: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise UnauthorizedError(
                f"JWT alg must be one of {ALGORITHMS}, not {header.get('alg')!r}"
            )
        if issuer not in self.issuers:
            raise UnauthorizedError(
                f"JWT issuer {str(issuer)[:200]!r} is not known to this service"
            )
        try:
            key = self.keys[str(header.get("kid"))]
        except KeyError:
            raise UnauthorizedError(
                f"JWT kid {str(header.get('kid'))[:64]!r} is not in the configured JWKS"
            ) from None
        audience = self.public_url + path
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=audience,
                issuer=issuer,
                options={"require": ["iss", "aud", "exp", "jti"]},
            )
        except jwt.InvalidAudienceError:
            raise UnauthorizedError(f"JWT aud must be {audience!r}") from None
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"JWT refused: {exc}") from None
        self._once(issuer, str(claims["jti"]), float(claims["exp"]))
        return Principal(key_id=None, name=issuer, role=Role.EHR)

    def _once(self, issuer: str, jti: str, expires: float) -> None:
        """Refuse a `jti` this worker has seen from `issuer` (remembered until it expires)."""
        now = time.time()
        if expires - now > MAX_LIFETIME_S:
            raise UnauthorizedError(
                f"JWT exp is over {MAX_LIFETIME_S} s away; use short-lived tokens"
            )
        with self._lock:
            while self._expiries and self._expiries[0][0] < now:
                _, old = heapq.heappop(self._expiries)
                self._seen.pop(old, None)
            if (issuer, jti) in self._seen:
                raise UnauthorizedError("JWT jti already used: send a new token for each call")
            self._seen[(issuer, jti)] = expires
            heapq.heappush(self._expiries, (expires, (issuer, jti)))
