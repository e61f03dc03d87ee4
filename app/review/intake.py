"""Intake: score encounters, then commit the flagged ones to the queue before answering.

The order matters: an answer that says "flagged" is only returned once its review item is
committed, so a database outage surfaces as a 503 the EHR retries, never as a lost case.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.errors import BadRequestError
from app.db.session import Database
from app.inference.predictor import Prediction, Predictor, ScoringRequest
from app.review.service import FlaggedCase, queue_flagged


class Submitter(Protocol):
    """The micro-batcher as intake uses it."""

    async def submit(self, items: list[ScoringRequest]) -> list[Prediction]:
        """Score `items` in a shared batch; answers in order."""
        ...


@dataclass(frozen=True)
class Incoming:
    """One encounter to score: its id, the fields as received and the encoder's record."""

    encounter_id: str
    as_received: dict[str, Any]
    record: dict[str, Any]


@dataclass(frozen=True)
class Scored:
    """One answer: the prediction and, when flagged, its review item."""

    encounter_id: str
    prediction: Prediction
    review_item_id: int | None


class Intake:
    """Scores through the batcher and queues flagged cases."""

    def __init__(
        self,
        *,
        predictor: Predictor,
        batcher: Submitter,
        database: Database,
        min_n_samples: int,
        max_n_samples: int,
        observe: Callable[[Sequence[Prediction]], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.batcher = batcher
        self.database = database
        self.min_n_samples = min_n_samples
        self.max_n_samples = max_n_samples
        self.observe = observe

    async def score(
        self, encounters: Sequence[Incoming], *, n_samples: int | None, seed: int | None, actor: str
    ) -> list[Scored]:
        """Score `encounters` in order and commit the flagged ones (503 if that fails)."""
        n = self.predictor.default_n_samples if n_samples is None else n_samples
        if not self.min_n_samples <= n <= self.max_n_samples:
            raise BadRequestError(
                f"n_samples: must be between {self.min_n_samples} and {self.max_n_samples}"
            )
        requests = [ScoringRequest(record=e.record, n_samples=n, seed=seed) for e in encounters]
        predictions = await self.batcher.submit(requests)
        flagged = [
            FlaggedCase(e.encounter_id, e.as_received, p)
            for e, p in zip(encounters, predictions, strict=True)
            if p.flagged
        ]
        ids: list[int] = []
        if flagged:
            ids = await self.database.run(self._queue, flagged, actor)
        if self.observe is not None:
            self.observe(predictions)
        item_ids = iter(ids)
        return [
            Scored(e.encounter_id, p, next(item_ids) if p.flagged else None)
            for e, p in zip(encounters, predictions, strict=True)
        ]

    def _queue(self, cases: list[FlaggedCase], actor: str) -> list[int]:
        with self.database.writing(), self.database.session() as session:
            return queue_flagged(session=session, cases=cases, actor=actor)
