"""Intake: score encounters, then commit the flagged ones to the queue before answering.

The order matters: an answer that says "flagged" is only returned once its review item is
committed, so a database outage surfaces as a 503 the EHR retries, never as a lost case.

Flagged cases of concurrent requests are committed together (group commit): the writer takes
every request waiting when it is free and stores them in one transaction (on PostgreSQL one
statement), so one commit (one fsync on SQLite) serves many requests. Each request still waits
for its own commit, and answers 503 when it does not come within the database timeout. The
commits run on a database thread (`Database.run`), off the event loop.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Final, NamedTuple, Protocol

from app.core.errors import BadRequestError, UnavailableError
from app.db.session import Database
from app.features.columns import not_applicable_reason
from app.inference.batcher import MicroBatcher
from app.inference.predictor import Prediction, Predictor, ScoringRequest
from app.review.service import Case, FlaggedCase, UnflaggedCase, store_requests
from app.review.versions import content_hash

log = logging.getLogger(__name__)
_REQUESTS_PER_COMMIT: Final = 256
_COMMITS_IN_FLIGHT: Final = 2


class Submitter(Protocol):
    """The micro-batcher as intake uses it."""

    async def submit(self, items: list[ScoringRequest]) -> list[Prediction]:
        """Score `items` in a shared batch; answers in order."""
        ...


class Incoming(NamedTuple):
    """One encounter to score: its id and its fields as received (also the encoder's record:
    an absent field reads as missing). Stored with the review item when flagged."""

    encounter_id: str
    as_received: Mapping[str, Any]


class Scored(NamedTuple):
    """One answer: the prediction and, when flagged, its review item; or, for an encounter
    the model's question does not apply to (death or hospice), why it was not scored."""

    encounter_id: str
    prediction: Prediction | None
    review_item_id: int | None
    not_applicable: str | None = None


class Intake:
    """Scores through the batcher and queues flagged cases (start it before use)."""

    def __init__(
        self,
        *,
        predictor: Predictor,
        batcher: Submitter,
        database: Database,
        min_n_samples: int,
        max_n_samples: int,
        observe: Callable[[Sequence[Prediction]], None] | None = None,
        max_pending_writes: int = 4096,
    ) -> None:
        self.predictor = predictor
        self.batcher = batcher
        self.database = database
        self.min_n_samples = min_n_samples
        self.max_n_samples = max_n_samples
        self.observe = observe
        # NOTE: one item per request (its flagged cases); no delay: whatever waits while a
        # commit runs goes into the next one. Two commits in flight: the next one starts while
        # the last one's answers wait for the busy event loop (on SQLite it then waits for the
        # write turn, not for the loop).
        self._writer: MicroBatcher[list[Case], list[int | None] | Exception] = MicroBatcher(
            partial(store_requests, database),
            max_batch_size=_REQUESTS_PER_COMMIT,
            max_batch_delay_us=0,
            max_queue_size=max_pending_writes,
            run=self._in_database,
            max_in_flight=_COMMITS_IN_FLIGHT,
            name="database write",
        )

    async def start(self) -> None:
        """Start the review-queue writer."""
        await self._writer.start()

    async def stop(self) -> None:
        """Write what is waiting, then stop the writer."""
        await self._writer.stop()

    async def score(
        self,
        encounters: Sequence[Incoming],
        *,
        n_samples: int | None,
        seed: int | None,
        actor: str,
        actor_key_id: int | None = None,
    ) -> list[Scored]:
        """Score `encounters` in order and commit the flagged ones (503 if that fails), each
        recorded as queued by the key `actor` (its name) with id `actor_key_id`."""
        n = self.predictor.default_n_samples if n_samples is None else n_samples
        if not self.min_n_samples <= n <= self.max_n_samples:
            raise BadRequestError(
                f"n_samples: must be between {self.min_n_samples} and {self.max_n_samples}"
            )
        # NOTE: answered in place, so one such row does not refuse a real batch; nothing stored.
        reasons = [not_applicable_reason(e.as_received) for e in encounters]
        applicable = [e for e, reason in zip(encounters, reasons, strict=True) if reason is None]
        scored = iter(await self._score(applicable, n, seed, actor, actor_key_id))
        return [
            next(scored) if reason is None else Scored(e.encounter_id, None, None, reason)
            for e, reason in zip(encounters, reasons, strict=True)
        ]

    async def _score(
        self,
        encounters: Sequence[Incoming],
        n: int,
        seed: int | None,
        actor: str,
        actor_key_id: int | None,
    ) -> list[Scored]:
        if not encounters:
            return []
        hashes = [content_hash(e.as_received) for e in encounters]
        _refuse_two_versions(encounters, hashes)
        requests = [ScoringRequest(e.as_received, n_samples=n, seed=seed) for e in encounters]
        predictions = await self.batcher.submit(requests)
        cases: list[Case] = [
            FlaggedCase(e.encounter_id, e.as_received, p, actor, actor_key_id, h)
            if p.flagged
            else UnflaggedCase(e.encounter_id, p.model_version, h, actor, actor_key_id)
            for e, p, h in zip(encounters, predictions, hashes, strict=True)
        ]
        if any(p.flagged for p in predictions):
            ids = await self._store(cases)
        else:
            ids = await self._supersede_or_warn(cases)
        if self.observe is not None:
            self.observe(predictions)
        return [
            Scored(e.encounter_id, p, item_id)
            for e, p, item_id in zip(encounters, predictions, ids, strict=True)
        ]

    async def _supersede_or_warn(self, cases: list[Case]) -> list[int | None]:
        """Supersede the open items of older versions of these unflagged cases."""
        try:
            await self._store(cases)
        except UnavailableError as exc:
            # NOTE: an unflagged answer is served without the database: a stale open item it
            # should supersede stays queued until the next version of its encounter is stored.
            log.warning("unflagged answers served without superseding stale items: %s", exc)
        return [None] * len(cases)

    async def _store(self, cases: list[Case]) -> list[int | None]:
        """Commit one request's flagged cases through the writer; their item ids in order."""
        # NOTE: `asyncio.timeout`, not `wait_for`, which runs the wait as a task of its own:
        # two more event-loop turns for every flagged answer, each a few ms under load.
        try:
            async with asyncio.timeout(self.database.timeout_s):
                [written] = await self._writer.submit([cases])
        except TimeoutError as exc:
            raise UnavailableError("the database did not answer in time; retry shortly") from exc
        if isinstance(written, Exception):
            raise written
        return written

    async def _in_database(self, requests: list[list[Case]]) -> list[list[int | None] | Exception]:
        return await self.database.run(store_requests, self.database, requests)


def _refuse_two_versions(encounters: Sequence[Incoming], hashes: Sequence[str]) -> None:
    """422 when one request sends two different contents for one encounter_id."""
    first: dict[str, int] = {}
    for index, (encounter, digest) in enumerate(zip(encounters, hashes, strict=True)):
        seen = first.setdefault(encounter.encounter_id, index)
        if hashes[seen] != digest:
            raise BadRequestError(
                f"encounters[{seen}] and encounters[{index}]: encounter_id "
                f"{encounter.encounter_id!r} sent twice with different contents; send one version"
            )
