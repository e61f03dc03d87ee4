"""Structural validation of FHIR resources against the fhir.resources R4B models."""

from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from app.features.fhir.model import FhirMappingError


def validate_resource(resource: Mapping[str, Any]) -> None:
    """Refuse a resource that the R4B model of its type does not accept."""
    kind = str(resource.get("resourceType"))
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError) as exc:
        raise FhirMappingError(f"{_name(resource)}: {kind!r} is not an R4B resource type") from exc
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        raise FhirMappingError(f"{_name(resource)}: not valid FHIR R4B: {exc}") from exc


def validate_prefetch(prefetch: Mapping[str, Any]) -> int:
    """Validate every resource of a prefetch (a Bundle with its entries); return how many."""
    count = 0
    for value in prefetch.values():
        if value is not None:
            validate_resource(value)  # NOTE: a Bundle's model validates each entry's resource
            count += (
                1 + len(value.get("entry") or []) if value.get("resourceType") == "Bundle" else 1
            )
    return count


def _name(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType', 'resource')}/{resource.get('id', '?')}"
