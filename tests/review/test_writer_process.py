"""The review-queue writer's child process: commits, errors per request, restarts."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.errors import BadRequestError, UnavailableError
from app.db.session import Database
from app.inference.predictor import Prediction
from app.review.service import FlaggedCase, get_item, item_events
from app.review.writer_process import WriterProcess


def _case(encounter_id: str, *, actor: str = "ehr-a") -> FlaggedCase:
    prediction = Prediction(
        probability=0.4375,
        std=0.125,
        std_standard_error=None,
        mutual_information=0.05,
        flagged=True,
        reasons=("high_uncertainty",),
        threshold=0.1,
        n_samples=1000,
        seed=2**62 + 1,
        model_version="v7",
        novelty=3.5,
        novelty_threshold=9.0,
    )
    return FlaggedCase(encounter_id, {"race": "Caucasian", "note": "é \x00"}, prediction, actor)


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[WriterProcess]:
    process = WriterProcess(database_url, timeout_s=5.0)
    await process.start()
    yield process
    await process.stop()


async def test_cases_are_committed_in_the_child_and_read_back(writer, database_url) -> None:
    [first, second] = await writer.write([[_case("enc-1")], [_case("enc-2"), _case("enc-1")]])
    assert second[1] == first[0] != second[0]
    [again] = await writer.write([[_case("enc-2", actor="ehr-b")]])
    assert again == [second[0]]  # a retry finds its item
    database = Database(database_url)
    try:
        with database.session() as session:
            item = get_item(session=session, item_id=first[0])
            assert (item.encounter_id, item.seed) == ("enc-1", 2**62 + 1)
            assert item.reasons == ["high_uncertainty"]
            assert item.encounter == {"race": "Caucasian", "note": "é \x00"}
            [event] = item_events(session=session, item_id=second[0])
            assert event.actor == "ehr-a"
    finally:
        database.dispose()


async def test_the_child_has_no_password_on_its_command_line_and_no_torch(
    writer, database_url
) -> None:
    child = writer._child
    assert child is not None
    command = Path(f"/proc/{child.pid}/cmdline").read_bytes().decode()
    assert "writer_process" in command and database_url not in command
    # NOTE: it stores predictions but makes none: torch would cost every worker 190 MB.
    assert "libtorch" not in Path(f"/proc/{child.pid}/maps").read_text()


async def test_a_value_the_database_refuses_fails_only_its_request(database_url) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite stores a NUL character in text; PostgreSQL refuses it")
    process = WriterProcess(database_url, timeout_s=5.0)
    await process.start()
    try:
        refused, stored = await process.write([[_case("bad\x00id")], [_case("enc-9")]])
        assert isinstance(refused, BadRequestError) and "NUL" in refused.message
        assert isinstance(stored, list) and len(stored) == 1
    finally:
        await process.stop()


async def test_a_dead_child_answers_503_and_is_replaced(writer) -> None:
    child = writer._child
    assert child is not None
    os.kill(child.pid, signal.SIGKILL)
    await child.wait()
    with pytest.raises(UnavailableError):
        await writer.write([[_case("enc-1")]])
    for _ in range(200):  # the restart takes about a second (a new interpreter)
        if writer.alive:
            break
        await asyncio.sleep(0.05)
    assert writer.alive and writer._child is not child
    [ids] = await writer.write([[_case("enc-1")]])
    assert len(ids) == 1


async def test_an_unreachable_database_is_503_not_a_dead_writer() -> None:
    url = "postgresql+psycopg://triage@127.0.0.1:9/none"  # nothing listens on port 9
    process = WriterProcess(url, timeout_s=1.0)
    await process.start()
    try:
        [answer] = await process.write([[_case("enc-1")]])
        assert isinstance(answer, UnavailableError)
        assert process.alive
    finally:
        await process.stop()
