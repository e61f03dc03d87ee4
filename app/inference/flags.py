"""The flag rule, in one place: a case goes to clinician review when its MC-dropout std is
strictly above the calibrated threshold, or when the domain guard gives any reason.

Serving (`Predictor`), calibration and the training reports all decide through these functions.
"""

from typing import Final

import numpy as np

from app.inference.guard import GuardResult

HIGH_UNCERTAINTY: Final = "high_uncertainty"


def uncertain(std: np.ndarray, threshold: float) -> np.ndarray:
    """Encounters whose std is strictly above the threshold."""
    out: np.ndarray = np.asarray(std, dtype=np.float64) > threshold
    return out


def flagged(std: np.ndarray, threshold: float, guard: GuardResult | None = None) -> np.ndarray:
    """Encounters the rule sends to review."""
    high = uncertain(std, threshold)
    return high if guard is None else high | guard.flagged


def reasons(
    std: np.ndarray, threshold: float, guard: GuardResult | None = None
) -> list[tuple[str, ...]]:
    """Every reason each encounter is sent to review, empty when it is not; the uncertainty
    reason first, then the guard's."""
    high = uncertain(std, threshold).tolist()
    guard_reasons = guard.reasons() if guard is not None else [[] for _ in high]
    return [
        (HIGH_UNCERTAINTY, *extra) if is_high else tuple(extra)
        for is_high, extra in zip(high, guard_reasons, strict=True)
    ]
