"""The data plane: score encounters, then have the review queue commit the flagged ones.

Every answer is kept in scored_encounters by the same commit (`app.outcomes.scored`).

Transport-free (MLServer's data plane): the HTTP routes, and later other transports, translate
their requests into `score` calls and its `Scored` answers back. The order matters: a flagged
answer is returned only after its review item is committed (`app.review.writer`).
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from app.core.errors import BadRequestError, UnavailableError
from app.features.columns import not_applicable_reason
from app.inference.prediction import Prediction
from app.inference.predictor import Predictor, ScoringRequest
from app.outcomes.scored import scored_row
from app.review.cases import Case, FlaggedCase, UnflaggedCase
from app.review.versions import content_hash

log = logging.getLogger(__name__)


class Submitter(Protocol):
    """The micro-batcher as the data plane uses it."""

    async def submit(self, items: list[ScoringRequest]) -> list[Prediction]:
        """Score `items` in a shared batch; answers in order."""
        ...


class Enqueuer(Protocol):
    """The review queue's writer as the data plane uses it."""

    async def write(self, cases: list[Case]) -> list[int | None]:
        """Commit one request's cases; their item ids in order."""
        ...


class Incoming(NamedTuple):
    """One encounter to score: its id and its fields as received (also the encoder's record:
    an absent field reads as missing). Stored with the review item when flagged."""

    encounter_id: str
    as_received: Mapping[str, Any]


class Scored(NamedTuple):
    """One answer: the prediction, the content hash it was stored under and, when flagged, its
    review item; or, for an encounter the model's question does not apply to (death or
    hospice), why it was not scored."""

    encounter_id: str
    prediction: Prediction | None
    review_item_id: int | None
    not_applicable: str | None = None
    content_hash: str | None = None


class ScoringService:
    """Scores through the batcher and queues flagged cases through the review writer."""

    def __init__(
        self,
        *,
        predictor: Predictor,
        batcher: Submitter,
        review: Enqueuer,
        observe: Callable[[Sequence[Prediction]], None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.batcher = batcher
        self.review = review
        self.observe = observe

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
        recorded as queued by the key `actor` (its name) with id `actor_key_id`. `n_samples`
        is taken as given: its configured bounds are the transport's to check."""
        n = self.predictor.default_n_samples if n_samples is None else n_samples
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
            FlaggedCase(e.encounter_id, e.as_received, p, actor, actor_key_id, h, row)
            if p.flagged
            else UnflaggedCase(e.encounter_id, p.model_version, h, actor, actor_key_id, row)
            for e, p, h in zip(encounters, predictions, hashes, strict=True)
            for row in [scored_row(e.encounter_id, e.as_received, p)]
        ]
        if any(p.flagged for p in predictions):
            ids = await self.review.write(cases)
        else:
            ids = await self._supersede_or_warn(cases)
        if self.observe is not None:
            self.observe(predictions)
        return [
            Scored(e.encounter_id, p, item_id, content_hash=h)
            for e, p, item_id, h in zip(encounters, predictions, ids, hashes, strict=True)
        ]

    async def _supersede_or_warn(self, cases: list[Case]) -> list[int | None]:
        """Supersede the open items of older versions of these unflagged cases."""
        try:
            await self.review.write(cases)
        except UnavailableError as exc:
            # NOTE: an unflagged answer is served without the database: a stale open item it
            # should supersede stays queued until the next version of its encounter is stored.
            log.warning("unflagged answers served without superseding stale items: %s", exc)
        return [None] * len(cases)


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
