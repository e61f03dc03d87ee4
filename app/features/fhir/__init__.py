"""FHIR R4 <-> the published column layout: the one mapping the CDS Hooks service uses."""

from app.features.fhir.mapping import bundle_resources, record_from_fhir, record_from_prefetch
from app.features.fhir.model import FhirMappingError, MappedRecord, Source

__all__ = [
    "FhirMappingError",
    "MappedRecord",
    "Source",
    "bundle_resources",
    "record_from_fhir",
    "record_from_prefetch",
]
