"""A short-lived, in-process cache of verified API keys.

Every API request looks its key up in the database (an ORM query, a thread hop and a pooled
connection): about half the cost of a single-encounter /predict. With
`TRIAGE_AUTH__KEY_CACHE_TTL_S` above 0 a verified key is remembered for that many seconds, at
two costs: a revoked key keeps working for at most that long in each worker, and requests that
need no database write (unflagged predictions) are still answered while the database is down
(a flagged case still gets 503 until it can be stored: no 200 for an unstored flag). It is on
(30 s) by default; 0 turns it off. Only successes are cached, so a new key works at once and a
bad key always reaches the database's constant-time check.

A key revoked through `POST /admin/keys/{id}/revoke` is dropped at once from the cache of the
process that served the revocation; the other serving processes (all of them, after
`triage apikey revoke`) stop accepting it within the TTL, since an entry is never extended.

Entries are keyed by the key's sha256, never the key itself. A dict lookup by that digest leaks
nothing useful through timing: an attacker cannot choose inputs that collide with a stored digest.
"""

import time
from collections import OrderedDict

from app.auth.service import Principal

DEFAULT_MAX_ENTRIES = 4096


class KeyCache:
    """Principals of recently verified keys, by key digest, each for `ttl_s` seconds."""

    def __init__(self, ttl_s: float, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._generation = 0

    @property
    def generation(self) -> int:
        """A count of `forget` and `clear` calls: read it before verifying a key, for `put`."""
        return self._generation

    @property
    def enabled(self) -> bool:
        """Whether verified keys are remembered at all."""
        return self.ttl_s > 0

    def get(self, digest: str) -> Principal | None:
        """The principal of a key verified less than `ttl_s` ago, else None."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, principal = entry
        if time.monotonic() >= expires:
            self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: str, principal: Principal, *, generation: int | None = None) -> None:
        """Remember a key the database has just verified.

        With `generation` (read before the database was asked), nothing is stored when a key
        was forgotten meanwhile: that answer may predate the revocation.
        """
        if not self.enabled or (generation is not None and generation != self._generation):
            return
        self._entries[digest] = (time.monotonic() + self.ttl_s, principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key_id: int) -> None:
        """Drop the entries of one key (it was just revoked through this process)."""
        self._generation += 1
        for digest in [d for d, (_, p) in self._entries.items() if p.key_id == key_id]:
            self._entries.pop(digest, None)

    def clear(self) -> None:
        """Forget every key (for example after revoking one in this process)."""
        self._generation += 1
        self._entries.clear()
