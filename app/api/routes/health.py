"""Liveness and readiness probes (no authentication)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core.errors import UnavailableError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


async def _ping(database: Any) -> bool:
    try:
        return bool(await database.run(database.ping))
    except UnavailableError:  # NOTE: a hung database is not ready either.
        return False


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the model is loaded, its scoring process and review-queue writer (if any)
    run and the database answers; 503 otherwise."""
    state = request.app.state
    predictor = getattr(state, "predictor", None)
    scoring = getattr(state, "scoring_process", None)
    writer = getattr(state, "writer_process", None)
    database = getattr(state, "database", None)
    database_ok = database is not None and await _ping(database)
    scoring_ok = scoring is None or scoring.alive
    writer_ok = writer is None or writer.alive
    body: dict[str, Any] = {
        "model_loaded": predictor is not None,
        "model_version": predictor.model_version if predictor is not None else None,
        "scoring_process": None if scoring is None else scoring.alive,
        "review_writer": None if writer is None else writer.alive,
        "database": database_ok,
    }
    ready = predictor is not None and scoring_ok and writer_ok and database_ok
    body["status"] = "ready" if ready else "not ready"
    return JSONResponse(body, status_code=200 if ready else 503)
