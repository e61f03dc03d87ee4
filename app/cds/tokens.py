"""CDS Hooks 2.0 JWTs: an EHR's signed token in place of an API key, mapped to the `ehr` role.

Verified against the configured JWKS (a file or a URL, `app.cds.jwks`): `iss` one of the
configured issuers, `aud` this service's URL plus the path called, `exp` in the future, `jti`
not used before, RS384 or ES384. Used `jti`s are kept in the database (`token_uses`, group
committed by `app.cds.writer`) until their token expires, so a replay is refused by every
worker and replica.
"""

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import jwt

from app.auth.models import Role
from app.auth.service import Principal
from app.cds.jwks import Jwks
from app.core.errors import UnauthorizedError

ALGORITHMS: Final = ["RS384", "ES384"]
MAX_LIFETIME_S: Final = 3600  # CDS Hooks asks for short-lived tokens; beyond this is refused
MAX_JTI_LENGTH: Final = 255  # the width of `token_uses.jti`
# Records a token's issuer, jti and expiry; False when any worker recorded it before.
FirstUse = Callable[[str, str, datetime], Awaitable[bool]]


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token is a JWT (three dot-separated parts), not an API key."""
    return token.count(".") == 2 and not token.startswith("trg_")


class EhrTokens:
    """Verifies EHR JWTs and records their `jti` so none is accepted twice."""

    def __init__(self, jwks: Jwks, issuers: list[str], public_url: str) -> None:
        self.jwks = jwks
        self.issuers = frozenset(issuers)
        self.public_url = public_url.rstrip("/")

    async def verify(self, token: str, path: str, first_use: FirstUse) -> Principal:
        """The EHR of a valid token for `path` (401 naming what is wrong otherwise; 503 when
        the keys or the database cannot be read)."""
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
        kid = str(header.get("kid"))
        key = await self.jwks.key(kid)
        if key is None:
            raise UnauthorizedError(f"JWT kid {kid[:64]!r} is not in the configured JWKS")
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
        await self._once(first_use, issuer, str(claims["jti"]), float(claims["exp"]))
        return Principal(key_id=None, name=issuer, role=Role.EHR)

    async def _once(self, first_use: FirstUse, issuer: str, jti: str, expires: float) -> None:
        """Refuse a `jti` any worker has recorded from `issuer` (kept until it expires)."""
        now = time.time()
        if expires - now > MAX_LIFETIME_S:
            raise UnauthorizedError(
                f"JWT exp is over {MAX_LIFETIME_S} s away; use short-lived tokens"
            )
        if len(jti) > MAX_JTI_LENGTH or "\x00" in jti:
            raise UnauthorizedError(
                f"JWT jti must be at most {MAX_JTI_LENGTH} characters, without NUL"
            )
        if not await first_use(issuer, jti, datetime.fromtimestamp(expires, UTC)):
            raise UnauthorizedError("JWT jti already used: send a new token for each call")
