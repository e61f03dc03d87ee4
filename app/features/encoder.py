"""Feature encoding, defined once: raw encounter fields -> one float32 matrix.

Training and serving both call `FeatureSpec.encode`, and the fitted spec is saved in the model
card, so a model is self-describing. Input is column-oriented (`{column: [values...]}`): a
training DataFrame and a batch of API requests take the same path.

Missing values (`?` in the file, null or absent in a request) are a known state with a slot of
their own. A categorical value never seen in training (or too rare to learn) goes to an explicit
unknown slot, which training populates with the rare values so its weight is learned.
"""

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import chain
from typing import Any, Final

import numpy as np

from app.features.columns import (
    AGE_BUCKETS,
    AGE_COLUMN,
    CODED_COLUMNS,
    COUNT_COLUMNS,
    DIAGNOSIS_COLUMNS,
    MEDICATION_COLUMNS,
    MEDICATION_STATES,
    MISSING_MARKER,
    TEXT_CATEGORICAL_COLUMNS,
    Columns,
    Value,
)
from app.features.icd9 import CHAPTERS, icd9_chapter
from app.features.memos import ColumnMemos

MISSING: Final = "__missing__"
UNKNOWN: Final = "__unknown__"
SPEC_FORMAT: Final = 1

# Visit counts are heavy-tailed (a few patients have dozens); log1p keeps them on a usable scale.
LOG_COUNT_COLUMNS: Final = frozenset({"number_outpatient", "number_emergency", "number_inpatient"})


