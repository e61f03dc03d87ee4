"""The domain guard: is an encounter like the ones the model learned from?

Two checks, both deterministic (so a retry gives the same answer):
- Per feature: a count outside its training range, a category value (age bucket, diagnosis
  chapter, medication state, code, text value) never seen in training, or a value missing where
  training never had one missing. Reason `out_of_distribution:<column>`.
- Multivariate novelty: the Mahalanobis distance of the network's last hidden layer (eval-mode
  activations, computed from the weights without touching the module) from the training
  activations, with a Ledoit-Wolf shrunk covariance. Reason `out_of_distribution:novelty` above
  a threshold fitted as a quantile of the validation scores.

The guard is saved as plain JSON in the model card (key `domain_guard`); matrices are float32
little-endian bytes in base64 so the card stays one readable file without pickle.
"""

import base64
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from app.features.columns import (
    AGE_COLUMN,
    CODED_COLUMNS,
    COUNT_COLUMNS,
    DIAGNOSIS_COLUMNS,
    MEDICATION_COLUMNS,
    TEXT_CATEGORICAL_COLUMNS,
)
from app.features.encoder import (
    ColumnMemos,
    Columns,
    Value,
    columns_from_records,
    normalise_category,
)
from app.features.icd9 import icd9_chapter
from app.inference.activations import (
    HiddenLayers,
    hidden_layers,
    last_hidden,
    padded_row_block,
    rowwise_product,
)

GUARD_FORMAT: Final = 1
OOD_PREFIX: Final = "out_of_distribution:"
NOVELTY: Final = "novelty"
NOVELTY_REASON: Final = OOD_PREFIX + NOVELTY
MISSING: Final = "__missing__"
MALFORMED: Final = "__malformed__"
CATEGORY_COLUMNS: Final = (
    AGE_COLUMN,
    *TEXT_CATEGORICAL_COLUMNS,
    *CODED_COLUMNS,
    *DIAGNOSIS_COLUMNS,
    *MEDICATION_COLUMNS,
)
GUARD_COLUMNS: Final = (*COUNT_COLUMNS, *CATEGORY_COLUMNS)
_MAX_REMEMBERED: Final = 1024  # raw values remembered per column (47 columns: < 50,000 in all)


@dataclass(frozen=True)
class GuardResult:
    """Per-encounter guard outcome for a batch: which columns fired and the novelty score."""

    feature_ood: np.ndarray  # [B, len(GUARD_COLUMNS)] bool
    novelty: np.ndarray  # [B] float64
    novelty_threshold: float

    @property
    def any_feature(self) -> np.ndarray:
        """Encounters with at least one out-of-range or unseen value."""
        out: np.ndarray = np.any(self.feature_ood, axis=1)
        return out

    @property
    def novel(self) -> np.ndarray:
        """Encounters whose novelty score is above the threshold."""
        out: np.ndarray = self.novelty > self.novelty_threshold
        return out

    @property
    def flagged(self) -> np.ndarray:
        """Encounters with any guard reason."""
        out: np.ndarray = self.any_feature | self.novel
        return out

    def reasons(self) -> list[list[str]]:
        """Every guard reason per encounter, columns in a fixed order and novelty last."""
        out = [[NOVELTY_REASON] if novel else [] for novel in self.novel.tolist()]
        # NOTE: only the few rows with a column flag are looked at one by one.
        for i in np.flatnonzero(self.feature_ood.any(axis=1)).tolist():
            columns = [OOD_PREFIX + GUARD_COLUMNS[j] for j in np.flatnonzero(self.feature_ood[i])]
            out[i][:0] = columns
        return out


def category_slot(column: str, value: Value) -> str:
    """The value a categorical column is checked on: a diagnosis chapter or the category itself."""
    category = normalise_category(value)
    if category is None:
        return MISSING
    if column in DIAGNOSIS_COLUMNS:
        return icd9_chapter(category) or MALFORMED
    return category


def _to_float(value: Value) -> float:
    """A count as a float: NaN when missing, inf when unparsable (always out of range)."""
    category = normalise_category(value)
    if category is None:
        return math.nan
    try:
        return float(category)
    except ValueError:
        return math.inf


def as_float(values: Sequence[Value]) -> np.ndarray:
    """A count column as float64, NaN where missing or malformed."""
    return np.array([_to_float(v) for v in values], dtype=np.float64)


def _out_of_range(lo: float, hi: float, missing_seen: bool, value: Value) -> bool:
    v = _to_float(value)
    return not missing_seen if math.isnan(v) else (v < lo or v > hi)


