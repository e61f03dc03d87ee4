"""Per-column functions over raw values, with each value's result remembered.

Most raw values repeat (codes, states, chapters, counts), so the encoder and the domain guard
compute each distinct value's result once.
"""

from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any, Final, Generic, TypeVar

from app.features.columns import Columns, Value

_MEMO_TYPES: Final = frozenset({str, int, type(None)})

T = TypeVar("T")


class ColumnMemos(Generic[T]):
    """A function per column over raw values; results remembered for str, int and None."""

    def __init__(self, fns: Sequence[tuple[str, Callable[[Value], T]]], limit: int) -> None:
        self._names = tuple(name for name, _ in fns)
        self._fns = tuple(fn for _, fn in fns)
        self._memos: tuple[dict[Value, T], ...] = tuple({} for _ in fns)
        self._limit = limit  # per column

    def __len__(self) -> int:
        return len(self._names)

    def map(self, columns: Columns, n: int) -> list[T]:
        """Every column's results, column after column (an absent column is n missing values)."""
        absent: list[Value] = [None] * n
        lists = [columns.get(name, absent) for name in self._names]
        # NOTE: keys are bare values, so only a batch of exactly str, int and None takes the
        # dict path: 1, 1.0 and True are equal keys, and a float NaN never finds itself.
        if not _MEMO_TYPES.issuperset(map(type, chain.from_iterable(lists))):
            return [self._one(j, v) for j, values in enumerate(lists) for v in values]
        out: list[Any] = []
        for memo, values in zip(self._memos, lists, strict=True):
            out += map(memo.get, values)
        if None in out:  # values not remembered yet
            cells = ((j, v) for j, values in enumerate(lists) for v in values)
            out = [self._one(*cell) if r is None else r for cell, r in zip(cells, out, strict=True)]
        return out

    def _one(self, j: int, value: Value) -> T:
        if type(value) not in _MEMO_TYPES:
            return self._fns[j](value)
        memo = self._memos[j]
        result = memo.get(value)
        if result is None:
            result = self._fns[j](value)
            if len(memo) < self._limit:
                memo[value] = result
        return result
