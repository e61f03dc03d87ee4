"""Micro-batcher: coalescing, per-request results, failures, the bounded queue and shutdown."""

import asyncio
import threading

import pytest
import torch

from app.core.errors import UnavailableError
from app.inference import BayesianMLP, MCDropoutEngine, MicroBatcher, QueueFullError


def make_batcher(process, **limits) -> MicroBatcher:  # type: ignore[no-untyped-def]
    settings = {"max_batch_size": 8, "max_batch_delay_us": 5_000, "max_queue_size": 64}
    return MicroBatcher(process, **(settings | limits))


async def test_concurrent_callers_get_their_own_engine_results() -> None:
    torch.manual_seed(0)
    engine = MCDropoutEngine(BayesianMLP(12, [16], 0.3), device="cpu")
    sizes: list[int] = []

    def process(rows: list[torch.Tensor]) -> list[tuple[float, float]]:
        result = engine.predict(torch.stack(rows), n_samples=128)
        return list(zip(result.mean.tolist(), result.std.tolist(), strict=True))

    batcher = make_batcher(process, on_batch=lambda size, seconds: sizes.append(size))
    await batcher.start()
    requests = [list(torch.randn(1 + k % 4, 12).unbind()) for k in range(24)]
    answers = await asyncio.gather(*(batcher.submit(rows) for rows in requests))
    await batcher.stop()
    for rows, answer in zip(requests, answers, strict=True):
        direct = engine.predict(torch.stack(rows), n_samples=128)
        assert answer == list(zip(direct.mean.tolist(), direct.std.tolist(), strict=True))
    assert max(sizes) > 4 and max(sizes) <= 8  # requests were coalesced, within the limit
    assert sum(sizes) == sum(len(rows) for rows in requests)


async def test_a_request_larger_than_the_batch_runs_on_its_own() -> None:
    batches: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        batches.append(items)
        return [2 * item for item in items]

    batcher = make_batcher(process, max_batch_size=4)
    await batcher.start()
    big, small = await asyncio.gather(batcher.submit(list(range(10))), batcher.submit([100]))
    await batcher.stop()
    assert big == [2 * i for i in range(10)] and small == [200]
    assert list(range(10)) in batches


async def test_a_batch_closes_once_arrivals_settle_not_at_the_delay() -> None:
    batches: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        batches.append(items)
        return [-item for item in items]

    # NOTE: a delay no test could wait out: only settling can close these batches.
    batcher = make_batcher(process, max_batch_delay_us=600_000_000, settle_turns=3)
    await batcher.start()
    first = asyncio.create_task(batcher.submit([1]))
    await asyncio.sleep(0)
    joining = asyncio.create_task(batcher.submit([2]))  # within the quiet turns: same batch
    assert await asyncio.wait_for(asyncio.gather(first, joining), 10) == [[-1], [-2]]
    lone = asyncio.create_task(batcher.submit([3]))
    for _ in range(20):  # far more quiet turns than the batcher waits
        await asyncio.sleep(0)
    late = asyncio.create_task(batcher.submit([4]))
    assert await asyncio.wait_for(asyncio.gather(lone, late), 10) == [[-3], [-4]]
    await batcher.stop()
    assert batches == [[1, 2], [3], [4]]


