"""The published Diabetes 130-US column set: names, value types and the clinical rules on them."""

from collections.abc import Mapping, Sequence
from typing import Any, Final

# A raw field as the file or a request gives it, and a batch of them column by column.
Value = str | int | float | None
Columns = Mapping[str, Sequence[Value]]

ID_COLUMNS: Final = ("encounter_id", "patient_nbr")
LABEL_COLUMN: Final = "readmitted"
POSITIVE_LABEL: Final = "<30"

# Integer-coded categoricals (their codes are published in IDs_mapping.csv).
CODED_COLUMNS: Final = ("admission_type_id", "discharge_disposition_id", "admission_source_id")

COUNT_COLUMNS: Final = (
    "time_in_hospital",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "number_diagnoses",
)

TEXT_CATEGORICAL_COLUMNS: Final = (
    "race",
    "gender",
    "weight",
    "payer_code",
    "medical_specialty",
    "max_glu_serum",
    "A1Cresult",
    "change",
    "diabetesMed",
)

DIAGNOSIS_COLUMNS: Final = ("diag_1", "diag_2", "diag_3")
AGE_COLUMN: Final = "age"
AGE_BUCKETS: Final = tuple(f"[{lo}-{lo + 10})" for lo in range(0, 100, 10))

MEDICATION_COLUMNS: Final = (
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
)
MEDICATION_STATES: Final = ("No", "Steady", "Up", "Down")

# Every published column in file order, the label excluded.
FEATURE_SOURCE_COLUMNS: Final = (
    "race",
    "gender",
    AGE_COLUMN,
    "weight",
    *CODED_COLUMNS,
    "time_in_hospital",
    "payer_code",
    "medical_specialty",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    *DIAGNOSIS_COLUMNS,
    "number_diagnoses",
    "max_glu_serum",
    "A1Cresult",
    *MEDICATION_COLUMNS,
    "change",
    "diabetesMed",
)
PUBLISHED_COLUMNS: Final = (*ID_COLUMNS, *FEATURE_SOURCE_COLUMNS, LABEL_COLUMN)

# Columns whose published values are integers; every other column holds strings.
INTEGER_COLUMNS: Final = frozenset((*ID_COLUMNS, *CODED_COLUMNS, *COUNT_COLUMNS))

# Discharge dispositions after which a readmission cannot happen, named as in IDs_mapping.csv.
DEATH_OR_HOSPICE: Final = {
    11: "expired",
    13: "hospice / home",
    14: "hospice / medical facility",
    19: "expired at home, hospice",
    20: "expired in a medical facility, hospice",
    21: "expired, place unknown, hospice",
}
DEATH_OR_HOSPICE_DISPOSITIONS: Final = frozenset(DEATH_OR_HOSPICE)

MISSING_MARKER: Final = "?"


def not_applicable_reason(record: Mapping[str, Any]) -> str | None:
    """Why the model's question does not apply to `record` (death or hospice), or None."""
    code = record.get("discharge_disposition_id")
    words = DEATH_OR_HOSPICE.get(code) if type(code) is int else None
    if words is None:
        return None
    return f"discharge disposition {code} ({words}): a 30-day readmission cannot happen"
