"""FHIR R4 (a CDS Hooks prefetch) -> one record in the published column layout."""

from collections.abc import Mapping, Sequence
from typing import Any

from app.features.columns import FEATURE_SOURCE_COLUMNS
from app.features.fhir import clinical
from app.features.fhir import encounter as enc
from app.features.fhir.medications import medications
from app.features.fhir.model import FhirMappingError, MappedRecord, Source, ref
from app.features.fhir.reading import Resource

# The prefetch keys a CDS Hooks request carries, in record_from_fhir's argument order.
PREFETCH_KEYS = (
    "patient",
    "encounter",
    "conditions",
    "observations",
    "medicationRequests",
    "procedures",
    "priorEncounters",
)


def record_from_fhir(
    patient: Resource | None,
    encounter: Resource | None,
    conditions: Sequence[Resource] | None,
    observations: Sequence[Resource] | None,
    medication_requests: Sequence[Resource] | None,
    procedures: Sequence[Resource] | None,
    prior_encounters: Sequence[Resource] | None,
) -> MappedRecord:
    """Map one encounter's FHIR resources to the /predict record; None = not provided."""
    found = _require(encounter, "Encounter")
    person = _require(patient, "Patient")
    if not found.get("id"):
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
    record: dict[str, Any] = {"encounter_id": str(found["id"])}
    record["patient_nbr"] = features["patient_nbr"][0]
    record.update((c, features[c][0]) for c in FEATURE_SOURCE_COLUMNS)
    provenance = {"encounter_id": Source(ref(found, "id"))}
    provenance.update((c, source) for c, (_, source) in features.items())
    return MappedRecord(record, provenance, enc.discharge_date(found))


def record_from_prefetch(prefetch: Mapping[str, Any]) -> MappedRecord:
    """Map a CDS Hooks prefetch (resources and searchset Bundles) to the /predict record."""
    unknown = set(prefetch) - set(PREFETCH_KEYS)
    if unknown:
        raise FhirMappingError(
            f"prefetch: unknown keys {sorted(unknown)}; expected {PREFETCH_KEYS}"
        )
    lists = [bundle_resources(prefetch.get(k), k) for k in PREFETCH_KEYS[2:]]
    return record_from_fhir(prefetch.get("patient"), prefetch.get("encounter"), *lists)


def bundle_resources(bundle: Mapping[str, Any] | None, key: str) -> list[Resource] | None:
    """The resources of a prefetched Bundle (None when the prefetch left it out)."""
    if bundle is None:
        return None
    if bundle.get("resourceType") != "Bundle":
        raise FhirMappingError(
            f"prefetch {key}: expected a Bundle, got {bundle.get('resourceType')!r}"
        )
    return [
        e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), Mapping)
    ]


def _require(resource: Resource | None, kind: str) -> Resource:
    if resource is None:
        raise FhirMappingError(f"{kind}: missing; the prefetch must carry the {kind} resource")
    if resource.get("resourceType") != kind:
        raise FhirMappingError(f"{kind}: got resourceType {resource.get('resourceType')!r}")
    return resource
