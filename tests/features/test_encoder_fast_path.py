"""The encoder's memos give the same bits as mapping every value afresh, and stay bounded."""

from pathlib import Path

import numpy as np
import pytest

from app.features import FeatureSpec, columns_from_records
from app.features.columns import Value
from app.features.memos import ColumnMemos
from tests.support import published_rows


def _reference(spec: FeatureSpec, columns: dict) -> np.ndarray:
    """Encode one row at a time through a fresh spec (no memo carried between calls)."""
    rows = len(next(iter(columns.values())))
    parts = []
    for i in range(rows):
        fresh = FeatureSpec.from_dict(spec.to_dict())
        parts.append(fresh.encode({k: v[i : i + 1] for k, v in columns.items()}))
    return np.concatenate(parts)


@pytest.mark.data
def test_memoised_encoding_is_bit_identical(data_file: Path) -> None:
    rows = published_rows(data_file, 3000)
    columns = columns_from_records(rows)
    spec = FeatureSpec.fit(columns_from_records(rows[:2000]))
    first = spec.encode(columns)  # fills the memo
    again = spec.encode(columns)  # answers from it
    unusual = [" 3 ", 3.0, float("nan"), True, "?", np.int64(3)]
    odd = {k: [*v[:5], *unusual] for k, v in columns.items()}
    assert np.array_equal(first, again)
    assert np.array_equal(first[:300], _reference(spec, {k: v[:300] for k, v in columns.items()}))
    assert np.array_equal(spec.encode(odd), _reference(spec, odd))


def test_column_memos_key_on_the_exact_type() -> None:
    memos = ColumnMemos([("c", repr)], limit=100)
    assert memos.map({"c": [1, "1", None]}, 3) == ["1", "'1'", "None"]
    # 1.0 and True equal the remembered 1 as dict keys; each still gets its own answer.
    assert memos.map({"c": [1.0, True, 1, [1]]}, 4) == ["1.0", "True", "1", "[1]"]


def test_column_memos_stay_bounded() -> None:
    calls: list[Value] = []

    def fn(value: Value) -> str:
        calls.append(value)
        return str(value)

    memos = ColumnMemos([("c", fn)], limit=2)
    assert memos.map({"c": ["a", "b", "c", "c"]}, 4) == ["a", "b", "c", "c"]
    assert calls == ["a", "b", "c", "c"]  # the third value no longer fits
    assert memos.map({}, 2) == ["None", "None"]  # an absent column is all missing
    assert memos.map({"c": ["a", "b", "c"]}, 3) == ["a", "b", "c"]
    assert calls[4:] == [None, None, "c"]
