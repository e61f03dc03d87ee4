"""Observations gathered during one event-loop turn and recorded together at its end.

NOTE: the answers of one micro-batch finish in the same turn, so recording them together pays
the logging and histogram costs once per batch instead of once per request
(docs/decisions/0010-gc-freeze.md and docs/performance.md have the measurements).
"""

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class TurnBuffer(Generic[T]):
    """Items added on the event loop, handed to `record` together once the turn ends.

    Without a running loop (a synchronous caller) an item is recorded at once. `flush` records
    what is waiting now; a reader that must see every earlier item can instead yield to the
    loop once (`await asyncio.sleep(0)`): the pending flush runs first.
    """

    def __init__(self, record: Callable[[list[T]], None], *, name: str) -> None:
        self._record = record
        self._name = name
        self._items: list[T] = []
        self._scheduled = False

    def add(self, item: T) -> None:
        """Record `item` at the end of this turn."""
        self.extend((item,))

    def extend(self, items: Iterable[T]) -> None:
        """Record `items` at the end of this turn."""
        if self._scheduled:
            self._items.extend(items)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._call(list(items))
            return
        self._items.extend(items)
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Record everything added so far."""
        items, self._items = self._items, []
        self._scheduled = False
        if items:
            self._call(items)

    def _call(self, items: list[T]) -> None:
        try:
            self._record(items)
        except Exception:  # NOTE: observability must never fail or stall a request
            log.exception("recording %s failed", self._name)
