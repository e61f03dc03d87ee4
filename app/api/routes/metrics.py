"""`GET /metrics`: Prometheus text, optionally behind its own bearer token."""

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import MetricsDep, SettingsDep, bearer_token
from app.core.errors import UnauthorizedError
from app.observability.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, settings: SettingsDep, registry: MetricsDep) -> Response:
    """Every metric, with review-queue sizes counted in the database now and the live
    performance job's last figures."""
    expected = settings.auth.metrics_token
    if expected is not None:
        given = bearer_token(request) or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise UnauthorizedError("metrics need 'Authorization: Bearer <metrics token>'")
    # NOTE: requests and predictions are recorded at the end of the loop turn that answered
    # them (`app.observability.turn`); yielding once lets those pending records in first.
    await asyncio.sleep(0)
    state = request.app.state
    collectors = (state.queue_collector, state.performance_collector)
    batcher, predictor = request.app.state.batcher, request.app.state.predictor
    if batcher is not None and predictor is not None:
        registry.queue_depth.labels(predictor.model_version).set(batcher.queue_depth)
    body, content_type = await run_in_threadpool(exposition, registry.registry, *collectors)
    return Response(body, media_type=content_type)
