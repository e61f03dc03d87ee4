"""`GET /monitoring/performance` (role admin): the live-performance job's last snapshot."""

from fastapi import APIRouter, Request, Response

from app.api.deps import AdminDep
from app.api.responses import error_responses, json_response
from app.core.errors import UnavailableError
from app.monitoring.job import PerformanceJob

router = APIRouter(tags=["monitoring"], responses=error_responses(401, 403, 503))


@router.get("/monitoring/performance")
async def live_performance(request: Request, _principal: AdminDep) -> Response:
    """Per model version: the card's reference, the outcome backlog and, per window of
    discharge dates, every cohort's figures over matured outcomes (see docs/monitoring.md)."""
    job: PerformanceJob | None = request.app.state.performance_job
    snapshot = None if job is None else job.snapshot()
    if snapshot is None:
        raise UnavailableError("live performance is being computed for the first time", 5)
    return json_response(snapshot)
