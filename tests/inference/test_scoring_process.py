"""The scoring child process: the in-process predictor's answers, 503 while down, restart."""

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import UnavailableError
from app.inference.predictor import Predictor, ScoringRequest
from app.inference.repository import WEIGHTS_FILE
from app.inference.scoring_process import ScoringProcess, ScoringProcessError

pytestmark = pytest.mark.data


def _process(model_dir: Path, **options: Any) -> ScoringProcess:
    return ScoringProcess(model_dir, device="cpu", default_n_samples=None, threads=1, **options)


@contextlib.asynccontextmanager
async def _running(model_dir: Path, **options: Any) -> AsyncIterator[tuple[ScoringProcess, Any]]:
    """A started scoring process and its first child; stopped at the end."""
    scoring = _process(model_dir, **options)
    await scoring.start()
    try:
        assert scoring._child is not None
        yield scoring, scoring._child
    finally:
        await scoring.stop()


def _requests(encounters: list[dict[str, Any]]) -> list[ScoringRequest]:
    # NOTE: three (n_samples, seed) groups interleaved, so order and grouping both matter.
    kinds = [(64, None), (32, 5), (64, 11)]
    return [ScoringRequest(e, *kinds[i % 3]) for i, e in enumerate(encounters)]


async def _wait_until(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_answers_are_the_in_process_predictors_bit_for_bit(
    model_dir: Path, encounters: list[dict[str, Any]]
) -> None:
    requests = _requests(encounters[:300])
    expected = Predictor.load(model_dir, device="cpu", threads=1).predict(requests)
    scoring = _process(model_dir)
    hello = await scoring.start()
    try:
        assert hello.model_version == "test-0.1" and hello.device == "cpu" and hello.invariant
        # NOTE: several calls in flight at once come back to their own callers.
        answers = await asyncio.gather(
            scoring.predict(requests[:7]), scoring.predict(requests[7:]), scoring.predict([])
        )
    finally:
        await scoring.stop()
    assert answers[0] + answers[1] == expected
    assert answers[2] == []
    assert any(p.flagged for p in expected) and not all(p.flagged for p in expected)
    assert all(isinstance(p.reasons, tuple) for p in answers[1])


async def test_a_killed_child_answers_503_then_comes_back_by_itself(
    model_dir: Path, encounters: list[dict[str, Any]]
) -> None:
    requests = _requests(encounters[:20])
    async with _running(model_dir) as (scoring, child):
        first = await scoring.predict(requests)
        child.kill()
        with pytest.raises(UnavailableError, match="retry shortly"):
            # NOTE: in flight when the child dies, or sent just after: a 503 either way.
            await scoring.predict(requests)
        await _wait_until(lambda: scoring.alive)
        assert scoring._child is not child
        assert await scoring.predict(requests) == first


async def test_a_hung_child_is_ended_after_the_timeout_and_replaced(
    model_dir: Path, encounters: list[dict[str, Any]]
) -> None:
    requests = _requests(encounters[:10])
    async with _running(model_dir, answer_timeout_s=1.0) as (scoring, child):
        os.kill(child.pid, signal.SIGSTOP)  # NOTE: alive but never answering
        started = time.monotonic()
        with pytest.raises(UnavailableError, match="retry shortly"):
            await scoring.predict(requests)
        assert 1.0 <= time.monotonic() - started < 10
        assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL
        await _wait_until(lambda: scoring.alive)
        assert len(await scoring.predict(requests)) == 10


async def test_a_child_that_answers_garbage_is_ended_and_its_callers_get_503(
    model_dir: Path, encounters: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a real child that greets properly, then answers a frame that is not JSON.
    script = (
        "import struct, sys\n"
        "out = sys.stdout.buffer\n"
        'hello = b\'{"model_version": "test-0.1", "device": "cpu", "invariant": true}\'\n'
        "out.write(struct.pack('<Q', len(hello)) + hello); out.flush()\n"
        "sys.stdin.buffer.read(8)\n"
        "out.write(struct.pack('<Q', 3) + b'{{{'); out.flush()\n"
        "sys.stdin.buffer.read()\n"
    )
    scoring = _process(model_dir)
    scoring._command = [sys.executable, "-c", script]
    await scoring.start()
    try:
        child = scoring._child
        assert child is not None
        with pytest.raises(UnavailableError, match="retry shortly"):
            await scoring.predict(_requests(encounters[:3]))
        assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL
        assert "answered something unreadable" in caplog.text
    finally:
        await scoring.stop()


async def test_the_child_leaves_signals_to_the_serving_process(
    model_dir: Path, encounters: list[dict[str, Any]]
) -> None:
    requests = _requests(encounters[:10])
    async with _running(model_dir) as (scoring, child):
        for number in (signal.SIGINT, signal.SIGTERM):
            os.kill(child.pid, number)  # NOTE: Ctrl+C reaches the whole process group
        await asyncio.sleep(0.3)
        assert child.returncode is None
        assert len(await scoring.predict(requests)) == 10
    assert child.returncode == 0, "the child exits cleanly when its input closes"
    assert not scoring.alive
    with pytest.raises(UnavailableError):
        await scoring.predict(requests)


async def test_a_child_that_cannot_load_the_model_stops_start_up(
    model_dir: Path, tmp_path: Path
) -> None:
    damaged = Path(shutil.copytree(model_dir, tmp_path / "model"))
    weights = damaged / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ScoringProcessError, match="checksum mismatch"):
        await _process(damaged).start()
