"""Bodies of the review-queue API."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.db.base import MAX_ID
from app.review.models import Outcome, ReviewStatus

SortKey = Literal["std", "newest", "age"]


class ReviewEventOut(BaseModel):
    """One audited status change."""

    model_config = ConfigDict(from_attributes=True)

    from_status: ReviewStatus | None
    to_status: ReviewStatus
    actor: str = Field(description="The acting key's name (or the command line).")
    actor_key_id: int | None = Field(description="The acting key's id: who it was.")
    at: datetime
    detail: dict[str, Any] | None


class ReviewItemOut(BaseModel):
    """A queued case: the encounter as received, the prediction and the review state."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    encounter_id: str
    encounter: dict[str, Any]
    probability: float
    std: float
    band_low: float | None = Field(
        description="5th percentile of the calibrated probability over the dropout passes"
        " (null for a case stored before the band was kept)."
    )
    band_high: float | None = Field(description="95th percentile of the same.")
    action_threshold: float | None = Field(
        default=None,
        description="The calibrated risk at or above which the recommended action is to act"
        " (null for a case stored before decisions were kept).",
    )
    decision_flip_probability: float | None = Field(
        default=None,
        description="Share of the dropout passes on the other side of the action threshold.",
    )
    reasons: list[str]
    threshold: float
    model_version: str
    n_samples: int
    seed: int
    status: ReviewStatus
    assignee: str | None = Field(description="The holding (or resolving) key's name.")
    assignee_key_id: int | None = Field(description="That key's id: who owns the case.")
    outcome: Outcome | None
    note: str | None
    clinician_risk: float | None = Field(
        description="The resolving clinician's own 30-day readmission risk (0-1), if given."
    )
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None
    resolved_at: datetime | None


class ReviewItemDetail(ReviewItemOut):
    """A queued case with its audit trail."""

    events: list[ReviewEventOut]


class ReviewPage(BaseModel):
    """One page of the queue; pass `next_cursor` back as `cursor` for the next (null at the end)."""

    items: list[ReviewItemOut]
    next_cursor: str | None


class ResolveIn(BaseModel):
    """A clinician's conclusion on a claimed case."""

    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    note: str | None = Field(default=None, max_length=4000)
    clinician_risk: float | None = Field(
        default=None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Optional: your own estimate of the 30-day readmission risk, a probability"
        " from 0 to 1 (0.25 for 25%); compared with the model's once outcomes are known.",
    )


class ReassignIn(BaseModel):
    """The clinician key that takes over a case in review."""

    model_config = ConfigDict(extra="forbid")

    assignee_key_id: int = Field(ge=1, le=MAX_ID)
