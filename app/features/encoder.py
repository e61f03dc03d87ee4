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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
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
)
from app.features.icd9 import CHAPTERS, icd9_chapter

Value = str | int | float | None
Columns = Mapping[str, Sequence[Value]]

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
        rows = np.arange(n)
        col = 0
        for stat in self.numeric:
            values = columns.get(stat.name, [None] * n)
            for i, v in enumerate(values):
                if is_missing(v):
                    out[i, col + 1] = 1.0
                else:
                    out[i, col] = stat.transform(float(v))  # type: ignore[arg-type]
            col += 2
        for i, v in enumerate(columns.get(AGE_COLUMN, [None] * n)):
            k = _AGE_INDEX.get(str(v)) if not is_missing(v) else None
            if k is None:
                out[i, col + 1] = 1.0
            else:
                # Centre the ordinal so a missing age (0) sits at the middle bucket.
                out[i, col] = (k - 4.5) / 3.0
        col += 2
        for block in self._blocks:
            values = columns.get(block.column, [None] * n)
            picks = [block.pick(v) for v in values]
            out[rows, col + np.asarray(picks, dtype=np.int64)] = 1.0
            col += len(block.slots)
        return out

    @cached_property
    def _blocks(self) -> tuple["_OneHotBlock", ...]:
        """The one-hot blocks with their slot lookups, built once per spec."""
        return tuple(_OneHotBlock(column, slots) for column, slots in self._one_hot_blocks())

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
# NOTE: most raw values repeat (codes, states, chapters); remembering each value's slot skips
# normalising it again. Bounded, so a caller sending endless distinct strings cannot grow it.
_MAX_REMEMBERED = 4096
_MEMO_TYPES: Final = (str, int, type(None))


class _OneHotBlock:
    """One categorical column's slots and a memo of raw value -> slot index."""

    def __init__(self, column: str, slots: tuple[str, ...]) -> None:
        self.column = column
        self.slots = slots
        self._index = {slot: k for k, slot in enumerate(slots)}
        self._unknown = self._index[UNKNOWN]
        self._mapper = _slot_mapper(column)
        self._memo: dict[tuple[type, Value], int] = {}

    def pick(self, value: Value) -> int:
        """The slot index of a raw value (its unknown slot when the value was never learned)."""
        # NOTE: only str, int and None are remembered: the type is part of the key (1, 1.0 and
        # True are equal dict keys), and a float NaN never finds itself.
        key = (type(value), value)
        k = self._memo.get(key) if type(value) in _MEMO_TYPES else None
        if k is None:
            k = self._index.get(self._mapper(value), self._unknown)
            if type(value) in _MEMO_TYPES and len(self._memo) < _MAX_REMEMBERED:
                self._memo[key] = k
        return k


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