def is_missing(value: Value) -> bool:
    """Tell whether a raw value means 'not recorded'."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip() in ("", MISSING_MARKER)


def normalise_category(value: Value) -> str | None:
    """Map a raw categorical value to its canonical string (ints and '3' alike), None if missing."""
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def columns_from_records(records: Iterable[Mapping[str, Value]]) -> dict[str, list[Value]]:
    """Turn request-style records into the column layout the encoder takes (absent = missing)."""
    rows = list(records)
    return {name: [row.get(name) for row in rows] for name in FeatureSpec.source_columns()}


@dataclass(frozen=True)
class NumericStat:
    """Standardisation stats of one count column, plus its training range."""

    name: str
    mean: float
    std: float
    log1p: bool
    min: float
    max: float

    def transform(self, value: float) -> float:
        """Standardise one present value."""
        x = math.log1p(max(value, 0.0)) if self.log1p else value
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class FeatureSpec:
    """A fitted encoding: numeric stats and categorical vocabularies."""

    numeric: tuple[NumericStat, ...]
    vocabularies: Mapping[str, tuple[str, ...]]
    format: int = SPEC_FORMAT
    # Every value seen in training per categorical column, rare ones included (for range checks).
    observed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    # ----------------------------------------------------------------- construction

    @staticmethod
    def source_columns() -> tuple[str, ...]:
        """The raw columns the encoding reads."""
        return (
            *COUNT_COLUMNS,
            AGE_COLUMN,
            *TEXT_CATEGORICAL_COLUMNS,
            *CODED_COLUMNS,
            *DIAGNOSIS_COLUMNS,
            *MEDICATION_COLUMNS,
        )

    @classmethod
    def fit(cls, columns: Columns, *, min_category_count: int = 20) -> "FeatureSpec":
        """Fit stats and vocabularies on training columns."""
        numeric = []
        for name in COUNT_COLUMNS:
            values = [v for v in columns[name] if v is not None and not is_missing(v)]
            present = np.array([float(v) for v in values], dtype=np.float64)
            if present.size == 0:
                raise ValueError(f"column {name!r} has no values to fit on")
            log = name in LOG_COUNT_COLUMNS
            x = np.log1p(np.maximum(present, 0.0)) if log else present
            std = float(x.std()) or 1.0
            numeric.append(
                NumericStat(
                    name, float(x.mean()), std, log, float(present.min()), float(present.max())
                )
            )
        vocabularies: dict[str, tuple[str, ...]] = {}
        observed: dict[str, tuple[str, ...]] = {}
        for name in (*TEXT_CATEGORICAL_COLUMNS, *CODED_COLUMNS):
            counts = Counter(c for c in map(normalise_category, columns[name]) if c is not None)
            frequent = [v for v, n in counts.most_common() if n >= min_category_count]
            vocabularies[name] = tuple(frequent)
            observed[name] = tuple(sorted(counts))
        return cls(numeric=tuple(numeric), vocabularies=vocabularies, observed=observed)

    # ----------------------------------------------------------------- layout

    @property
    def feature_names(self) -> list[str]:
        """Name of every output column, in order."""
        return list(self._feature_names)

    @cached_property
    def _feature_names(self) -> tuple[str, ...]:
        names: list[str] = []
        for stat in self.numeric:
            names += [stat.name, f"{stat.name}={MISSING}"]
        names += [AGE_COLUMN, f"{AGE_COLUMN}={MISSING}"]
        for column, slots in self._one_hot_blocks():
            names += [f"{column}={slot}" for slot in slots]
        return tuple(names)

    @cached_property
    def n_features(self) -> int:
        """Width of the encoded matrix."""
        return len(self._feature_names)

    def _one_hot_blocks(self) -> list[tuple[str, tuple[str, ...]]]:
        blocks = [(c, (*self.vocabularies[c], MISSING, UNKNOWN)) for c in TEXT_CATEGORICAL_COLUMNS]
        blocks += [(c, (*self.vocabularies[c], MISSING, UNKNOWN)) for c in CODED_COLUMNS]
        blocks += [(c, (*CHAPTERS, MISSING, UNKNOWN)) for c in DIAGNOSIS_COLUMNS]
        blocks += [(c, (*MEDICATION_STATES, MISSING, UNKNOWN)) for c in MEDICATION_COLUMNS]
        return blocks

    # ----------------------------------------------------------------- encoding

    def encode(self, columns: Columns) -> np.ndarray:
        """Encode raw columns into a float32 matrix `[rows, n_features]`."""
        n = _row_count(columns)
        out = np.zeros((n, self.n_features), dtype=np.float32)
        if n == 0:
            return out
        # Counts and age lead the layout, each as (value, missing indicator).
        pairs = self._numeric_memos.map(columns, n)
        numeric = np.fromiter(chain.from_iterable(pairs), np.float64, 2 * len(pairs))
        width = 2 * len(self._numeric_memos)
        out[:, :width] = numeric.reshape(-1, n, 2).transpose(1, 0, 2).reshape(n, width)
        picks = np.fromiter(self._slot_memos.map(columns, n), np.intp)
        out[np.arange(n), picks.reshape(-1, n)] = 1.0
        return out

    @cached_property
    def _numeric_memos(self) -> "ColumnMemos[tuple[float, float]]":
        """Raw value -> (value, missing) for each count column and the age."""
        pairs = [(stat.name, _count_pair(stat)) for stat in self.numeric]
        return ColumnMemos([*pairs, (AGE_COLUMN, _age_pair)], _MAX_REMEMBERED)

    @cached_property
    def _slot_memos(self) -> "ColumnMemos[int]":
        """Raw value -> output column of its slot, for each one-hot column."""
        slot_of = []
        offset = 2 * len(self._numeric_memos)
        for column, slots in self._one_hot_blocks():
            slot_of.append((column, _slot_index(column, slots, offset)))
            offset += len(slots)
        return ColumnMemos(slot_of, _MAX_REMEMBERED)

    # ----------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Serialise to plain JSON types."""
        return {
            "format": self.format,
            "numeric": [asdict(s) for s in self.numeric],
            "vocabularies": {k: list(v) for k, v in self.vocabularies.items()},
            "observed": {k: list(v) for k, v in self.observed.items()},
            "feature_names": self.feature_names,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureSpec":
        """Rebuild a spec saved by `to_dict`, refusing one of another format or width."""
        if data.get("format") != SPEC_FORMAT:
            raise ValueError(f"feature spec format {data.get('format')!r} is not {SPEC_FORMAT}")
        spec = cls(
            numeric=tuple(NumericStat(**s) for s in data["numeric"]),
            vocabularies={k: tuple(v) for k, v in data["vocabularies"].items()},
            observed={k: tuple(v) for k, v in data.get("observed", {}).items()},
        )
        saved = data.get("feature_names")
        if saved is not None and list(saved) != spec.feature_names:
            raise ValueError("feature spec's saved feature names do not match its encoding")
        return spec


_AGE_INDEX: Final = {bucket: k for k, bucket in enumerate(AGE_BUCKETS)}
_ABSENT: Final = (0.0, 1.0)  # a missing count or age: no value, indicator set
# NOTE: most raw values repeat (codes, states, chapters, counts); remembering each value's
# encoding skips normalising it again. Bounded, so endless distinct strings cannot grow it.
_MAX_REMEMBERED = 4096


def _count_pair(stat: NumericStat) -> Callable[[Value], tuple[float, float]]:
    def pair(value: Value) -> tuple[float, float]:
        if is_missing(value):
            return _ABSENT
        return stat.transform(float(value)), 0.0  # type: ignore[arg-type]

    return pair


def _age_pair(value: Value) -> tuple[float, float]:
    k = _AGE_INDEX.get(str(value)) if not is_missing(value) else None
    if k is None:
        return _ABSENT
    # Centre the ordinal so a missing age (0) sits at the middle bucket.
    return (k - 4.5) / 3.0, 0.0


def _slot_index(column: str, slots: tuple[str, ...], offset: int) -> Callable[[Value], int]:
    """Map a raw value to the output column of its slot (the unknown slot if never learned)."""
    index = {slot: offset + k for k, slot in enumerate(slots)}
    unknown = index[UNKNOWN]
    mapper = _slot_mapper(column)
    return lambda value: index.get(mapper(value), unknown)


def _row_count(columns: Columns) -> int:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _slot_mapper(column: str) -> Any:
    """Return the function that maps a raw value of `column` to its slot name."""
    if column in DIAGNOSIS_COLUMNS:

        def diagnosis_slot(value: Value) -> str:
            code = normalise_category(value)
            if code is None:
                return MISSING
            return icd9_chapter(code) or UNKNOWN

        return diagnosis_slot

    def category_slot(value: Value) -> str:
        category = normalise_category(value)
        return MISSING if category is None else category

    return category_slot
