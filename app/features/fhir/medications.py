"""MedicationRequest features: the 23 diabetes medication columns, change, diabetesMed, count."""

from collections.abc import Mapping, Sequence
from typing import Any

from app.features.columns import MEDICATION_COLUMNS
from app.features.fhir import codes
from app.features.fhir.encounter import Feature
from app.features.fhir.model import FhirMappingError, Source, ref
from app.features.fhir.reading import Resource, codings, live, reference_id

STOPPED = "stopped"


def medications(requests: Sequence[Resource] | None) -> dict[str, Feature]:
    """Each medication column's state, change, diabetesMed and num_medications."""
    names = (*MEDICATION_COLUMNS, "change", "diabetesMed", "num_medications")
    if requests is None:
        return {c: (None, Source(None, "medication requests not provided")) for c in names}
    orders = live(requests)
    by_id = {str(o.get("id")): o for o in orders}
    columns: dict[str, list[Resource]] = {}
    distinct: set[str] = set()
    for order in orders:
        key, column = _medication(order)
        if order.get("status") != STOPPED:
            distinct.add(key)
        if column is not None:
            columns.setdefault(column, []).append(order)
    out: dict[str, Feature] = {}
    changed = False
    for column in MEDICATION_COLUMNS:
        state, source = _state(column, columns.get(column, []), by_id)
        out[column] = state, source
        changed = changed or state in ("Up", "Down") or "discontinued" in source.note
    ordered = any(out[c][0] != "No" for c in MEDICATION_COLUMNS)
    rule = "Up or Down, or a diabetes medication stopped"
    out["change"] = ("Ch" if changed else "No"), Source("medicationRequests", rule)
    out["diabetesMed"] = ("Yes" if ordered else "No"), Source("medicationRequests", "any ordered")
    note = "distinct medications ordered, stopped ones left out"
    out["num_medications"] = len(distinct), Source("medicationRequests", note)
    return out


def _medication(order: Resource) -> tuple[str, str | None]:
    """A distinct key for the order's medication and its medication column (None if none)."""
    concept, parts = _concept(order)
    found = [(str(c.get("system")), str(c.get("code"))) for c in codings(concept)]
    ingredients = [(str(c.get("system")), str(c.get("code"))) for c in parts]
    if not found and not ingredients and not concept.get("text"):
        raise FhirMappingError(f"{ref(order, 'medication[x]')}: needs a code or text")
    # A contained Medication's ingredients name the column; else the order's own codes do.
    column = _column({n for n in map(_column_of, ingredients or found) if n is not None})
    if column is not None:
        return column, column
    key = " ".join(sorted(f"{s}|{c}" for s, c in found + ingredients))
    return key or str(concept.get("text")), None


def _concept(order: Resource) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
    """The medication's CodeableConcept and, for a contained Medication, its ingredient codings."""
    if "medicationCodeableConcept" in order:
        return order["medicationCodeableConcept"] or {}, []
    target = reference_id(order.get("medicationReference"))
    for medication in order.get("contained") or []:
        if medication.get("resourceType") == "Medication" and medication.get("id") == target:
            parts = [
                coding
                for item in medication.get("ingredient") or []
                for coding in codings(item.get("itemCodeableConcept"))
            ]
            return medication.get("code") or {}, parts
    raise FhirMappingError(
        f"{ref(order, 'medicationReference')}: only a contained Medication (#id) can be read"
    )


def _column_of(coding: tuple[str, str]) -> str | None:
    system, code = coding
    if system == codes.RXNORM_SYSTEM:
        return codes.RXNORM_INGREDIENTS.get(code)
    if system == codes.MEDICATION_SYSTEM and code in MEDICATION_COLUMNS:
        return code
    return None


def _column(ingredients: set[str]) -> str | None:
    if len(ingredients) == 1:
        return ingredients.pop()
    return codes.COMBINATIONS.get(frozenset(ingredients))


def _state(column: str, orders: list[Resource], by_id: Mapping[str, Resource]) -> Feature:
    """No, Steady, Up or Down: the latest active order's dose against the one before it."""
    if all(o.get("status") == STOPPED for o in orders):
        if orders:
            return "No", Source(ref(orders[-1]), "discontinued: stopped, not replaced")
        return "No", Source("medicationRequests", "no order")
    ranked = [o for _, o in sorted(enumerate(orders), key=lambda e: (_authored(e[1]), e[0]))]
    position = max(k for k, o in enumerate(ranked) if o.get("status") != STOPPED)
    current = ranked[position]
    previous = by_id.get(str(reference_id(current.get("priorPrescription"))))
    if previous is None and position > 0:
        previous = ranked[position - 1]
    if previous is None:
        return "Steady", Source(ref(current), "one order")
    now, before = _dose(current), _dose(previous)
    if now is None or before is None:
        return "Steady", Source(ref(current), "no dose to compare")
    if now[1] != before[1]:
        raise FhirMappingError(
            f"{ref(current, 'dosageInstruction')}: dose unit {now[1]!r} differs from"
            f" {before[1]!r} in {ref(previous)}; send both in one unit"
        )
    state = "Up" if now[0] > before[0] else "Down" if now[0] < before[0] else "Steady"
    return state, Source(ref(current, "dosageInstruction"), f"against {ref(previous)}")


def _dose(order: Resource) -> tuple[float, str] | None:
    for instruction in order.get("dosageInstruction") or []:
        for rate in instruction.get("doseAndRate") or []:
            dose = rate.get("doseQuantity") or {}
            if isinstance(dose.get("value"), int | float):
                return float(dose["value"]), str(dose.get("code") or dose.get("unit") or "")
    return None


def _authored(order: Resource) -> str:
    return str(order.get("authoredOn") or "")
