"""Small readers over plain FHIR R4 JSON: codings, dates, quantities, references."""

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from app.features.fhir.model import FhirMappingError, ref

Resource = Mapping[str, Any]


def codings(concept: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The codings of a CodeableConcept (none for an absent one)."""
    return list((concept or {}).get("coding") or [])


def code_in(concept: Mapping[str, Any] | None, system: str) -> str | None:
    """The first code of `concept` in `system`, or None."""
    for coding in codings(concept):
        if coding.get("system") == system and coding.get("code"):
            return str(coding["code"])
    return None


def concepts(value: Any) -> list[Mapping[str, Any]]:
    """The CodeableConcepts of a 0..1 or 0..* element."""
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def has_code(value: Any, system: str, codes: frozenset[str] | set[str]) -> bool:
    """Tell whether any concept of `value` has a coding in `system` among `codes`."""
    # NOTE: plain loops: this runs for every Observation of a prefetch (dozens a hook).
    for concept in concepts(value):
        for coding in codings(concept):
            if coding.get("system") == system and coding.get("code") in codes:
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


def reference_id(reference: Mapping[str, Any] | None) -> str | None:
    """The id in a relative reference like `Condition/123` (or `#123`), or None."""
    text = str((reference or {}).get("reference") or "")
    return text.rsplit("/", 1)[-1].lstrip("#") or None


def live(resources: Sequence[Resource]) -> list[Resource]:
    """The resources not entered in error, cancelled or not done (those never happened)."""
    gone = {"entered-in-error", "cancelled", "not-done"}
    return [r for r in resources if r.get("status") not in gone]


def quantity(resource: Resource, where: str) -> tuple[float, str]:
    """An Observation's valueQuantity as (value, UCUM code or unit); error if it has none."""
    value = resource.get("valueQuantity") or {}
    if not isinstance(value.get("value"), int | float):
        raise FhirMappingError(f"{ref(resource, where)}: needs a valueQuantity with a value")
    return float(value["value"]), str(value.get("code") or value.get("unit") or "")
