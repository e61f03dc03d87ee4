"""MedicationRequest features: the 23 diabetes medication columns, change, diabetesMed, count."""

from collections.abc import Mapping, Sequence

from app.features.columns import MEDICATION_COLUMNS
from app.features.fhir import codes
from app.features.fhir.encounter import Feature
from app.features.fhir.model import FhirMappingError, Source, ref
from app.features.fhir.reading import codings, live, reference_id
from app.features.fhir.schema import CodeableConcept, Coding, MedicationRequest

STOPPED = "stopped"
_NO_ORDER: Feature = ("No", Source("medicationRequests", "no order"))


def medications(requests: Sequence[MedicationRequest] | None) -> dict[str, Feature]:
    """Each medication column's state, change, diabetesMed and num_medications."""
    names = (*MEDICATION_COLUMNS, "change", "diabetesMed", "num_medications")
    if requests is None:
        return {c: (None, Source(None, "medication requests not provided")) for c in names}
    orders = live(requests)
    by_id = {str(o.id): o for o in orders}
    columns: dict[str, list[MedicationRequest]] = {}
    distinct: set[str] = set()
    for order in orders:
        key, column = _medication(order)
        if order.status != STOPPED:
            distinct.add(key)
        if column is not None:
            columns.setdefault(column, []).append(order)
    # NOTE: most columns have no order (23 a hook): they share one answer.
    out: dict[str, Feature] = dict.fromkeys(MEDICATION_COLUMNS, _NO_ORDER)
    changed = False
    for column in (c for c in MEDICATION_COLUMNS if c in columns):  # NOTE: errors in order
        state, source = _state(column, columns[column], by_id)
        out[column] = state, source
        changed = changed or state in ("Up", "Down") or "discontinued" in source.note
    ordered = any(out[c][0] != "No" for c in columns)
    rule = "Up or Down, or a diabetes medication stopped"
    out["change"] = ("Ch" if changed else "No"), Source("medicationRequests", rule)
    out["diabetesMed"] = ("Yes" if ordered else "No"), Source("medicationRequests", "any ordered")
    note = "distinct medications ordered, stopped ones left out"
    out["num_medications"] = len(distinct), Source("medicationRequests", note)
    return out


def _medication(order: MedicationRequest) -> tuple[str, str | None]:
    """A distinct key for the order's medication and its medication column (None if none)."""
    concept, parts = _concept(order)
    found = [(str(c.system), str(c.code)) for c in codings(concept)]
    ingredients = [(str(c.system), str(c.code)) for c in parts]
    if not found and not ingredients and not concept.text:
        raise FhirMappingError(f"{ref(order, 'medication[x]')}: needs a code or text")
    # A contained Medication's ingredients name the column; else the order's own codes do.
    column = _column({n for n in map(_column_of, ingredients or found) if n is not None})
    if column is not None:
        return column, column
    key = " ".join(sorted(f"{s}|{c}" for s, c in found + ingredients))
    return key or str(concept.text), None


def _concept(order: MedicationRequest) -> tuple[CodeableConcept, list[Coding]]:
    """The medication's CodeableConcept and, for a contained Medication, its ingredient codings."""
    if order.medicationCodeableConcept is not None:
        return order.medicationCodeableConcept, []
    target = reference_id(order.medicationReference)
    for medication in order.contained:
        if medication.resourceType == "Medication" and medication.id == target:
            parts = [
                coding
                for item in medication.ingredient
                for coding in codings(item.itemCodeableConcept)
            ]
            return medication.code or CodeableConcept(), parts
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


def _state(
    column: str, orders: list[MedicationRequest], by_id: Mapping[str, MedicationRequest]
) -> Feature:
    """No, Steady, Up or Down: the latest active order's dose against the one before it."""
    if all(o.status == STOPPED for o in orders):
        return "No", Source(ref(orders[-1]), "discontinued: stopped, not replaced")
    ranked = [o for _, o in sorted(enumerate(orders), key=lambda e: (_authored(e[1]), e[0]))]
    position = max(k for k, o in enumerate(ranked) if o.status != STOPPED)
    current = ranked[position]
    previous = by_id.get(str(reference_id(current.priorPrescription)))
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


def _dose(order: MedicationRequest) -> tuple[float, str] | None:
    for instruction in order.dosageInstruction:
        for rate in instruction.doseAndRate:
            dose = rate.doseQuantity
            if dose is not None and dose.value is not None:
                return dose.value, dose.code or dose.unit or ""
    return None


def _authored(order: MedicationRequest) -> str:
    return order.authoredOn or ""
