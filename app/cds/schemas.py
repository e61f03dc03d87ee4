"""The CDS Hooks 2.0 request and feedback bodies the service reads (other fields ignored).

A hook request is decoded by `read_hook` into `HookCall`, msgspec Structs of what the service
reads (the prefetch as `app.features.fhir.schema.Prefetch`). `HookRequest`, the same envelope
as a pydantic model, documents the body in OpenAPI and names what is wrong with a body the
Structs refuse, as every other route's body model does.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.features.fhir.mapping import as_prefetch
from app.features.fhir.schema import Prefetch


class HookContext(BaseModel):
    """The hook's context: whose chart, which encounter."""

    model_config = ConfigDict(extra="allow")

    patientId: str | None = Field(default=None, max_length=128)
    encounterId: str | None = Field(default=None, max_length=128)


class HookRequest(BaseModel):
    """A CDS Hooks call: the hook, its instance, the context and the prefetched resources."""

    model_config = ConfigDict(extra="allow")

    hook: str = Field(max_length=64)
    hookInstance: str = Field(max_length=128)
    context: HookContext
    prefetch: dict[str, Any] | None = Field(
        default=None, description="The resources of the discovery document's prefetch templates."
    )
    fhirServer: str | None = Field(default=None, max_length=2048)
    fhirAuthorization: dict[str, Any] | None = Field(
        default=None, description="OAuth 2.0 access to fhirServer: access_token, token_type, ..."
    )


class CallContext(msgspec.Struct, gc=False):
    """`HookContext`, decoded."""

    patientId: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    encounterId: Annotated[str, msgspec.Meta(max_length=128)] | None = None


class HookCall(msgspec.Struct, gc=False):
    """`HookRequest`, decoded (the constraints are the same)."""

    hook: Annotated[str, msgspec.Meta(max_length=64)]
    hookInstance: Annotated[str, msgspec.Meta(max_length=128)]
    context: CallContext
    prefetch: Prefetch | None = None
    fhirServer: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    fhirAuthorization: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(HookCall)


def read_hook(body: bytes) -> HookCall:
    """The hook request in `body`; RequestValidationError (422) for a body that is not one, and
    FhirMappingError (400) for a prefetch that is not FHIR as the mapping reads it."""
    try:
        return _DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        pass  # NOTE: explained below, by the models that name what to fix
    try:
        envelope = HookRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    prefetch = as_prefetch(envelope.prefetch) if envelope.prefetch is not None else None
    # NOTE: both decoders accepted it (they differ only where msgspec is stricter, for example
    # a JSON integer for a string): read the envelope's fields from pydantic's values.
    fields = envelope.model_dump(
        include={"hook", "hookInstance", "fhirServer", "fhirAuthorization"}
    )
    context = CallContext(envelope.context.patientId, envelope.context.encounterId)
    return HookCall(context=context, prefetch=prefetch, **fields)


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """`model` as a route's requestBody in OpenAPI, for a route that reads its body itself."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:  # NOTE: `#/$defs/...` does not resolve inside OpenAPI
        if isinstance(node, dict):
            if set(node) == {"$ref"}:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    content = {"application/json": {"schema": inline(schema)}}
    return {"requestBody": {"required": True, "content": content}}


class OverrideReason(BaseModel):
    """Why the clinician overrode the card: a coding and/or a comment."""

    model_config = ConfigDict(extra="ignore")

    reason: dict[str, Any] | None = Field(default=None, description="A Coding.")
    userComment: str | None = Field(default=None, max_length=2000)


class FeedbackEntry(BaseModel):
    """One card's outcome."""

    model_config = ConfigDict(extra="ignore")

    card: str = Field(max_length=64, description="The card's uuid.")
    outcome: Literal["accepted", "overridden"]
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: datetime


class FeedbackRequest(BaseModel):
    """A CDS Hooks 2.0 feedback call."""

    model_config = ConfigDict(extra="ignore")

    feedback: list[FeedbackEntry] = Field(min_length=1, max_length=100)
