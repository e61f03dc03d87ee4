"""A micro-batcher: coalesce concurrent requests into one call, after MLServer's adaptive batcher.

Requests wait in a bounded queue; a worker task takes the oldest one, keeps adding whole
requests until the batch holds `max_batch_size` items, `max_batch_delay_us` has passed since
the first, or (with `settle_turns`) that many event-loop turns have passed without a new
request, then runs the synchronous `process` off the event loop and hands each request its
own slice of the results. A request larger than `max_batch_size` runs as its own batch. An
exception in `process` reaches every request of that batch.

Settling closes a batch once arrivals stop rather than at a fixed delay: every loop turn reads
the sockets that are ready, so a few quiet turns mean the requests already sent have all been
queued, and waiting on only adds latency. Under a fixed delay a worker holding few connections
sat idle waiting it out.

Off the event loop means on a worker thread, or through `run` when the caller has its own way
(an executor with a timeout, say). A batch of at most `inline_max_items` items runs on the
event loop itself instead, for work too small to be worth a thread hand-off. With
`max_in_flight` above one, the next batch is collected and started while earlier ones are
still running.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from app.core.errors import UnavailableError

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)


class QueueFullError(UnavailableError):
    """The batcher's queue cannot take the request now; retry shortly."""


@dataclass
class _Request(Generic[T, R]):
    items: list[T]
    future: asyncio.Future[list[R]] = field(repr=False)


class MicroBatcher(Generic[T, R]):
    """Coalesce concurrent `submit` calls into batches for a synchronous `process`."""

    def __init__(
        self,
        process: Callable[[list[T]], list[R]],
        *,
        max_batch_size: int,
        max_batch_delay_us: int,
        max_queue_size: int,
        on_batch: Callable[[int, float], None] | None = None,
        run: Callable[[list[T]], Awaitable[list[R]]] | None = None,
        inline_max_items: int = 0,
        max_in_flight: int = 1,
        settle_turns: int = 0,
        name: str = "inference",
    ) -> None:
        if max_batch_size < 1 or max_queue_size < 1 or max_batch_delay_us < 0 or settle_turns < 0:
            raise ValueError(
                "batch size and queue size must be >= 1, the delay and settle turns >= 0"
            )
        if inline_max_items < 0 or max_in_flight < 1:
            raise ValueError("inline_max_items must be >= 0 and max_in_flight >= 1")
        self._process = process
        self._max_batch_size = max_batch_size
        self._max_delay_s = max_batch_delay_us / 1e6
        self._max_queue_size = max_queue_size
        self._on_batch = on_batch
        self._run_off_loop = run or partial(_in_thread, process)
        self._inline_max_items = inline_max_items
        self._max_in_flight = max_in_flight
        self._settle_turns = settle_turns
        self._name = name
        self._queue: deque[_Request[T, R]] = deque()
        self._queued_items = 0
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def queue_depth(self) -> int:
        """Items waiting for the engine (not counting the batch being processed)."""
        return self._queued_items

    async def start(self) -> None:
        """Start the worker task."""
        if self._worker is None:
            self._stopping = False
            self._wakeup = asyncio.Event()
            self._worker = asyncio.create_task(self._run(), name=f"{self._name} micro-batcher")

    async def stop(self) -> None:
        """Process what is queued, then stop the worker."""
        if self._worker is None:
            return
        self._stopping = True
        self._wakeup.set()
        await self._worker
        self._worker = None

    async def submit(self, items: list[T]) -> list[R]:
        """Queue a request's items and wait for their results, in order."""
        if self._worker is None or self._stopping:
            raise UnavailableError(f"the {self._name} batcher is not running")
        if not items:
            return []
        if self._queued_items + len(items) > self._max_queue_size:
            raise QueueFullError(
                f"{self._name} queue is full ({self._queued_items} items waiting)", retry_after_s=1
            )
        request: _Request[T, R] = _Request(list(items), asyncio.get_running_loop().create_future())
        self._queue.append(request)
        self._queued_items += len(items)
        self._wakeup.set()
        return await request.future

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self._max_in_flight)
        running: set[asyncio.Task[None]] = set()

        async def execute(batch: list[_Request[T, R]]) -> None:
            try:
                await self._execute(batch)
            finally:
                slots.release()

        try:
            while True:
                if not self._queue:
                    if self._stopping:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                await slots.acquire()  # NOTE: collect only once a batch can start at once
                task = asyncio.create_task(execute(await self._collect()))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            await asyncio.gather(*running, return_exceptions=True)

    async def _collect(self) -> list[_Request[T, R]]:
        """Take whole requests up to the size limit, until arrivals settle or the delay is up."""
        batch = [self._pop()]
        size = len(batch[0].items)
        deadline = time.perf_counter() + self._max_delay_s
        quiet_turns = 0
        while size < self._max_batch_size:
            if self._queue:
                if size + len(self._queue[0].items) > self._max_batch_size:
                    break
                batch.append(self._pop())
                size += len(batch[-1].items)
                quiet_turns = 0
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or self._stopping:
                break
            if self._settle_turns:
                if quiet_turns == self._settle_turns:
                    break
                quiet_turns += 1
                await asyncio.sleep(0)  # one loop turn: the sockets ready now are read
                continue
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
        return batch

    def _pop(self) -> _Request[T, R]:
        request = self._queue.popleft()
        self._queued_items -= len(request.items)
        return request

    async def _execute(self, batch: list[_Request[T, R]]) -> None:
        """Run one batch off the event loop and resolve each live request's future."""
        live = [request for request in batch if not request.future.done()]
        if not live:
            return
        items = [item for request in live for item in request.items]
        started = time.perf_counter()
        try:
            if len(items) <= self._inline_max_items:
                results = self._process(items)
            else:
                results = await self._run_off_loop(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"process returned {len(results)} results for {len(items)} items"
                )
        except Exception as exc:  # NOTE: every waiter of the batch gets the failure.
            if isinstance(exc, UnavailableError):  # an outage, answered 503: no traceback
                logger.warning("micro-batch of %d items failed: %s", len(items), exc)
            else:
                logger.exception("micro-batch of %d items failed", len(items))
            for request in live:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        finally:
            self._report(len(items), time.perf_counter() - started)
        offset = 0
        for request in live:
            end = offset + len(request.items)
            if not request.future.done():  # a cancelled waiter does not affect the others
                request.future.set_result(results[offset:end])
            offset = end

    def _report(self, size: int, seconds: float) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(size, seconds)
        except Exception:  # NOTE: a metrics failure must not stop the batcher.
            logger.exception("on_batch callback failed")


async def _in_thread(process: Callable[[list[T]], list[R]], items: list[T]) -> list[R]:
    return await asyncio.to_thread(process, items)
