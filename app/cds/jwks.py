"""The EHRs' signing keys: a JWKS file read at start-up, or a JWKS URL read and cached.

A URL's keys are used for `jwks_cache_s`, then read again; a JWT naming a `kid` the cached set
lacks (a key rotated in) reads it again at once, but never twice within `jwks_refetch_min_s`.
Should a read fail, the keys read before stay in use; with none, the caller gets a 503.
"""

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Final, Protocol

import httpx
import jwt

from app.cds.fetch import ClientFactory, default_client
from app.core.errors import UnavailableError

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S: Final = 5.0  # one read of the JWKS URL; a JWT waits for it
RETRY_AFTER_S: Final = 5


class Jwks(Protocol):
    """Where the keys come from."""

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`, or None when the JWKS has none of that name."""
        ...


def _find(keys: jwt.PyJWKSet | None, kid: str) -> jwt.PyJWK | None:
    if keys is None:
        return None
    try:
        return keys[kid]
    except KeyError:
        return None


class FileJwks:
    """A JWKS file, read once (restart to rotate keys)."""

    def __init__(self, path: Path) -> None:
        self.keys = jwt.PyJWKSet.from_json(path.read_text())

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`, if the file has it."""
        return _find(self.keys, kid)


class JwksReadError(Exception):
    """The JWKS URL gave no usable key set."""


class UrlJwks:
    """A JWKS URL, read when first needed, again when stale or when a kid is unknown."""

    def __init__(
        self,
        url: str,
        *,
        cache_s: float,
        refetch_min_s: float,
        client_factory: ClientFactory = default_client,
    ) -> None:
        self.url = url
        self.cache_s = cache_s
        self.refetch_min_s = refetch_min_s
        self.client_factory = client_factory
        self._keys: jwt.PyJWKSet | None = None
        self._read_at = -math.inf
        self._tried_at = -math.inf
        self._error = "not read yet"
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid` (503 naming the URL when no key set could ever be read)."""
        stale = time.monotonic() - self._read_at >= self.cache_s
        if stale or _find(self._keys, kid) is None:
            await self._refresh()
        if self._keys is None:
            raise UnavailableError(
                f"the EHR signing keys at {self.url} cannot be read ({self._error}); retry shortly",
                RETRY_AFTER_S,
            )
        return _find(self._keys, kid)

    async def _refresh(self) -> None:
        """Read the URL unless it was tried within `refetch_min_s` (by this or a waiting call)."""
        async with self._lock:
            now = time.monotonic()
            if now - self._tried_at < self.refetch_min_s:
                return
            self._tried_at = now
            try:
                self._keys = await self._read()
            except JwksReadError as exc:
                self._error = str(exc)
                kept = "no keys to use" if self._keys is None else "keeping the keys read before"
                log.warning("JWKS %s not read (%s); %s", self.url, exc, kept)
                return
            self._read_at = now

    async def _read(self) -> jwt.PyJWKSet:
        try:
            async with self.client_factory(FETCH_TIMEOUT_S) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise JwksReadError(f"unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise JwksReadError(f"answered {response.status_code}")
        try:
            body = response.json()
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            return jwt.PyJWKSet.from_dict(body)
        except (ValueError, KeyError, jwt.PyJWTError) as exc:
            raise JwksReadError(f"not a JWKS with a usable key: {exc}") from exc
