"""Group commits of kept RiskAssessments: every hook answer waits for its own, in one commit
with the others waiting (as `app.review.writer` commits flagged cases)."""

import asyncio
from functools import partial
from typing import Final

from app.cds.store import Json, Pending, keep_assessments
from app.core.errors import UnavailableError
from app.db.session import Database
from app.inference.batcher import MicroBatcher

_PER_COMMIT: Final = 256


class AssessmentWriter:
    """Keeps RiskAssessments through a group-commit batcher (start it before use)."""

    def __init__(self, database: Database, *, max_pending_writes: int = 4096) -> None:
        self.database = database
        self._batcher: MicroBatcher[Pending, Json | Exception] = MicroBatcher(
            partial(keep_assessments, database),
            max_batch_size=_PER_COMMIT,
            max_batch_delay_us=0,
            max_queue_size=max_pending_writes,
            run=self._in_database,
            max_in_flight=2,
            name="assessment write",
        )

    async def start(self) -> None:
        """Start taking commits."""
        await self._batcher.start()

    async def stop(self) -> None:
        """Commit what is waiting, then stop."""
        await self._batcher.stop()

    async def keep(self, pending: Pending) -> Json:
        """The stored assessment of `pending`'s key (503 if the commit does not come in time)."""
        try:
            async with asyncio.timeout(self.database.timeout_s):
                [kept] = await self._batcher.submit([pending])
        except TimeoutError as exc:
            raise UnavailableError("the database did not answer in time; retry shortly") from exc
        if isinstance(kept, Exception):
            raise kept
        return kept

    async def _in_database(self, pending: list[Pending]) -> list[Json | Exception]:
        return await self.database.run(keep_assessments, self.database, pending)
