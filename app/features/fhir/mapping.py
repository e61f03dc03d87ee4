"""FHIR R4 (a CDS Hooks prefetch) -> one record in the published column layout."""

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from app.features.columns import FEATURE_SOURCE_COLUMNS
from app.features.fhir import clinical
from app.features.fhir import encounter as enc
from app.features.fhir.medications import medications
from app.features.fhir.model import FhirMappingError, MappedRecord, Source, ref
from app.features.fhir.schema import (
    Bundle,
    Condition,
    Encounter,
    MedicationRequest,
    Observation,
    Patient,
    Prefetch,
    Procedure,
    R,
)
from app.features.fhir.validation import validate_prefetch

Required = TypeVar("Required", Patient, Encounter)
# The prefetch keys a CDS Hooks request carries, in record_from_fhir's argument order.
PREFETCH_KEYS = tuple(Prefetch.__struct_fields__)


def record_from_fhir(
    patient: Patient | None,
    encounter: Encounter | None,
    conditions: Sequence[Condition] | None,
    observations: Sequence[Observation] | None,
    medication_requests: Sequence[MedicationRequest] | None,
    procedures: Sequence[Procedure] | None,
    prior_encounters: Sequence[Encounter] | None,
) -> MappedRecord:
    """Map one encounter's FHIR resources to the /predict record; None = not provided."""
    found = _require(encounter, "Encounter")
    person = _require(patient, "Patient")
    if not found.id:
        raise FhirMappingError("Encounter: needs an id (it becomes the record's encounter_id)")
    start = enc.admission_date(found)
    features: dict[str, tuple[Any, Source]] = {
        "patient_nbr": enc.patient_nbr(person),
        "race": enc.race(person),
        "gender": enc.gender(person),
        "age": enc.age(person, start),
        **enc.coded_ids(found),
        "time_in_hospital": enc.time_in_hospital(found, start),
        "payer_code": enc.payer_code(found),
        "medical_specialty": enc.medical_specialty(found),
        **enc.prior_visits(prior_encounters, found, start),
        **clinical.diagnoses(found, conditions),
        **clinical.observations(observations),
        "num_procedures": clinical.procedures(procedures),
        **medications(medication_requests),
    }
    missing = set(FEATURE_SOURCE_COLUMNS) - set(features)
    assert not missing, f"unmapped columns {sorted(missing)}"
    record: dict[str, Any] = {"encounter_id": found.id}
    record["patient_nbr"] = features["patient_nbr"][0]
    record.update((c, features[c][0]) for c in FEATURE_SOURCE_COLUMNS)
    provenance = {"encounter_id": Source(ref(found, "id"))}
    provenance.update((c, source) for c, (_, source) in features.items())
    return MappedRecord(record, provenance, enc.discharge_date(found))


def record_from_prefetch(prefetch: Prefetch | Mapping[str, Any]) -> MappedRecord:
    """Map a CDS Hooks prefetch (resources and searchset Bundles) to the /predict record."""
    if not isinstance(prefetch, Prefetch):
        prefetch = as_prefetch(prefetch)
    return record_from_fhir(
        prefetch.patient,
        prefetch.encounter,
        bundle_resources(prefetch.conditions, "conditions"),
        bundle_resources(prefetch.observations, "observations"),
        bundle_resources(prefetch.medicationRequests, "medicationRequests"),
        bundle_resources(prefetch.procedures, "procedures"),
        bundle_resources(prefetch.priorEncounters, "priorEncounters"),
    )


def as_prefetch(prefetch: Mapping[str, Any]) -> Prefetch:
    """A prefetch read from plain JSON values; FhirMappingError naming what to fix if it is not
    FHIR as the mapping reads it."""
    unknown = set(prefetch) - set(PREFETCH_KEYS)
    if unknown:
        raise FhirMappingError(
            f"prefetch: unknown keys {sorted(unknown)}; expected {PREFETCH_KEYS}"
        )
    try:
        return msgspec.convert(prefetch, Prefetch)
    except msgspec.ValidationError as exc:
        # NOTE: the R4B models name the resource and element; they only run on a bad prefetch
        # (validating every call costs more than the mapping).
        raise FhirMappingError(_malformed(prefetch, exc)) from exc


def bundle_resources(bundle: Bundle[R] | None, key: str) -> list[R] | None:
    """The resources of a prefetched Bundle (None when the prefetch left it out)."""
    if bundle is None:
        return None
    if bundle.resourceType != "Bundle":
        raise FhirMappingError(f"prefetch {key}: expected a Bundle, got {bundle.resourceType!r}")
    return bundle.resources()


def _malformed(prefetch: Mapping[str, Any], exc: msgspec.ValidationError) -> str:
    """What the R4B models say is wrong with a prefetch the mapping could not read."""
    try:
        validate_prefetch(prefetch)
    except FhirMappingError as found:
        return str(found)[:2000]
    except (TypeError, AttributeError, ValueError) as found:
        return f"prefetch: every value must be a FHIR resource or Bundle ({type(found).__name__})"
    where = str(exc).replace("$", "prefetch", 1)
    return f"not FHIR R4 as the mapping reads it ({where}; see docs/fhir-mapping.md)"


def _require(resource: Required | None, kind: str) -> Required:
    if resource is None:
        raise FhirMappingError(f"{kind}: missing; the prefetch must carry the {kind} resource")
    if resource.resourceType != kind:
        raise FhirMappingError(f"{kind}: got resourceType {resource.resourceType!r}")
    return resource
