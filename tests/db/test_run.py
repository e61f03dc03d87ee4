"""`Database.run`: blocking database work off the event loop, bounded by the timeout."""

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.errors import UnavailableError
from app.db.session import Database
from app.observability.logging import request_id_var

TIMEOUT_S = 0.3


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'run.db'}", timeout_s=TIMEOUT_S)
    yield database
    database.dispose()


async def test_a_hung_call_is_a_503_in_time_and_holds_up_no_other_call(
    database: Database,
) -> None:
    entered, release = threading.Event(), threading.Event()

    def hang() -> None:
        entered.set()
        release.wait()

    hung = asyncio.ensure_future(database.run(hang))
    try:
        assert await asyncio.to_thread(entered.wait, 5)  # the hung call holds its thread
        started = time.perf_counter()
        assert await database.run(lambda: "answered") == "answered"
        assert time.perf_counter() - started < TIMEOUT_S  # not queued behind the hung call
        with pytest.raises(UnavailableError, match="did not answer in time"):
            await hung
        assert time.perf_counter() - started < TIMEOUT_S + 1
    finally:
        release.set()


async def test_the_work_sees_the_callers_request_id(database: Database) -> None:
    # NOTE: log lines written by database work carry the id of the request it serves.
    token = request_id_var.set("req-123")
    try:
        assert await database.run(request_id_var.get) == "req-123"
    finally:
        request_id_var.reset(token)
