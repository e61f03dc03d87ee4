"""Request and response bodies of the prediction API.

An encounter carries the published columns (all but the label) under their exact names and
published value types: integers for the `*_id` codes and counts, strings for the rest; a missing
value is null or absent, never "?". Anything else is a 422 that names the field.
"""

from datetime import date
from typing import Annotated, Final, Literal, Required

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, with_config
from typing_extensions import TypedDict

from app.features.columns import AGE_BUCKETS, MEDICATION_STATES
from app.features.icd9 import ICD9_PATTERN

_TEXT_PATTERN: Final = r"^[\w&/,.() +\-]+$"
_ID_PATTERN: Final = r"^[^\x00-\x1f\x7f]+$"
_DATE_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}$"
# NOTE: patterns, not Python validators, so pydantic-core checks them without calling back into
# Python (the ICD-9 check as a validator cost 2.2 of 10.3 us an encounter). A 422 words them
# with these messages rather than the regular expression.
PATTERN_MESSAGES: Final = {
    ICD9_PATTERN.pattern: "not an ICD-9-CM code in the published format (e.g. 250.83, V45, E888)",
    _TEXT_PATTERN: "only letters, digits, spaces and & / , . ( ) + - are allowed",
    _ID_PATTERN: "control characters are not allowed",
    _DATE_PATTERN: "a date as YYYY-MM-DD",
}

Text = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_TEXT_PATTERN)]
Icd9 = Annotated[str, StringConstraints(max_length=8, pattern=ICD9_PATTERN.pattern)]


def _calendar_date(text: str) -> str:
    """`text` if it names a day of the calendar (kept as text: the encounter is stored as JSON)."""
    date.fromisoformat(text)
    return text


# NOTE: a string, not a `date`: the validated dict is stored as the review item's JSON as is.
DischargeDate = Annotated[
    str, StringConstraints(pattern=_DATE_PATTERN), AfterValidator(_calendar_date)
]
Age = Literal[AGE_BUCKETS]  # type: ignore[valid-type]
Med = Literal[MEDICATION_STATES]  # type: ignore[valid-type]


