"""The model health page (HTML, clinicians and admins): live performance from the job's snapshot.

Plain `def` routes, so FastAPI runs them on its thread pool: a chart drawn for the first time
never holds up the event loop.
"""

import threading
from collections.abc import Mapping
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.api.page_auth import PageAuthDep, to_sign_in
from app.web.charts import CHARTS, ChartCache, texts
from app.web.health import WINDOW_WORDS, health_view, outcome_count
from app.web.render import SECURITY_HEADERS, render

router = APIRouter(prefix="/review/health", include_in_schema=False)

# NOTE: an SVG shown through <img> is a document of its own: matplotlib styles its shapes
# with style attributes, which this policy allows there and nothing else (no scripts, no
# fetches). The pages keep their strict policy.
SVG_HEADERS: Final = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
EMPTY: Final = "No matured outcomes yet: post them to POST /outcomes"
_lock = threading.Lock()


def _snapshot(request: Request) -> Mapping[str, Any] | None:
    """The performance job's last snapshot; None before its first run (or without a job)."""
    job = getattr(request.app.state, "performance_job", None)
    return job.snapshot() if job is not None else None


def _charts(request: Request) -> ChartCache:
    state = request.app.state
    cache: ChartCache | None = getattr(state, "health_charts", None)
    if cache is None:
        with _lock:
            cache = getattr(state, "health_charts", None)
            if cache is None:
                cache = state.health_charts = ChartCache()
    return cache


def _choice(
    snapshot: Mapping[str, Any], version: str, window: str, serving: str | None
) -> tuple[str, str] | None:
    """The asked-for version and window when the snapshot has them, else sensible defaults:
    the `serving` model's version, and the shortest window with outcomes."""
    versions = snapshot.get("model_versions") or {}
    if not versions:
        return None
    if version not in versions:
        version = serving if serving is not None and serving in versions else next(iter(versions))
    windows = versions[version].get("windows") or {}
    if not windows:
        return None
    if window not in windows:
        filled = [w for w, data in windows.items() if outcome_count(data) > 0]
        window = (filled or list(windows))[0]
    return version, window


@router.get("", response_class=HTMLResponse)
def health_page(
    request: Request, auth: PageAuthDep, version: str = "", window: str = ""
) -> Response:
    """Calibration, discrimination, flags and subgroups of the live model, by window."""
    if auth.principal is None:
        return to_sign_in()
    serving = getattr(getattr(request.app.state, "predictor", None), "model_version", None)
    snapshot = _snapshot(request)
    choice = _choice(snapshot, version, window, serving) if snapshot else None
    context: dict[str, Any] = {"auth": auth, "title": "Model health", "empty": EMPTY}
    if snapshot is None or choice is None:
        return render(request, "health.html", {**context, "view": None})
    version, window = choice
    model = snapshot["model_versions"][version]
    view = health_view(snapshot, version, window)
    context |= {
        "view": view,
        "versions": list(snapshot["model_versions"]),
        "windows": {w: WINDOW_WORDS.get(w, w) for w in model["windows"]},
        "charts": texts(model["windows"][window], model.get("reference") or {}),
        "stamp": snapshot.get("computed_at", ""),
        "interval_min": max(1, round(int(snapshot.get("interval_s") or 60) / 60)),
    }
    return render(request, "health.html", context)


@router.get("/charts/{name}.svg")
def health_chart(
    request: Request, name: str, auth: PageAuthDep, version: str = "", window: str = ""
) -> Response:
    """One chart of the page as SVG, drawn once per snapshot."""
    if auth.principal is None:
        return Response("Signed out", status_code=401, headers={"Cache-Control": "no-store"})
    snapshot = _snapshot(request)
    versions = (snapshot or {}).get("model_versions") or {}
    windows = (versions.get(version) or {}).get("windows") or {}
    if name not in CHARTS or snapshot is None or window not in windows:
        return Response("No such chart", status_code=404, headers={"Cache-Control": "no-store"})
    svg = _charts(request).svg(snapshot, version, window, name)
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)
