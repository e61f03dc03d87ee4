"""The HTTP stack's ceiling: the same routes and body models as the service, constant answers.

Bodies are parsed and answers serialised exactly as the service's scoring routes do
(`json_body` in, `json_response` out), so the ratio to this app measures scoring, the key
check, the review queue and the service's middleware, nothing else.

`uvicorn bench.bare:app_factory --factory` serves it with the settings `triage serve` uses.
"""

from typing import Any

from fastapi import FastAPI, Request, Response

from app.api.body import json_body
from app.api.responses import json_response
from app.api.schemas import BatchIn, BatchOut, Encounter, PredictionOut


def _constant(encounter_id: str) -> dict[str, Any]:
    return {
        "encounter_id": encounter_id,
        "probability": 0.1,
        "std": 0.01,
        "flagged": False,
        "reasons": [],
        "threshold": 0.05,
        "n_samples": 0,
        "seed": 0,
        "model_version": "bare",
        "review_item_id": None,
    }


def app_factory() -> FastAPI:
    """Parse the service's request bodies and answer a constant."""
    app = FastAPI(title="bare")

    @app.post("/predict", response_model=PredictionOut)
    async def predict(request: Request) -> Response:
        encounter = await json_body(request, Encounter)
        return json_response(_constant(encounter.encounter_id))

    @app.post("/predict/batch", response_model=BatchOut)
    async def batch(request: Request) -> Response:
        body = await json_body(request, BatchIn)
        return json_response({"predictions": [_constant(e.encounter_id) for e in body.encounters]})

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app
