"""The access log: one JSON line per HTTP request, written a loop turn's worth at a time.

The lines are those the `triage.http` logger would write through `JsonFormatter` (the same
fields, in the same order) and obey its level: INFO for answered requests, WARNING for 5xx.
They are written straight to standard error, like every log record (`configure_logging`),
in writes of whole lines of at most `PIPE_BUF` bytes, which a pipe never interleaves with
another worker's.

NOTE: like nginx's buffered access log, and for the same reason: a line through `logging`
costs the event loop several times what rendering lines in bulk does.
"""

import logging
import select
import sys
from collections.abc import Sequence
from typing import NamedTuple

from app.observability.logging import render_line

ACCESS_LOGGER = "triage.http"
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)


class RequestRecord(NamedTuple):
    """What is logged and measured of one HTTP request once it is answered."""

    time: float  # when it was answered, seconds since the epoch
    request_id: str
    method: str
    route: str  # the route template, "unmatched" when none
    status: int
    seconds: float


class AccessLog:
    """Write `RequestRecord`s as the access logger's JSON lines."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    def write(self, records: Sequence[RequestRecord]) -> None:
        """Write the lines the logger's level lets through, in as few writes as fit."""
        lines = [self.line(r) for r in records if self.logger.isEnabledFor(_level(r.status))]
        if lines:
            _write_lines(lines)

    def line(self, record: RequestRecord) -> str:
        """One record's line, newline included."""
        fields = {
            "duration_ms": round(record.seconds * 1000, 2),
            "method": record.method,
            "route": record.route,
            "status": record.status,
        }
        level = logging.getLevelName(_level(record.status))
        return (
            render_line(record.time, level, self.logger.name, "request", record.request_id, fields)
            + "\n"
        )


def _level(status: int) -> int:
    """A request's log level: WARNING for a server error, INFO otherwise."""
    return logging.WARNING if status >= 500 else logging.INFO


def _write_lines(lines: list[str]) -> None:
    stream = sys.stderr  # NOTE: looked up now, so a redirected stderr is honoured
    chunk: list[str] = []
    size = 0
    for line in lines:
        length = len(line.encode())
        if chunk and size + length > _PIPE_BUF:
            stream.write("".join(chunk))
            stream.flush()
            chunk, size = [], 0
        chunk.append(line)
        size += length
    stream.write("".join(chunk))
    stream.flush()
