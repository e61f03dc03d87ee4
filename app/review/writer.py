"""The review-queue writer: group commits of flagged cases, each request waiting for its own.

An answer that says "flagged" is only returned once its review item is committed, so a database
outage surfaces as a 503 the EHR retries, never as a lost case. Flagged cases of concurrent
requests are committed together: the writer takes every request waiting when it is free and
stores them in one transaction (on PostgreSQL one statement), so one commit (one fsync on
SQLite) serves many requests. Commits run on the database's threads.
"""

import asyncio
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from app.core.errors import UnavailableError
from app.db.session import Database
from app.inference.batcher import MicroBatcher
from app.review.cases import Case
from app.review.service import store_requests

_REQUESTS_PER_COMMIT: Final = 256
_COMMITS_IN_FLIGHT: Final = 2
T = TypeVar("T")
R = TypeVar("R")


class GroupWriter(Generic[T, R]):
    """Commits items through a group-commit batcher (start it before use): each caller waits
    for its own item, committed with every other item waiting when the database is free."""

    def __init__(
        self,
        database: Database,
        store: Callable[[Database, list[T]], list[R | Exception]],
        *,
        max_pending_writes: int,
        name: str,
    ) -> None:
        self.database = database
        self._store = store
        # NOTE: no delay: whatever waits while a commit runs goes into the next one. Two
        # commits in flight: the next one starts while the last one's answers wait for the busy
        # event loop.
        self._batcher: MicroBatcher[T, R | Exception] = MicroBatcher(
            lambda items: store(self.database, items),
            max_batch_size=_REQUESTS_PER_COMMIT,
            max_batch_delay_us=0,
            max_queue_size=max_pending_writes,
            run=self._in_database,
            max_in_flight=_COMMITS_IN_FLIGHT,
            name=name,
        )

    async def start(self) -> None:
        """Start taking commits."""
        await self._batcher.start()

    async def stop(self) -> None:
        """Commit what is waiting, then stop."""
        await self._batcher.stop()

    async def _commit(self, item: T) -> R:
        """Commit `item`; 503 when the commit does not come within the database timeout, and
        the item's own error (e.g. a value the database refuses) as is."""
        # NOTE: `asyncio.timeout`, not `wait_for`, which runs the wait as a task of its own.
        try:
            async with asyncio.timeout(self.database.timeout_s):
                [written] = await self._batcher.submit([item])
        except TimeoutError as exc:
            raise UnavailableError("the database did not answer in time; retry shortly") from exc
        if isinstance(written, Exception):
            raise written
        return written

    async def _in_database(self, items: list[T]) -> list[R | Exception]:
        return await self.database.run(self._store, self.database, items)


class ReviewWriter(GroupWriter[list[Case], list[int | None]]):
    """Commits each request's cases (one item per request)."""

    def __init__(self, database: Database, *, max_pending_writes: int = 4096) -> None:
        super().__init__(
            database, store_requests, max_pending_writes=max_pending_writes, name="database write"
        )

    async def write(self, cases: list[Case]) -> list[int | None]:
        """Commit one request's cases; their item ids in order (None for an unflagged case).

        Raises `UnavailableError` (503) when the commit does not come within the database
        timeout, and a case's own error (e.g. a value the database refuses) as is.
        """
        return await self._commit(cases)
