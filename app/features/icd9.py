"""ICD-9-CM diagnosis codes: validation and grouping into chapters."""

import re
from typing import Final

# 3-digit numeric codes with up to two decimals, V codes (V01-V91) and E codes (E000-E999).
# The published data drops leading zeros ("8" for 008), so 1-3 digits are accepted.
ICD9_PATTERN: Final = re.compile(
    r"^(?:\d{1,3}(?:\.\d{1,2})?|V\d{2}(?:\.\d{1,2})?|E\d{3}(?:\.\d)?)$"
)

# (upper bound inclusive, chapter) for numeric codes, in order.
_NUMERIC_CHAPTERS: Final = (
    (139, "infectious"),
    (239, "neoplasms"),
    (279, "endocrine_metabolic"),
    (289, "blood"),
    (319, "mental"),
    (389, "nervous_sense"),
    (459, "circulatory"),
    (519, "respiratory"),
    (579, "digestive"),
    (629, "genitourinary"),
    (679, "pregnancy"),
    (709, "skin"),
    (739, "musculoskeletal"),
    (759, "congenital"),
    (779, "perinatal"),
    (799, "symptoms_ill_defined"),
    (999, "injury_poisoning"),
)

# Diabetes (250.xx) is kept apart from the rest of its chapter: every patient here is diabetic,
# and a diabetes primary diagnosis is itself informative.
DIABETES: Final = "diabetes"
SUPPLEMENTARY_V: Final = "supplementary_v"
EXTERNAL_E: Final = "external_e"

CHAPTERS: Final = (
    DIABETES,
    *(name for _, name in _NUMERIC_CHAPTERS),
    SUPPLEMENTARY_V,
    EXTERNAL_E,
)


def is_valid_icd9(code: str) -> bool:
    """Tell whether `code` is an ICD-9-CM code in the published format."""
    return ICD9_PATTERN.match(code) is not None


def icd9_chapter(code: str) -> str | None:
    """Group an ICD-9-CM code into its chapter; None for a malformed code."""
    if not is_valid_icd9(code):
        return None
    if code[0] == "V":
        return SUPPLEMENTARY_V
    if code[0] == "E":
        return EXTERNAL_E
    number = int(code.split(".", 1)[0])
    if number == 250:
        return DIABETES
    for upper, chapter in _NUMERIC_CHAPTERS:
        if number <= upper:
            return chapter
    return None  # unreachable for three digits; kept for type completeness