class DomainGuard:
    """Per-feature range/vocabulary checks and a hidden-layer Mahalanobis novelty score."""

    def __init__(
        self,
        *,
        ranges: Mapping[str, tuple[float, float, bool]],
        observed: Mapping[str, Iterable[str]],
        mean: np.ndarray,
        precision: np.ndarray,
        threshold: float,
        quantile: float,
        model: nn.Module | None = None,
    ) -> None:
        self.ranges = {k: (float(lo), float(hi), bool(m)) for k, (lo, hi, m) in ranges.items()}
        self.observed = {k: frozenset(v) for k, v in observed.items()}
        self.mean = np.asarray(mean, dtype=np.float64)
        self.precision = np.asarray(precision, dtype=np.float64)
        self.threshold = float(threshold)
        self.quantile = float(quantile)
        self.model = model
        self._layers: HiddenLayers | None = None
        self._precision_t = torch.from_numpy(self.precision)  # shares memory: no copy per call
        checks = [(name, self._check_of(name)) for name in GUARD_COLUMNS]
        self._flags = ColumnMemos(checks, _MAX_REMEMBERED)

    def with_threshold(self, threshold: float, quantile: float | None = None) -> "DomainGuard":
        """A copy with another novelty threshold."""
        return DomainGuard(
            ranges=self.ranges,
            observed=self.observed,
            mean=self.mean,
            precision=self.precision,
            threshold=threshold,
            quantile=self.quantile if quantile is None else quantile,
            model=self.model,
        )

    # ----------------------------------------------------------------- checking

    def novelty(self, x: torch.Tensor | np.ndarray, hidden: np.ndarray | None = None) -> np.ndarray:
        """Mahalanobis distance of each row's last-hidden-layer activations.

        `hidden`, when given, holds those float32 activations of `x` already (the engine's, see
        `MCDropoutResult.hidden`): the same product on the same weights, so the same bits.
        """
        if hidden is not None:
            # NOTE: the rows are padded once here, and the pad rows carried through the product.
            a, rows = padded_row_block(hidden)
            d = a.astype(np.float64) - self.mean
        else:
            if self.model is None:
                raise ValueError("the guard has no model to compute activations with")
            if self._layers is None:  # NOTE: copied once; the guard never sees the module change.
                self._layers = hidden_layers(self.model)
            a, rows = padded_row_block(x)
            d = last_hidden(self._layers, a) - self.mean
        # NOTE: d P d' as one BLAS product and a row-wise sum (a three-operand einsum runs a
        # plain C loop). Each row's value depends on that row only (`rowwise_product`), so
        # batching cannot change a score's bits.
        product = rowwise_product(d, self._precision_t)[:rows]
        quadratic = (product * d[:rows]).sum(axis=1)
        out: np.ndarray = np.sqrt(np.maximum(quadratic, 0.0))
        return out

    def feature_flags(self, columns: Columns) -> np.ndarray:
        """`[B, len(GUARD_COLUMNS)]`: which columns hold an out-of-range or unseen value."""
        n = len(next(iter(columns.values()))) if columns else 0
        # NOTE: bytes() packs the bools in C, read as a bool array; the copy makes rows of it.
        flags = np.frombuffer(bytes(self._flags.map(columns, n)), dtype=bool)
        out: np.ndarray = flags.reshape(len(GUARD_COLUMNS), n).T.copy()
        return out

    def _check_of(self, name: str) -> Callable[[Value], bool]:
        """The check of one raw value of `name`: out of its training range, or unseen."""
        if name in self.ranges:
            return partial(_out_of_range, *self.ranges[name])
        return partial(self._unseen, name)

    def _unseen(self, column: str, value: Value) -> bool:
        """Whether a categorical value's slot was never seen in training."""
        return category_slot(column, value) not in self.observed[column]

    def check_columns(
        self, columns: Columns, x: torch.Tensor | np.ndarray, hidden: np.ndarray | None = None
    ) -> GuardResult:
        """Run both checks on a batch in the encoder's column layout (`hidden`: see `novelty`)."""
        return GuardResult(self.feature_flags(columns), self.novelty(x, hidden), self.threshold)

    def check(
        self, records: Sequence[Mapping[str, Value]], x: torch.Tensor | np.ndarray
    ) -> list[tuple[list[str], float]]:
        """Reasons and novelty score per encounter, for request-style records and their encoding."""
        result = self.check_columns(columns_from_records(records), x)
        return list(zip(result.reasons(), result.novelty.tolist(), strict=True))

    # ----------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Serialise to plain JSON types."""
        return {
            "format": GUARD_FORMAT,
            "novelty": {
                "method": "mahalanobis_last_hidden_ledoit_wolf",
                "threshold": self.threshold,
                "validation_quantile": self.quantile,
                "mean": _pack(self.mean),
                "precision": _pack(self.precision),
            },
            "ranges": {
                k: {"min": lo, "max": hi, "missing_seen": m}
                for k, (lo, hi, m) in self.ranges.items()
            },
            "observed": {k: sorted(v) for k, v in self.observed.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], model: nn.Module | None = None) -> "DomainGuard":
        """Rebuild a guard saved by `to_dict`, bound to the model it was fitted with."""
        if data.get("format") != GUARD_FORMAT:
            raise ValueError(f"domain guard format {data.get('format')!r} is not {GUARD_FORMAT}")
        novelty = data["novelty"]
        return cls(
            ranges={k: (r["min"], r["max"], r["missing_seen"]) for k, r in data["ranges"].items()},
            observed=data["observed"],
            mean=_unpack(novelty["mean"]),
            precision=_unpack(novelty["precision"]),
            threshold=float(novelty["threshold"]),
            quantile=float(novelty["validation_quantile"]),
            model=model,
        )


def _pack(array: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(array, dtype="<f4")
    return {
        "dtype": "float32",
        "shape": list(a.shape),
        "base64": base64.b64encode(a.tobytes()).decode(),
    }


def _unpack(data: Mapping[str, Any]) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(data["base64"]), dtype="<f4")
    return raw.reshape(data["shape"]).astype(np.float64)
