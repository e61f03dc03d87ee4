"""Liveness and readiness probes (no authentication)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core.draining import is_draining
from app.core.errors import UnavailableError
from app.db.schema import READY_STATES, SchemaState, schema_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


async def _schema(database: Any, check: Any) -> SchemaState:
    if database is None:
        return SchemaState.UNREACHABLE
    try:
        return SchemaState(await database.run(schema_state, database, check))
    except UnavailableError:  # NOTE: a hung database is not ready either.
        return SchemaState.UNREACHABLE


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the model is loaded, the database answers and holds the schema this code
    needs (or a newer one); 503 otherwise, so a replica started before the migration waits."""
    state = request.app.state
    predictor = getattr(state, "predictor", None)
    schema = await _schema(getattr(state, "database", None), getattr(state, "schema_check", None))
    body: dict[str, Any] = {
        "model_loaded": predictor is not None,
        "model_version": predictor.model_version if predictor is not None else None,
        "database": schema is not SchemaState.UNREACHABLE,
        "schema": schema.value,
    }
    if schema in (SchemaState.MISSING, SchemaState.BEHIND):
        body["action"] = "run `triage db upgrade` (the migration job) once; replicas wait for it"
    draining = is_draining()
    ready = predictor is not None and schema in READY_STATES and not draining
    body["status"] = "draining" if draining else "ready" if ready else "not ready"
    return JSONResponse(body, status_code=200 if ready else 503)
