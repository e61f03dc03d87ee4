"""Request and response bodies of the prediction API.

An encounter carries the published columns (all but the label) under their exact names and
published value types: integers for the `*_id` codes and counts, strings for the rest; a missing
value is null or absent, never "?". Anything else is a 422 that names the field.
"""

from operator import itemgetter
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.features.columns import AGE_BUCKETS, DEATH_OR_HOSPICE_DISPOSITIONS, MEDICATION_STATES
from app.features.icd9 import ICD9_PATTERN


def _not_death_or_hospice(code: int | None) -> int | None:
    if code is not None and code in DEATH_OR_HOSPICE_DISPOSITIONS:
        raise ValueError(
            f"discharge disposition {code} is death or hospice: readmission does not apply, "
            "so this encounter is not scored"
        )
    return code


_TEXT_PATTERN: Final = r"^[\w&/,.() +\-]+$"
_ID_PATTERN: Final = r"^[^\x00-\x1f\x7f]+$"
# NOTE: patterns, not Python validators, so pydantic-core checks them without calling back into
# Python (the ICD-9 check as a validator cost 2.2 of 10.3 us an encounter). A 422 words them
# with these messages rather than the regular expression.
PATTERN_MESSAGES: Final = {
    ICD9_PATTERN.pattern: "not an ICD-9-CM code in the published format (e.g. 250.83, V45, E888)",
    _TEXT_PATTERN: "only letters, digits, spaces and & / , . ( ) + - are allowed",
    _ID_PATTERN: "control characters are not allowed",
}

Text = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_TEXT_PATTERN)]
Icd9 = Annotated[str, StringConstraints(max_length=8, pattern=ICD9_PATTERN.pattern)]
Age = Literal[AGE_BUCKETS]  # type: ignore[valid-type]
Med = Literal[MEDICATION_STATES]  # type: ignore[valid-type]


class Encounter(BaseModel):
    """One inpatient encounter in the published column layout, plus the EHR's encounter id."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, str_strip_whitespace=True)

    encounter_id: Annotated[
        str, StringConstraints(min_length=1, max_length=128, pattern=_ID_PATTERN)
    ] = Field(
        description=(
            "The EHR's id for the encounter (no control characters); also the idempotency key "
            "of the review queue."
        )
    )
    patient_nbr: Annotated[int | None, Field(ge=0, le=2**63 - 1, strict=True)] = None
    race: Literal["AfricanAmerican", "Asian", "Caucasian", "Hispanic", "Other"] | None = None
    gender: Literal["Female", "Male", "Unknown/Invalid"] | None = None
    age: Age | None = None
    weight: (
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
    ) = None
    admission_type_id: Annotated[int | None, Field(ge=1, le=8, strict=True)] = None
    discharge_disposition_id: Annotated[
        int | None, Field(ge=1, le=30, strict=True), AfterValidator(_not_death_or_hospice)
    ] = None
    admission_source_id: Annotated[int | None, Field(ge=1, le=26, strict=True)] = None
    time_in_hospital: Annotated[int | None, Field(ge=1, le=365, strict=True)] = None
    payer_code: Text | None = None
    medical_specialty: Text | None = None
    num_lab_procedures: Annotated[int | None, Field(ge=0, le=1000, strict=True)] = None
    num_procedures: Annotated[int | None, Field(ge=0, le=100, strict=True)] = None
    num_medications: Annotated[int | None, Field(ge=0, le=500, strict=True)] = None
    number_outpatient: Annotated[int | None, Field(ge=0, le=1000, strict=True)] = None
    number_emergency: Annotated[int | None, Field(ge=0, le=1000, strict=True)] = None
    number_inpatient: Annotated[int | None, Field(ge=0, le=1000, strict=True)] = None
    diag_1: Icd9 | None = None
    diag_2: Icd9 | None = None
    diag_3: Icd9 | None = None
    number_diagnoses: Annotated[int | None, Field(ge=0, le=100, strict=True)] = None
    max_glu_serum: Literal["None", "Norm", ">200", ">300"] | None = None
    A1Cresult: Literal["None", "Norm", ">7", ">8"] | None = None
    metformin: Med | None = None
    repaglinide: Med | None = None
    nateglinide: Med | None = None
    chlorpropamide: Med | None = None
    glimepiride: Med | None = None
    acetohexamide: Med | None = None
    glipizide: Med | None = None
    glyburide: Med | None = None
    tolbutamide: Med | None = None
    pioglitazone: Med | None = None
    rosiglitazone: Med | None = None
    acarbose: Med | None = None
    miglitol: Med | None = None
    troglitazone: Med | None = None
    tolazamide: Med | None = None
    examide: Med | None = None
    citoglipton: Med | None = None
    insulin: Med | None = None
    glyburide_metformin: Med | None = Field(default=None, alias="glyburide-metformin")
    glipizide_metformin: Med | None = Field(default=None, alias="glipizide-metformin")
    glimepiride_pioglitazone: Med | None = Field(default=None, alias="glimepiride-pioglitazone")
    metformin_rosiglitazone: Med | None = Field(default=None, alias="metformin-rosiglitazone")
    metformin_pioglitazone: Med | None = Field(default=None, alias="metformin-pioglitazone")
    change: Literal["No", "Ch"] | None = None
    diabetesMed: Literal["No", "Yes"] | None = None

    def record(self) -> dict[str, Any]:
        """The fields under their published names, as the feature encoder reads them."""
        return self.model_dump(by_alias=True)

    def as_received(self) -> dict[str, Any]:
        """The fields the caller sent (absent stays absent, null stays null), published names."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    def published_record(self) -> dict[str, Any]:
        """`record()`, cheaply (about 4 us against 15 us an encounter for pydantic's dump)."""
        # NOTE: every field holds a validated scalar and an unsent one its default, so the
        # attributes in field order are exactly the dump.
        return dict(zip(_PUBLISHED_NAMES, _ATTRIBUTE_VALUES(self.__dict__), strict=True))

    def published_received(self) -> dict[str, Any]:
        """`as_received()`, cheaply, by the same reasoning as `published_record()`."""
        values, sent = self.__dict__, self.model_fields_set
        return {published: values[name] for name, published in _PUBLISHED if name in sent}


# (attribute name, published name) of every field, in field order.
_PUBLISHED: tuple[tuple[str, str], ...] = tuple(
    (name, field.alias or name) for name, field in Encounter.model_fields.items()
)
_PUBLISHED_NAMES: tuple[str, ...] = tuple(published for _, published in _PUBLISHED)
_ATTRIBUTE_VALUES = itemgetter(*(name for name, _ in _PUBLISHED))


class PredictionOut(BaseModel):
    """The answer for one encounter."""

    encounter_id: str
    probability: float = Field(description="Calibrated probability of readmission within 30 days.")
    std: float = Field(description="MC-dropout std of the uncalibrated probability.")
    flagged: bool = Field(description="True when the case needs clinician review.")
    reasons: list[str] = Field(description="Why the case was flagged, e.g. high_uncertainty.")
    threshold: float = Field(description="The std above which a case is flagged.")
    n_samples: int
    seed: int
    model_version: str
    review_item_id: int | None = Field(description="The review-queue item; null when not flagged.")


class BatchIn(BaseModel):
    """Several encounters scored together; one invalid encounter fails the whole batch."""

    model_config = ConfigDict(extra="forbid")

    encounters: list[Encounter] = Field(min_length=1)


class BatchOut(BaseModel):
    """Predictions in the order of the request's encounters."""

    predictions: list[PredictionOut]
