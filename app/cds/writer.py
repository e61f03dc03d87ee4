"""Group commits of kept RiskAssessments and of used JWT ids: every request waits for its own,
committed with the others waiting (the review queue's `GroupWriter`)."""

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from app.cds.store import Json, Pending, TokenUseKey, first_uses, keep_assessments
from app.db.session import Database
from app.review.writer import GroupWriter


class AssessmentWriter(GroupWriter[Pending, Json]):
    """Keeps RiskAssessments (start it before use)."""

    def __init__(self, database: Database, *, max_pending_writes: int = 4096) -> None:
        super().__init__(
            database,
            keep_assessments,
            max_pending_writes=max_pending_writes,
            name="assessment write",
        )

    async def keep(self, pending: Pending) -> Json:
        """The stored assessment of `pending`'s key (503 if the commit does not come in time)."""
        return await self._commit(pending)


PURGE_EVERY_S: Final = 60.0  # how often a worker deletes the records of expired tokens


class TokenUseWriter(GroupWriter[TokenUseKey, bool]):
    """Records the `jti` of each accepted EHR JWT (start it before use); one fsync on SQLite
    serves every token waiting, as it does for flagged cases."""

    def __init__(self, database: Database, *, max_pending_writes: int = 4096) -> None:
        super().__init__(
            database, self._record, max_pending_writes=max_pending_writes, name="token write"
        )
        self._purge_at = 0.0  # NOTE: the first commit of a worker purges

    async def first_use(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Whether no worker recorded this token before (503 if the commit does not come)."""
        return await self._commit(TokenUseKey(issuer, jti, expires_at))

    def _record(self, database: Database, uses: Sequence[TokenUseKey]) -> list[bool | Exception]:
        purge = time.monotonic() >= self._purge_at
        if purge:
            self._purge_at = time.monotonic() + PURGE_EVERY_S
        return first_uses(database, uses, purge)
