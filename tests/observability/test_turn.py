"""Per-turn recording: what one loop turn adds is recorded together, once, after the turn."""

import asyncio
import logging

import pytest

from app.observability.turn import TurnBuffer


async def test_a_turns_items_are_recorded_together_after_it() -> None:
    recorded: list[list[int]] = []
    buffer: TurnBuffer[int] = TurnBuffer(recorded.append, name="numbers")
    buffer.add(1)
    buffer.extend([2, 3])
    assert recorded == []  # nothing yet: the turn is not over
    await asyncio.sleep(0)
    assert recorded == [[1, 2, 3]]
    buffer.add(4)
    await asyncio.sleep(0)
    assert recorded == [[1, 2, 3], [4]]


async def test_flush_records_what_waits_now() -> None:
    recorded: list[list[int]] = []
    buffer: TurnBuffer[int] = TurnBuffer(recorded.append, name="numbers")
    buffer.extend([1, 2])
    buffer.flush()
    assert recorded == [[1, 2]]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert recorded == [[1, 2]]


def test_without_a_running_loop_an_item_is_recorded_at_once() -> None:
    recorded: list[list[int]] = []
    buffer: TurnBuffer[int] = TurnBuffer(recorded.append, name="numbers")
    buffer.add(7)
    assert recorded == [[7]]


async def test_a_failing_recorder_is_logged_and_later_turns_still_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorded: list[list[int]] = []

    def record(items: list[int]) -> None:
        if items == [0]:
            raise RuntimeError("metrics backend gone")
        recorded.append(items)

    buffer: TurnBuffer[int] = TurnBuffer(record, name="numbers")
    with caplog.at_level(logging.ERROR):
        buffer.add(0)
        await asyncio.sleep(0)
    assert "recording numbers failed" in caplog.text
    buffer.add(5)
    await asyncio.sleep(0)
    assert recorded == [[5]]
