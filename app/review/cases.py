"""What the review writer queues: a flagged case, or an unflagged newer version of one."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.inference.prediction import Prediction
from app.outcomes.scored import ScoredRow
from app.review.versions import content_hash


@dataclass(frozen=True)
class FlaggedCase:
    """A flagged prediction to queue, with the encounter exactly as the EHR sent it."""

    encounter_id: str
    encounter: Mapping[str, Any]
    prediction: Prediction
    actor: str  # the name of the API key that submitted it, for the audit trail
    actor_key_id: int | None = None  # that key's id
    content_hash: str = ""  # NOTE: `content_hash(encounter)` when not given
    scored: ScoredRow | None = None  # the answer to keep in scored_encounters

    def __post_init__(self) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.encounter))

    @property
    def model_version(self) -> str:
        """The version of the model that scored it."""
        return self.prediction.model_version


@dataclass(frozen=True)
class UnflaggedCase:
    """A version of an encounter that was not flagged: it only supersedes an open stale item."""

    encounter_id: str
    model_version: str
    content_hash: str
    actor: str
    actor_key_id: int | None = None
    scored: ScoredRow | None = None  # the answer to keep in scored_encounters


Case = FlaggedCase | UnflaggedCase


def case_key(case: Case) -> tuple[str, str, str]:
    """The content a case stands for: (encounter_id, model_version, content_hash)."""
    return case.encounter_id, case.model_version, case.content_hash
