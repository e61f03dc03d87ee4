"""The HTTP stack's ceiling: the same routes and body types as the service, constant answers.

Bodies are parsed and answers serialised as the service's scoring routes do (their route
class and FastAPI body parameters in, `json_response` out), so the ratio to this app measures
scoring, the key check, the review queue and the service's middleware, nothing else.

`python -m bench.bare --port P --workers N [--plain]` serves it as `triage serve` serves the
service: the same uvicorn settings, and with several workers a listening socket each
(`app.supervisor`). `bench.bare:plain_asgi` parses the same body types with no framework at
all (pydantic straight from the bytes), so the load report also shows what FastAPI costs.
"""

import argparse
import sys
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Request, Response
from pydantic import TypeAdapter
from starlette.types import Receive, Scope, Send

from app.api.responses import json_response
from app.api.routing import CallerFirstRoute
from app.api.schemas import BatchIn, BatchOut, Encounter, PredictionOut
from app.api.telemetry import TELEMETRY_OFF
from app.serve import SERVING_OPTIONS
from app.supervisor import serve_processes


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
    app = FastAPI(title="bare", telemetry=TELEMETRY_OFF)  # NOTE: the service's own setting

    # NOTE: the service's route class, without keys: the same Content-Type check and decoder
    scoring = APIRouter(route_class=CallerFirstRoute, strict_content_type=False)
    scoring.post("/predict", response_model=PredictionOut)(predict)
    scoring.post("/predict/batch", response_model=BatchOut)(batch)
    app.include_router(scoring)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


async def predict(encounter: Annotated[Encounter, Body()]) -> Response:
    """One encounter parsed, a constant answer."""
    return json_response(_constant(encounter["encounter_id"]))


async def batch(body: Annotated[BatchIn, Body()]) -> Response:
    """A batch parsed, a constant answer per encounter."""
    answers = [_constant(e["encounter_id"]) for e in body["encounters"]]
    return json_response({"predictions": answers})


_PLAIN_ROUTES = {
    "/predict": (TypeAdapter(Encounter), predict),
    "/predict/batch": (TypeAdapter(BatchIn), batch),
}


async def plain_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The same two endpoints as a bare ASGI callable: no routing, middleware or error pages."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    route = _PLAIN_ROUTES.get(scope["path"])
    if route is None:  # NOTE: any other path is the harness polling for readiness
        response = json_response({"status": "ready"})
    else:
        body_type, endpoint = route
        response = await endpoint(body_type.validate_json(await Request(scope, receive).body()))
    await response(scope, receive, send)


def main(argv: list[str] | None = None) -> int:
    """Serve the bare app (or `--plain`, the plain ASGI one) the way `triage serve` serves."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--plain", action="store_true", help="the plain ASGI endpoints")
    args = parser.parse_args(argv)
    app = "bench.bare:plain_asgi" if args.plain else "bench.bare:app_factory"
    options = {"app": app, "factory": not args.plain, "host": args.host, "port": args.port}
    return serve_processes({**SERVING_OPTIONS, **options, "log_level": "warning"}, args.workers)


if __name__ == "__main__":
    sys.exit(main())
