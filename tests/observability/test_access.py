"""The access log: the logger's own JSON lines, its level obeyed, written in whole-line chunks."""

import json
import logging
import sys
import time

import pytest

from app.observability.access import AccessLog, RequestRecord
from app.observability.logging import JsonFormatter, request_id_var


class Writes:
    """A stand-in stderr that keeps each write."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def _stderr(monkeypatch: pytest.MonkeyPatch) -> Writes:
    """Stand in for stderr (from the test body: pytest sets its own when the body starts)."""
    writes = Writes()
    monkeypatch.setattr(sys, "stderr", writes)
    return writes


@pytest.fixture
def logger() -> logging.Logger:
    logger = logging.getLogger("triage.http.test-access")
    logger.setLevel(logging.INFO)
    return logger


def _record(status: int = 200, request_id: str = "req-1") -> RequestRecord:
    return RequestRecord(time.time(), request_id, "POST", "/predict", status, 0.012345)


def test_a_line_is_the_one_the_logger_would_write(
    monkeypatch: pytest.MonkeyPatch, logger: logging.Logger
) -> None:
    stderr = _stderr(monkeypatch)
    answered = _record()
    AccessLog(logger).write([answered])
    extra = {"method": "POST", "route": "/predict", "status": 200, "duration_ms": 12.35}
    via_logging = logger.makeRecord(
        logger.name, logging.INFO, "", 0, "request", (), None, None, extra=extra
    )
    via_logging.created = answered.time
    token = request_id_var.set("req-1")
    try:
        expected = JsonFormatter().format(via_logging)
    finally:
        request_id_var.reset(token)
    assert stderr.writes == [expected + "\n"]
    assert list(json.loads(expected)) == [
        "time", "level", "logger", "message", "request_id",
        "duration_ms", "method", "route", "status",
    ]  # fmt: skip


def test_the_level_is_obeyed_and_server_errors_are_warnings(
    monkeypatch: pytest.MonkeyPatch, logger: logging.Logger
) -> None:
    stderr = _stderr(monkeypatch)
    logger.setLevel(logging.WARNING)
    AccessLog(logger).write([_record(200, "ok"), _record(503, "down"), _record(500, "bug")])
    lines = [json.loads(line) for line in "".join(stderr.writes).splitlines()]
    assert [(line["request_id"], line["level"]) for line in lines] == [
        ("down", "WARNING"),
        ("bug", "WARNING"),
    ]
    logger.setLevel(logging.ERROR)
    AccessLog(logger).write([_record(500)])
    assert len("".join(stderr.writes).splitlines()) == 2


def test_writes_hold_whole_lines_of_at_most_a_pipe_buffer(
    monkeypatch: pytest.MonkeyPatch, logger: logging.Logger
) -> None:
    stderr = _stderr(monkeypatch)
    records = [_record(200, f"req-{i:05d}") for i in range(500)]
    AccessLog(logger).write(records)
    assert len(stderr.writes) > 1
    for chunk in stderr.writes:
        assert len(chunk.encode()) <= 4096 and chunk.endswith("\n")
    ids = [json.loads(line)["request_id"] for line in "".join(stderr.writes).splitlines()]
    assert ids == [r.request_id for r in records]