# NOTE: a TypedDict under the published names, not a model with aliases: pydantic's JSON mode
# silently drops a key that is an aliased field's Python name ("glyburide_metformin"), where
# this refuses it as an unknown field like any other. The validated dict is at once the fields
# as received (absent stays absent) and the encoder's record (absent reads as missing), with no
# model object or copy per encounter.
Encounter = TypedDict(
    "Encounter",
    {
        "encounter_id": Required[
            Annotated[
                str,
                StringConstraints(min_length=1, max_length=128, pattern=_ID_PATTERN),
                Field(
                    description=(
                        "The EHR's id for the encounter (no control characters); also the "
                        "idempotency key of the review queue."
                    )
                ),
            ]
        ],
        "patient_nbr": Annotated[int | None, Field(ge=0, le=2**63 - 1, strict=True)],
        "discharge_date": Annotated[
            DischargeDate | None,
            Field(
                description="The day the patient left (YYYY-MM-DD): not a model feature; the"
                " 30-day outcome window starts here (default: the day scored)."
            ),
        ],
        "race": Literal["AfricanAmerican", "Asian", "Caucasian", "Hispanic", "Other"] | None,
        "gender": Literal["Female", "Male", "Unknown/Invalid"] | None,
        "age": Age | None,
        "weight": (
            Literal[
                "[0-25)",
                "[25-50)",
                "[50-75)",
                "[75-100)",
                "[100-125)",
                "[125-150)",
                "[150-175)",
                "[175-200)",
                ">200",
            ]
            | None
        ),
        "admission_type_id": Annotated[int | None, Field(ge=1, le=8, strict=True)],
        "discharge_disposition_id": Annotated[
            int | None,
            Field(
                ge=1,
                le=30,
                strict=True,
                description="Death or hospice (11, 13, 14, 19, 20, 21): answered as not"
                " applicable, not scored, nothing stored.",
            ),
        ],
        "admission_source_id": Annotated[int | None, Field(ge=1, le=26, strict=True)],
        "time_in_hospital": Annotated[int | None, Field(ge=1, le=365, strict=True)],
        "payer_code": Text | None,
        "medical_specialty": Text | None,
        "num_lab_procedures": Annotated[int | None, Field(ge=0, le=1000, strict=True)],
        "num_procedures": Annotated[int | None, Field(ge=0, le=100, strict=True)],
        "num_medications": Annotated[int | None, Field(ge=0, le=500, strict=True)],
        "number_outpatient": Annotated[int | None, Field(ge=0, le=1000, strict=True)],
        "number_emergency": Annotated[int | None, Field(ge=0, le=1000, strict=True)],
        "number_inpatient": Annotated[int | None, Field(ge=0, le=1000, strict=True)],
        "diag_1": Icd9 | None,
        "diag_2": Icd9 | None,
        "diag_3": Icd9 | None,
        "number_diagnoses": Annotated[int | None, Field(ge=0, le=100, strict=True)],
        "max_glu_serum": Literal["None", "Norm", ">200", ">300"] | None,
        "A1Cresult": Literal["None", "Norm", ">7", ">8"] | None,
        "metformin": Med | None,
        "repaglinide": Med | None,
        "nateglinide": Med | None,
        "chlorpropamide": Med | None,
        "glimepiride": Med | None,
        "acetohexamide": Med | None,
        "glipizide": Med | None,
        "glyburide": Med | None,
        "tolbutamide": Med | None,
        "pioglitazone": Med | None,
        "rosiglitazone": Med | None,
        "acarbose": Med | None,
        "miglitol": Med | None,
        "troglitazone": Med | None,
        "tolazamide": Med | None,
        "examide": Med | None,
        "citoglipton": Med | None,
        "insulin": Med | None,
        "glyburide-metformin": Med | None,
        "glipizide-metformin": Med | None,
        "glimepiride-pioglitazone": Med | None,
        "metformin-rosiglitazone": Med | None,
        "metformin-pioglitazone": Med | None,
        "change": Literal["No", "Ch"] | None,
        "diabetesMed": Literal["No", "Yes"] | None,
    },
    total=False,
)
Encounter.__doc__ = (
    "One inpatient encounter in the published column layout, plus the EHR's encounter id."
)
with_config(ConfigDict(extra="forbid", str_strip_whitespace=True))(Encounter)


class PredictionOut(BaseModel):
    """The answer for one encounter: scored, or not applicable (its scoring fields null)."""

    encounter_id: str
    applicable: bool = Field(
        description="False when a 30-day readmission cannot happen (death or hospice discharge):"
        " the encounter is not scored and nothing is stored."
    )
    reason: str | None = Field(description="Why it is not applicable; null when scored.")
    probability: float | None = Field(
        description="Calibrated probability of readmission within 30 days."
    )
    std: float | None = Field(description="MC-dropout std of the uncalibrated probability.")
    band_low: float | None = Field(
        description="5th percentile of the calibrated probability over the dropout passes:"
        " with `band_high`, a range holding at least 90% of the passes. Null when not scored."
    )
    band_high: float | None = Field(
        description="95th percentile of the calibrated probability over the dropout passes."
    )
    flagged: bool = Field(description="True when the case needs clinician review.")
    reasons: list[str] = Field(description="Why the case was flagged, e.g. high_uncertainty.")
    threshold: float | None = Field(description="The std above which a case is flagged.")
    n_samples: int | None
    seed: int | None
    model_version: str | None
    review_item_id: int | None = Field(description="The review-queue item; null when not flagged.")


@with_config(ConfigDict(extra="forbid"))
class BatchIn(TypedDict):
    """Several encounters scored together; one invalid encounter fails the whole batch."""

    encounters: Annotated[list[Encounter], Field(min_length=1)]


class BatchOut(BaseModel):
    """Predictions in the order of the request's encounters."""

    predictions: list[PredictionOut]
