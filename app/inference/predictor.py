"""The transport-free scoring core: records in, calibrated and flagged predictions out.

The API, the batcher and evaluation all score through `Predictor.predict`, so encoding,
calibration, the flag rule and the reasons are applied in exactly one place.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from app.features.encoder import columns_from_records
from app.inference.calibration import calibrate
from app.inference.engine import MCDropoutEngine
from app.inference.flags import reasons as flag_reasons
from app.inference.guard import DomainGuard
from app.inference.prediction import Prediction
from app.inference.repository import LoadedModel, load_model


class Engine(Protocol):
    """The MC-dropout engine as the predictor uses it."""

    def predict(self, x: torch.Tensor, *, n_samples: int, seed: int | None = None) -> Any:
        """Score `x` with `n_samples` dropout masks drawn from `seed`."""
        ...

    def check_batch_invariance(self, *, n_samples: int = 64, seed: int = 0) -> bool:
        """Whether an encounter gets the same bits alone and in any batch on this host."""
        ...


# NOTE: the per-encounter values of a scoring call are NamedTuples: immutable like a frozen
# dataclass, and much cheaper to build once per encounter.


class ScoringRequest(NamedTuple):
    """One encounter to score, with its sampling parameters."""

    record: Mapping[str, Any]
    n_samples: int
    seed: int | None = None


class Predictor:
    """Score encounters with one loaded model and one engine."""

    def __init__(
        self, loaded: LoadedModel, engine: Engine, *, default_n_samples: int | None = None
    ) -> None:
        card = loaded.card
        self.loaded = loaded
        self.engine = engine
        self.model_version = loaded.version
        self.threshold = float(card["uncertainty"]["threshold"])
        mc = card.get("mc", {})
        self.default_n_samples = int(default_n_samples or mc.get("n_samples", 256))
        self.default_seed = int(mc.get("seed", 0))
        self.calibration = card.get("calibration")
        guard = card.get("domain_guard")
        self.guard = DomainGuard.from_dict(guard, loaded.model) if guard else None
        if not math.isfinite(self.threshold) or self.threshold < 0:
            raise ValueError(f"model card threshold {self.threshold!r} is not a finite std")

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        device: str,
        default_n_samples: int | None = None,
        threads: int | None = None,
    ) -> "Predictor":
        """The model in `model_dir` (checksums verified) on an `MCDropoutEngine` on `device`."""
        if threads is not None:
            torch.set_num_threads(threads)
        loaded = load_model(model_dir)
        seed = int(loaded.card.get("mc", {}).get("seed", 0))
        engine = MCDropoutEngine(loaded.model, device=device, default_seed=seed)
        return cls(loaded, engine, default_n_samples=default_n_samples)

    def predict(self, requests: Sequence[ScoringRequest]) -> list[Prediction]:
        """Score `requests` in order; each (n_samples, seed) group is one engine call."""
        groups = group_requests(requests)
        scored = [
            self.score_columns(group.columns, len(group.indices), group.n_samples, group.seed)
            for group in groups
        ]
        return in_request_order(len(requests), groups, scored)

    def score_columns(
        self, columns: Mapping[str, Sequence[Any]], rows: int, n_samples: int, seed: int | None
    ) -> list[Prediction]:
        """Score `rows` encounters given as the encoder's columns, with one engine call."""
        x = torch.from_numpy(self.loaded.spec.encode(columns))
        result = self.engine.predict(x, n_samples=n_samples, seed=seed)
        checked = None
        if self.guard is not None:
            # NOTE: the engine's first-layer activations, when it kept them, spare the guard
            # its own pass over the same weights.
            hidden = getattr(result, "hidden", None)
            checked = self.guard.check_columns(columns, x, hidden)
        # NOTE: whole columns become Python floats in one `tolist()` call each.
        std_array = _per_row(result.std, rows)
        reasons = flag_reasons(std_array, self.threshold, checked)
        std = std_array.tolist()
        mean = _per_row(result.mean, rows)
        probability = calibrate(mean, self.calibration).tolist()
        raw = mean.tolist()
        band_low, band_high = _calibrated_band(result, rows, self.calibration)
        se = _optional(result, "std_standard_error", rows)
        mi = _optional(result, "mutual_information", rows)
        novelty = [None] * rows if checked is None else checked.novelty.tolist()
        novelty_threshold = None if checked is None else checked.novelty_threshold
        n_samples = int(result.n_samples)
        used_seed = int(result.seed) if result.seed is not None else self.default_seed
        predictions = []
        for k in range(rows):
            predictions.append(
                Prediction(
                    probability=probability[k],
                    std=std[k],
                    std_standard_error=se[k],
                    mutual_information=mi[k],
                    flagged=bool(reasons[k]),
                    reasons=reasons[k],
                    threshold=self.threshold,
                    n_samples=n_samples,
                    seed=used_seed,
                    model_version=self.model_version,
                    novelty=novelty[k],
                    novelty_threshold=novelty_threshold,
                    band_low=band_low[k],
                    band_high=band_high[k],
                    raw_probability=raw[k],
                )
            )
        return predictions


