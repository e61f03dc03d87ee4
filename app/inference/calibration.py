"""Probability calibration stored in the model card, applied to the MC-mean probability.

Platt scaling on the logit: p_cal = sigmoid(a * logit(p) + b). Fitting lives in training;
applying it lives here because serving and evaluation must apply it identically.
"""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

_EPS = 1e-6


def calibrate(probability: np.ndarray, calibration: Mapping[str, Any] | None) -> np.ndarray:
    """Map MC-mean probabilities through the card's calibration (identity when there is none)."""
    p = np.asarray(probability, dtype=np.float64)
    if not calibration or calibration.get("method", "none") == "none":
        return p
    if calibration["method"] != "platt":
        raise ValueError(f"unknown calibration method {calibration['method']!r}")
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    logit = np.log(clipped) - np.log1p(-clipped)
    z = float(calibration["a"]) * logit + float(calibration["b"])
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


def logit_cut(threshold: float, calibration: Mapping[str, Any] | None) -> float:
    """The uncalibrated logit at which the calibrated probability equals `threshold`.

    A pass acts (its calibrated probability is at or above the threshold) when its logit is
    at or above this cut, or at or below it when the calibration decreases (`increasing`).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the action threshold must be strictly between 0 and 1, got {threshold}")
    z = math.log(threshold) - math.log1p(-threshold)
    if not calibration or calibration.get("method", "none") == "none":
        return z
    a, b = float(calibration["a"]), float(calibration["b"])
    if a == 0:
        raise ValueError("a calibration slope of 0 gives every encounter the same risk")
    return (z - b) / a


def increasing(calibration: Mapping[str, Any] | None) -> bool:
    """Whether the calibrated probability rises with the logit (a badly fitted one may not)."""
    if not calibration or calibration.get("method", "none") == "none":
        return True
    return float(calibration["a"]) > 0


def share_acting(share_above: np.ndarray, calibration: Mapping[str, Any] | None) -> np.ndarray:
    """The share of passes that act, from the share at or above the `logit_cut`."""
    above = np.asarray(share_above, dtype=np.float64)
    out: np.ndarray = above if increasing(calibration) else 1.0 - above
    return out
