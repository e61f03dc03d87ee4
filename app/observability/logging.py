"""Structured JSON logs carrying a request id.

Patient data stays out of logs: log calls pass only ids, counts, routes and timings, and the
formatter drops the request body, query values and exception arguments it is never given.
"""

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed in `extra=` and is logged as a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as one JSON line."""
        record_fields = record.__dict__
        fields = {
            key: record_fields[key]
            for key in sorted(record_fields.keys() - _STANDARD)
            if not key.startswith("_")
        }
        if record.exc_info and record.exc_info[0] is not None:
            # NOTE: type and traceback only: exception messages can quote input values.
            fields["error"] = record.exc_info[0].__name__
            fields["traceback"] = _scrub(self.formatException(record.exc_info))
        return render_line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            request_id_var.get(),
            fields,
        )


def render_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    request_id: str | None,
    fields: dict[str, Any],
) -> str:
    """One log line (no newline): time, level, logger, message, request id, then `fields`."""
    entry: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
    }
    if request_id is not None:
        entry["request_id"] = request_id
    entry.update(fields)
    # NOTE: pydantic-core writes the line in C, faster than `json.dumps`.
    return to_json(entry, fallback=str).decode()


def _scrub(traceback: str) -> str:
    """Keep frames and exception types, drop exception messages (they may quote patient data)."""
    lines = []
    for line in traceback.splitlines():
        if line.startswith((" ", "Traceback", "During handling", "The above")) or not line:
            lines.append(line)
        else:
            lines.append(line.split(":", 1)[0])
    return "\n".join(lines)


def configure_logging(level: str) -> None:
    """Send every logger's records to stderr as JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # NOTE: the formatter writes none of these; skipping them is the logging HOWTO's own
    # "Optimization" advice and cuts the cost of the per-request access line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # NOTE: our middleware logs each request; uvicorn's access log would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True
