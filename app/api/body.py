"""Request bodies parsed and validated straight from their JSON bytes by pydantic-core.

NOTE: a FastAPI body parameter decodes the JSON with Python's `json` and then validates the
Python objects; for a batch of 1,000 encounters the two passes were about half of the event
loop's time. `json_body` does both in one pass and words its errors exactly as FastAPI's
validation errors (422, each naming its field). Routes that read their body this way list its
model in `BODY_MODELS` so the OpenAPI document still describes it.
"""

import json
from functools import cache
from typing import Any, TypeVar, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from app.core.errors import UnsupportedMediaTypeError

ModelT = TypeVar("ModelT", bound=BaseModel)
_REF = "#/components/schemas/{model}"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def json_body(request: Request, model: type[ModelT]) -> ModelT:
    """The request body as `model` (415 if it is not JSON, 422 naming each bad field)."""
    content_type = request.headers.get("content-type")
    if content_type and not _is_json(content_type):
        raise UnsupportedMediaTypeError(
            f"the body must be JSON (Content-Type: application/json), not {content_type[:64]!r}"
        )
    body = await request.body()
    try:
        if any(name in body for name in _shadowed_names(model)):
            # NOTE: pydantic's JSON mode silently drops a key that is a field's Python name
            # when the field takes an alias ("glyburide_metformin" for "glyburide-metformin"),
            # where Python mode reports it as an extra field. Such a body takes the Python path.
            return model.model_validate(json.loads(body))
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise request_validation_error(exc, "body") from None
    except (ValueError, RecursionError) as exc:  # NOTE: only from `json.loads`
        error = {"type": "json_invalid", "loc": ("body",), "msg": "Invalid JSON", "input": None}
        raise RequestValidationError([error]) from exc


def request_validation_error(exc: ValidationError, where: str) -> RequestValidationError:
    """`exc` as FastAPI words it for a `where` ("body", "query") value: the handlers' 422."""
    errors = [{**e, "loc": (where, *e["loc"])} for e in exc.errors(include_url=False)]
    return RequestValidationError(errors)


@cache
def _shadowed_names(model: type[BaseModel]) -> tuple[bytes, ...]:
    """`"name"` for every aliased field of `model` and of the models inside it."""
    names: set[bytes] = set()
    for name, field in model.model_fields.items():
        if field.alias and field.alias != name:
            names.add(f'"{name}"'.encode())
        for inner in _models_in(field.annotation):
            names.update(_shadowed_names(inner))
    return tuple(sorted(names))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's `openapi_extra` declaring a required JSON body of `model`."""
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document_body_models(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Add `models` (read by `json_body`, so unseen by FastAPI) to the app's OpenAPI schemas."""
    generate = app.openapi
    _, definitions = models_json_schema([(m, "validation") for m in models], ref_template=_REF)

    def openapi() -> dict[str, Any]:
        schema = generate()  # NOTE: FastAPI builds it once and caches it; the update is idempotent
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            definitions.get("$defs", {})
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
