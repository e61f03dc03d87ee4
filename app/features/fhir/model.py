"""The mapped record, its provenance and the mapping error."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from app.features.fhir.schema import Resource


class FhirMappingError(ValueError):
    """FHIR input that cannot be mapped; the message names the resource and what to fix."""


@dataclass(frozen=True)
class Source:
    """Where one feature came from: a resource element, or None when it was absent."""

    element: str | None
    note: str = ""

    @property
    def absent(self) -> bool:
        """Tell whether the feature had no source (its value is the missing value, null)."""
        return self.element is None


@dataclass(frozen=True)
class MappedRecord:
    """A record in the published column layout (null = missing) and each feature's source."""

    record: dict[str, Any]
    provenance: Mapping[str, Source] = field(default_factory=dict)
    # Encounter.period.end: not a feature, where the 30-day outcome window starts.
    discharged_on: date | None = None

    def encounter(self) -> dict[str, Any]:
        """The record as a /predict body: missing values left out, as the published rows do."""
        return {k: v for k, v in self.record.items() if v is not None}


def ref(resource: Resource, element: str = "") -> str:
    """Name a resource (and an element of it) for provenance and error messages."""
    name = f"{resource.resourceType or 'resource'}/{resource.id or '?'}"
    return f"{name}.{element}" if element else name
