"""Request bodies parsed and validated straight from their JSON bytes by pydantic-core.

NOTE: a FastAPI body parameter decodes the JSON with Python's `json` and then validates the
Python objects; for a batch of 1,000 encounters the two passes were about half of the event
loop's time. `json_body` does both in one pass and words its errors exactly as FastAPI's
validation errors (422, each naming its field). Routes that read their body this way list its
type in `BODY_TYPES` so the OpenAPI document still describes it.

A body type must not rename keys with aliases: pydantic's JSON mode silently drops a key that
is an aliased field's Python name, where an unknown key must be a 422. The scoring routes read
TypedDicts keyed by the published names (`app.api.schemas`).
"""

from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import JsonSchemaMode

from app.core.errors import UnsupportedMediaTypeError

BodyT = TypeVar("BodyT")
_REF = "#/components/schemas/{model}"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def json_body(request: Request, body_type: type[BodyT]) -> BodyT:
    """The request body as `body_type` (415 if it is not JSON, 422 naming each bad field)."""
    content_type = request.headers.get("content-type")
    if content_type and not _is_json(content_type):
        raise UnsupportedMediaTypeError(
            f"the body must be JSON (Content-Type: application/json), not {content_type[:64]!r}"
        )
    body = await request.body()
    try:
        validated: BodyT = _adapter(body_type).validate_json(body)
    except ValidationError as exc:
        raise request_validation_error(exc, "body") from None
    return validated


def request_validation_error(exc: ValidationError, where: str) -> RequestValidationError:
    """`exc` as FastAPI words it for a `where` ("body", "query") value: the handlers' 422."""
    errors = [{**e, "loc": (where, *e["loc"])} for e in exc.errors(include_url=False)]
    return RequestValidationError(errors)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(body_type: Any) -> TypeAdapter[Any]:
    """One validator per body type, built on first use."""
    adapter = _ADAPTERS.get(body_type)
    if adapter is None:
        adapter = _ADAPTERS[body_type] = TypeAdapter(body_type)
    return adapter


def documented_body(body_type: Any) -> dict[str, Any]:
    """A route's `openapi_extra` declaring a required JSON body of `body_type`."""
    schema = {"$ref": _REF.format(model=body_type.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document_body_types(app: FastAPI, body_types: tuple[Any, ...]) -> None:
    """Add `body_types` (read by `json_body`, so unseen by FastAPI) to the app's OpenAPI schemas."""
    generate = app.openapi
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        (t.__name__, "validation", _adapter(t)) for t in body_types
    ]
    tops, definitions = TypeAdapter.json_schemas(inputs, ref_template=_REF)
    for (name, _), schema in tops.items():  # NOTE: a type defined inline gets a name of its own
        if "$ref" not in schema:
            definitions.setdefault("$defs", {})[name] = schema

    def openapi() -> dict[str, Any]:
        schema = generate()  # NOTE: FastAPI builds it once and caches it; the update is idempotent
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            definitions.get("$defs", {})
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