async def test_a_failure_reaches_every_waiter_and_the_batcher_keeps_running() -> None:
    fail = True

    def process(items: list[int]) -> list[int]:
        if fail:
            raise RuntimeError("engine exploded")
        return items

    batcher = make_batcher(process, max_batch_delay_us=50_000)
    await batcher.start()
    results = await asyncio.gather(*(batcher.submit([k]) for k in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)
    fail = False
    assert await batcher.submit([7, 8]) == [7, 8]
    await batcher.stop()


async def test_a_full_queue_answers_503_at_once() -> None:
    release = threading.Event()

    def process(items: list[int]) -> list[int]:
        release.wait(timeout=10)
        return items

    batcher = make_batcher(process, max_batch_size=2, max_batch_delay_us=0, max_queue_size=3)
    await batcher.start()
    running = asyncio.create_task(batcher.submit([1, 2]))  # taken by the worker, not queued
    await asyncio.sleep(0.05)
    assert batcher.queue_depth == 0
    queued = asyncio.create_task(batcher.submit([3, 4, 5]))
    await asyncio.sleep(0.01)
    assert batcher.queue_depth == 3
    with pytest.raises(QueueFullError) as raised:
        await batcher.submit([6])
    assert isinstance(raised.value, UnavailableError)
    assert raised.value.status_code == 503 and raised.value.retry_after_s >= 1
    release.set()
    assert await running == [1, 2] and await queued == [3, 4, 5]
    await batcher.stop()


async def test_a_cancelled_waiter_does_not_break_the_batch() -> None:
    def process(items: list[int]) -> list[int]:
        return [item + 1 for item in items]

    batcher = make_batcher(process, max_batch_size=16, max_batch_delay_us=100_000)
    await batcher.start()
    tasks = [asyncio.create_task(batcher.submit([k, k])) for k in range(4)]
    await asyncio.sleep(0.01)
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [done[0], done[2], done[3]] == [[1, 1], [3, 3], [4, 4]]
    assert await batcher.submit([9]) == [10]
    await batcher.stop()


async def test_stop_drains_the_queue_and_then_refuses() -> None:
    def process(items: list[int]) -> list[int]:
        return items

    batcher = make_batcher(process, max_batch_size=2, max_batch_delay_us=100_000)
    with pytest.raises(UnavailableError):
        await batcher.submit([1])
    await batcher.start()
    tasks = [asyncio.create_task(batcher.submit([k])) for k in range(5)]
    await asyncio.sleep(0)
    await batcher.stop()
    assert [await task for task in tasks] == [[k] for k in range(5)]
    with pytest.raises(UnavailableError):
        await batcher.submit([1])


async def test_results_of_the_wrong_length_fail_the_batch() -> None:
    batcher = make_batcher(lambda items: items[:-1])
    await batcher.start()
    with pytest.raises(RuntimeError):
        await batcher.submit([1, 2])
    await batcher.stop()


async def test_small_batches_run_on_the_event_loop_and_large_ones_off_it() -> None:
    loop_thread = threading.get_ident()
    threads: dict[int, int] = {}

    def process(items: list[int]) -> list[int]:
        threads[len(items)] = threading.get_ident()
        return items

    batcher = make_batcher(process, max_batch_size=16, inline_max_items=4)
    await batcher.start()
    assert await batcher.submit([1, 2, 3, 4]) == [1, 2, 3, 4]
    assert await batcher.submit(list(range(5))) == list(range(5))
    await batcher.stop()
    assert threads[4] == loop_thread
    assert threads[5] != loop_thread


async def test_an_inline_failure_reaches_the_waiters_like_a_threaded_one() -> None:
    def process(items: list[int]) -> list[int]:
        raise UnavailableError("engine down")

    batcher = make_batcher(process, inline_max_items=8)
    await batcher.start()
    results = await asyncio.gather(
        batcher.submit([1]), batcher.submit([2, 3]), return_exceptions=True
    )
    await batcher.stop()
    assert all(isinstance(r, UnavailableError) for r in results)


@pytest.mark.parametrize("max_in_flight", [1, 2])
async def test_batches_in_flight_never_exceed_the_limit(max_in_flight: int) -> None:
    running, peak = 0, 0
    lock = threading.Lock()

    def process(items: list[int]) -> list[int]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.05)  # long enough for the next batch to be ready to start
        with lock:
            running -= 1
        return items

    batcher = make_batcher(process, max_batch_size=1, max_in_flight=max_in_flight)
    await batcher.start()
    answers = await asyncio.gather(*(batcher.submit([k]) for k in range(6)))
    await batcher.stop()
    assert answers == [[k] for k in range(6)]
    assert peak == max_in_flight


async def test_stop_waits_for_every_batch_in_flight() -> None:
    finished: list[int] = []

    def process(items: list[int]) -> list[int]:
        threading.Event().wait(0.05)
        finished.extend(items)
        return items

    batcher = make_batcher(process, max_batch_size=1, max_in_flight=3)
    await batcher.start()
    tasks = [asyncio.create_task(batcher.submit([k])) for k in range(3)]
    await asyncio.sleep(0.01)
    await batcher.stop()
    assert sorted(finished) == [0, 1, 2]
    assert [task.result() for task in tasks] == [[0], [1], [2]]
