"""One scored encounter, as every part of the service passes it on (no torch here).

NOTE: apart from the predictor, so the review-queue writer's child process, which stores
predictions but never makes one, starts without loading torch (1.6 s and 190 MB a worker).
"""

from typing import Any, NamedTuple


class Prediction(NamedTuple):
    """One scored encounter: calibrated probability, uncertainty and the flag decision."""

    probability: float
    std: float
    std_standard_error: float | None
    mutual_information: float | None
    flagged: bool
    reasons: tuple[str, ...]
    threshold: float
    n_samples: int
    seed: int
    model_version: str
    # The domain guard's novelty score and its threshold; None for a card without a guard.
    novelty: float | None = None
    novelty_threshold: float | None = None
    # The 5th-95th percentile band of the calibrated per-pass probabilities: at least 90% of
    # the dropout passes lie in it. None from an engine that does not give it.
    band_low: float | None = None
    band_high: float | None = None


def prediction_from_json(fields: list[Any]) -> Prediction:
    """A `Prediction` from its fields in order, as a JSON document gives them back."""
    fields[5] = tuple(fields[5])  # reasons: a JSON array
    return Prediction._make(fields)
