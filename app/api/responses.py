"""JSON answers serialised once, by pydantic-core; the shapes of error answers, and the OpenAPI
`responses` entries that document them."""

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from starlette.responses import Response


def json_response(content: Any) -> Response:
    """Plain data (dicts, lists, str, numbers, None) as an `application/json` answer.

    NOTE: returning a model makes FastAPI validate it again against the route's
    `response_model` before serialising it, and building a model per prediction costs more
    than its JSON: for a batch of 1,000 predictions both passes cost more than the scoring
    around them. The routes build plain dicts in the shape of their `response_model`, which
    they still declare for the docs (tests check answers against it).
    """
    return Response(to_json(content), media_type="application/json")


class ErrorOut(BaseModel):
    """A refusal: what was wrong, in words (every error answer but a 422)."""

    model_config = ConfigDict(extra="forbid")

    detail: str


class FieldErrorOut(BaseModel):
    """One invalid field or parameter."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Where: `age`, `encounters[3].age`, `n_samples`, `body`.")
    message: str = Field(description="What is wrong with it (the value is never echoed).")
    type: str = Field(description="The kind of error, e.g. `missing`, `literal_error`.")
    index: int | None = Field(
        default=None, description="In a batch: the position of the encounter (absent otherwise)."
    )


class ValidationErrorOut(BaseModel):
    """A 422: every invalid field named; nothing was scored or stored."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="Every error as `field: message`, joined by `; `.")
    errors: list[FieldErrorOut]
    index: int | None = Field(
        default=None, description="In a batch: the first invalid encounter (absent otherwise)."
    )


_RETRY_AFTER: Final = {
    "Retry-After": {"description": "Seconds to wait before a retry.", "schema": {"type": "integer"}}
}
_ERRORS: Final[dict[int, dict[str, Any]]] = {
    400: {"description": "The FHIR input cannot be used as sent; the message names what to fix."},
    401: {
        "description": "No valid API key: send `Authorization: Bearer <key>`.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    403: {"description": "The key is valid, but its role may not do this."},
    404: {"description": "No such review item or key."},
    409: {"description": "The item's state does not allow this (e.g. another clinician holds it)."},
    412: {
        "description": "The data the service needs was not sent and cannot be fetched (CDS"
        " Hooks: no prefetch, fhirServer not allowed, no fhirAuthorization, 401/403/404 from it)."
    },
    413: {"description": "The body is larger than the service accepts."},
    415: {"description": "The body is not JSON."},
    422: {"model": ValidationErrorOut, "description": "Invalid fields or parameters, each named."},
    502: {"description": "The EHR's FHIR server answered a read with an error (5xx, not JSON)."},
    503: {
        "description": "A dependency (database, the EHR's FHIR server, scoring, review-queue"
        " writer) cannot take the request now, or the service is starting; retry after"
        " `Retry-After` seconds.",
        "headers": _RETRY_AFTER,
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for `statuses`, each with the shape the service answers it in."""
    return {status: {"model": ErrorOut, **_ERRORS[status]} for status in statuses}
