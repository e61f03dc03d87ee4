"""The flag rule, in one place: a case goes to clinician review when its uncertainty measure is
strictly above the calibrated level, or when the domain guard gives any reason.

The measure is the card's `decision.measure` (the share of MC passes on the other side of the
action threshold, `decision_uncertain`) or, for a card without a decision block, the MC-dropout
std (`high_uncertainty`). Serving (`Predictor`), calibration and the training reports all decide
through these functions.
"""

from typing import Final, Literal

import numpy as np

from app.inference.guard import GuardResult

HIGH_UNCERTAINTY: Final = "high_uncertainty"
DECISION_UNCERTAIN: Final = "decision_uncertain"
DECISION_MEASURE: Final = "decision_flip"
ABOVE: Final = "above"
BELOW: Final = "below"
Action = Literal["above", "below"]


def uncertain(score: np.ndarray, threshold: float) -> np.ndarray:
    """Encounters whose uncertainty measure is strictly above the level."""
    out: np.ndarray = np.asarray(score, dtype=np.float64) > threshold
    return out


def flagged(score: np.ndarray, threshold: float, guard: GuardResult | None = None) -> np.ndarray:
    """Encounters the rule sends to review."""
    high = uncertain(score, threshold)
    return high if guard is None else high | guard.flagged


def reasons(
    score: np.ndarray,
    threshold: float,
    guard: GuardResult | None = None,
    *,
    reason: str = HIGH_UNCERTAINTY,
) -> list[tuple[str, ...]]:
    """Every reason each encounter is sent to review, empty when it is not; the uncertainty
    reason first, then the guard's."""
    high = uncertain(score, threshold).tolist()
    guard_reasons = guard.reasons() if guard is not None else [[] for _ in high]
    return [
        (reason, *extra) if is_high else tuple(extra)
        for is_high, extra in zip(high, guard_reasons, strict=True)
    ]


def acts(probability: np.ndarray, action_threshold: float) -> np.ndarray:
    """Encounters whose calibrated risk is at or above the action threshold."""
    out: np.ndarray = np.asarray(probability, dtype=np.float64) >= action_threshold
    return out


def decision_flip(
    probability: np.ndarray, share_acting: np.ndarray, action_threshold: float, n_samples: int
) -> np.ndarray:
    """The share of the N MC passes on the other side of the threshold from the recommended
    action, given the share of passes whose calibrated risk is at or above it."""
    acting = np.asarray(share_acting, dtype=np.float64)
    flip = np.where(acts(probability, action_threshold), 1.0 - acting, acting)
    # NOTE: a count out of N, made exact: `1 - k/N` is off by an ulp, enough to tip a tie.
    out: np.ndarray = np.rint(flip * n_samples) / n_samples
    return out