class RequestGroup(NamedTuple):
    """The requests of a batch that share (n_samples, seed): one engine call."""

    n_samples: int
    seed: int | None
    indices: list[int]  # positions in the batch
    columns: dict[str, list[Any]]  # their records in the encoder's column layout


def group_requests(requests: Sequence[ScoringRequest]) -> list[RequestGroup]:
    """`requests` split by (n_samples, seed), in order of first appearance."""
    positions: dict[tuple[int, int | None], list[int]] = {}
    for index, request in enumerate(requests):
        positions.setdefault((request.n_samples, request.seed), []).append(index)
    return [
        RequestGroup(n, seed, indices, columns_from_records(requests[i].record for i in indices))
        for (n, seed), indices in positions.items()
    ]


def in_request_order(
    n: int, groups: Sequence[RequestGroup], scored: Sequence[Sequence[Prediction]]
) -> list[Prediction]:
    """Each group's predictions put back at its requests' positions."""
    out: list[Prediction | None] = [None] * n
    for group, predictions in zip(groups, scored, strict=True):
        for i, prediction in zip(group.indices, predictions, strict=True):
            out[i] = prediction
    return [p for p in out if p is not None]


def _calibrated_band(
    result: Any, rows: int, calibration: Mapping[str, Any] | None
) -> tuple[list[float | None], list[float | None]]:
    """The engine's percentile band mapped through the calibration, per row (None without it).

    A percentile of the passes maps through a monotone calibration to the same percentile of
    the calibrated passes; the ends are put in order in case the slope is negative.
    """
    low, high = getattr(result, "band_low", None), getattr(result, "band_high", None)
    if low is None or high is None:
        return [None] * rows, [None] * rows
    ends = calibrate(np.stack([_per_row(low, rows), _per_row(high, rows)]), calibration)
    return ends.min(axis=0).tolist(), ends.max(axis=0).tolist()


def _optional(result: Any, name: str, n: int) -> list[float | None]:
    """An engine value the engine may not give, per row as Python floats (None without it)."""
    value = getattr(result, name, None)
    return [None] * n if value is None else _per_row(value, n).tolist()


def _per_row(value: Any, n: int) -> np.ndarray:
    """An engine's value per row as `[n]` float64 NumPy.

    NOTE: a CPU tensor without grad is read in place: detach/cpu/double would each dispatch a
    torch operator.
    """
    if isinstance(value, torch.Tensor):
        if value.requires_grad or value.device.type != "cpu":
            value = value.detach().cpu()
        value = value.numpy()
    array = np.asarray(value, dtype=np.float64)
    return array if array.shape == (n,) else np.broadcast_to(array, (n,))
