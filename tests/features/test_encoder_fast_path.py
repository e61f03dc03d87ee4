"""The encoder's slot memo gives the same bits as mapping every value afresh, on real rows."""

from pathlib import Path

import numpy as np
import pytest

from app.features import FeatureSpec, columns_from_records
from bench.harness import published_rows

pytestmark = pytest.mark.data


def _reference(spec: FeatureSpec, columns: dict) -> np.ndarray:
    """Encode one row at a time through a fresh spec (no memo carried between calls)."""
    rows = len(next(iter(columns.values())))
    parts = []
    for i in range(rows):
        fresh = FeatureSpec.from_dict(spec.to_dict())
        parts.append(fresh.encode({k: v[i : i + 1] for k, v in columns.items()}))
    return np.concatenate(parts)


def test_memoised_encoding_is_bit_identical(data_file: Path) -> None:
    rows = published_rows(data_file, 3000)
    columns = columns_from_records(rows)
    spec = FeatureSpec.fit(columns_from_records(rows[:2000]))
    first = spec.encode(columns)  # fills the memo
    again = spec.encode(columns)  # answers from it
    odd = {k: [*v[:5], " 3 ", 3.0, float("nan"), True, "?"] for k, v in columns.items()}
    assert np.array_equal(first, again)
    assert np.array_equal(first[:300], _reference(spec, {k: v[:300] for k, v in columns.items()}))
    assert np.array_equal(spec.encode(odd), _reference(spec, odd))
