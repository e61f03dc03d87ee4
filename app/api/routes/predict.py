"""`POST /predict` and `POST /predict/batch` (role ehr).

NOTE: these routes take only the `Request` and resolve the caller (first, so a request without
a valid key is refused before its body is read), the body, the intake and the query parameters
with plain calls: FastAPI's dependency resolution was the largest single cost of a scored
request. Body and query parameters are still validated by models and documented in the OpenAPI
schema.
"""

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from app.api.body import documented_body, json_body, request_validation_error
from app.api.deps import BEARER_SECURITY, authorize, get_scoring
from app.api.responses import error_responses, json_response
from app.api.schemas import BatchIn, BatchOut, Encounter, PredictionOut
from app.auth.models import Role
from app.auth.service import Principal
from app.core.config import Settings
from app.core.errors import BadRequestError
from app.inference.service import Incoming, Scored, ScoringService

router = APIRouter(tags=["predict"])


class Sampling(BaseModel):
    """The query parameters of both scoring routes."""

    model_config = ConfigDict(extra="ignore")

    # NOTE: bounded by `Settings` alone (`TRIAGE_INFERENCE__MIN_N_SAMPLES`/`MAX_N_SAMPLES`), which
    # the intake checks: a bound here too would be a second limit, documented and not enforced.
    n_samples: int | None = Field(
        default=None,
        description="MC-dropout samples (default: the model card's); between"
        " TRIAGE_INFERENCE__MIN_N_SAMPLES and TRIAGE_INFERENCE__MAX_N_SAMPLES (2 and 2,048"
        " unless configured).",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Seed of the dropout masks (default: the card's).",
    )

    @field_validator("n_samples")
    @classmethod
    def _within_the_configured_bounds(cls, n: int | None, info: ValidationInfo) -> int | None:
        if n is None or not info.context:  # NOTE: the intake checks the same bounds again
            return n
        low, high = info.context["n_samples_bounds"]
        if not low <= n <= high:
            raise ValueError(f"must be between {low} and {high}")
        return n


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI `parameters` for a model's fields, as FastAPI would write them for `Query`s."""
    schema = model.model_json_schema()
    return [
        {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", []),
            "description": field.pop("description", ""),
            "schema": field,
        }
        for name, field in schema["properties"].items()
    ]


_PARAMETERS = {"parameters": _query_parameters(Sampling)}
# Bodies read by `json_body`, for the OpenAPI document (see `app.api.body`).
BODY_TYPES = (Encounter, BatchIn)


_DEFAULT_SAMPLING = Sampling()


def _sampling(request: Request, scoring: ScoringService) -> Sampling:
    if not request.scope.get("query_string"):  # NOTE: the EHR's usual call: nothing to parse
        return _DEFAULT_SAMPLING
    bounds = (scoring.min_n_samples, scoring.max_n_samples)  # from Settings
    try:
        return Sampling.model_validate(
            dict(request.query_params), context={"n_samples_bounds": bounds}
        )
    except ValidationError as exc:
        raise request_validation_error(exc, "query") from None


def _incoming(encounter: Encounter) -> Incoming:
    # NOTE: the validated dict holds exactly what was sent; the encoder reads an absent
    # field as missing, so the same dict serves as the record.
    return Incoming(encounter["encounter_id"], encounter)


def _out(scored: Scored) -> dict[str, Any]:
    """The `PredictionOut` of one encounter, as plain data."""
    p = scored.prediction
    if p is None:
        return {**_NOT_SCORED, "encounter_id": scored.encounter_id, "reason": scored.not_applicable}
    return {
        "encounter_id": scored.encounter_id,
        "applicable": True,
        "reason": None,
        "probability": p.probability,
        "std": p.std,
        "band_low": p.band_low,
        "band_high": p.band_high,
        "flagged": p.flagged,
        "reasons": list(p.reasons),
        "threshold": p.threshold,
        "n_samples": p.n_samples,
        "seed": p.seed,
        "model_version": p.model_version,
        "review_item_id": scored.review_item_id,
    }


_NOT_SCORED: dict[str, Any] = {
    "applicable": False,
    "probability": None,
    "std": None,
    "band_low": None,
    "band_high": None,
    "flagged": False,
    "reasons": [],
    "threshold": None,
    "n_samples": None,
    "seed": None,
    "model_version": None,
    "review_item_id": None,
}


def _scoring_route(path: str, answer: type[BaseModel], body: Any) -> Any:
    """`router.post` for a scoring route: its answer, query parameters and body documented."""
    extra = {**_PARAMETERS, **documented_body(body), "security": BEARER_SECURITY}
    errors = error_responses(401, 403, 413, 415, 422, 503)
    return router.post(path, response_model=answer, responses=errors, openapi_extra=extra)


async def _score(
    request: Request, principal: Principal, encounters: list[Encounter]
) -> list[Scored]:
    scoring = await get_scoring(request)
    sampling = _sampling(request, scoring)
    return await scoring.score(
        [_incoming(e) for e in encounters],
        n_samples=sampling.n_samples,
        seed=sampling.seed,
        actor=principal.name,
        actor_key_id=principal.key_id,
    )


@_scoring_route("/predict", PredictionOut, Encounter)
async def predict(request: Request) -> Response:
    """Score one encounter; a flagged one is in the review queue before this answers."""
    principal = await authorize(request, Role.EHR)  # NOTE: before the body is read or checked
    encounter = await json_body(request, Encounter)
    [scored] = await _score(request, principal, [encounter])
    return json_response(_out(scored))


@_scoring_route("/predict/batch", BatchOut, BatchIn)
async def predict_batch(request: Request) -> Response:
    """Score several encounters, answering in order; any invalid one fails the whole batch (a
    death or hospice discharge is valid: answered in place as not applicable)."""
    principal = await authorize(request, Role.EHR)  # NOTE: before the body is read or checked
    batch = await json_body(request, BatchIn)
    settings: Settings = request.app.state.settings
    encounters = batch["encounters"]
    if len(encounters) > settings.max_batch_encounters:
        raise BadRequestError(
            f"encounters: at most {settings.max_batch_encounters} per batch, got {len(encounters)}"
        )
    scored = await _score(request, principal, encounters)
    return json_response({"predictions": [_out(s) for s in scored]})
