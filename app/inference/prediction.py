"""One scored encounter, as every part of the service passes it on."""

from typing import NamedTuple


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
    # The MC mean before calibration (what Platt is fitted on); None from a caller without it.
    raw_probability: float | None = None
