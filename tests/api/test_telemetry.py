"""FastAPI's OpenTelemetry hooks: off by default (no provider lookups), on when configured."""

import httpx
import pytest
from opentelemetry import trace

from app.core.config import Settings
from app.main import create_app


@pytest.mark.parametrize("enabled", [False, True])
async def test_requests_consult_opentelemetry_only_when_it_is_on(
    monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    lookups: list[object] = []
    real = trace.get_tracer_provider

    def counted() -> trace.TracerProvider:
        lookups.append(None)
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    app = create_app(Settings(opentelemetry=enabled))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://triage.test") as client:
        for _ in range(3):
            assert (await client.get("/healthz")).status_code == 200
    assert (len(lookups) >= 3) if enabled else lookups == []
