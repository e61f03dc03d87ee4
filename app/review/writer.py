"""The review-queue writer: group commits of flagged cases, each request waiting for its own.

An answer that says "flagged" is only returned once its review item is committed, so a database
outage surfaces as a 503 the EHR retries, never as a lost case. Flagged cases of concurrent
requests are committed together: the writer takes every request waiting when it is free and
stores them in one transaction (on PostgreSQL one statement), so one commit (one fsync on
SQLite) serves many requests. Commits run on the database's threads.
"""

import asyncio
from functools import partial
from typing import Final

from app.core.errors import UnavailableError
from app.db.session import Database
from app.inference.batcher import MicroBatcher
from app.review.cases import Case
from app.review.service import store_requests

_REQUESTS_PER_COMMIT: Final = 256
_COMMITS_IN_FLIGHT: Final = 2


class ReviewWriter:
    """Commits each request's cases through a group-commit batcher (start it before use)."""

    def __init__(self, database: Database, *, max_pending_writes: int = 4096) -> None:
        self.database = database
        # NOTE: one item per request (its cases); no delay: whatever waits while a commit runs
        # goes into the next one. Two commits in flight: the next one starts while the last
        # one's answers wait for the busy event loop.
        self._batcher: MicroBatcher[list[Case], list[int | None] | Exception] = MicroBatcher(
            partial(store_requests, database),
            max_batch_size=_REQUESTS_PER_COMMIT,
            max_batch_delay_us=0,
            max_queue_size=max_pending_writes,
            run=self._in_database,
            max_in_flight=_COMMITS_IN_FLIGHT,
            name="database write",
        )

    async def start(self) -> None:
        """Start taking commits."""
        await self._batcher.start()

    async def stop(self) -> None:
        """Commit what is waiting, then stop."""
        await self._batcher.stop()

    async def write(self, cases: list[Case]) -> list[int | None]:
        """Commit one request's cases; their item ids in order (None for an unflagged case).

        Raises `UnavailableError` (503) when the commit does not come within the database
        timeout, and a case's own error (e.g. a value the database refuses) as is.
        """
        # NOTE: `asyncio.timeout`, not `wait_for`, which runs the wait as a task of its own.
        try:
            async with asyncio.timeout(self.database.timeout_s):
                [written] = await self._batcher.submit([cases])
        except TimeoutError as exc:
            raise UnavailableError("the database did not answer in time; retry shortly") from exc
        if isinstance(written, Exception):
            raise written
        return written

    async def _in_database(self, requests: list[list[Case]]) -> list[list[int | None] | Exception]:
        return await self.database.run(store_requests, self.database, requests)
