"""`POST /predict` and `POST /predict/batch` (role ehr).

The caller is checked before the body is read (`app.api.routing.CallerFirstRoute`): a request
without a valid key learns nothing about its body.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import EhrDep, ScoringDep, SettingsDep
from app.api.responses import error_responses, json_response
from app.api.routing import CallerFirstRoute
from app.api.schemas import BatchIn, BatchOut, Encounter, PredictionOut
from app.auth.service import Principal
from app.core.errors import BadRequestError
from app.inference.service import Incoming, Scored, ScoringService

# NOTE: a body sent without a Content-Type is read as JSON, as EHR clients have relied on.
router = APIRouter(tags=["predict"], route_class=CallerFirstRoute, strict_content_type=False)


class Sampling(BaseModel):
    """The query parameters of both scoring routes."""

    model_config = ConfigDict(extra="ignore")

    # NOTE: bounded by `Settings` alone (`TRIAGE_INFERENCE__MIN_N_SAMPLES`/`MAX_N_SAMPLES`),
    # checked by `sampling`: a bound in the schema would be a second, fixed limit.
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


async def sampling(query: Annotated[Sampling, Query()], settings: SettingsDep) -> Sampling:
    """The query parameters, `n_samples` within the configured bounds (else a 422 naming it)."""
    low, high = settings.inference.min_n_samples, settings.inference.max_n_samples
    n = query.n_samples
    if n is not None and not low <= n <= high:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "n_samples"),
                    "msg": f"must be between {low} and {high}",
                    "input": n,
                }
            ]
        )
    return query


SamplingDep = Annotated[Sampling, Depends(sampling)]


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
        "action_threshold": p.action_threshold,
        "recommended_action": p.recommended_action,
        "decision_flip_probability": p.decision_flip_probability,
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
    "action_threshold": None,
    "recommended_action": None,
    "decision_flip_probability": None,
    "flagged": False,
    "reasons": [],
    "threshold": None,
    "n_samples": None,
    "seed": None,
    "model_version": None,
    "review_item_id": None,
}


_ERRORS = error_responses(401, 403, 413, 415, 422, 503)


async def _score(
    scoring: ScoringService, principal: Principal, sampling: Sampling, encounters: list[Encounter]
) -> list[Scored]:
    return await scoring.score(
        [_incoming(e) for e in encounters],
        n_samples=sampling.n_samples,
        seed=sampling.seed,
        actor=principal.name,
        actor_key_id=principal.key_id,
    )


@router.post("/predict", response_model=PredictionOut, responses=_ERRORS)
async def predict(
    principal: EhrDep,
    scoring: ScoringDep,
    sampling: SamplingDep,
    encounter: Annotated[Encounter, Body()],
) -> Response:
    """Score one encounter; a flagged one is in the review queue before this answers."""
    [scored] = await _score(scoring, principal, sampling, [encounter])
    return json_response(_out(scored))


@router.post("/predict/batch", response_model=BatchOut, responses=_ERRORS)
async def predict_batch(
    principal: EhrDep,
    scoring: ScoringDep,
    sampling: SamplingDep,
    settings: SettingsDep,
    batch: Annotated[BatchIn, Body()],
) -> Response:
    """Score several encounters, answering in order; any invalid one fails the whole batch (a
    death or hospice discharge is valid: answered in place as not applicable)."""
    encounters = batch["encounters"]
    if len(encounters) > settings.max_batch_encounters:
        raise BadRequestError(
            f"encounters: at most {settings.max_batch_encounters} per batch, got {len(encounters)}"
        )
    scored = await _score(scoring, principal, sampling, encounters)
    return json_response({"predictions": [_out(s) for s in scored]})
