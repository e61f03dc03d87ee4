"""The HTTP stack's ceiling: the same routes and body types as the service, constant answers.

Bodies are parsed and answers serialised exactly as the service's scoring routes do
(`json_body` in, `json_response` out), so the ratio to this app measures scoring, the key
check, the review queue and the service's middleware, nothing else.

`python -m bench.bare --port P --workers N [--plain]` serves it as `triage serve` serves the
service: the same uvicorn settings, and with several workers a listening socket each
(`app.supervisor`). `bench.bare:plain_asgi` is the same parse and answer with no framework at
all: the scoring routes run below FastAPI's router (`app/api/direct.py`), so the load report
shows both floors.
"""

import argparse
import sys
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.types import Receive, Scope, Send

from app.api.body import json_body
from app.api.responses import json_response
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

    app.post("/predict", response_model=PredictionOut)(predict)
    app.post("/predict/batch", response_model=BatchOut)(batch)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


async def predict(request: Request) -> Response:
    """One encounter parsed, a constant answer."""
    encounter = await json_body(request, Encounter)
    return json_response(_constant(encounter["encounter_id"]))


async def batch(request: Request) -> Response:
    """A batch parsed, a constant answer per encounter."""
    body = await json_body(request, BatchIn)
    answers = [_constant(e["encounter_id"]) for e in body["encounters"]]
    return json_response({"predictions": answers})


_PLAIN_ROUTES = {"/predict": predict, "/predict/batch": batch}


async def plain_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The same two endpoints as a bare ASGI callable: no routing, middleware or error pages."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    endpoint = _PLAIN_ROUTES.get(scope["path"])
    if endpoint is None:  # NOTE: any other path is the harness polling for readiness
        response = json_response({"status": "ready"})
    else:
        response = await endpoint(Request(scope, receive))
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
