"""`POST /predict` and `POST /predict/batch` (role ehr)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import EhrDep, IntakeDep, SettingsDep
from app.api.schemas import BatchIn, BatchOut, Encounter, PredictionOut
from app.core.errors import BadRequestError
from app.review.intake import Incoming, Scored

router = APIRouter(tags=["predict"])

NSamples = Annotated[
    int | None,
    Query(ge=2, le=65536, description="MC-dropout samples (default: the model card's)."),
]
Seed = Annotated[
    int | None,
    Query(ge=0, le=2**63 - 1, description="Seed of the dropout masks (default: the card's)."),
]


def _incoming(encounter: Encounter) -> Incoming:
    received, record = encounter.received_and_record()
    return Incoming(encounter.encounter_id, received, record)


def _out(scored: Scored) -> PredictionOut:
    p = scored.prediction
    return PredictionOut(
        encounter_id=scored.encounter_id,
        probability=p.probability,
        std=p.std,
        flagged=p.flagged,
        reasons=list(p.reasons),
        threshold=p.threshold,
        n_samples=p.n_samples,
        seed=p.seed,
        model_version=p.model_version,
        review_item_id=scored.review_item_id,
    )


@router.post("/predict", response_model=PredictionOut)
async def predict(
    encounter: Encounter,
    principal: EhrDep,
    intake: IntakeDep,
    n_samples: NSamples = None,
    seed: Seed = None,
) -> PredictionOut:
    """Score one encounter; a flagged one is in the review queue before this answers."""
    [scored] = await intake.score(
        [_incoming(encounter)], n_samples=n_samples, seed=seed, actor=principal.name
    )
    return _out(scored)


@router.post("/predict/batch", response_model=BatchOut)
async def predict_batch(
    batch: BatchIn,
    principal: EhrDep,
    intake: IntakeDep,
    settings: SettingsDep,
    n_samples: NSamples = None,
    seed: Seed = None,
) -> BatchOut:
    """Score several encounters, answering in order; any invalid one fails the whole batch."""
    if len(batch.encounters) > settings.max_batch_encounters:
        raise BadRequestError(
            f"encounters: at most {settings.max_batch_encounters} per batch, "
            f"got {len(batch.encounters)}"
        )
    scored = await intake.score(
        [_incoming(e) for e in batch.encounters],
        n_samples=n_samples,
        seed=seed,
        actor=principal.name,
    )
    return BatchOut(predictions=[_out(s) for s in scored])
