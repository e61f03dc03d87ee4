"""FastAPI's native OpenTelemetry hooks as the service sets them (`Settings.opentelemetry`)."""

from fastapi.telemetry import TelemetryConfig

# NOTE: with every signal off, FastAPI skips its telemetry middleware before looking up the
# global providers, which it otherwise does on every request.
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def telemetry(enabled: bool) -> TelemetryConfig | None:
    """FastAPI's `telemetry` argument: its defaults when `enabled`, else every signal off."""
    return None if enabled else TELEMETRY_OFF
