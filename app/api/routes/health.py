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
    """Ready when the model is loaded and the database answers; 503 otherwise."""
    state = request.app.state
    predictor = getattr(state, "predictor", None)
    database = getattr(state, "database", None)
    database_ok = database is not None and await _ping(database)
    body: dict[str, Any] = {
        "model_loaded": predictor is not None,
        "model_version": predictor.model_version if predictor is not None else None,
        "database": database_ok,
    }
    ready = predictor is not None and database_ok
    body["status"] = "ready" if ready else "not ready"
    return JSONResponse(body, status_code=200 if ready else 503)
