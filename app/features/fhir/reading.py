"""Small readers over the decoded FHIR elements (`app.features.fhir.schema`): codings, dates,
quantities, references."""

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TypeVar

from app.features.fhir.model import FhirMappingError, ref
from app.features.fhir.schema import CodeableConcept, Coding, Observation, Reference, Resource

R = TypeVar("R", bound=Resource)
_GONE = frozenset({"entered-in-error", "cancelled", "not-done"})


def codings(concept: CodeableConcept | None) -> list[Coding]:
    """The codings of a CodeableConcept (none for an absent one)."""
    return concept.coding if concept is not None else []


def code_in(concept: CodeableConcept | None, system: str) -> str | None:
    """The first code of `concept` in `system`, or None."""
    if concept is not None:
        for coding in concept.coding:
            if coding.system == system and coding.code:
                return coding.code
    return None


def has_code(concepts: Iterable[CodeableConcept], system: str, codes: frozenset[str]) -> bool:
    """Tell whether any of `concepts` has a coding in `system` among `codes`."""
    # NOTE: plain loops: this runs for every Observation of a prefetch (dozens a hook).
    for concept in concepts:
        for coding in concept.coding:
            if coding.system == system and coding.code in codes:
                return True
    return False


def parse_date(text: str, where: str) -> date:
    """The calendar date of a FHIR date or dateTime (a partial date reads as its first day)."""
    try:
        if len(text) == 4:
            return date(int(text), 1, 1)
        if len(text) == 7:
            return date(int(text[:4]), int(text[5:7]), 1)
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError as exc:
        raise FhirMappingError(f"{where}: {text!r} is not a FHIR date or dateTime") from exc


def reference_id(reference: Reference | None) -> str | None:
    """The id in a relative reference like `Condition/123` (or `#123`), or None."""
    text = (reference.reference if reference is not None else None) or ""
    return text.rsplit("/", 1)[-1].lstrip("#") or None


def live(resources: Sequence[R]) -> list[R]:
    """The resources not entered in error, cancelled or not done (those never happened)."""
    return [r for r in resources if r.status not in _GONE]


def quantity(observation: Observation, where: str) -> tuple[float, str]:
    """An Observation's valueQuantity as (value, UCUM code or unit); error if it has none."""
    value = observation.valueQuantity
    if value is None or value.value is None:
        raise FhirMappingError(f"{ref(observation, where)}: needs a valueQuantity with a value")
    return value.value, value.code or value.unit or ""
