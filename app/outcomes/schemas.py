"""Request and response bodies of `POST /outcomes`."""

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# NOTE: strict: `"yes"`, `1` or `"true"` are not a boolean, and a date must be "YYYY-MM-DD".
_STRICT = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class OutcomeIn(BaseModel):
    """Whether the patient of a scored encounter was readmitted within 30 days of discharge."""

    model_config = _STRICT

    encounter_id: Annotated[
        str, StringConstraints(min_length=1, max_length=140, pattern=r"^[^\x00-\x1f\x7f]+$")
    ] = Field(description="The encounter_id it was scored under.")
    readmitted: bool = Field(
        description="True: readmitted within 30 days of discharge (accepted at any time)."
        " False: not readmitted (accepted once the 30-day window has closed)."
    )
    readmitted_on: date | None = Field(
        default=None, description="The day of the readmission (only with `readmitted: true`)."
    )
    model_version: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None, description="The version whose score it answers; null: every version."
    )
    correct: bool = Field(
        default=False, description="Replace an outcome already recorded with a different value."
    )


class OutcomeBatchIn(BaseModel):
    """Several outcomes; any bad one refuses the whole batch and nothing is stored."""

    model_config = _STRICT

    outcomes: Annotated[list[OutcomeIn], Field(min_length=1)]


class OutcomeOut(BaseModel):
    """What became of one outcome for one model version."""

    encounter_id: str
    model_version: str
    status: Literal["recorded", "unchanged", "corrected"]


class OutcomesOut(BaseModel):
    """One entry per (outcome, model version), in the request's order."""

    outcomes: list[OutcomeOut]
